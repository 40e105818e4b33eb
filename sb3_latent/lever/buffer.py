"""The LeVER replay buffer: the frame store until the freeze, latents in a larger buffer after it."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from sb3_latent.buffers.frame_store import FrameStoreReplayBuffer, check_n_step, infer_n_frames
from sb3_latent.common.checks import check_int
from sb3_latent.lever.binding import Binding

FREEZE_MODES = ("fc", "conv")
T_F_UNITS = ("updates", "steps")


class LeVERReplayBuffer(FrameStoreReplayBuffer):
    """SB3 replay buffer that stores frames (as :class:`~sb3_latent.FrameStoreReplayBuffer`) until the
    encoder is frozen at ``T_f``, then latent vectors in a larger buffer (module docstring).

    It must be bound to its model (:meth:`bind`), which puts a :class:`~sb3_latent.lever.extractor.LeVERExtractor`
    in each of its networks: our algorithms (RAD, DrQ-v2) do it when given
    ``replay_buffer_class=LeVERReplayBuffer``; for stock SB3 models use :func:`~sb3_latent.lever.attach_lever`
    (also after ``load`` / ``load_replay_buffer``).

    :param T_f: when to freeze: after ``T_f`` gradient updates (``T_f_unit="updates"``, the paper's
        unit; counted as calls to ``sample``) or ``T_f`` env steps (``"steps"``, transitions added over all envs)
    :param T_f_unit: ``"updates"`` or ``"steps"``
    :param K: augmented copies encoded per observation (paper: 4)
    :param augment: augmentation of the copies: ``"default"`` (the algorithm's training augmentation,
        or DrQ's random shift, pad 4, for stock SB3 models), a registry name, or None (K must be 1)
    :param augment_kwargs: its constructor arguments
    :param freeze: ``"fc"`` (conv + first Linear, the default) or ``"conv"``
    :param memory_budget: bytes for the latent buffer after the freeze (capacity = budget // bytes per
        transition) instead of the paper's formula
    :param n_steps: n-step returns (SB3's ``NStepReplayBuffer`` sampling; DrQ-v2 sets 3)
    :param gamma: discount inside the n-step return
    :param frozen: start frozen (transfer from a saved encoder, or a model saved after its freeze)
    :param chunk: images encoded per batch at the freeze
    Other parameters as :class:`~sb3_latent.FrameStoreReplayBuffer` (``n_frames`` falls back to 1
    when it cannot be inferred).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: torch.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_frames: int | None = None,
        validate: bool = False,
        T_f: int = 10_000,
        T_f_unit: str = "updates",
        K: int = 4,
        augment: str | None = "default",
        augment_kwargs: dict[str, Any] | None = None,
        freeze: str = "fc",
        memory_budget: int | None = None,
        n_steps: int = 1,
        gamma: float = 0.99,
        frozen: bool = False,
        chunk: int = 256,
    ) -> None:
        if not frozen:
            self.T_f = check_int("T_f", T_f, 1)
        else:
            self.T_f = int(T_f) if isinstance(T_f, (int, np.integer)) and not isinstance(T_f, bool) else 0
        if T_f_unit not in T_F_UNITS:
            raise ValueError(f"T_f_unit must be one of {T_F_UNITS}, got {T_f_unit!r}")
        if freeze not in FREEZE_MODES:
            raise ValueError(f"freeze must be one of {FREEZE_MODES}, got {freeze!r}")
        if memory_budget is not None:
            check_int("memory_budget", memory_budget, 1)
        self.K, self.chunk = check_int("K", K, 1), check_int("chunk", chunk, 1)
        self.n_steps, self.gamma = check_n_step(n_steps, gamma)
        self.n_step_sampling = self.n_steps > 1
        if isinstance(observation_space, spaces.Box) and n_frames is None:
            try:
                n_frames = infer_n_frames(observation_space)
            except ValueError:
                n_frames = 1  # no frame sharing, always exact
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs,
            optimize_memory_usage,
            handle_timeout_termination,
            n_frames,
            validate,
        )
        self.T_f_unit, self.freeze_mode, self.memory_budget = T_f_unit, freeze, memory_budget
        self.augment, self.augment_kwargs = augment, augment_kwargs
        self.capacity_before = self.buffer_size * n_envs
        self.frozen, self.start_frozen = False, bool(frozen)
        self.n_sampled = self.n_env_steps = 0
        self.reencode_seconds = 0.0
        self.z_next: np.ndarray | None = None  # (capacity + 1, n_envs, N, K, L) by add count
        self.z_first: dict[tuple[int, int], np.ndarray] = {}  # (add count, env) of an episode's first step -> (N, K, L)
        self._last_next: np.ndarray | None = None
        self._k = np.zeros(0, dtype=np.int64)
        self._binding: Binding | None = None

    # --- wiring ---------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_binding": None}

    def bind(self, model: BaseAlgorithm) -> None:
        """Give the buffer its model's encoders and put a :class:`~sb3_latent.lever.extractor.LeVERExtractor` in
        each of its networks; checks the capacity the freeze will give. Freezes now if ``frozen``."""
        binding = Binding(model, self)
        z_shape = self.z_next.shape[2::2] if self.z_next is not None else ()
        if self.frozen and (binding.n_slots, binding.latent_dim) != z_shape:
            raise ValueError(
                "this LeVER buffer's latents do not fit the model: it was saved from a model with other "
                f"encoders (latents N, L = {z_shape}, model: N={binding.n_slots}, "
                f"L={binding.latent_dim})"
            )
        previous, self._binding = self._binding, binding
        if not self.frozen:
            capacity = self._capacity_after()
            if capacity < self.capacity_before and not self.start_frozen:
                need = self.capacity_before * self.bytes_per_latent_transition()
                self._binding = previous  # refused: the model keeps its networks as they were
                raise ValueError(
                    f"LeVER would shrink the buffer from {self.capacity_before} to {capacity} transitions: "
                    + (
                        f"memory_budget={self.memory_budget} bytes is smaller than the {need} bytes that the "
                        f"{self.capacity_before} transitions stored before the freeze need as latents"
                        if self.memory_budget
                        else f"a latent (N={binding.n_slots} x K={self.K} x L={binding.latent_dim} floats) is larger "
                        f"than an image ({self._image_bytes()} bytes); use freeze='fc', a smaller K or a memory_budget"
                    )
                )
            binding.install()
            if self.start_frozen:
                self.freeze()
        else:
            binding.install()
            binding.freeze_model()

    def _require_bound(self) -> Binding:
        if self._binding is None:
            raise RuntimeError(
                "this LeVERReplayBuffer is not bound to a model (as after load_replay_buffer or load "
                "of a stock SB3 model): call sb3_latent.attach_lever(model) first"
            )
        return self._binding

    # --- sizes ----------------------------------------------------------------------------------

    def _image_bytes(self) -> int:
        """``P`` of the capacity formula: the bytes of one frame, not of the whole stack (SEER's ``train.py``
        counts one RGB frame at the stored size, ``3 * H * W``), since each frame is stored once."""
        stack = int(np.prod(self.obs_shape)) * np.dtype(self.observation_space.dtype).itemsize
        return stack // max(int(getattr(self, "n_frames", 1) or 1), 1)

    def bytes_per_latent_transition(self) -> int:
        """Bytes per transition after the freeze: ``N K L`` float32 latents of its next_obs, action,
        reward, done, timeout and episode step."""
        b = self._require_bound()
        return 4 * b.n_slots * self.K * b.latent_dim + self.actions.itemsize * self.action_dim + 16

    def _capacity_after(self) -> int:
        """Transitions after the freeze: §4.2's ``floor(C P / (4 N K L))``, or what memory_budget holds."""
        b = self._require_bound()
        if self.memory_budget is not None:
            return self.memory_budget // self.bytes_per_latent_transition()
        return self.capacity_before * self._image_bytes() // (4 * b.n_slots * self.K * b.latent_dim)

    def nbytes(self) -> int:
        return super().nbytes() + sum(z.nbytes for z in self.z_first.values())

    def bytes_per_transition(self) -> float:
        """Measured bytes per transition of capacity (every array held, divided by the capacity)."""
        return self.nbytes() / (self.buffer_size * self.n_envs)

    # --- the freeze -----------------------------------------------------------------------------

    def _add_counts(self, rows: np.ndarray) -> np.ndarray:
        return self.n_added - 1 - (self.pos - 1 - rows) % self.buffer_size

    def freeze(self) -> None:
        """Freeze the model's encoders and replace every stored image by its latents, then grow the buffer."""
        b = self._require_bound()
        if self.frozen:
            return
        start = time.perf_counter()
        b.freeze_model()
        n_live = self.buffer_size if self.full else self.pos
        capacity_total = self._capacity_after()
        if capacity_total < n_live * self.n_envs:
            raise ValueError(
                f"memory_budget={self.memory_budget} bytes holds {capacity_total} latent transitions, "
                f"fewer than the {n_live * self.n_envs} already stored"
            )
        cap = max(capacity_total // self.n_envs, 1)
        rows = (np.arange(n_live) + (self.pos if self.full else 0)) % self.buffer_size  # oldest first
        g_all = self._add_counts(rows)
        z_next = np.zeros((cap + 1, self.n_envs, b.n_slots, self.K, b.latent_dim), dtype=np.float32)
        z_first: dict[tuple[int, int], np.ndarray] = {}
        last = np.zeros((self.n_envs, *self.obs_shape), dtype=self.observation_space.dtype)
        pairs = [(r, g, e) for e in range(self.n_envs) for r, g in zip(rows, g_all, strict=True)]
        for i in range(0, len(pairs), self.chunk):
            r, g, e = (np.array(c) for c in zip(*pairs[i : i + self.chunk], strict=True))
            obs, nxt = self._rebuild(r, e)
            z_next[g % (cap + 1), e] = b.encode(nxt, self.K)
            s = self.episode_steps[r, e]
            need = (s == 0) | (g == g_all[0])  # first steps, and the oldest (its previous next_obs is gone)
            if need.any():
                z = b.encode(obs[need], self.K)
                for j, (gj, ej, sj) in enumerate(zip(g[need], e[need], s[need], strict=True)):
                    if sj == 0:
                        z_first[(int(gj), int(ej))] = z[j]
                    else:
                        z_next[(gj - 1) % (cap + 1), ej] = z[j]
            newest = g == g_all[-1]
            last[e[newest]] = nxt[newest]
        # re-lay the transitions oldest first at rows 0..n_live-1 of the new capacity
        for name in ("actions", "rewards", "dones", "timeouts", "episode_steps"):
            old = getattr(self, name)
            new = np.zeros((cap, *old.shape[1:]), dtype=old.dtype)
            new[:n_live] = old[rows]
            setattr(self, name, new)
        self.reset_ids = np.zeros((0, self.n_envs), dtype=np.int64)
        self.frames = np.zeros((0, *self.frames.shape[1:]), dtype=self.frames.dtype)
        self._pool = np.zeros((0, *self._pool.shape[1:]), dtype=self._pool.dtype)
        self.buffer_size, self.pos, self.full = cap, n_live % cap, n_live == cap
        self.z_next, self.z_first, self._last_next = z_next, z_first, last
        self.frozen = True
        self.reencode_seconds = time.perf_counter() - start
        self._log()

    def _log(self) -> None:
        logger = getattr(self._binding.model, "_logger", None) if self._binding is not None else None
        if logger is None:
            return
        logger.record("lever/frozen", int(self.frozen))
        logger.record("lever/capacity", self.buffer_size * self.n_envs)
        logger.record("lever/bytes_per_transition", self.bytes_per_transition())
        logger.record("lever/reencode_seconds", self.reencode_seconds)

    # --- adding ---------------------------------------------------------------------------------

    def add(
        self,
        obs: np.ndarray,
        next_obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """As SB3's ``ReplayBuffer.add``; after the freeze the observations are encoded here (K copies)."""
        self._require_bound()
        self.n_env_steps += self.n_envs
        super().add(obs, next_obs, action, reward, done, infos)
        if not self.frozen and self.T_f_unit == "steps" and self.n_env_steps >= self.T_f:
            self.freeze()

    def _continues(self, i: int, obs: np.ndarray) -> bool:
        if not self.frozen:
            return super()._continues(i, obs)
        assert self._last_next is not None
        return bool(np.array_equal(self._last_next[i], obs.reshape(self.obs_shape)))

    def _store_observations(self, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Frames before the freeze; after it, the latents of next_obs and of the obs that start an episode."""
        if not self.frozen:
            super()._store_observations(obs, next_obs)
            return
        b = self._require_bound()
        assert self.z_next is not None
        o, nx = obs.reshape(self.n_envs, *self.obs_shape), next_obs.reshape(self.n_envs, *self.obs_shape)
        if self.full:  # the oldest transition leaves: its first-step latents too
            for e in range(self.n_envs):
                self.z_first.pop((self.n_added - self.buffer_size, e), None)
        first = np.flatnonzero(self._ep_step == 0)
        if len(first):
            for env, z in zip(first, b.encode(o[first], self.K), strict=True):
                self.z_first[(self.n_added, int(env))] = z
        self.z_next[self.n_added % len(self.z_next)] = b.encode(nx, self.K)
        self._last_next = nx.copy()

    def _free_stacks(self) -> None:
        if not self.frozen:
            super()._free_stacks()

    # --- sampling -------------------------------------------------------------------------------

    @property
    def samples_augmented(self) -> bool:
        """Whether sampled observations were augmented when they were stored (after the freeze: one of the K
        augmented latent copies), so that an algorithm does not augment them again."""
        return self.frozen

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """A batch as SB3's; each call counts as one gradient update towards ``T_f``. After the freeze
        observations are latents ``(B, N, L)`` (one random copy of K per transition)."""
        self._require_bound()
        if not self.frozen and self.T_f_unit == "updates" and self.n_sampled >= self.T_f:
            self.freeze()
        self.n_sampled += 1
        if self.frozen:
            self._k = np.random.randint(0, self.K, size=batch_size)
        self._log()
        return super().sample(batch_size, env)

    def _rebuild(self, batch_inds: np.ndarray, env_indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.frozen:
            return super()._rebuild(batch_inds, env_indices)
        assert self.z_next is not None
        b, e, k = np.asarray(batch_inds), np.asarray(env_indices), self._k
        g, m = self._add_counts(b), len(self.z_next)
        nxt = self.z_next[g % m, e, :, k]  # (B, N, L)
        obs = self.z_next[(g - 1) % m, e, :, k]
        for j in np.flatnonzero(self.episode_steps[b, e] == 0):
            obs[j] = self.z_first[(int(g[j]), int(e[j]))][:, k[j]]
        return obs, nxt

    def latent_features(self, extractor: nn.Module, latents: torch.Tensor) -> torch.Tensor:
        """Features of ``extractor`` (one of the bound model's) from sampled latents ``(B, N, L)``."""
        slot, split = self._require_bound().by_extractor[id(extractor)]
        return split.rest(latents[:, slot])
