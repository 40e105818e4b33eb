import sys
from pathlib import Path

import numpy as np
import pytest
import torch

# the plugin's source, for running these tests from a checkout without installing it
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)
