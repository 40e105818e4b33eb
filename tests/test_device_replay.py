"""Replay on the device: ``FrameStoreReplayBuffer(..., storage_device=...)`` keeps the frames as one uint8
tensor there and gathers sampled stacks with index ops; on CPU it gives exactly the samples of the numpy path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import pixel_env

from sb3_latent import RAD, FrameStoreReplayBuffer, NStepFrameStoreReplayBuffer

K, C, H, N_ENVS = 3, 3, 8, 2


def stream(n_steps: int, seed: int = 0) -> list[tuple[np.ndarray, ...]]:
    """``(obs, next_obs, action, reward, done, infos)`` of ``N_ENVS`` envs with stacks of K random frames, episodes
    of random length (terminations and truncations), reset stacks that repeat their first frame."""
    rng = np.random.default_rng(seed)
    frame = lambda: rng.integers(0, 256, (C, H, H), dtype=np.uint8)  # noqa: E731
    stacks = [[frame()] * K for _ in range(N_ENVS)]
    out = []
    for _ in range(n_steps):
        new = [frame() for _ in range(N_ENVS)]
        done = rng.random(N_ENVS) < 0.1
        trunc = done & (rng.random(N_ENVS) < 0.5)
        obs = np.stack([np.concatenate(s) for s in stacks])
        nxt = np.stack([np.concatenate([*s[1:], f]) for s, f in zip(stacks, new, strict=True)])
        infos = [{"TimeLimit.truncated": bool(t)} for t in trunc]
        out.append((obs, nxt, rng.standard_normal((N_ENVS, 2)).astype(np.float32), rng.random(N_ENVS), done, infos))
        stacks = [[frame()] * K if d else [*s[1:], f] for s, f, d in zip(stacks, new, done, strict=True)]
    return out


@pytest.mark.parametrize("cls", [FrameStoreReplayBuffer, NStepFrameStoreReplayBuffer])
@pytest.mark.parametrize("n_steps", [30, 300])  # not full, and wrapped around (reset stacks freed)
def test_torch_storage_gives_the_samples_of_the_numpy_path(cls, n_steps: int) -> None:
    obs_space = spaces.Box(0, 255, (K * C, H, H), np.uint8)
    act_space = spaces.Box(-1, 1, (2,), np.float32)
    a = cls(100, obs_space, act_space, device="cpu", n_envs=N_ENVS)
    b = cls(100, obs_space, act_space, device="cpu", n_envs=N_ENVS, storage_device="cpu")
    assert isinstance(b.frames, torch.Tensor) and b.frames.dtype == torch.uint8 and isinstance(a.frames, np.ndarray)
    for t in stream(n_steps):
        a.add(*t)
        b.add(*t)
    for seed in range(5):
        np.random.seed(seed)
        x = a.sample(32)
        np.random.seed(seed)
        y = b.sample(32)
        for f in x._fields:
            u, v = getattr(x, f), getattr(y, f)
            assert (u is None) == (v is None), f
            if u is not None:
                assert u.dtype == v.dtype and torch.equal(u, v), f
    assert b.nbytes() >= b.frames.numel()


def test_rad_learns_with_frames_on_the_device() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = RAD(
        "CnnPolicy",
        pixel_env(),
        buffer_size=200,
        batch_size=8,
        learning_starts=30,
        replay_buffer_kwargs=dict(storage_device=device),
        policy_kwargs=dict(net_arch=[16], features_extractor_kwargs=dict(features_dim=8)),
        device=device,
    )
    model.learn(50)
    assert model._n_updates > 0 and model.replay_buffer.frames.device.type == device
