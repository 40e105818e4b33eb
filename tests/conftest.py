import os

os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tiny nets: one thread avoids oversubscribing 2-core CI machines


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny nets gain nothing from intra-op threads; on a busy 2-core machine, threads that wait for each
    other make the tests many times slower. Restored after each test (some change it)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(scope="session")
def postgres_url():
    """A PostgreSQL server for distributed-tuning tests: ``$SB3_LATENT_POSTGRES_URL`` (set by ``.ci/run``),
    else one started (and installed when missing) by ``.ci/postgres.sh`` for this session."""
    import subprocess
    import warnings
    from pathlib import Path

    url = os.environ.get("SB3_LATENT_POSTGRES_URL")
    if url:
        yield url
        return
    script = Path(__file__).resolve().parent.parent / ".ci" / "postgres.sh"
    import shutil
    import tempfile

    # not under pytest's tmp folders: those are private to root, and the server runs as `postgres`
    folder = Path(tempfile.mkdtemp(prefix="sb3-latent-pg-"))
    proc = subprocess.run(["bash", str(script), "start", str(folder)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        reason = (
            f"PostgreSQL could not be installed or started by {script} (exit {proc.returncode}): "
            f"{proc.stderr.strip()[-800:]}"
        )
        warnings.warn(reason, stacklevel=1)
        pytest.skip(f"!!! SKIPPED: NO POSTGRESQL !!! {reason}")
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(script), "stop", str(folder)], capture_output=True, timeout=120)
        shutil.rmtree(folder, ignore_errors=True)
