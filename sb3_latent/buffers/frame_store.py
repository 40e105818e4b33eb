"""A replay buffer for frame-stacked observations that stores every frame once.

SB3's ``ReplayBuffer`` keeps ``obs`` and ``next_obs`` whole: with 3 stacked frames that is 6 frames per
transition, of which 5 are copies of frames stored elsewhere. :class:`FrameStoreReplayBuffer` keeps one
frame per transition (the newest frame of ``next_obs``) and, once per episode, the stack the episode
started from; at sample time it rebuilds both stacks exactly.

For the transition at index ``s`` of its episode, with reset stack ``R = (r_0..r_{k-1})`` and stored
newest frames ``f_0..f_s``: ``obs`` is the last ``k`` items of ``(r_0..r_{k-1}, f_0..f_{s-1})`` and
``next_obs`` the last ``k`` items of ``(r_0..r_{k-1}, f_0..f_s)``. Any padding of the reset stack
(copies of the first frame as in :class:`sb3_latent.envs.FrameStack`, zeros as in SB3's
``VecFrameStack``) is therefore reproduced exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, NStepReplayBuffer, ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.utils import get_device
from stable_baselines3.common.vec_env import VecNormalize

from sb3_latent.buffers._ring import grow, same
from sb3_latent.common.checks import check_int

#: layout version of the models and replay buffers sb3-latent writes (a buffer keeps it when pickled); a file of a
#: newer version is refused at load
FORMAT_VERSION = 1


def infer_n_frames(observation_space: spaces.Space, n_frames: int | None = None) -> int:
    """The number of frames stacked in ``observation_space``, checked against its shape.

    Frames are stacked along the first axis of 3-D observations (``(k*C, H, W)``) and along the only
    axis of 1-D ones (``(k*d,)``), oldest first. ``n_frames=None`` is inferred only for uint8 images
    whose channel count is a multiple of 3 (RGB frames).

    :param observation_space: a ``Box`` with 1 or 3 dimensions
    :param n_frames: frames per stack, or None to infer it
    :return: the number of frames
    """
    if isinstance(observation_space, spaces.Dict):
        raise TypeError(
            "FrameStoreReplayBuffer does not support Dict observation spaces; "
            f"expected a Box of stacked frames, got {observation_space}"
        )
    if not isinstance(observation_space, spaces.Box) or len(observation_space.shape) not in (1, 3):
        raise TypeError(
            "FrameStoreReplayBuffer expects a Box observation space of stacked images (k*C, H, W) "
            f"or stacked vectors (k*d,), got {observation_space}"
        )
    shape = observation_space.shape
    what = "channel count" if len(shape) == 3 else "size"
    if n_frames is None:
        if len(shape) == 3 and observation_space.dtype == np.uint8 and shape[0] % 3 == 0:
            return shape[0] // 3
        raise ValueError(
            f"Cannot infer n_frames for observation space {observation_space}: it is inferred only "
            "for uint8 images (k*3, H, W) of k RGB frames. Pass it, e.g. "
            "replay_buffer_kwargs=dict(n_frames=4)"
        )
    check_int("n_frames", n_frames, 1)
    if shape[0] % n_frames:
        raise ValueError(
            f"n_frames={n_frames} does not divide the {what} {shape[0]} of observation shape {shape}; "
            f"expected frames stacked along axis 0, e.g. n_frames in "
            f"{[d for d in range(1, shape[0] + 1) if shape[0] % d == 0]}"
        )
    return int(n_frames)


def check_n_step(n_steps: Any, gamma: Any) -> tuple[int, float]:
    """``(n_steps, gamma)`` checked: an integer >= 1 and a discount in [0, 1]."""
    n_steps = check_int("n_steps", n_steps, 1)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma!r}")
    return n_steps, float(gamma)


class FrameStoreReplayBuffer(ReplayBuffer):
    """SB3 ``ReplayBuffer`` for frame-stacked observations that stores each frame once and rebuilds the
    stacks of ``obs`` and ``next_obs`` at sample time (exactly; same samples as SB3's buffer).

    Use it with any off-policy SB3 algorithm::

        SAC("CnnPolicy", env, replay_buffer_class=FrameStoreReplayBuffer, replay_buffer_kwargs=dict(n_frames=3))

    Memory per transition: one frame, the action, reward, done, timeout and two small integers, plus one
    reset stack per episode (consecutive identical frames in it stored once), freed first in, first out
    (per env) once no transition in the buffer needs it. At 3 RGB frames that is about 1/6 of SB3's default buffer.

    An episode ends after ``done`` (termination or truncation); each env has its own episode stream. An
    ``obs`` that does not continue its env's episode (the env was reset without ``done``, as when
    ``learn()`` is called again) starts a new episode. Each ``add`` checks that ``next_obs`` is ``obs``
    shifted by one frame and raises a ``ValueError`` otherwise. Both checks compare one or two frames by
    default (the newest frame of ``obs`` with the second newest of ``next_obs``; the oldest and newest frames
    of ``obs`` with those of the env's last ``next_obs``); ``validate=True`` compares whole stacks.

    :param buffer_size: max number of transitions (over all envs, as in SB3)
    :param observation_space: a ``Box`` of stacked frames, oldest first: images ``(k*C, H, W)`` or
        vectors ``(k*d,)``
    :param action_space: action space
    :param device: PyTorch device of the sampled tensors
    :param n_envs: number of parallel environments
    :param optimize_memory_usage: must be False (this buffer stores each frame once already)
    :param handle_timeout_termination: do not count truncations as terminations (as in SB3)
    :param n_frames: frames per stack; None infers it for uint8 RGB images (channels // 3)
    :param validate: compare whole stacks in the checks of each ``add``, not one or two frames
    :param storage_device: where the frames are kept: None (a numpy array in host memory, the default) or a torch
        device (``"cuda"``): the frames then live there as one tensor and sampled stacks are gathered there with
        index ops (only the sampled indices travel), so an update on that device never waits for a host copy.
        The samples are exactly those of the numpy path (same seed, same samples).
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
        n_frames: int | None = None,
        validate: bool = False,
        storage_device: th.device | str | None = None,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError(
                "optimize_memory_usage=True is not needed with FrameStoreReplayBuffer: it stores each "
                "frame once already (about 1/6 of SB3's default memory at 3 frames); leave it False"
            )
        k = infer_n_frames(observation_space, n_frames)
        # SB3's BaseBuffer only: ReplayBuffer.__init__ would allocate the big observation arrays
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.format_version = FORMAT_VERSION
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.n_frames, self.validate = k, validate
        self.frame_shape: tuple[int, ...] = (self.obs_shape[0] // k, *self.obs_shape[1:])
        dtype = observation_space.dtype
        n, e = self.buffer_size, n_envs
        #: newest frame of each transition's next_obs, by add count g at g % (buffer_size + k): k extra rows
        #: keep the older frames that the oldest transitions' stacks need
        self.frames: Any = np.zeros((n + k, e, *self.frame_shape), dtype=dtype)
        self.storage_device = None if storage_device is None else get_device(storage_device)
        if self.storage_device is not None:  # the frames as one tensor on that device
            self.frames = th.from_numpy(self.frames).to(self.storage_device)
        self.episode_steps = np.zeros((n, e), dtype=np.int32)  # index of the transition in its episode
        self.reset_ids = np.zeros((n, e), dtype=np.int64)  # reset stack of the transition's episode
        self.actions = np.zeros((n, e, self.action_dim), dtype=self._maybe_cast_dtype(action_space.dtype))
        self.rewards = np.zeros((n, e), dtype=np.float32)
        self.dones = np.zeros((n, e), dtype=np.float32)
        self.timeouts = np.zeros((n, e), dtype=np.float32)
        self._clear()

    def _clear(self) -> None:
        """Forget every episode: per-env state, the reset-stack rings and the add counter."""
        k, e = self.n_frames, self.n_envs
        self.n_added = 0  # adds so far; the frame of add g is at frames[g % len(frames)]
        self._ep_step = np.zeros(e, dtype=np.int64)  # index of each env's next transition in its episode
        self._ep_reset = np.zeros(e, dtype=np.int64)  # reset stack of each env's current episode
        # per-env rings: the frames of reset stacks (item g of env e at [g % len, e]) and, per stack, the
        # pool item of each of its k slots; items lo[e] <= g < hi[e] are live
        self._pool = np.zeros((2 * k, e, *self.frame_shape), dtype=self.observation_space.dtype)
        self._last_next: np.ndarray | None = None  # with storage_device: the next_obs last added (host copy)
        self._stacks = np.zeros((2, e, k), dtype=np.int64)
        self._pool_lo, self._pool_hi = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64)
        self._stack_lo, self._stack_hi = np.zeros(e, dtype=np.int64), np.zeros(e, dtype=np.int64)

    def reset(self) -> None:
        """Empty the buffer."""
        super().reset()
        self._clear()

    def nbytes(self) -> int:
        """Bytes of every array this buffer holds (frames, reset stacks, actions, rewards, indices, ...)."""
        host = sum(a.nbytes for a in vars(self).values() if isinstance(a, np.ndarray))
        return host + (self.frames.numel() * self.frames.element_size() if isinstance(self.frames, th.Tensor) else 0)

    def _push_stack(self, i: int, stack: np.ndarray) -> int:
        """Store a reset stack ``(k, *frame_shape)`` of env ``i``, consecutive identical frames once;
        return its id."""
        k = self.n_frames
        new = np.ones(k, dtype=bool)
        if k > 1:
            new[1:] = [not same(a, b) for a, b in zip(stack[1:], stack[:-1], strict=True)]
        u, lo, hi = int(new.sum()), self._pool_lo, self._pool_hi
        if hi[i] + u - lo[i] > len(self._pool):
            self._pool = grow(self._pool, lo, hi, 2 * (len(self._pool) + u))
        self._pool[np.arange(hi[i], hi[i] + u) % len(self._pool), i] = stack[new]
        if self._stack_hi[i] - self._stack_lo[i] >= len(self._stacks):
            self._stacks = grow(self._stacks, self._stack_lo, self._stack_hi, 2 * len(self._stacks))
        self._stacks[self._stack_hi[i] % len(self._stacks), i] = hi[i] + np.cumsum(new) - 1
        hi[i] += u
        self._stack_hi[i] += 1
        return int(self._stack_hi[i] - 1)

    def _free_stacks(self) -> None:
        """Drop each env's reset stacks that are older than every one its transitions in the (full) buffer
        refer to (ids grow with time, and row ``pos`` is the oldest)."""
        oldest = self.reset_ids[self.pos]
        for i in np.flatnonzero(oldest > self._stack_lo):
            self._stack_lo[i] = oldest[i]
            self._pool_lo[i] = self._stacks[oldest[i] % len(self._stacks), i, 0]

    def _rebuild(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> tuple[Any, Any]:
        """``obs`` and ``next_obs`` of the stored transitions ``(batch_inds[i], env_indices[i])`` (numpy arrays; tensors
        on ``storage_device`` if set)."""
        k, b, e = self.n_frames, np.asarray(batch_inds), np.asarray(env_indices)
        m, n_envs = len(self.frames), self.n_envs
        s = self.episode_steps[b, e]
        g = self.n_added - 1 - (self.pos - 1 - b) % self.buffer_size  # add count of each transition
        # item j of (R, f_0..f_s)[s:s+k+1] is the frame added at g + j - k, or r_{s+j} if s + j < k
        flat = self.frames.reshape(m * n_envs, *self.frame_shape)
        idx = (g[:, None] + np.arange(-k, 1)) % m * n_envs + e[:, None]
        r = np.flatnonzero(s < k)  # transitions whose stacks reach into the reset stack
        if isinstance(flat, th.Tensor):  # storage_device: gathered there, only indices (and reset frames) copied
            return self._rebuild_on_device(flat, idx, s, b, e, r)
        obs, nxt = np.take(flat, idx[:, :k], axis=0), np.take(flat, idx[:, 1:], axis=0)
        if len(r):
            items = s[r, None] + np.arange(k + 1)
            slots = self._stacks[self.reset_ids[b[r], e[r]] % len(self._stacks), e[r]]  # (len(r), k)
            for out, shift in ((obs, 0), (nxt, 1)):
                rr, jj = np.nonzero(items[:, shift : k + shift] < k)
                out[r[rr], jj] = self._pool[slots[rr, items[rr, jj + shift]] % len(self._pool), e[r[rr]]]
        return obs.reshape(len(b), *self.obs_shape), nxt.reshape(len(b), *self.obs_shape)

    def _rebuild_on_device(
        self, flat: th.Tensor, idx: np.ndarray, s: np.ndarray, b: np.ndarray, e: np.ndarray, r: np.ndarray
    ) -> tuple[th.Tensor, th.Tensor]:
        """:meth:`_rebuild` with the frames on ``storage_device``: the same stacks, gathered there."""
        k, dev = self.n_frames, flat.device
        window = flat.index_select(0, th.as_tensor(idx.reshape(-1), device=dev)).reshape(len(b), k + 1, -1)
        if len(r):  # frames of reset stacks (kept on the host, a few per episode) overwrite their items
            items = s[r, None] + np.arange(k + 1)
            slots = self._stacks[self.reset_ids[b[r], e[r]] % len(self._stacks), e[r]]
            rr, jj = np.nonzero(items < k)
            frames = self._pool[slots[rr, items[rr, jj]] % len(self._pool), e[r[rr]]].reshape(len(rr), -1)
            window[th.as_tensor(r[rr], device=dev), th.as_tensor(jj, device=dev)] = th.as_tensor(frames, device=dev)
        return window[:, :k].reshape(len(b), *self.obs_shape), window[:, 1:].reshape(len(b), *self.obs_shape)

    def to_torch(self, array: Any, copy: bool = True) -> th.Tensor:
        """SB3's ``to_torch``; stacks gathered on ``storage_device`` are tensors already (moved, not copied)."""
        if isinstance(array, th.Tensor):
            return array.to(self.device)
        return super().to_torch(array, copy)

    def _check(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Raise unless each ``next_obs`` is its ``obs`` shifted by one frame (one frame, or all if validating)."""
        k = self.n_frames
        if k == 1:
            return
        for i in range(self.n_envs):
            a, b = (obs[i, 1:], next_obs[i, :-1]) if self.validate else (obs[i, -1], next_obs[i, -2])
            if not same(a, b):
                raise ValueError(
                    f"env {i}: next_obs is not obs shifted by one frame (frame {k - 1} of obs differs from frame "
                    f"{k - 2} of next_obs). FrameStoreReplayBuffer needs stacks of n_frames={k} frames, oldest "
                    "first, along axis 0 (e.g. FrameStack or VecFrameStack(channels_order='first')); check "
                    "n_frames and the stacking of the env"
                )

    def _last_next_frame(self, i: int, j: int) -> np.ndarray:
        """Frame ``j`` of the ``next_obs`` last added for env ``i`` (which is mid-episode)."""
        if self._last_next is not None:  # storage_device: the host copy, not a read from the device
            return self._last_next[i, j]
        k, step = self.n_frames, int(self._ep_step[i])  # step: index of that transition in its episode, plus 1
        if step + j < k:
            slot = self._stacks[self._ep_reset[i] % len(self._stacks), i, step + j]
            return self._pool[slot % len(self._pool), i]
        return self.frames[(self.n_added + j - k) % len(self.frames), i]

    def _continues(self, i: int, obs: np.ndarray) -> bool:
        """Whether ``obs`` (``(k, *frame_shape)``) of env ``i`` equals the ``next_obs`` last added for it:
        its oldest and newest frames, or every frame if validating."""
        k = self.n_frames
        return all(same(self._last_next_frame(i, j), obs[j]) for j in (range(k) if self.validate else {0, k - 1}))

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Add one transition per env (same arguments as SB3's ``ReplayBuffer.add``).

        :param obs: stacked observations ``(n_envs, *obs_shape)``
        :param next_obs: stacked next observations (the terminal observation for done envs)
        :param action: actions
        :param reward: rewards
        :param done: episode ends (termination or truncation)
        :param infos: per-env infos (``"TimeLimit.truncated"`` marks truncations)
        """
        shape = (self.n_envs, self.n_frames, *self.frame_shape)
        o, nx = np.asarray(obs).reshape(shape), np.asarray(next_obs).reshape(shape)
        self._check(o, nx)
        for i in range(self.n_envs):
            if self._ep_step[i] > 0 and not self._continues(i, o[i]):
                self._ep_step[i] = 0  # the env was reset without done: a new episode
        self._store_observations(o, nx)
        self._store_step(action, reward, done, infos)
        if self.full:
            self._free_stacks()

    def _store_observations(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Store what the transitions at row ``pos`` need of ``obs`` and ``next_obs`` (``(n_envs, k, *frame_shape)``):
        the newest frame of next_obs and, for envs starting an episode (``_ep_step == 0``), the reset stack."""
        for i in np.flatnonzero(self._ep_step == 0):
            self._ep_reset[i] = self._push_stack(int(i), obs[i])
        if isinstance(self.frames, th.Tensor):
            self.frames[self.n_added % len(self.frames)] = th.as_tensor(next_obs[:, -1], device=self.frames.device)
            self._last_next = next_obs.copy()
        else:
            self.frames[self.n_added % len(self.frames)] = next_obs[:, -1]
        self.reset_ids[self.pos] = self._ep_reset

    def _store_step(
        self, action: np.ndarray, reward: np.ndarray, done: np.ndarray, infos: list[dict[str, Any]]
    ) -> None:
        """The bookkeeping of one ``add`` after its observations are stored: the episode step, action, reward,
        done and timeout (``TimeLimit.truncated``) at row ``pos``; each env's episode step (0 after ``done``);
        the add counter and the ring position."""
        self.episode_steps[self.pos] = np.minimum(self._ep_step, np.iinfo(np.int32).max)
        self.actions[self.pos] = np.array(action).reshape((self.n_envs, self.action_dim))
        self.rewards[self.pos] = np.array(reward)
        self.dones[self.pos] = np.array(done)
        if self.handle_timeout_termination:
            self.timeouts[self.pos] = np.array([info.get("TimeLimit.truncated", False) for info in infos])
        self._ep_step = np.where(np.asarray(done, dtype=bool).reshape(self.n_envs), 0, self._ep_step + 1)
        self.n_added += 1
        self.pos += 1
        if self.pos == self.buffer_size:
            self.full, self.pos = True, 0

    #: sample as SB3's ``NStepReplayBuffer`` (n-step returns and ``discounts``; :class:`NStepFrameStoreReplayBuffer`)
    n_step_sampling: bool = False
    n_steps: int = 1
    gamma: float = 0.99

    @property
    def observations(self) -> _StackView:  # type: ignore[override]
        return _StackView(self, 0)

    @property
    def next_observations(self) -> _StackView:  # type: ignore[override]
        return _StackView(self, 1)

    def _get_samples(
        self, batch_inds: np.ndarray, env: VecNormalize | None = None, env_indices: np.ndarray | None = None
    ) -> ReplayBufferSamples:
        """The transitions at rows ``batch_inds``, as SB3's ``ReplayBuffer`` returns them (as its
        ``NStepReplayBuffer`` does, with n-step returns and discounts, when ``n_step_sampling``).

        :param batch_inds: rows
        :param env: VecNormalize to normalize observations and rewards with, or None
        :param env_indices: env of each row; None draws them at random, as SB3 does
        """
        if self.n_step_sampling:
            return NStepReplayBuffer._get_samples(self, batch_inds, env)  # type: ignore[arg-type]
        if env_indices is None:
            env_indices = np.random.randint(0, high=self.n_envs, size=(len(batch_inds),))
        obs, next_obs = self._rebuild(batch_inds, env_indices)
        data = (
            self._normalize_obs(obs, env),
            self.actions[batch_inds, env_indices, :],
            self._normalize_obs(next_obs, env),
            (self.dones[batch_inds, env_indices] * (1 - self.timeouts[batch_inds, env_indices])).reshape(-1, 1),
            self._normalize_reward(self.rewards[batch_inds, env_indices].reshape(-1, 1), env),
        )
        # every array above is a fresh copy, so no second copy is needed
        return ReplayBufferSamples(*(self.to_torch(x, copy=False) for x in data))


class _StackView:
    """``buffer.observations[rows, envs]`` / ``buffer.next_observations[rows, envs]`` for code written
    against SB3's arrays (SB3's ``NStepReplayBuffer``): stacks rebuilt on demand."""

    def __init__(self, buffer: FrameStoreReplayBuffer, which: int) -> None:
        self.buffer, self.which = buffer, which

    def __getitem__(self, key: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        rows, envs = key
        return self.buffer._rebuild(np.asarray(rows), np.asarray(envs))[self.which]


class NStepFrameStoreReplayBuffer(FrameStoreReplayBuffer):
    """:class:`FrameStoreReplayBuffer` with n-step returns: SB3's ``NStepReplayBuffer`` sampling
    (discounted reward sums cut at episode ends, ``discounts = gamma ** steps taken``) on frames stored
    once. Used by DrQ-v2 (n = 3); works with any SB3 algorithm that reads ``replay_data.discounts``.

    :param n_steps: steps per return (>= 1)
    :param gamma: discount of the rewards inside the return
    Other parameters as :class:`FrameStoreReplayBuffer`.
    """

    n_step_sampling = True

    def __init__(self, *args: Any, n_steps: int = 3, gamma: float = 0.99, **kwargs: Any) -> None:
        n_steps, gamma = check_n_step(n_steps, gamma)
        super().__init__(*args, **kwargs)
        self.n_steps, self.gamma = n_steps, gamma
