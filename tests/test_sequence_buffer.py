"""SequenceReplayBuffer: whole episodes, each observation stored once, sequences for SLAC and Dreamer.

The buffer is checked against :class:`Reference`, a plain-Python statement of its documented behaviour
(lists of episodes, FIFO eviction of whole finished episodes), on random episode streams whose every
observation is unique, so that a sampled sequence tells exactly where it came from.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from helpers import shadowed
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import SAC
from stable_baselines3.common.utils import get_device

from sb3_latent.buffers import SequenceReplayBuffer
from sb3_latent.envs import make_moving_dot_env

ACTIONS = spaces.Box(-1, 1, (2,), np.float32)


@dataclass
class Episode:
    env: int
    time: int  # order of its start among all episodes
    obs: list[Any] = field(default_factory=list)
    actions: list[np.ndarray] = field(default_factory=list)  # the action that led to each observation
    rewards: list[float] = field(default_factory=list)
    is_first: list[bool] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)
    open: bool = True

    def append(self, obs: Any, action: np.ndarray, reward: float, first: bool, term: bool, trunc: bool) -> None:
        self.obs.append(obs)
        self.actions.append(np.asarray(action))
        self.rewards.append(reward)
        self.is_first.append(first)
        self.terminated.append(term)
        self.truncated.append(trunc)

    def drop_first(self) -> None:
        for items in (self.obs, self.actions, self.rewards, self.is_first, self.terminated, self.truncated):
            del items[0]


class Reference:
    """The documented behaviour, plainly: episodes in lists; when an observation needs room, evict the
    oldest finished episode whole, or else the oldest observation of the longest episode being collected."""

    def __init__(self, capacity: int, n_envs: int, handle_timeout_termination: bool = True) -> None:
        self.capacity, self.n_envs, self.handle = capacity, n_envs, handle_timeout_termination
        self.episodes: list[Episode] = []
        self.n_started = 0

    def stored(self) -> int:
        return sum(len(ep.obs) for ep in self.episodes)

    def current(self, e: int) -> Episode | None:
        eps = [ep for ep in self.episodes if ep.env == e]
        return eps[-1] if eps and eps[-1].open else None

    def make_room(self, n: int) -> None:
        while self.stored() + n > self.capacity:
            finished = [ep for ep in self.episodes if not ep.open]
            if finished:
                self.episodes.remove(min(finished, key=lambda ep: ep.time))
            else:
                max(self.episodes, key=lambda ep: (len(ep.obs), -ep.env)).drop_first()

    def start(self, e: int, obs: Any) -> Episode:
        ep = Episode(e, self.n_started)
        self.n_started += 1
        ep.append(obs, np.zeros(2, np.float32), 0.0, True, False, False)
        self.episodes.append(ep)
        return ep

    def add(
        self,
        obs: Any,
        next_obs: Any,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        for e in range(self.n_envs):
            ep = self.current(e)
            if ep is not None and not same(ep.obs[-1], index(obs, e)):
                ep.truncated[-1], ep.open = True, False
                ep = None
            self.make_room(1 if ep is not None else 2)
            if ep is None:
                ep = self.start(e, index(obs, e))
            timeout = bool(done[e] and self.handle and infos[e].get("TimeLimit.truncated", False))
            ep.append(index(next_obs, e), action[e], float(reward[e]), False, bool(done[e]) and not timeout, timeout)
            ep.open = not done[e]

    def streams(self) -> list[list[Episode]]:
        return [[ep for ep in self.episodes if ep.env == e] for e in range(self.n_envs)]

    def sequences(self, length: int, mode: str) -> list[dict[str, Any]]:
        """Every sequence the buffer may sample, in the buffer's order (env, then stream position)."""
        out = []
        for eps in self.streams():
            runs = eps if mode == "episode" else [concat(eps)] if eps else []
            for run in runs:
                for s in range(len(run.obs) - length + 1):
                    out.append(window(run, s, length))
        return out


def index(obs: Any, i: int) -> Any:
    return {k: v[i] for k, v in obs.items()} if isinstance(obs, dict) else obs[i]


def same(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return all(np.array_equal(a[k], b[k]) for k in a)
    return bool(np.array_equal(a, b))


def concat(eps: list[Episode]) -> Episode:
    out = Episode(eps[0].env, eps[0].time)
    for ep in eps:
        for i in range(len(ep.obs)):
            out.append(ep.obs[i], ep.actions[i], ep.rewards[i], ep.is_first[i], ep.terminated[i], ep.truncated[i])
    return out


def stack(items: list[Any]) -> Any:
    if isinstance(items[0], dict):
        return {k: np.stack([x[k] for x in items]) for k in items[0]}
    return np.stack(items)


def window(run: Episode, s: int, length: int) -> dict[str, Any]:
    """Sequence ``s..s+length-1`` of a run, laid out as SequenceSamples (actions/rewards of steps between)."""
    sl = slice(s, s + length)
    return {
        "observations": stack(run.obs[sl]),
        "actions": np.array(run.actions[s + 1 : s + length], np.float32).reshape(length - 1, 2),
        "rewards": np.array(run.rewards[s + 1 : s + length], np.float32),
        **{k: np.array(getattr(run, k)[sl], np.float32) for k in ("is_first", "terminated", "truncated")},
    }


def as_numpy(samples: Any, i: int | None = None) -> dict[str, Any]:
    """Sample ``i`` of a SequenceSamples (or all of them) as numpy arrays."""
    out = {}
    for name, value in samples._asdict().items():
        pick = (lambda t: t.cpu().numpy()) if i is None else (lambda t, i=i: t[i].cpu().numpy())
        out[name] = {k: pick(v) for k, v in value.items()} if isinstance(value, dict) else pick(value)
    return out


def assert_sequence_equal(got: dict[str, Any], want: dict[str, Any]) -> None:
    for name, value in want.items():
        if isinstance(value, dict):
            for k in value:
                np.testing.assert_array_equal(got[name][k], value[k], err_msg=f"{name}[{k}]")
        else:
            np.testing.assert_array_equal(got[name], value, err_msg=name)


class Stream:
    """Steps of ``n_envs`` envs as SB3 adds them. Every observation is unique: vectors ``(env, episode, t,
    noise)`` or uint8 images whose first pixels spell a running id. Episodes end with probability ``p_end``
    per step (terminated or truncated at random); with probability ``p_cut`` an env restarts without done."""

    def __init__(
        self, n_envs: int, image: bool, seed: int, p_end: float = 0.2, p_cut: float = 0.0, dict_obs: bool = False
    ) -> None:
        self.rng = np.random.default_rng(seed)
        self.n_envs, self.image, self.p_end, self.p_cut, self.dict_obs = n_envs, image, p_end, p_cut, dict_obs
        self.counter = 0
        box = spaces.Box(0, 255, (3, 4, 4), np.uint8) if image else spaces.Box(-1e6, 1e6, (4,), np.float32)
        self.space: spaces.Space = (
            spaces.Dict(
                {"pixels": spaces.Box(0, 255, (3, 4, 4), np.uint8), "state": spaces.Box(-1e6, 1e6, (2,), np.float32)}
            )
            if dict_obs
            else box
        )
        self.obs = [self._new() for _ in range(n_envs)]

    def _new(self) -> Any:
        self.counter += 1
        n = self.counter
        img = self.rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
        img[0, 0, :3] = (n % 256, n // 256 % 256, n // 65536)
        vec = np.array([n, self.rng.normal(), 0, 0], np.float32)
        if self.dict_obs:
            return {"pixels": img, "state": vec[:2]}
        return img if self.image else vec

    def step(self) -> tuple[Any, Any, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        for e in range(self.n_envs):
            if self.rng.random() < self.p_cut:
                self.obs[e] = self._new()  # reset without done
        obs = stack(self.obs)
        next_obs = [self._new() for _ in range(self.n_envs)]
        done = self.rng.random(self.n_envs) < self.p_end
        truncated = done & (self.rng.random(self.n_envs) < 0.5)
        self.obs = [self._new() if d else o for d, o in zip(done, next_obs, strict=True)]
        action = self.rng.uniform(-1, 1, (self.n_envs, 2)).astype(np.float32)
        reward = self.rng.normal(size=self.n_envs).astype(np.float32)
        return obs, stack(next_obs), action, reward, done, [{"TimeLimit.truncated": bool(t)} for t in truncated]


def assert_matches_reference(buf: SequenceReplayBuffer, ref: Reference) -> None:
    """Same episodes stored (each whole, in order, with every field), one slot per observation, and the
    same set of sequences to sample in both modes."""
    assert buf.size() == ref.stored() <= buf.buffer_size
    envs, firsts, sizes, _ = buf._runs(2, "episode")
    stored = [ep for eps in ref.streams() for ep in eps]
    assert len(sizes) == len(stored)
    for e, first, size, ep in zip(envs, firsts, sizes, stored, strict=True):
        assert e == ep.env and size == len(ep.obs)
        assert_sequence_equal(
            as_numpy(buf._sequences(np.array([e]), np.array([first]), int(size)), 0), window(ep, 0, len(ep.obs))
        )
    # memory: one slot per stored observation, no slot used twice
    slots = [buf._stream[p % len(buf._stream), e] for e in range(buf.n_envs) for p in range(buf._lo[e], buf._hi[e])]
    assert len(slots) == len(set(slots)) == ref.stored()
    for length in (2, 3, 5):
        for mode in ("episode", "window"):
            want = ref.sequences(length, mode)
            assert buf.n_sequences(length, mode) == len(want)
            if want:
                e, p = buf._locate(np.arange(len(want)), length, mode)
                got = as_numpy(buf._sequences(e, p, length))
                for i, w in enumerate(want):
                    assert_sequence_equal(
                        {
                            k: v[i] if not isinstance(v, dict) else {q: x[i] for q, x in v.items()}
                            for k, v in got.items()
                        },
                        w,
                    )


@settings(max_examples=200, deadline=None)
@given(
    n_envs=st.integers(1, 3),
    image=st.booleans(),
    length=st.integers(2, 4),
    extra=st.integers(0, 30),
    n_steps=st.integers(1, 80),
    p_end=st.sampled_from([0.05, 0.2, 0.5, 1.0]),
    p_cut=st.sampled_from([0.0, 0.1]),
    timeouts=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_random_streams_match_the_reference(
    n_envs, image, length, extra, n_steps, p_end, p_cut, timeouts, seed
) -> None:
    """Stored episodes, eviction, and both sampling modes agree with the reference on random streams
    (random lengths, terminations and truncations, restarts without done, capacity from tight to ample)."""
    capacity = n_envs * length + extra
    stream = Stream(n_envs, image, seed, p_end=p_end, p_cut=p_cut)
    buf = SequenceReplayBuffer(
        capacity,
        stream.space,
        ACTIONS,
        "cpu",
        n_envs=n_envs,
        sequence_length=length,
        handle_timeout_termination=timeouts,
    )
    ref = Reference(capacity, n_envs, handle_timeout_termination=timeouts)
    for _ in range(n_steps):
        data = stream.step()
        buf.add(*data)
        ref.add(*data)
    assert_matches_reference(buf, ref)
    # sample(): each drawn sequence is one of the reference's, found by its first observation's id
    for mode in ("episode", "window"):
        want = {
            int(w["observations"][0].reshape(-1)[0]) if not image else bytes(w["observations"][0, 0, 0, :3]): w
            for w in ref.sequences(length, mode)
        }
        if not want:
            with pytest.raises(ValueError, match=f"No sequence of sequence_length={length} to sample"):
                buf.sample(8, mode=mode)
            continue
        samples = buf.sample(8, mode=mode)
        assert samples.observations.dtype == (torch.uint8 if image else torch.float32)
        for i in range(8):
            got = as_numpy(samples, i)
            key = bytes(got["observations"][0, 0, 0, :3]) if image else int(got["observations"][0, 0])
            assert_sequence_equal(got, want[key])
            if mode == "episode":  # never crosses an episode boundary
                assert got["is_first"][1:].sum() == 0 and got["terminated"][:-1].sum() == 0
                assert got["truncated"][:-1].sum() == 0


def test_eviction_is_fifo_of_whole_episodes_and_spares_the_one_being_collected() -> None:
    """One env with long episodes, one with short ones: when room is needed the oldest finished episode
    goes, whole, even while an older episode of the other env is still being collected."""
    space = spaces.Box(-1e6, 1e6, (1,), np.float32)
    buf = SequenceReplayBuffer(12, space, ACTIONS, "cpu", n_envs=2, sequence_length=3)
    t = [0, 100]

    def step(done: tuple[bool, bool]) -> None:
        obs = np.array([[t[0]], [t[1]]], np.float32)
        nxt = obs + 1
        buf.add(obs, nxt, np.zeros((2, 2)), np.zeros(2), np.array(done), [{}, {}])
        for e in range(2):
            t[e] = t[e] + 1 if not done[e] else t[e] + 50

    for done1 in (False, True, False, True, False, True):  # env 1: episodes of 2 steps (3 observations)
        step((False, done1))
    # env 0: one open episode of 7 observations; env 1: 3 finished episodes of 3 = 9; 16 > 12: evicted the 2 oldest
    firsts = buf._runs(2, "episode")
    assert buf.size() == 7 + 3 and list(firsts[2]) == [7, 3]
    first_obs = buf._sequences(firsts[0], firsts[1], 1).observations[:, 0, 0].tolist()
    assert first_obs == [0.0, 202.0]  # env 0's open episode from its start; env 1's newest episode (100, 151 gone)
    for _ in range(6):
        step((False, False))
    # env 1's last finished episode went; then, with nothing finished left, the longer episode being collected
    # lost its oldest observation each time one was needed (env 0 on ties)
    runs = buf._runs(2, "episode")
    assert buf.size() == 12 and list(runs[2]) == [5, 7]
    heads = buf._sequences(runs[0], runs[1], 1)
    assert heads.observations[:, 0, 0].tolist() == [8.0, 253.0] and heads.is_first[:, 0].tolist() == [0.0, 1.0]


#: the buffer, also feeding every add to a :class:`Reference` (``self.ref``)
Shadowed = shadowed(SequenceReplayBuffer, lambda buf, *args: Reference(buf.buffer_size, buf.n_envs), __name__)


def test_collects_from_sb3_off_policy_algorithms_with_truncations_and_restarts(tmp_path) -> None:
    """SAC collects into it (2 envs, time-limit truncations, a second learn() that resets without done);
    what is stored equals the reference fed the same adds; save/load round trips through SB3."""

    env = make_moving_dot_env(n_envs=2, frame_stack=1, seed=0, size=16, episode_length=9)
    model = SAC(
        "MlpPolicy",
        env,
        buffer_size=60,
        learning_starts=10_000,
        seed=0,
        replay_buffer_class=Shadowed,
        replay_buffer_kwargs=dict(sequence_length=4),
        policy_kwargs=dict(net_arch=[8]),
    )
    model.learn(20)
    model.learn(20)  # resets the envs without done: their open episodes are closed as truncated
    buf = model.replay_buffer
    assert isinstance(buf, Shadowed) and buf.observations.dtype == np.uint8
    assert_matches_reference(buf, buf.ref)
    assert buf.truncated.sum() > 0 and buf.terminated.sum() == 0  # MovingDotEnv truncates, never terminates
    assert buf.n_sequences() > 0 and buf.size() == 60 - buf._n_free
    model.save_replay_buffer(tmp_path / "buffer.pkl")
    model.load_replay_buffer(tmp_path / "buffer.pkl")
    loaded = model.replay_buffer
    assert loaded is not buf and type(loaded) is Shadowed
    assert_matches_reference(loaded, buf.ref)


def test_save_load_round_trip_and_pickle_size(tmp_path) -> None:
    stream = Stream(2, True, seed=1, p_end=0.1)
    buf = SequenceReplayBuffer(5000, stream.space, ACTIONS, "cpu", n_envs=2, sequence_length=3)
    twin = SequenceReplayBuffer(5000, stream.space, ACTIONS, "cpu", n_envs=2, sequence_length=3)
    for _ in range(40):
        data = stream.step()
        buf.add(*data)
        twin.add(*data)
    buf.save(tmp_path / "seq.pkl")
    loaded = SequenceReplayBuffer.load(tmp_path / "seq.pkl", device="cpu")
    assert (tmp_path / "seq.pkl").stat().st_size < buf.observations.nbytes / 5  # the stored observations only
    for mode in ("episode", "window"):
        np.random.seed(3)
        a = buf.sample(16, mode=mode)
        np.random.seed(3)
        b = loaded.sample(16, mode=mode)
        assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    for _ in range(300):  # goes on after loading exactly as the buffer that was not saved (eviction included)
        data = stream.step()
        loaded.add(*data)
        twin.add(*data)
    ref_buf = io.BytesIO()
    pickle.dump(twin, ref_buf)
    np.random.seed(4)
    a = loaded.sample(32, mode="window")
    np.random.seed(4)
    b = pickle.loads(ref_buf.getvalue()).sample(32, mode="window")
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    (tmp_path / "other.pkl").write_bytes(pickle.dumps([1]))
    with pytest.raises(TypeError, match="holds a list, not a SequenceReplayBuffer"):
        SequenceReplayBuffer.load(tmp_path / "other.pkl")


def test_dict_observations_and_direct_episodes() -> None:
    """Dict spaces (Dreamer's MultiInputPolicy) and add_episode(); episodes added directly continue an env's
    stream, and a window crossing into them carries is_first."""
    stream = Stream(1, False, seed=2, dict_obs=True)
    buf = SequenceReplayBuffer(40, stream.space, ACTIONS, "cpu", sequence_length=3)
    ref = Reference(40, 1)
    obs = stack([stream._new() for _ in range(5)])
    actions = np.random.default_rng(0).uniform(-1, 1, (4, 2)).astype(np.float32)
    buf.add_episode(obs, actions, np.arange(4.0), terminated=True)
    ep = ref.start(0, index(obs, 0))
    for t in range(4):
        ep.append(index(obs, t + 1), actions[t], float(t), False, t == 3, False)
    ep.open = False
    with pytest.raises(ValueError, match="either terminated or truncated"):
        buf.add_episode(obs, actions, np.arange(4.0), terminated=True, truncated=True)
    for _ in range(10):
        data = stream.step()
        buf.add(*data)
        ref.add(*data)
    assert_matches_reference(buf, ref)
    samples = buf.sample(4, mode="window", sequence_length=6)
    assert set(samples.observations) == {"pixels", "state"}
    assert samples.observations["pixels"].shape == (4, 6, 3, 4, 4) and samples.actions.shape == (4, 5, 2)


def test_sample_layout_devices_and_lengths() -> None:
    """Shapes of SLAC's (B=4, L=9) and Dreamer's windows; tensors on the buffer's device; auto device."""
    stream = Stream(1, True, seed=0, p_end=0.0)
    buf = SequenceReplayBuffer(100, stream.space, ACTIONS, sequence_length=9)
    assert buf.device == get_device("auto")
    for _ in range(30):
        buf.add(*stream.step())
    s = buf.sample(4)
    assert s.observations.shape == (4, 9, 3, 4, 4) and s.observations.dtype == torch.uint8
    assert s.actions.shape == (4, 8, 2) and s.rewards.shape == (4, 8)
    assert s.is_first.shape == s.terminated.shape == s.truncated.shape == (4, 9)
    assert all(t.device.type == buf.device.type for t in s)
    assert buf.n_sequences() == 31 - 9 + 1 and buf.n_sequences(31) == 1 and buf.n_sequences(32) == 0
    with pytest.raises(ValueError, match=r"longest episode stored has 31 observations"):
        buf.sample(2, sequence_length=32)


def test_short_episodes_are_skipped_in_episode_mode_but_windows_cross_them() -> None:
    stream = Stream(1, False, seed=0, p_end=1.0)  # every episode: 1 step, 2 observations
    buf = SequenceReplayBuffer(50, stream.space, ACTIONS, sequence_length=3)
    for _ in range(5):
        buf.add(*stream.step())
    with pytest.raises(ValueError, match=r"sequence_length=3 to sample in mode='episode'.* has 2 observations"):
        buf.sample(4)
    s = buf.sample(64, mode="window")
    torch.testing.assert_close(s.is_first.sum(1), 1 + s.is_first[:, 0])  # (first, last, first) or (last, first, last)
    # where o_{t+1} starts an episode, the step into it does not exist: zero action and reward
    starts = s.is_first[:, 1:].bool()
    assert torch.all(s.actions[starts] == 0) and torch.all(s.rewards[starts] == 0)


def test_memory_is_one_frame_per_observation() -> None:
    """64x64 RGB frames: the buffer holds one frame per slot and little else (< 1% overhead)."""
    space = spaces.Box(0, 255, (3, 64, 64), np.uint8)
    buf = SequenceReplayBuffer(1000, space, ACTIONS, n_envs=2, sequence_length=64)
    frame = 3 * 64 * 64
    assert buf.observations.nbytes == 1000 * frame
    assert buf.nbytes() / 1000 < 1.01 * frame


def test_warns_for_stacked_frames_and_refuses_transition_sampling() -> None:
    with pytest.warns(UserWarning, match=r"look like 3 stacked RGB frames.*frame_stack=1"):
        SequenceReplayBuffer(100, spaces.Box(0, 255, (9, 16, 16), np.uint8), ACTIONS)
    buf = SequenceReplayBuffer(100, spaces.Box(0, 255, (3, 16, 16), np.uint8), ACTIONS)
    with pytest.raises(TypeError, match="samples sequences, not transitions"):
        buf._get_samples(np.arange(2))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (
            dict(buffer_size=10, n_envs=2, sequence_length=9),
            ValueError,
            r"buffer_size=10 is too small .* at least n_envs \* sequence_length = 18",
        ),
        (dict(buffer_size=100, sequence_length=1), ValueError, "sequence_length must be an integer >= 2, got 1"),
        (dict(buffer_size=100, sequence_length=8.0), ValueError, "sequence_length must be an integer >= 2"),
        (dict(buffer_size=0), ValueError, "buffer_size must be an integer >= 1"),
        (dict(buffer_size=100, mode="random"), ValueError, r"mode must be one of \('episode', 'window'\)"),
        (dict(buffer_size=100, optimize_memory_usage=True), ValueError, "optimize_memory_usage=True is not needed"),
        (
            dict(buffer_size=100, observation_space=spaces.Tuple([spaces.Discrete(2)])),
            TypeError,
            "stores Box, Discrete",
        ),
    ],
)
def test_clear_errors(kwargs, error, match) -> None:
    kwargs = {"observation_space": spaces.Box(0, 255, (3, 8, 8), np.uint8), "action_space": ACTIONS, **kwargs}
    with pytest.raises(error, match=match):
        SequenceReplayBuffer(**kwargs)


def test_clear_errors_when_sampling_and_adding_episodes() -> None:
    buf = SequenceReplayBuffer(100, spaces.Box(-1, 1, (2,), np.float32), ACTIONS, n_envs=2)
    with pytest.raises(ValueError, match=r"No sequence .*\(0 stored in all\)"):
        buf.sample(4)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        buf.sample(0)
    with pytest.raises(ValueError, match="mode must be one of"):
        buf.sample(4, mode="windows")
    with pytest.raises(ValueError, match="T \\+ 1 observations, T actions and T rewards"):
        buf.add_episode(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros(3))
    with pytest.raises(ValueError, match="env_index=2 is out of range for n_envs=2"):
        buf.add_episode(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(2), env_index=2)
    buf.add(np.zeros((2, 2)), np.ones((2, 2)), np.zeros((2, 2)), np.zeros(2), np.zeros(2), [{}, {}])
    with pytest.raises(ValueError, match="env 1 has an episode being collected"):
        buf.add_episode(np.zeros((3, 2)), np.zeros((2, 2)), np.zeros(2), env_index=1)
    assert buf.size() == 4  # nothing was written by the refused calls
