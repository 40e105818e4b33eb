"""LeVER (Chen, Lee, Srinivas, Abbeel, Laskin 2021, "Compute- and Memory-Efficient Reinforcement
Learning with Latent Experience Replay"; published later as SEER): after ``T_f`` updates freeze the
conv encoder (and the first fully connected layer), replay latent vectors instead of images, and
grow the buffer into the memory the images freed.

Two ways in::

    # our algorithms wire the buffer themselves
    model = RAD("CnnPolicy", env, replay_buffer_class=LeVERReplayBuffer, replay_buffer_kwargs=dict(T_f=10_000, K=4))
    # stock SB3 / sb3-contrib: SAC, TD3, DQN, QRDQN
    model = attach_lever(SAC("CnnPolicy", env), T_f=10_000, K=4)

What is frozen (``freeze``): ``"fc"`` (default; the paper's choice for DMC, Appendix E) freezes the
conv encoder and the first Linear layer after it; the latent is that layer's output (``features_dim``
floats, before LayerNorm/ReLU), and what follows it (LayerNorm → tanh, or ReLU) keeps training.
``"conv"`` freezes the conv layers only and stores the flattened conv output, which for an 84x84
image is larger than the image itself, so it saves compute but no memory.

Flare and the other frame-wise extractors: the frozen part is the per-frame encoder *and* the Linear
that fuses the frames' latents and flows, so the buffer stores one fused latent per observation. A
per-frame latent would have to be the conv map (32x35x35 floats for an 84x84 frame, 7x the frame's
bytes): the memory gain exists only after the fusing Linear.

Latents of one observation: ``N`` (one per distinct frozen encoder: 2 for SAC/TD3/RAD/DrQ-v2 whose
actor and critic have their own first Linear, 1 for DQN or a fully shared extractor) x ``K``
augmented copies (paper §4.2; K = 4) x ``L`` floats. Target networks read the online latents (§4.2).
The capacity after the freeze is ``floor(C * P / (4 * N * K * L))`` (§4.2; ``P`` bytes per image) or
what ``memory_budget`` bytes hold.

Layout: like :class:`~sb3_latent.FrameStoreReplayBuffer` (whose behaviour it has before the
freeze), each transition keeps the latents of its ``next_obs`` only; ``obs`` is the previous
transition's ``next_obs`` except at an episode's first step, whose ``obs`` latents are kept apart.
A sample draws one copy ``k`` per transition and returns ``observations`` / ``next_observations``
as float tensors ``(B, N, L)``.

Frozen parameters get ``requires_grad=False`` and lose their optimizer state; they stay in their
optimizer's param group (so checkpoints keep their layout and load into a fresh model), where a
parameter without gradient is skipped by every PyTorch optimizer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize
from torch import nn

from sb3_latent.augment import Augmentation, make_augmentation
from sb3_latent.buffers.frame_store import FrameStoreReplayBuffer, check_n_step, infer_n_frames
from sb3_latent.extractors.flare import PixelExtractor

FREEZE_MODES = ("fc", "conv")
T_F_UNITS = ("updates", "steps")
#: online networks that own an extractor, and the online network each target network follows
CONSUMERS: dict[str, str | None] = {
    "critic": None, "actor": None, "q_net": None, "quantile_net": None,
    "critic_target": "critic", "actor_target": "actor", "q_net_target": "q_net", "quantile_net_target": "quantile_net",
}  # fmt: skip


@dataclass
class Split:
    """An extractor cut at the freeze: ``latent = tail(body(x))`` (preprocessed images → ``(B, L)``,
    frozen; ``body`` may be shared by several extractors, as RAD's and DrQ-v2's actor and critic share
    the conv encoder, and is then run once for both) and ``rest`` (``(B, L)`` → features, still trained)."""

    body: Callable[[torch.Tensor], torch.Tensor]
    tail: Callable[[torch.Tensor], torch.Tensor]
    rest: Callable[[torch.Tensor], torch.Tensor]
    frozen: list[nn.Parameter]
    latent_dim: int
    body_id: int

    def latent(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.body(x))


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def split_extractor(fe: nn.Module, freeze: str = "fc") -> Split:
    """Cut ``fe`` after its conv layers (``"conv"``) or after the first Linear that follows them (``"fc"``).

    :param fe: an sb3-latent pixel extractor (Flare, latent stack, pixel flow, DrQ-v2's) or SB3's ``NatureCNN``
    :raises TypeError: for any other extractor
    """
    if isinstance(fe, LeVERExtractor):
        return fe.split
    if isinstance(fe, PixelExtractor):
        def body(x: torch.Tensor) -> torch.Tensor:
            return fe.fuse(fe.encode(x)).flatten(1)

        conv = list(fe.encoder.parameters())
        if freeze == "fc":
            return Split(body, fe.fc, lambda z: torch.tanh(fe.ln(z)), [*conv, *fe.fc.parameters()],
                         fe.fc.out_features, id(fe.encoder))
        return Split(body, _identity, lambda z: torch.tanh(fe.ln(fe.fc(z))), conv, fe.fc.in_features, id(fe.encoder))
    if isinstance(fe, NatureCNN):
        fc = fe.linear[0]
        assert isinstance(fc, nn.Linear)
        if freeze == "fc":
            return Split(fe.cnn, fc, fe.linear[1:], [*fe.cnn.parameters(), *fc.parameters()], fc.out_features,
                         id(fe.cnn))
        return Split(fe.cnn, _identity, fe.linear, list(fe.cnn.parameters()), fc.in_features, id(fe.cnn))
    raise TypeError(f"LeVER cannot split a {type(fe).__name__}: it freezes SB3's NatureCNN and the sb3-latent pixel "
                    "extractors (Flare, latent stack, pixel flow, DrQ-v2/RAD encoders); use one of them")


class LeVERExtractor(BaseFeaturesExtractor):
    """Stands in for the extractor of a stock SB3 network: it holds the very same submodules and
    parameters under the same names (checkpoints and optimizers are unchanged) and reads either
    images (the whole extractor, e.g. when acting) or latents ``(B, N, L)`` from the LeVER buffer
    (its slot's latent through the layers after the cut).

    SB3 would divide latents by 255 as if they were images, so the network is told not to normalize
    (``normalize_images=False``) and this module normalizes images itself.
    """

    def __init__(self, inner: BaseFeaturesExtractor, freeze: str, slot: int, normalize: bool) -> None:
        super().__init__(inner._observation_space, inner.features_dim)
        for name, child in inner.named_children():
            self.add_module(name, child)
        for name, param in inner.named_parameters(recurse=False):
            self.register_parameter(name, param)
        self.split = split_extractor(inner, freeze)
        self.slot, self.normalize = slot, normalize
        object.__setattr__(self, "inner", inner)  # kept, not registered: its parameters are ours already

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if observations.dim() == 3:  # latents (B, N, L)
            return self.split.rest(observations[:, self.slot])
        x = observations / 255.0 if self.normalize else observations
        return self.split.rest(self.split.latent(x))


def _positive_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


class _Binding:
    """What the buffer needs from its model (never pickled): the cut extractors and how to encode."""

    def __init__(self, model: BaseAlgorithm, buffer: LeVERReplayBuffer) -> None:
        policy = model.policy
        space = model.observation_space
        if not isinstance(space, spaces.Box) or not is_image_space(space, check_channels=False):
            raise TypeError(f"LeVERReplayBuffer needs image observations (C, H, W); {type(model).__name__} has {space}")
        self.model, self.native = model, bool(getattr(model, "lever_native", False))
        found = {name: getattr(policy, name) for name in CONSUMERS
                 if isinstance(getattr(getattr(policy, name, None), "features_extractor", None), nn.Module)}
        if not found:
            raise TypeError(f"LeVER cannot work with {type(model).__name__}: its policy has none of the networks "
                            f"{sorted(CONSUMERS)} with a features extractor (SAC, TD3, DQN, QRDQN, RAD, DrQ-v2 do)")
        self.normalize = bool(getattr(policy, "normalize_images", True))
        # one slot per distinct frozen encoder among the online networks; targets read their online network's
        keys: dict[tuple[int, ...], int] = {}
        self.slots: list[Split] = []
        self.by_extractor: dict[int, tuple[int, Split]] = {}
        for name in sorted(found, key=lambda n: CONSUMERS[n] is not None):
            fe = found[name].features_extractor
            split = split_extractor(fe, buffer.freeze_mode)
            source = CONSUMERS[name]
            if source is None:
                key = tuple(id(p) for p in split.frozen)
                slot = keys.setdefault(key, len(keys))
                if slot == len(self.slots):
                    self.slots.append(split)
            else:
                slot = self.by_extractor[id(found[source].features_extractor)][0]
            self.by_extractor[id(fe)] = (slot, split)
            if not self.native and not isinstance(fe, LeVERExtractor):
                found[name].features_extractor = LeVERExtractor(fe, buffer.freeze_mode, slot, self.normalize)
                found[name].normalize_images = False
                self.by_extractor[id(found[name].features_extractor)] = (slot, split)
        self.frozen_params = list({id(p): p for s in self.slots for p in s.frozen}.values())
        self.aug, self.view = self._augmentation(policy, buffer)

    @staticmethod
    def _augmentation(policy: Any, buffer: LeVERReplayBuffer) -> tuple[Augmentation | None, Callable[..., Any]]:
        view = getattr(policy, "eval_view", lambda x: x)
        if buffer.augment == "default":
            # the algorithm's own (RAD: translate, DrQ-v2: shift); stock SB3 has none: DrQ's shift, pad 4
            aug = policy.augmentation if hasattr(policy, "augmentation") else make_augmentation("shift")
        else:
            aug = make_augmentation(buffer.augment, **(buffer.augment_kwargs or {}))
        if aug is None and buffer.K > 1:
            raise ValueError(f"K={buffer.K} augmented copies need an augmentation; got augment=None (use K=1)")
        return aug, view

    @property
    def n_slots(self) -> int:
        return len(self.slots)

    @property
    def latent_dim(self) -> int:
        return self.slots[0].latent_dim

    @torch.no_grad()
    def encode(self, images: np.ndarray, K: int) -> np.ndarray:
        """Latents ``(B, N, K, L)`` of uint8 images ``(B, C, H, W)``: K augmented copies through each frozen encoder."""
        x = torch.as_tensor(images, device=self.model.device).float()
        out = np.empty((len(images), self.n_slots, K, self.latent_dim), dtype=np.float32)
        for k in range(K):
            xk = self.aug(x) if self.aug is not None else self.view(x)
            assert isinstance(xk, torch.Tensor)
            xk = xk / 255.0 if self.normalize else xk
            bodies: dict[int, torch.Tensor] = {}  # a conv encoder shared by two slots runs once
            for n, split in enumerate(self.slots):
                if split.body_id not in bodies:
                    bodies[split.body_id] = split.body(xk)
                out[:, n, k] = split.tail(bodies[split.body_id]).float().cpu().numpy()
        return out

    def freeze_model(self) -> None:
        """Freeze the encoders: no gradient, no optimizer state; remember it in the model's buffer kwargs
        (a saved model reloads frozen)."""
        optimizers: list[torch.optim.Optimizer] = [
            opt for m in [self.model.policy, *self.model.policy.modules()]
            if isinstance(opt := getattr(m, "optimizer", None), torch.optim.Optimizer)]
        for p in self.frozen_params:
            p.requires_grad_(False)
            p.grad = None
            for opt in optimizers:
                opt.state.pop(p, None)
        kwargs = dict(getattr(self.model, "replay_buffer_kwargs", None) or {})
        setattr(self.model, "replay_buffer_kwargs", {**kwargs, "frozen": True})  # noqa: B010


class LeVERReplayBuffer(FrameStoreReplayBuffer):
    """SB3 replay buffer that stores frames (as :class:`~sb3_latent.FrameStoreReplayBuffer`) until the
    encoder is frozen at ``T_f``, then latent vectors in a larger buffer (module docstring).

    It must be bound to its model: our algorithms (RAD, DrQ-v2) do it when given
    ``replay_buffer_class=LeVERReplayBuffer``; for stock SB3 models use :func:`attach_lever`
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
            self.T_f = _positive_int("T_f", T_f)
        else:
            self.T_f = int(T_f) if isinstance(T_f, (int, np.integer)) and not isinstance(T_f, bool) else 0
        if T_f_unit not in T_F_UNITS:
            raise ValueError(f"T_f_unit must be one of {T_F_UNITS}, got {T_f_unit!r}")
        if freeze not in FREEZE_MODES:
            raise ValueError(f"freeze must be one of {FREEZE_MODES}, got {freeze!r}")
        if memory_budget is not None:
            _positive_int("memory_budget", memory_budget)
        self.K, self.chunk = _positive_int("K", K), _positive_int("chunk", chunk)
        self.n_steps, self.gamma = check_n_step(n_steps, gamma)
        self.n_step_sampling = self.n_steps > 1
        if isinstance(observation_space, spaces.Box) and n_frames is None:
            try:
                n_frames = infer_n_frames(observation_space)
            except ValueError:
                n_frames = 1  # no frame sharing, always exact
        super().__init__(buffer_size, observation_space, action_space, device, n_envs, optimize_memory_usage,
                         handle_timeout_termination, n_frames, validate)
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
        self._binding: _Binding | None = None

    # --- wiring ---------------------------------------------------------------------------------

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_binding": None}

    def bind(self, model: BaseAlgorithm) -> None:
        """Give the buffer its model's encoders (and, for stock SB3 models, put :class:`LeVERExtractor`
        in their networks); checks the capacity the freeze will give. Freezes now if ``frozen``."""
        binding = _Binding(model, self)
        z_shape = self.z_next.shape[2::2] if self.z_next is not None else ()
        if self.frozen and (binding.n_slots, binding.latent_dim) != z_shape:
            raise ValueError("this LeVER buffer's latents do not fit the model: it was saved from a model with other "
                             f"encoders (latents N, L = {z_shape}, model: N={binding.n_slots}, "
                             f"L={binding.latent_dim})")
        self._binding = binding
        if not self.frozen:
            capacity = self._capacity_after()
            if capacity < self.capacity_before and not self.start_frozen:
                need = self.capacity_before * self.bytes_per_latent_transition()
                raise ValueError(
                    f"LeVER would shrink the buffer from {self.capacity_before} to {capacity} transitions: "
                    + (f"memory_budget={self.memory_budget} bytes is smaller than the {need} bytes that the "
                       f"{self.capacity_before} transitions stored before the freeze need as latents"
                       if self.memory_budget else
                       f"a latent (N={binding.n_slots} x K={self.K} x L={binding.latent_dim} floats) is larger than "
                       f"an image ({self._image_bytes()} bytes); use freeze='fc', a smaller K or a memory_budget"))
            if self.start_frozen:
                self.freeze()
        else:
            binding.freeze_model()

    def _require_bound(self) -> _Binding:
        if self._binding is None:
            raise RuntimeError("this LeVERReplayBuffer is not bound to a model (as after load_replay_buffer or load "
                               "of a stock SB3 model): call sb3_latent.attach_lever(model) first")
        return self._binding

    # --- sizes ----------------------------------------------------------------------------------

    def _image_bytes(self) -> int:
        return int(np.prod(self.obs_shape)) * np.dtype(self.observation_space.dtype).itemsize

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
            raise ValueError(f"memory_budget={self.memory_budget} bytes holds {capacity_total} latent transitions, "
                             f"fewer than the {n_live * self.n_envs} already stored")
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

    def add(self, obs: np.ndarray, next_obs: np.ndarray, action: np.ndarray, reward: np.ndarray, done: np.ndarray,
            infos: list[dict[str, Any]]) -> None:
        """As SB3's ``ReplayBuffer.add``; after the freeze the observations are encoded here (K copies)."""
        b = self._require_bound()
        self.n_env_steps += self.n_envs
        if not self.frozen:
            super().add(obs, next_obs, action, reward, done, infos)
            if self.T_f_unit == "steps" and self.n_env_steps >= self.T_f:
                self.freeze()
            return
        assert self.z_next is not None and self._last_next is not None
        shape = (self.n_envs, *self.obs_shape)
        o, nx = np.asarray(obs).reshape(shape), np.asarray(next_obs).reshape(shape)
        self._check(o.reshape(self.n_envs, self.n_frames, *self.frame_shape),
                    nx.reshape(self.n_envs, self.n_frames, *self.frame_shape))
        if self.full:  # the oldest transition leaves: its first-step latents too
            for e in range(self.n_envs):
                self.z_first.pop((self.n_added - self.buffer_size, e), None)
        for i in range(self.n_envs):
            if self._ep_step[i] > 0 and not np.array_equal(self._last_next[i], o[i]):
                self._ep_step[i] = 0  # reset without done: a new episode
        first = np.flatnonzero(self._ep_step == 0)
        if len(first):
            for env, z in zip(first, b.encode(o[first], self.K), strict=True):
                self.z_first[(self.n_added, int(env))] = z
        self.z_next[self.n_added % len(self.z_next)] = b.encode(nx, self.K)
        self._last_next = nx.copy()
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

    def _free_stacks(self) -> None:
        if not self.frozen:
            super()._free_stacks()

    # --- sampling -------------------------------------------------------------------------------

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


def attach_lever(model: BaseAlgorithm, T_f: int | None = None, K: int | None = None,
                 encoder_from: str | Path | BaseAlgorithm | None = None, **kwargs: Any) -> BaseAlgorithm:
    """Give a stock SB3 / sb3-contrib model (SAC, TD3, DQN, QRDQN, and our RAD / DrQ-v2) a LeVER buffer
    bound to its encoders; returns the model. Call it again after ``Model.load`` or
    ``model.load_replay_buffer`` (with no arguments it keeps the saved settings and the loaded buffer)::

        model = attach_lever(SAC("CnnPolicy", env, buffer_size=100_000), T_f=10_000, K=4)
        model.learn(200_000)  # images until 10k updates, latents after

    :param model: the model; its current buffer is replaced (a LeVER buffer it already has is kept and bound)
    :param T_f: freezing time (see :class:`LeVERReplayBuffer`)
    :param K: augmented copies per observation
    :param encoder_from: transfer (paper §5.5): a saved model (path) or a model whose frozen layers are
        copied into this one, which is then frozen from step 0
    :param kwargs: other :class:`LeVERReplayBuffer` arguments (``freeze``, ``memory_budget``, ``T_f_unit``, ...)
    """
    given = {**{k: v for k, v in {"T_f": T_f, "K": K}.items() if v is not None}, **kwargs}
    if encoder_from is not None:
        given["frozen"] = True
    buffer = getattr(model, "replay_buffer", None)
    if buffer is None:
        raise TypeError(f"LeVER needs an off-policy model with a replay buffer; {type(model).__name__} has none")
    if not (isinstance(buffer, LeVERReplayBuffer) and not given):
        if not isinstance(buffer, LeVERReplayBuffer) and buffer.size() > 0:
            raise ValueError(f"attach_lever replaces the replay buffer, which already holds {buffer.size()} "
                             "transitions; attach LeVER before learning (or save them first with save_replay_buffer)")
        saved = getattr(model, "replay_buffer_kwargs", None) or {}
        settings = {**(saved if getattr(model, "replay_buffer_class", None) is LeVERReplayBuffer else {}), **given}
        if getattr(model, "n_steps", 1) > 1:
            settings.setdefault("n_steps", model.n_steps)  # type: ignore[attr-defined]
            settings.setdefault("gamma", model.gamma)  # type: ignore[attr-defined]
        buffer = LeVERReplayBuffer(model.buffer_size, model.observation_space, model.action_space,  # type: ignore[attr-defined]
                                   device=model.device, n_envs=model.n_envs, **settings)
        setattr(model, "replay_buffer_class", LeVERReplayBuffer)  # noqa: B010
        setattr(model, "replay_buffer_kwargs", settings)  # noqa: B010
    assert isinstance(buffer, LeVERReplayBuffer)
    if encoder_from is not None:
        load_encoder(model, encoder_from, buffer.freeze_mode)
    buffer.bind(model)
    model.replay_buffer = buffer  # type: ignore[attr-defined]
    return model


def load_encoder(model: BaseAlgorithm, source: str | Path | BaseAlgorithm, freeze: str = "fc") -> list[str]:
    """Copy the layers LeVER freezes (conv encoder and, for ``"fc"``, the first Linear) from ``source``
    (a model or a saved ``.zip``) into ``model``, by parameter name; return the names copied.

    :raises ValueError: when a layer is missing in ``source`` or has another shape
    """
    state: dict[str, Any]
    if isinstance(source, BaseAlgorithm):
        state = source.policy.state_dict()
    else:
        from stable_baselines3.common.save_util import load_from_zip_file

        _, params, _ = load_from_zip_file(source, device=model.device)
        if params is None or "policy" not in params:
            raise ValueError(f"{str(source)!r} holds no policy parameters")
        state = dict(params["policy"])
    names = {id(p): n for n, p in model.policy.named_parameters()}
    wanted: list[str] = []
    for name in CONSUMERS:
        fe = getattr(getattr(model.policy, name, None), "features_extractor", None)
        if isinstance(fe, nn.Module):
            wanted += [names[id(p)] for p in split_extractor(fe, freeze).frozen if id(p) in names]
    wanted = sorted(set(wanted))
    missing = [n for n in wanted if n not in state]
    bad = [n for n in wanted if n in state and state[n].shape != dict(model.policy.named_parameters())[n].shape]
    if missing or bad:
        raise ValueError(f"cannot transfer the encoder: source lacks {missing[:4]}{'...' if len(missing) > 4 else ''}"
                         f" and has other shapes for {bad[:4]}; source and model need the same encoder architecture")
    params = dict(model.policy.named_parameters())
    with torch.no_grad():
        for n in wanted:
            params[n].copy_(state[n])
    return wanted
