"""A replay buffer of whole episodes that samples fixed-length sequences: the buffer SLAC and Dreamer share.

Each env step's observation is stored once, in a pool of ``buffer_size`` slots. A slot holds one observation
``o_t`` and what came with it: the action ``a_{t-1}`` and reward ``r_{t-1}`` that led to it (zeros for an
episode's first observation), and three flags: ``is_first`` (the episode's first observation),
``terminated`` (the env ended the episode at ``o_t``: no bootstrapping) and ``truncated`` (the episode was
cut at ``o_t``, by a time limit or a reset without ``done``). An episode of ``T`` steps takes ``T + 1``
slots (its first and its last observation included). Each env has its own stream of episodes, in order.

A sequence of length ``L`` is ``L`` consecutive observations of one env's stream and the ``L - 1`` steps
between them (:class:`SequenceSamples`):

- ``observations[:, t]`` is ``o_t`` for ``t = 0..L-1``; ``is_first``, ``terminated``, ``truncated`` are
  per observation, shape ``(B, L)``;
- ``actions[:, t]`` and ``rewards[:, t]`` are the step from ``o_t`` to ``o_{t+1}``, ``t = 0..L-2``,
  shape ``(B, L - 1, ...)``.

Two ways to draw the start (``mode``):

- ``"episode"`` (SLAC): sequences never cross an episode boundary; every start inside an episode with ``L``
  observations after it is equally likely; shorter episodes are never sampled. SLAC uses ``L = 9``
  (8 steps, 9 frames; the official code does the same and stores only full-length sequences). Here
  ``is_first[:, 0]`` says whether the sequence starts at its episode's reset and the other ``is_first``
  entries are 0; SLAC reads the step's termination as ``terminated[:, 1:]``.
- ``"window"`` (Dreamer): any ``L`` consecutive observations of an env's stream, crossing episode
  boundaries; ``is_first`` marks each episode start inside the window (reset the recurrent state there).
  The step into a first observation does not exist: its ``actions`` and ``rewards`` entry is zero.
  DreamerV3 uses ``L = 64`` (batch 16) and ``is_first`` this way; its continue target is
  ``1 - terminated``.

Capacity is counted in observations (frames) over all envs. When a new observation needs a slot and none is
free, the oldest finished episode (by the time it started) is evicted whole, first in, first out. Episodes
being collected are never evicted; only where nothing else is stored (every stored episode is still being
collected) does the longest of them lose its oldest observation: an episode longer than the buffer keeps its
newest observations (no longer marked ``is_first`` at its head). ``buffer_size >= n_envs * sequence_length``
guarantees that each env can always hold one sequence.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.vec_env import VecNormalize

from sb3_latent.buffers._ring import grow, same
from sb3_latent.buffers.frame_store import FORMAT_VERSION, infer_n_frames
from sb3_latent.common.checks import check_int

#: How sequences are drawn: ``"episode"`` never crosses an episode boundary (SLAC), ``"window"`` may and
#: marks episode starts with ``is_first`` (Dreamer).
MODES = ("episode", "window")
_SUPPORTED = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
_SLOT_ARRAYS = ("actions", "rewards", "is_first", "terminated", "truncated")

Obs = np.ndarray | dict[str, np.ndarray]


class SequenceSamples(NamedTuple):
    """``B`` sequences of ``L`` observations (torch tensors on the buffer's device).

    :param observations: ``(B, L, *obs_shape)`` in the observation space's dtype (uint8 images stay uint8),
        or a dict of them for ``Dict`` spaces
    :param actions: ``(B, L - 1, action_dim)``: ``actions[:, t]`` was taken at ``o_t`` and led to ``o_{t+1}``
        (zero where ``o_{t+1}`` starts a new episode, ``"window"`` mode only)
    :param rewards: ``(B, L - 1)`` float32: the reward of that step (zero likewise)
    :param is_first: ``(B, L)`` float32: 1 where ``o_t`` is its episode's first observation
    :param terminated: ``(B, L)`` float32: 1 where the env ended the episode at ``o_t`` (a terminal state)
    :param truncated: ``(B, L)`` float32: 1 where the episode was cut at ``o_t`` without terminating
    """

    observations: th.Tensor | dict[str, th.Tensor]
    actions: th.Tensor
    rewards: th.Tensor
    is_first: th.Tensor
    terminated: th.Tensor
    truncated: th.Tensor


def _check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ValueError(
            f"mode must be one of {MODES} ('episode': sequences inside one episode, as SLAC samples; "
            f"'window': may cross episode starts, marked by is_first, as Dreamer samples), got {mode!r}"
        )
    return str(mode)


def _check_space(space: spaces.Space) -> None:
    """Raise a ``TypeError`` unless ``space`` is one the buffer stores (Box, Discrete, MultiDiscrete,
    MultiBinary, or a Dict of them); warn where a uint8 image looks frame-stacked."""
    subspaces = list(space.spaces.values()) if isinstance(space, spaces.Dict) else [space]
    for sub in subspaces:
        if not isinstance(sub, _SUPPORTED):
            raise TypeError(
                f"SequenceReplayBuffer stores Box, Discrete, MultiDiscrete and MultiBinary observations "
                f"(or a Dict of them), got {space}"
            )
        shape = sub.shape or ()
        if (
            isinstance(sub, spaces.Box)
            and sub.dtype == np.uint8
            and len(shape) == 3
            and 3 < shape[0] < shape[1]
            and shape[0] % 3 == 0
        ):
            warnings.warn(
                f"Observations {shape} look like {infer_n_frames(sub)} stacked RGB frames. "
                "SequenceReplayBuffer stores each observation whole, so a stack of k frames costs k frames "
                "per step; SLAC and Dreamer take single frames (make the env with frame_stack=1).",
                stacklevel=3,
            )


def _map(fn: Callable[[np.ndarray], np.ndarray], obs: Obs) -> Obs:
    """``fn`` applied to an observation array or to each array of a dict."""
    return {key: fn(value) for key, value in obs.items()} if isinstance(obs, dict) else fn(obs)


class SequenceReplayBuffer(ReplayBuffer):
    """Replay buffer of whole episodes, each observation stored once, that samples sequences of ``L``
    consecutive observations with the ``L - 1`` actions and rewards between them (SLAC and Dreamer).

    Collect into it from any SB3 off-policy algorithm (``replay_buffer_class=SequenceReplayBuffer``: it
    takes SB3's ``add(obs, next_obs, action, reward, done, infos)``, the terminal observation as
    ``next_obs`` of a done env, ``infos[i]["TimeLimit.truncated"]`` for truncations), or add whole episodes
    with :meth:`add_episode`. :meth:`sample` returns :class:`SequenceSamples`; see the module docstring for
    the exact layout and the two sampling modes.

    An episode ends at a ``done``; an ``obs`` that does not continue its env's episode (the env was reset
    without ``done``, as when ``learn()`` is called again) closes that episode as truncated and starts a new
    one. Observations are stored as given: for images, one frame per step when the env does not stack frames
    (SLAC and Dreamer take single frames); a frame-stacked observation is stored whole (``k`` frames a step).

    :param buffer_size: capacity in observations (frames) over all envs; at least ``n_envs * sequence_length``
    :param observation_space: observation space (Box, Discrete, MultiDiscrete, MultiBinary or a Dict of them)
    :param action_space: action space
    :param device: PyTorch device of the sampled tensors (``"auto"``: the GPU if there is one)
    :param n_envs: number of parallel environments
    :param optimize_memory_usage: must be False (each observation is stored once already)
    :param handle_timeout_termination: keep SB3's timeouts (``infos[i]["TimeLimit.truncated"]``) as
        truncations; if False every ``done`` is a termination, as in SB3
    :param sequence_length: default ``L`` of :meth:`sample` (SLAC: 9, i.e. 8 steps; Dreamer: 64)
    :param mode: default sampling mode: ``"episode"`` (SLAC) or ``"window"`` (Dreamer)
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        sequence_length: int = 9,
        mode: str = "episode",
    ) -> None:
        if optimize_memory_usage:
            raise ValueError(
                "optimize_memory_usage=True is not needed with SequenceReplayBuffer: it stores each "
                "observation once already; leave it False"
            )
        n_envs = check_int("n_envs", n_envs, 1)
        length = check_int("sequence_length", sequence_length, 2)
        self.mode = _check_mode(mode)
        buffer_size = check_int("buffer_size", buffer_size, 1)
        if buffer_size < n_envs * length:
            raise ValueError(
                f"buffer_size={buffer_size} is too small for sequences of sequence_length={length} "
                f"from n_envs={n_envs} envs: it counts observations over all envs and must hold one "
                f"sequence per env (each env's episode being collected is kept), i.e. at least "
                f"n_envs * sequence_length = {n_envs * length}"
            )
        _check_space(observation_space)
        # SB3's BaseBuffer only: ReplayBuffer.__init__ would allocate its own arrays
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.format_version = FORMAT_VERSION
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.sequence_length = length
        c = buffer_size
        #: one observation per slot (a dict of arrays for Dict spaces)
        self.observations: Obs  # type: ignore[assignment]
        shapes: Any = self.obs_shape
        if isinstance(observation_space, spaces.Dict):
            self.observations = {
                key: np.zeros((c, *shapes[key]), dtype=sub.dtype) for key, sub in observation_space.spaces.items()
            }
        else:
            self.observations = np.zeros((c, *self.obs_shape), dtype=observation_space.dtype)
        #: the action and reward that led to each slot's observation (zeros for an episode's first)
        self.actions = np.zeros((c, self.action_dim), dtype=self._maybe_cast_dtype(action_space.dtype))
        self.rewards = np.zeros(c, dtype=np.float32)
        self.is_first = np.zeros(c, dtype=bool)
        self.terminated = np.zeros(c, dtype=bool)
        self.truncated = np.zeros(c, dtype=bool)
        self._clear()

    def _clear(self) -> None:
        """Forget every episode."""
        e = self.n_envs
        self._free = np.arange(self.buffer_size - 1, -1, -1, dtype=np.int64)  # stack of free slots, top last
        self._n_free = self.buffer_size
        # per env: its stream of slots (stream position p at _stream[p % len, env], live for lo <= p < hi) ...
        self._stream = np.zeros((min(self.buffer_size, 1024), e), dtype=np.int64)
        self._lo, self._hi = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64)
        # ... and its episodes: the stream position each starts at and when it started (for FIFO eviction)
        self._ep_start = np.zeros((64, e), dtype=np.int64)
        self._ep_time = np.zeros((64, e), dtype=np.int64)
        self._ep_lo, self._ep_hi = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64)
        self._open = np.zeros(e, dtype=bool)  # whether the env's last episode is being collected
        self._n_started = 0  # episodes started so far (their start time)
        self.pos, self.full = 0, False

    def reset(self) -> None:
        """Empty the buffer."""
        super().reset()
        self._clear()

    def size(self) -> int:
        """Number of observations stored, over all envs."""
        return self.buffer_size - self._n_free

    def nbytes(self) -> int:
        """Bytes of every array this buffer holds (observations, actions, flags, indices)."""
        arrays = [a for a in vars(self).values() if isinstance(a, np.ndarray)]
        if isinstance(self.observations, dict):
            arrays += self.observations.values()
        return sum(a.nbytes for a in arrays)

    # ---- storing -------------------------------------------------------------------------------------

    def _obs_of(self, obs: Obs, i: int) -> Obs:
        return _map(lambda a: a[i], obs)

    def _write_obs(self, slot: int, obs: Obs) -> None:
        if isinstance(self.observations, dict):
            for key, array in self.observations.items():
                array[slot] = obs[key]
        else:
            self.observations[slot] = obs

    def _evict_one(self) -> None:
        """Free the oldest finished episode; where every stored episode is being collected, the oldest
        observation of the longest one."""
        k, best, best_time = len(self._ep_start), -1, 0
        for e in range(self.n_envs):
            n_eps = self._ep_hi[e] - self._ep_lo[e]
            if n_eps >= 2 or (n_eps == 1 and not self._open[e]):
                t = self._ep_time[self._ep_lo[e] % k, e]
                if best < 0 or t < best_time:
                    best, best_time = e, t
        if best >= 0:
            e = best
            end = self._ep_start[(self._ep_lo[e] + 1) % k, e] if self._ep_hi[e] - self._ep_lo[e] >= 2 else self._hi[e]
            self._ep_lo[e] += 1
        else:
            e = int(np.argmax(self._hi - self._lo))
            end = self._lo[e] + 1
            self._ep_start[self._ep_lo[e] % k, e] = end
        freed = self._stream[np.arange(self._lo[e], end) % len(self._stream), e]
        self._free[self._n_free : self._n_free + len(freed)] = freed
        self._n_free += len(freed)
        self._lo[e] = end

    def _alloc(self, n: int) -> np.ndarray:
        """``n`` free slots, evicting as needed."""
        while self._n_free < n:
            self._evict_one()
        self._n_free -= n
        return self._free[self._n_free : self._n_free + n][::-1].copy()

    def _push(self, e: int, slot: int) -> None:
        """Append ``slot`` to env ``e``'s stream."""
        if self._hi[e] - self._lo[e] >= len(self._stream):
            self._stream = grow(self._stream, self._lo, self._hi, min(2 * len(self._stream), self.buffer_size))
        self._stream[self._hi[e] % len(self._stream), e] = slot
        self._hi[e] += 1

    def _start(self, e: int, slot: int, obs: Obs) -> None:
        """Start an episode of env ``e`` at ``obs``, stored in ``slot``."""
        if self._ep_hi[e] - self._ep_lo[e] >= len(self._ep_start):
            n = 2 * len(self._ep_start)
            self._ep_time = grow(self._ep_time, self._ep_lo, self._ep_hi, n)
            self._ep_start = grow(self._ep_start, self._ep_lo, self._ep_hi, n)
        g = self._ep_hi[e] % len(self._ep_start)
        self._ep_start[g, e], self._ep_time[g, e] = self._hi[e], self._n_started
        self._ep_hi[e] += 1
        self._n_started += 1
        self._write_obs(slot, obs)
        self.actions[slot], self.rewards[slot] = 0, 0.0
        self.is_first[slot], self.terminated[slot], self.truncated[slot] = True, False, False
        self._push(e, slot)
        self._open[e] = True

    def _step(
        self, e: int, slot: int, obs: Obs, action: np.ndarray, reward: float, terminated: bool, truncated: bool
    ) -> None:
        """Append to env ``e``'s episode the observation ``obs`` that ``action`` led to, in ``slot``."""
        self._write_obs(slot, obs)
        self.actions[slot], self.rewards[slot] = action, reward
        self.is_first[slot], self.terminated[slot], self.truncated[slot] = False, terminated, truncated
        self._push(e, slot)
        self._open[e] = not (terminated or truncated)

    def _last_slot(self, e: int) -> int:
        return int(self._stream[(self._hi[e] - 1) % len(self._stream), e])

    def _continues(self, e: int, obs: Obs) -> bool:
        """Whether ``obs`` equals the last observation stored for env ``e``."""
        slot = self._last_slot(e)
        if isinstance(self.observations, dict):
            return all(same(array[slot], obs[key]) for key, array in self.observations.items())
        return same(self.observations[slot], obs)  # type: ignore[arg-type]

    def _sync(self) -> None:
        self.full = self._n_free == 0
        self.pos = 0 if self.full else self.size()

    def _reshape_obs(self, obs: Obs, n: int, what: str) -> Obs:
        if isinstance(self.obs_shape, dict):
            if not isinstance(obs, dict) or set(obs) != set(self.obs_shape):
                raise ValueError(f"{what} must be a dict with keys {sorted(self.obs_shape)}")
            return {k: np.asarray(obs[k]).reshape(n, *self.obs_shape[k]) for k in self.obs_shape}
        return np.asarray(obs).reshape(n, *self.obs_shape)

    def add(
        self,
        obs: Obs,
        next_obs: Obs,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Add one step per env, as SB3's ``ReplayBuffer.add`` takes it.

        :param obs: observations ``(n_envs, *obs_shape)``; where an env starts an episode, its first observation
        :param next_obs: next observations (the terminal observation for done envs)
        :param action: actions ``(n_envs, action_dim)``
        :param reward: rewards ``(n_envs,)``
        :param done: episode ends (termination or truncation)
        :param infos: per-env infos; ``infos[i]["TimeLimit.truncated"]`` marks a truncation
        """
        n = self.n_envs
        o, nx = self._reshape_obs(obs, n, "obs"), self._reshape_obs(next_obs, n, "next_obs")
        action = np.asarray(action).reshape(n, self.action_dim)
        reward = np.asarray(reward, dtype=np.float32).reshape(n)
        done = np.asarray(done, dtype=bool).reshape(n)
        timeout = np.zeros(n, dtype=bool)
        if self.handle_timeout_termination:
            timeout = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos]) & done
        for e in range(n):
            if self._open[e] and not self._continues(e, self._obs_of(o, e)):
                self.truncated[self._last_slot(e)], self._open[e] = True, False  # reset without done: cut
            new = not self._open[e]
            slots = self._alloc(2 if new else 1)
            if new:
                self._start(e, int(slots[0]), self._obs_of(o, e))
            self._step(
                e,
                int(slots[-1]),
                self._obs_of(nx, e),
                action[e],
                float(reward[e]),
                bool(done[e] and not timeout[e]),
                bool(timeout[e]),
            )
        self._sync()

    def add_episode(
        self,
        observations: Obs,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminated: bool = False,
        truncated: bool = False,
        env_index: int = 0,
    ) -> None:
        """Add a whole episode of ``T`` steps (or its beginning, if neither flag is set: then it is being
        collected, and further :meth:`add` calls for ``env_index`` continue it).

        :param observations: ``(T + 1, *obs_shape)`` (or a dict of them): the first to the last observation
        :param actions: ``(T, action_dim)``: ``actions[t]`` led from ``observations[t]`` to ``observations[t+1]``
        :param rewards: ``(T,)``
        :param terminated: the episode ended in a terminal state at its last observation
        :param truncated: the episode was cut at its last observation (time limit)
        :param env_index: the env stream it belongs to; that env must have no episode being collected
        """
        env_index = check_int("env_index", env_index, 0)
        if env_index >= self.n_envs:
            raise ValueError(f"env_index={env_index} is out of range for n_envs={self.n_envs}")
        if self._open[env_index]:
            raise ValueError(
                f"env {env_index} has an episode being collected; add the episode to another env_index "
                "or after that episode is done"
            )
        if terminated and truncated:
            raise ValueError("an episode ends either terminated or truncated, not both")
        actions, rewards = np.asarray(actions), np.asarray(rewards, dtype=np.float32).reshape(-1)
        n_obs = {len(v) for v in observations.values()} if isinstance(observations, dict) else {len(observations)}
        if len(n_obs) != 1 or n_obs.pop() != len(rewards) + 1 or len(actions) != len(rewards):
            raise ValueError(
                f"an episode of T steps has T + 1 observations, T actions and T rewards; got "
                f"{sorted(n_obs)} observations, {len(actions)} actions and {len(rewards)} rewards"
            )
        t = len(rewards)
        obs = self._reshape_obs(observations, t + 1, "observations")
        actions = actions.reshape(t, self.action_dim)
        self._start(env_index, int(self._alloc(1)[0]), self._obs_of(obs, 0))
        for i in range(t):
            last = i == t - 1
            self._step(
                env_index,
                int(self._alloc(1)[0]),
                self._obs_of(obs, i + 1),
                actions[i],
                float(rewards[i]),
                last and terminated,
                last and truncated,
            )
        self._open[env_index] = not (terminated or truncated)
        if t == 0 and (terminated or truncated):
            self.terminated[self._last_slot(env_index)] = terminated
            self.truncated[self._last_slot(env_index)] = truncated
        self._sync()

    # ---- sampling ------------------------------------------------------------------------------------

    def _runs(self, length: int, mode: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The stored runs sequences are drawn from (episodes, or each env's whole stream): their env, first
        stream position, number of observations and number of sequences of ``length`` that start in them."""
        envs, firsts, sizes = [], [], []
        k = len(self._ep_start)
        for e in range(self.n_envs):
            if mode == "window":
                starts = self._lo[e : e + 1]
            else:
                starts = self._ep_start[np.arange(self._ep_lo[e], self._ep_hi[e]) % k, e]
            ends = np.append(starts[1:], self._hi[e])
            envs.append(np.full(len(starts), e))
            firsts.append(starts)
            sizes.append(ends - starts)
        size = np.concatenate(sizes)
        return np.concatenate(envs), np.concatenate(firsts), size, np.maximum(size - length + 1, 0)

    def _locate(self, r: np.ndarray, length: int, mode: str) -> tuple[np.ndarray, np.ndarray]:
        """Env and first stream position of sequence number ``r`` (``0 <= r <`` the number of sequences)."""
        envs, firsts, _, counts = self._runs(length, mode)
        cum = np.cumsum(counts)
        run = np.searchsorted(cum, r, side="right")
        return envs[run], firsts[run] + r - (cum[run] - counts[run])

    def n_sequences(self, sequence_length: int | None = None, mode: str | None = None) -> int:
        """How many distinct sequences :meth:`sample` draws from.

        :param sequence_length: ``L`` (default: the buffer's)
        :param mode: ``"episode"`` or ``"window"`` (default: the buffer's)
        """
        length = self.sequence_length if sequence_length is None else check_int("sequence_length", sequence_length, 2)
        return int(self._runs(length, self.mode if mode is None else _check_mode(mode))[3].sum())

    def sample(  # type: ignore[override]
        self,
        batch_size: int,
        env: VecNormalize | None = None,
        sequence_length: int | None = None,
        mode: str | None = None,
    ) -> SequenceSamples:
        """``batch_size`` sequences drawn uniformly (with replacement) from all stored sequences of length ``L``.

        :param batch_size: ``B``
        :param env: a VecNormalize to normalize observations and rewards with, or None
        :param sequence_length: ``L`` (default: the buffer's ``sequence_length``)
        :param mode: ``"episode"`` (never crosses an episode boundary; SLAC) or ``"window"`` (may cross,
            ``is_first`` marks episode starts; Dreamer); default: the buffer's ``mode``
        :return: the sequences, on the buffer's device
        """
        batch_size = check_int("batch_size", batch_size, 1)
        length = self.sequence_length if sequence_length is None else check_int("sequence_length", sequence_length, 2)
        mode = self.mode if mode is None else _check_mode(mode)
        _, _, sizes, counts = self._runs(length, mode)
        total = int(counts.sum())
        if total == 0:
            what = "episode" if mode == "episode" else "env's stream of episodes"
            raise ValueError(
                f"No sequence of sequence_length={length} to sample in mode={mode!r}: the longest "
                f"{what} stored has {int(sizes.max(initial=0))} observations ({self.size()} stored "
                f"in all). Collect more steps first (learning_starts), or sample shorter sequences"
            )
        envs, firsts = self._locate(np.random.randint(0, total, size=batch_size), length, mode)
        return self._sequences(envs, firsts, length, env)

    def _sequences(
        self, envs: np.ndarray, firsts: np.ndarray, length: int, env: VecNormalize | None = None
    ) -> SequenceSamples:
        """The sequences of ``length`` observations starting at stream positions ``firsts`` of ``envs``."""
        slots = self._stream[(firsts[:, None] + np.arange(length)) % len(self._stream), envs[:, None]]
        steps = slots[:, 1:]
        obs = self._normalize_obs(_map(lambda a: a[slots], self.observations), env)
        rewards = self._normalize_reward(self.rewards[steps], env)

        def tensor(x: np.ndarray) -> th.Tensor:
            return self.to_torch(x, copy=False)  # every array here is a fresh copy

        return SequenceSamples(
            {k: tensor(v) for k, v in obs.items()} if isinstance(obs, dict) else tensor(obs),
            tensor(self.actions[steps]),
            tensor(rewards),
            *(tensor(flags[slots].astype(np.float32)) for flags in (self.is_first, self.terminated, self.truncated)),
        )

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> Any:
        raise TypeError(
            "SequenceReplayBuffer samples sequences, not transitions: call sample(batch_size) for "
            "SequenceSamples (SLAC, Dreamer); for SAC/TD3/DQN use ReplayBuffer or FrameStoreReplayBuffer"
        )

    # ---- saving --------------------------------------------------------------------------------------

    def _live(self) -> np.ndarray:
        used = np.ones(self.buffer_size, dtype=bool)
        used[self._free[: self._n_free]] = False
        return np.flatnonzero(used)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle only the stored slots (a pickle's size follows the content, not the capacity)."""
        state = self.__dict__.copy()
        live = self._live()
        state["_live"] = live
        state["observations"] = _map(lambda a: a[live], self.observations)
        for name in _SLOT_ARRAYS:
            state[name] = getattr(self, name)[live]
        del state["_free"]  # the slots not in _live
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        live = state.pop("_live")
        c = state["buffer_size"]

        def unpack(a: np.ndarray) -> np.ndarray:
            full = np.zeros((c, *a.shape[1:]), dtype=a.dtype)
            full[live] = a
            return full

        state["observations"] = _map(unpack, state["observations"])
        for name in _SLOT_ARRAYS:
            state[name] = unpack(state[name])
        free = np.zeros(c, dtype=np.int64)
        unused = np.setdiff1d(np.arange(c), live)[::-1]  # a stack: the lowest slot is used first
        free[: len(unused)] = unused
        state["_free"] = free
        self.__dict__.update(state)

    def save(self, path: str | Path) -> None:
        """Write the buffer to ``path`` (a pickle, as SB3's ``save_replay_buffer`` writes it).

        :param path: file path
        """
        save_to_pkl(path, self)

    @classmethod
    def load(cls, path: str | Path, device: th.device | str | None = None) -> SequenceReplayBuffer:
        """Read a buffer written by :meth:`save` or SB3's ``save_replay_buffer``.

        :param path: file path
        :param device: device for the sampled tensors; None keeps the saved one
        :return: the buffer
        """
        buffer = load_from_pkl(path)
        if not isinstance(buffer, cls):
            raise TypeError(f"{path} holds a {type(buffer).__name__}, not a {cls.__name__}")
        if device is not None:
            from stable_baselines3.common.utils import get_device

            buffer.device = get_device(device)
        return buffer
