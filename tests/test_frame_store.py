"""FrameStoreReplayBuffer: stores each frame once and rebuilds exactly what SB3's ReplayBuffer stores."""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import shadowed
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import DQN, SAC, TD3
from stable_baselines3.common.buffers import NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecNormalize

from sb3_latent.buffers import FrameStoreReplayBuffer, NStepFrameStoreReplayBuffer
from sb3_latent.envs import MovingDotEnv, make_moving_dot_env
from sb3_latent.extractors import flare_kwargs

TINY = dict(features_dim=16, encoder_kwargs={"num_filters": 8}, net_arch=[32, 32])
ACTIONS = spaces.Box(-1, 1, (2,), np.float32)


class Stream:
    """Frame-stacked transitions of ``n_envs`` envs with random episode lengths, as SB3 adds them.

    :param frame: shape of one frame; 1-D frames are float32 vectors, others uint8 images
    :param padding: the reset stack: ``"repeat"`` (copies of the first frame, our FrameStack), ``"zeros"``
        (SB3's VecFrameStack) or ``"random"`` (``k`` random frames)
    :param bank: frames are drawn from this many random frames, so that equal frames are common
    """

    def __init__(
        self, n_envs: int, k: int, frame: tuple[int, ...], padding: str, seed: int, bank: int = 4, p_end: float = 0.15
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_envs, self.k, self.padding, self.p_end = n_envs, k, padding, p_end
        dtype = np.float32 if len(frame) == 1 else np.uint8
        self.bank = self.rng.integers(0, 3, (bank, *frame)).astype(dtype)
        self.space = spaces.Box(0, 255, (k * frame[0], *frame[1:]), dtype)
        self.stacks = [self._reset() for _ in range(n_envs)]

    def _reset(self) -> list[np.ndarray]:
        if self.padding == "random":
            return list(self.bank[self.rng.integers(len(self.bank), size=self.k)])
        first = self.bank[self.rng.integers(len(self.bank))]
        return [first if self.padding == "repeat" else np.zeros_like(first)] * (self.k - 1) + [first]

    def step(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        obs = np.stack([np.concatenate(s) for s in self.stacks])
        self.stacks = [[*s[1:], self.bank[self.rng.integers(len(self.bank))]] for s in self.stacks]
        next_obs = np.stack([np.concatenate(s) for s in self.stacks])
        done = self.rng.random(self.n_envs) < self.p_end
        truncated = done & (self.rng.random(self.n_envs) < 0.5)
        for i in np.flatnonzero(done):
            self.stacks[i] = self._reset()
        action = self.rng.uniform(-1, 1, (self.n_envs, 2)).astype(np.float32)
        reward = self.rng.normal(size=self.n_envs).astype(np.float32)
        return obs, next_obs, action, reward, done, [{"TimeLimit.truncated": bool(t)} for t in truncated]


def assert_same_as_sb3(ours: FrameStoreReplayBuffer, ref: ReplayBuffer) -> None:
    """Every stored transition (each row and env) of ``ours`` equals that of SB3's buffer ``ref``."""
    assert (ours.pos, ours.full, ours.buffer_size) == (ref.pos, ref.full, ref.buffer_size)
    rows = np.arange(ref.size())
    b, e = np.repeat(rows, ref.n_envs), np.tile(np.arange(ref.n_envs), len(rows))
    got = ours._get_samples(b, env_indices=e)
    np.testing.assert_array_equal(got.observations.numpy(), ref.observations[b, e])
    np.testing.assert_array_equal(got.next_observations.numpy(), ref.next_observations[b, e])
    np.testing.assert_array_equal(got.actions.numpy(), ref.actions[b, e])
    np.testing.assert_array_equal(got.rewards.numpy(), ref.rewards[b, e].reshape(-1, 1))
    np.testing.assert_array_equal(got.dones.numpy(), (ref.dones[b, e] * (1 - ref.timeouts[b, e])).reshape(-1, 1))
    np.random.seed(1)  # sample() draws rows and envs as SB3 does: same seed, same samples
    a = ours.sample(32)
    np.random.seed(1)
    for x, y in zip(a, ref.sample(32), strict=True):
        assert (x is None and y is None) or (x.dtype == y.dtype and torch.equal(x, y))


def assert_frees_unneeded_stacks(buf: FrameStoreReplayBuffer) -> None:
    """Each env keeps exactly the reset stacks from the oldest one a stored transition refers to on."""
    for e in range(buf.n_envs):
        oldest = buf.reset_ids[: buf.size(), e].min()
        assert buf._stack_lo[e] == oldest and buf._stack_hi[e] == buf._ep_reset[e] + 1
        assert buf._pool_lo[e] == buf._stacks[oldest % len(buf._stacks), e, 0]
        assert buf._stack_hi[e] - buf._stack_lo[e] <= buf.size()


@settings(max_examples=200, deadline=None)
@given(
    n_envs=st.integers(1, 3),
    k=st.integers(1, 4),
    padding=st.sampled_from(["repeat", "zeros", "random"]),
    vector=st.booleans(),
    rows=st.integers(1, 12),
    n_steps=st.integers(1, 60),
    p_end=st.sampled_from([0.05, 0.3, 0.6, 1.0]),
    timeouts=st.booleans(),
    validate=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_rebuilds_exactly_what_sb3_stores(
    n_envs, k, padding, vector, rows, n_steps, p_end, timeouts, validate, seed
) -> None:
    stream = Stream(n_envs, k, (2,) if vector else (3, 6, 6), padding, seed, p_end=p_end)
    kw = dict(n_envs=n_envs, handle_timeout_termination=timeouts)
    ours = FrameStoreReplayBuffer(rows * n_envs, stream.space, ACTIONS, "cpu", n_frames=k, validate=validate, **kw)
    ref = ReplayBuffer(rows * n_envs, stream.space, ACTIONS, "cpu", **kw)
    for _ in range(n_steps):
        data = stream.step()
        ours.add(*data)
        ref.add(*data)
    assert_same_as_sb3(ours, ref)
    assert_frees_unneeded_stacks(ours)


def test_restart_without_done_starts_a_new_episode() -> None:
    """``learn()`` resets the env without a done: the next obs starts a new episode, and stays exact."""
    stream = Stream(2, 3, (3, 6, 6), "repeat", seed=0, bank=50, p_end=0.0)
    ref = ReplayBuffer(40, stream.space, ACTIONS, "cpu", n_envs=2)
    ours = FrameStoreReplayBuffer(40, stream.space, ACTIONS, "cpu", n_envs=2)
    for t in range(30):
        if t in (7, 8, 20):
            stream.stacks = [stream._reset() for _ in range(2)]
        data = stream.step()
        ours.add(*data)
        ref.add(*data)
    assert_same_as_sb3(ours, ref)
    assert list(ours._stack_hi) == [4, 4]  # each env: the first episode and restarts at steps 7, 8 and 20


#: ours, also feeding every add to SB3's ReplayBuffer (``self.ref``) to compare against
Shadowed = shadowed(
    FrameStoreReplayBuffer, lambda buf, *args: ReplayBuffer(*args[:3], device="cpu", n_envs=buf.n_envs), __name__
)


ALGOS = {"SAC": (SAC, "continuous"), "TD3": (TD3, "continuous"), "DQN": (DQN, "discrete")}


@pytest.mark.parametrize("algo", ALGOS)
def test_trains_with_sb3_algorithms_and_matches_sb3_buffer(tmp_path, algo) -> None:
    """300 steps of learning (twice 150: the second learn() resets the env without done), buffer wraps."""
    cls, action_type = ALGOS[algo]
    env = make_moving_dot_env(n_envs=2, frame_stack=3, seed=0, size=20, action_type=action_type, episode_length=40)
    model = cls(
        "CnnPolicy",
        env,
        policy_kwargs=flare_kwargs(n_frames=3, **TINY),
        buffer_size=200,
        batch_size=16,
        learning_starts=100,
        seed=0,
        replay_buffer_class=Shadowed,
        replay_buffer_kwargs=dict(n_frames=3),
    )
    model.learn(150)
    model.learn(150)
    buf = model.replay_buffer
    assert isinstance(buf, Shadowed) and buf.full and model.num_timesteps >= 150
    # no observation arrays: buf.observations is a view that rebuilds stacks from the frames on demand
    assert not isinstance(buf.observations, np.ndarray) and not isinstance(buf.next_observations, np.ndarray)
    assert_same_as_sb3(buf, buf.ref)
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    loaded = cls(
        "CnnPolicy",
        env,
        policy_kwargs=flare_kwargs(n_frames=3, **TINY),
        buffer_size=200,
        seed=0,
        replay_buffer_class=FrameStoreReplayBuffer,
        replay_buffer_kwargs=dict(n_frames=3),
    )
    loaded.load_replay_buffer(tmp_path / "buffer.pkl")
    assert type(loaded.replay_buffer) is Shadowed
    for seed in range(3):
        np.random.seed(seed)
        a = buf.sample(16)
        np.random.seed(seed)
        b = loaded.replay_buffer.sample(16)
        assert all(x is y is None or torch.equal(x, y) for x, y in zip(a, b, strict=True))
    loaded.learn(40)  # goes on from the loaded buffer


def test_sb3_vec_frame_stack_zero_padding() -> None:
    """SB3's VecFrameStack pads the reset stack with zeros: reproduced exactly."""
    env = DummyVecEnv([lambda: MovingDotEnv(size=12, episode_length=7, action_type="discrete")] * 2)
    env = VecFrameStack(env, 4, channels_order="first")
    model = DQN(
        "MlpPolicy",
        env,
        buffer_size=30,
        learning_starts=1000,
        seed=0,
        replay_buffer_class=Shadowed,
        replay_buffer_kwargs=dict(n_frames=4),
    )
    model.learn(40)
    assert_same_as_sb3(model.replay_buffer, model.replay_buffer.ref)
    assert model.replay_buffer.observation_space.shape == (12, 12, 12)


def test_sample_normalizes_with_vec_normalize_like_sb3() -> None:
    stream = Stream(2, 4, (2,), "repeat", seed=5)
    venv = VecNormalize(make_moving_dot_env(n_envs=2, frame_stack=4, obs_type="position"), gamma=0.9)
    venv.obs_rms.mean, venv.obs_rms.var = np.arange(8.0), np.arange(1.0, 9.0)
    venv.ret_rms.var = np.array(4.0)
    ours = FrameStoreReplayBuffer(20, stream.space, ACTIONS, "cpu", n_envs=2, n_frames=4)
    ref = ReplayBuffer(20, stream.space, ACTIONS, "cpu", n_envs=2)
    for _ in range(15):
        data = stream.step()
        ours.add(*data)
        ref.add(*data)
    np.random.seed(0)
    a = ours.sample(16, env=venv)
    np.random.seed(0)
    b = ref.sample(16, env=venv)
    assert a.observations.dtype == torch.float32  # normalized
    assert all(x is y is None or torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_pickle_round_trip() -> None:
    stream = Stream(2, 3, (3, 6, 6), "zeros", seed=3)
    buf = FrameStoreReplayBuffer(16, stream.space, ACTIONS, "cpu", n_envs=2)
    for _ in range(20):
        buf.add(*stream.step())
    copy = pickle.loads(pickle.dumps(buf))
    rows = np.arange(8).repeat(2)
    envs = np.tile([0, 1], 8)
    for x, y in zip(buf._get_samples(rows, env_indices=envs), copy._get_samples(rows, env_indices=envs), strict=True):
        assert x is y is None or torch.equal(x, y)
    buf.reset()
    assert buf.size() == 0 and buf.n_added == 0 and buf._stack_hi.sum() == 0


def sb3_nbytes(buf: ReplayBuffer) -> int:
    arrays = [
        buf.observations,
        getattr(buf, "next_observations", None),
        buf.actions,
        buf.rewards,
        buf.dones,
        buf.timeouts,
    ]
    return sum(a.nbytes for a in arrays if a is not None)


def test_memory_at_most_a_fifth_of_sb3() -> None:
    """(9, 84, 84) uint8, 3 frames, zero padding (two frames per reset stack), 60-step episodes, full buffer."""
    stream = Stream(1, 3, (3, 84, 84), "zeros", seed=0, bank=8, p_end=1 / 60)
    ours = FrameStoreReplayBuffer(300, stream.space, ACTIONS, "cpu")
    ref = ReplayBuffer(300, stream.space, ACTIONS, "cpu")
    for _ in range(400):
        ours.add(*stream.step())
    assert ours.full and ours.nbytes() >= ours.frames.nbytes + ours._pool.nbytes + ours.actions.nbytes
    per_ours, per_sb3 = ours.nbytes() / 300, sb3_nbytes(ref) / 300
    assert per_ours <= per_sb3 / 5, (per_ours, per_sb3)
    assert per_sb3 > 2 * 9 * 84 * 84


def test_infers_n_frames_for_rgb_images() -> None:
    assert FrameStoreReplayBuffer(10, spaces.Box(0, 255, (9, 8, 8), np.uint8), ACTIONS).n_frames == 3
    assert FrameStoreReplayBuffer(10, spaces.Box(0, 255, (3, 8, 8), np.uint8), ACTIONS).frame_shape == (3, 8, 8)
    assert FrameStoreReplayBuffer(10, spaces.Box(-1, 1, (8,)), ACTIONS, n_frames=4).frame_shape == (2,)


@pytest.mark.parametrize(
    ("space", "kwargs", "error", "match"),
    [
        (spaces.Box(-1, 1, (8,)), {}, ValueError, r"Cannot infer n_frames .* Pass it"),
        (spaces.Box(0, 255, (8, 6, 6), np.uint8), {}, ValueError, "Cannot infer n_frames"),
        (spaces.Box(0, 1, (9, 6, 6)), {}, ValueError, "Cannot infer n_frames"),  # not uint8
        (
            spaces.Box(0, 255, (9, 6, 6), np.uint8),
            {"n_frames": 2},
            ValueError,
            r"n_frames=2 does not divide the "
            r"channel count 9 .*\[1, 3, 9\]",
        ),
        (spaces.Box(-1, 1, (8,)), {"n_frames": 3}, ValueError, "n_frames=3 does not divide the size 8"),
        (spaces.Box(-1, 1, (8,)), {"n_frames": 0}, ValueError, "n_frames must be an integer >= 1, got 0"),
        (spaces.Box(-1, 1, (8,)), {"n_frames": 2.0}, ValueError, "n_frames must be an integer >= 1, got 2.0"),
        (spaces.Dict({"a": spaces.Box(-1, 1, (8,))}), {"n_frames": 2}, TypeError, "does not support Dict"),
        (spaces.Box(-1, 1, (4, 4)), {"n_frames": 2}, TypeError, r"expects a Box .* \(k\*C, H, W\)"),
        (spaces.Discrete(4), {"n_frames": 1}, TypeError, "expects a Box"),
        (
            spaces.Box(0, 255, (9, 6, 6), np.uint8),
            {"optimize_memory_usage": True, "handle_timeout_termination": False},
            ValueError,
            "optimize_memory_usage=True is not needed",
        ),
    ],
)
def test_clear_errors(space, kwargs, error, match) -> None:
    with pytest.raises(error, match=match):
        FrameStoreReplayBuffer(10, space, ACTIONS, **kwargs)


@pytest.mark.parametrize("validate", [False, True])
def test_add_rejects_a_stream_that_is_not_frame_stacked(validate) -> None:
    space = spaces.Box(0, 255, (9, 6, 6), np.uint8)
    buf = FrameStoreReplayBuffer(10, space, ACTIONS, n_frames=3, validate=validate)
    obs = np.random.randint(0, 255, (1, 9, 6, 6), dtype=np.uint8)
    with pytest.raises(ValueError, match=r"env 0: next_obs is not obs shifted by one frame .* n_frames=3"):
        buf.add(
            obs,
            np.random.randint(0, 255, (1, 9, 6, 6), dtype=np.uint8),
            np.zeros((1, 2)),
            np.zeros(1),
            np.zeros(1),
            [{}],
        )
    # a stream stacked along the wrong axis / with the wrong n_frames fails the same way
    wrong = np.concatenate([obs[:, 3:], obs[:, :3]], axis=1)
    with pytest.raises(ValueError, match="not obs shifted"):
        buf.add(obs, wrong[:, ::-1].copy(), np.zeros((1, 2)), np.zeros(1), np.zeros(1), [{}])


def test_validate_catches_what_the_cheap_check_lets_through() -> None:
    """The oldest and newest frames of a continuing obs are compared by default; validate=True compares all."""
    f = [np.full((3, 4, 4), v, np.uint8) for v in range(5)]
    stack = lambda *i: np.concatenate([f[j] for j in i])[None]  # noqa: E731
    args = (np.zeros((1, 2)), np.zeros(1), np.zeros(1), [{}])
    for validate, restarts in [(False, 1), (True, 2)]:
        buf = FrameStoreReplayBuffer(10, spaces.Box(0, 255, (9, 4, 4), np.uint8), ACTIONS, validate=validate)
        buf.add(stack(0, 1, 2), stack(1, 2, 3), *args)
        buf.add(stack(1, 4, 3), stack(4, 3, 4), *args)  # env reset without done; only the middle frame differs
        assert buf._stack_hi[0] == restarts


@settings(max_examples=100, deadline=None)
@given(
    n_envs=st.integers(1, 3),
    k=st.integers(1, 3),
    n=st.integers(1, 4),
    rows=st.integers(2, 10),
    n_add=st.integers(1, 40),
    p_end=st.sampled_from([0.05, 0.3, 1.0]),
    seed=st.integers(0, 2**16),
)
def test_n_step_returns_equal_sb3_n_step_buffer(n_envs, k, n, rows, n_add, p_end, seed) -> None:
    """n-step samples (obs, n-step return, next_obs after the last step, done, discount) equal SB3's
    NStepReplayBuffer on the same stream, with every frame stored once."""
    stream = Stream(n_envs, k, (3, 6, 6), "repeat", seed, p_end=p_end)
    kw = dict(n_envs=n_envs, n_steps=n, gamma=0.9)
    ours = NStepFrameStoreReplayBuffer(rows * n_envs, stream.space, ACTIONS, "cpu", n_frames=k, **kw)
    ref = NStepReplayBuffer(rows * n_envs, stream.space, ACTIONS, "cpu", **kw)
    for _ in range(n_add):
        data = stream.step()
        ours.add(*data)
        ref.add(*data)
    inds = np.arange(ref.size())
    np.random.seed(seed)
    a = ours._get_samples(inds)
    np.random.seed(seed)
    b = ref._get_samples(inds)
    for x, y in zip(a, b, strict=True):
        assert (x is None and y is None) or torch.equal(x, y)


def test_n_step_errors() -> None:
    space = spaces.Box(0, 255, (9, 6, 6), np.uint8)
    with pytest.raises(ValueError, match="n_steps must be an integer >= 1"):
        NStepFrameStoreReplayBuffer(10, space, ACTIONS, n_steps=0)
    with pytest.raises(ValueError, match=r"gamma must be in \[0, 1\]"):
        NStepFrameStoreReplayBuffer(10, space, ACTIONS, gamma=1.5)
