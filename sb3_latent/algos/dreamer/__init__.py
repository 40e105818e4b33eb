from sb3_latent.algos.dreamer.dreamer import Dreamer
from sb3_latent.algos.dreamer.openloop import open_loop_predictions, write_open_loop
from sb3_latent.algos.dreamer.policies import (
    PAPER_XS,
    SIZES,
    DreamerCnnPolicy,
    DreamerMlpPolicy,
    DreamerMultiInputPolicy,
    DreamerPolicy,
    WorldModel,
)

CnnPolicy = DreamerCnnPolicy
MlpPolicy = DreamerMlpPolicy
MultiInputPolicy = DreamerMultiInputPolicy

__all__ = [
    "PAPER_XS",
    "SIZES",
    "CnnPolicy",
    "Dreamer",
    "DreamerCnnPolicy",
    "DreamerMlpPolicy",
    "DreamerMultiInputPolicy",
    "DreamerPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "WorldModel",
    "open_loop_predictions",
    "write_open_loop",
]
