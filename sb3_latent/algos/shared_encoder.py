"""What RAD and DrQ-v2 share: one conv encoder trained by the critic and read (detached) by the actor,
augmentation of sampled batches, each unique frame encoded once per update, EMA targets that leave
the encoder out.

Policy side: :class:`PixelPolicyMixin` (augmentation, the frame size the extractors are built for,
the evaluation view) and :func:`build_shared_encoder` (actor, critic, target and optimizers).
Algorithm side: :class:`SharedEncoderMixin` (preprocessing, augmentation, encoding, heads, Q values,
EMA, learning rates). The mixin reads extractors only through :class:`~sb3_latent.extractors.base.EncodingExtractor`
(``encode_pair``, ``encode``, ``head``), so whatever stands in for a pixel extractor works unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import ContinuousCritic
from stable_baselines3.common.preprocessing import preprocess_obs
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import Schedule
from torch import nn

from sb3_latent.augment import Augmentation, make_augmentation
from sb3_latent.buffers.frame_store import FrameStoreReplayBuffer
from sb3_latent.common.torch_utils import channels_last, ema_
from sb3_latent.extractors.base import EncodingExtractor, PixelExtractor


def build_augmentation(
    space: gym.Space, augment: str | None, augment_kwargs: dict[str, Any] | None
) -> Augmentation | None:
    """The training augmentation; ``"translate"`` defaults to a canvas 8 pixels larger than the
    frames (Flare Table A.4: 100 → 108)."""
    kwargs = dict(augment_kwargs or {})
    if augment == "translate" and "size" not in kwargs and isinstance(space, gym.spaces.Box):
        kwargs["size"] = int(space.shape[-1]) + 8
    return make_augmentation(augment, **kwargs)


class PixelPolicyMixin:
    """Policy side of a shared-encoder algorithm: the augmentation, and the frame size the extractors
    are built for (the augmented one; ``eval_view`` maps env frames to it outside training).
    Put it before SB3's policy class in the bases and call :meth:`_setup_augmentation` before its
    ``__init__``."""

    features_extractor_class: type[BaseFeaturesExtractor]
    features_extractor_kwargs: dict[str, Any]
    augmentation: Augmentation | None
    encoder_space: gym.Space
    augment: str | None
    augment_kwargs: dict[str, Any] | None
    #: learning rate of the encoder's param group; None: the critic's
    encoder_lr: float | None = None

    def _setup_augmentation(self, space: gym.Space, augment: str | None, augment_kwargs: dict[str, Any] | None) -> None:
        self.augment, self.augment_kwargs = augment, augment_kwargs
        self.augmentation = build_augmentation(space, augment, augment_kwargs)
        self.encoder_space = space
        if self.augmentation is not None and isinstance(space, gym.spaces.Box) and len(space.shape) == 3:
            c, h, w = space.shape
            oh, ow = self.augmentation.output_size(h, w)
            self.encoder_space = gym.spaces.Box(0, 255, (c, oh, ow), np.uint8)

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        """Extractors are built for the augmented frame size."""
        return self.features_extractor_class(self.encoder_space, **self.features_extractor_kwargs)

    def eval_view(self, obs: torch.Tensor) -> torch.Tensor:
        """Frames as the encoder expects them outside training: the augmentation's centred version
        when it changes the frame size (translate: centred on the canvas; crop: centre crop)."""
        if self.augmentation is not None and obs.dim() == 4 and obs.shape[1:] != self.encoder_space.shape:
            return self.augmentation.center(obs)
        return obs


def build_shared_encoder(
    policy: Any, lr_schedule: Schedule, target_shares_encoder: bool, init: Callable[[nn.Module], None] | None = None
) -> None:
    """Build ``policy.actor``, ``policy.critic``, ``policy.critic_target`` and the two optimizers
    with one conv encoder owned by the critic (RAD/CURL/DrQ-v2).

    The actor's extractor holds the *same* encoder with ``detach_encoder=True``: it trains its own
    head, never the encoder, and its optimizer leaves the encoder out. The critic's optimizer holds
    the encoder as a param group named ``"encoder"`` (learning rate ``policy.encoder_lr`` if set).
    Encoders use the channels-last memory format (faster convolutions, same maths).

    :param policy: an SB3 ``SACPolicy`` / ``TD3Policy`` (with :class:`PixelPolicyMixin` for pixels)
    :param lr_schedule: learning-rate schedule
    :param target_shares_encoder: True: the target critic reads the online encoder (DrQ-v2, no target
        encoder); False: it gets its own copy, to be followed by EMA (RAD)
    :param init: applied to every module of the actor and the critic before the encoder is shared and the target
        copied (the official ``weight_init`` of RAD/CURL/DrQ-v2); None: the modules keep their own initialisation
    """
    policy.critic = policy.make_critic(features_extractor=None)
    policy.actor = policy.make_actor()
    if init is not None:
        policy.critic.apply(init)
        policy.actor.apply(init)
    critic_fe = policy.critic.features_extractor
    encoder_params: list[nn.Parameter] = []
    if isinstance(critic_fe, PixelExtractor):
        actor_fe = policy.actor.features_extractor
        assert isinstance(actor_fe, PixelExtractor)
        channels_last(critic_fe.encoder)
        actor_fe.encoder = critic_fe.encoder  # one encoder, trained by the critic only
        actor_fe.detach_encoder = True
        encoder_params = list(critic_fe.encoder.parameters())
    shared = {id(p) for p in encoder_params}
    lr = lr_schedule(1)
    policy.actor.optimizer = policy.optimizer_class(
        [p for p in policy.actor.parameters() if id(p) not in shared], lr=lr, **policy.optimizer_kwargs
    )
    groups: list[dict[str, Any]] = [
        {"params": [p for p in policy.critic.parameters() if id(p) not in shared], "name": "critic"}
    ]
    if encoder_params:
        groups.append({"params": encoder_params, "name": "encoder", "lr": getattr(policy, "encoder_lr", None) or lr})
    policy.critic.optimizer = policy.optimizer_class(groups, lr=lr, **policy.optimizer_kwargs)
    policy.critic_target = policy.make_critic(features_extractor=None)
    target_fe = policy.critic_target.features_extractor
    if isinstance(target_fe, PixelExtractor):
        if target_shares_encoder:
            target_fe.encoder = critic_fe.encoder
        channels_last(target_fe.encoder)
    policy.critic_target.load_state_dict(policy.critic.state_dict())
    policy.critic_target.set_training_mode(False)


class SharedEncoderMixin:
    """Algorithm side of a shared-encoder algorithm (RAD, DrQ-v2); put it before SB3's class in the bases.

    ``_encode`` runs the critic's encoder once per update for obs (with gradient) and once for
    next_obs (without); with frame-wise extractors and stacks that share frames (frame stacking, the
    same augmentation for obs and next_obs) each unique frame is encoded once. The maps are reused by
    the actor (detached) and, when the target critic shares the encoder, by the target.
    """

    policy: Any
    actor: Any
    critic: ContinuousCritic
    critic_target: ContinuousCritic
    observation_space: spaces.Space
    lr_schedule: Schedule
    _current_progress_remaining: float
    replay_buffer: Any
    #: one augmentation draw for obs and next_obs of a sample (RAD's translate); False: independent
    same_augmentation: bool = False
    #: a replay buffer with a ``bind(model)`` method given as ``replay_buffer_class`` is bound to this model
    #: when it is set up and after ``load_replay_buffer``; stock SB3 models need it done from outside
    binds_replay_buffer: ClassVar[bool] = True

    def _bind_replay_buffer(self) -> None:
        """Bind a replay buffer that works with its model's networks (``bind(model)``) to this model."""
        bind = getattr(self.replay_buffer, "bind", None)
        if callable(bind):
            bind(self)

    def load_replay_buffer(self, path: Any, truncate_last_traj: bool = True) -> None:
        super().load_replay_buffer(path, truncate_last_traj)  # type: ignore[misc]
        self._bind_replay_buffer()

    def _augment(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The training augmentation of a sampled batch, unless the buffer's samples were augmented when they
        were stored (``replay_buffer.samples_augmented``)."""
        aug = getattr(self.policy, "augmentation", None)
        if aug is None or getattr(self.replay_buffer, "samples_augmented", False):
            return obs, next_obs
        a, b = aug(obs, next_obs, same=self.same_augmentation)
        return a, b

    def _preprocess(self, obs: torch.Tensor) -> torch.Tensor:
        """Observations as the critic's extractor reads them (floats; images scaled to [0, 1] when the critic
        normalizes them)."""
        space = getattr(self.policy, "encoder_space", self.observation_space)
        return preprocess_obs(obs, space, normalize_images=self.critic.normalize_images)  # type: ignore[return-value]

    def _encode(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Online encoder maps of obs (with gradient) and next_obs (without), each unique frame encoded once
        (:meth:`~sb3_latent.extractors.base.PixelExtractor.encode_pair`); for an extractor without an encoder
        (vector observations), the preprocessed observations."""
        fe = self.critic.features_extractor
        o, n = self._preprocess(obs), self._preprocess(next_obs)
        if not isinstance(fe, EncodingExtractor):
            return o, n
        if isinstance(fe, PixelExtractor):  # whether frames are shared, known without a host sync where it can be
            return fe.encode_pair(o, n, shared=self._frames_shared())
        return fe.encode_pair(o, n)

    def _frames_shared(self) -> bool | None:
        """Whether a sampled ``next_obs`` is its ``obs`` shifted by one frame: False under independent augmentations,
        True for a frame store's 1-step samples under one augmentation (or none), None (unknown) otherwise."""
        augmented = getattr(self.policy, "augmentation", None) is not None and not getattr(
            self.replay_buffer, "samples_augmented", False
        )
        if augmented and not self.same_augmentation:
            return False
        buffer = self.replay_buffer
        if type(buffer) is FrameStoreReplayBuffer and buffer.n_steps == 1 and not buffer.n_step_sampling:
            return True
        return None

    @staticmethod
    def _head(extractor: nn.Module, maps: torch.Tensor) -> torch.Tensor:
        """Features from maps of :meth:`_encode` (for an extractor without an encoder: the extractor itself)."""
        return extractor.head(maps) if isinstance(extractor, EncodingExtractor) else extractor(maps)

    def _target_features(self, next_obs: torch.Tensor, next_maps: torch.Tensor) -> torch.Tensor:
        """Target critic features of next_obs: from ``next_maps`` when the target reads the online
        encoder (DrQ-v2) or has none, else through its own encoder copy (RAD)."""
        fe = self.critic_target.features_extractor
        online = getattr(self.critic.features_extractor, "encoder", None)
        if not isinstance(fe, EncodingExtractor) or getattr(fe, "encoder", None) is online:
            return self._head(fe, next_maps)
        return fe.head(fe.encode(self._preprocess(next_obs)))

    @staticmethod
    def _q(critic: nn.Module, features: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """All Q values ``(B, n_critics)`` of ``critic`` from its features."""
        x = torch.cat([features, actions], dim=1)
        return torch.cat([q(x) for q in critic.q_networks], dim=1)  # type: ignore[union-attr]

    def _soft_update_critic(self, tau: float, encoder_tau: float | None = None) -> None:
        """EMA of the target critic with ``tau``, the encoder left out; a target encoder copy, if any,
        follows the online encoder with ``encoder_tau`` (None: it is not updated), and so does the target
        extractor's head (Linear, LayerNorm): the official ``soft_update_params(critic.encoder,
        critic_target.encoder, encoder_tau)`` moves the whole encoder module, convolutions and head."""
        enc: nn.Module | None = getattr(self.critic.features_extractor, "encoder", None)
        enc_ids = {id(p) for p in enc.parameters()} if enc is not None else set()
        fe, target_fe = self.critic.features_extractor, self.critic_target.features_extractor
        target_enc_: nn.Module | None = getattr(target_fe, "encoder", None)
        if enc is not None and target_enc_ is not None and target_enc_ is not enc and encoder_tau is not None:
            ema_(list(target_fe.parameters()), list(fe.parameters()), encoder_tau)  # the whole extractor
            enc_ids = {id(p) for p in fe.parameters()}
        pairs = [
            (p, t)
            for p, t in zip(self.critic.parameters(), self.critic_target.parameters(), strict=True)
            if id(p) not in enc_ids
        ]
        ema_([t for _, t in pairs], [p for p, _ in pairs], tau)

    def _set_learning_rates(self) -> float:
        """Set the actor's and critic's learning rates from the schedule (the encoder group: the
        policy's ``encoder_lr`` if set); return the scheduled rate."""
        lr = self.lr_schedule(self._current_progress_remaining)
        encoder_lr = getattr(self.policy, "encoder_lr", None) or lr
        for opt in (self.actor.optimizer, self.critic.optimizer):
            for group in opt.param_groups:
                group["lr"] = encoder_lr if group.get("name") == "encoder" else lr
        return lr
