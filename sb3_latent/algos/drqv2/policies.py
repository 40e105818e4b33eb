"""DrQ-v2 policies: SB3's TD3 policy (deterministic actor ``tanh(MLP)``, twin Q critic) without an
actor target, with one conv encoder shared by actor and critic and no target encoder.

The critic's extractor owns the encoder (Yarats et al. 2021: 4 x Conv(32, 3x3), first stride 2,
ReLU) and its trunk ``Linear(repr, 50) → LayerNorm → tanh``; the actor's extractor holds the same
encoder with ``detach_encoder=True`` and its own trunk; the target critic reads the online encoder
and has its own trunk and Q networks. The default extractor,
``LatentStackExtractor(n_frames=1, features_dim=50)``, is exactly that encoder and trunk.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.td3.policies import TD3Policy

from sb3_latent.algos.contracts import check_image_space
from sb3_latent.algos.shared_encoder import PixelPolicyMixin, build_shared_encoder
from sb3_latent.extractors import LatentStackExtractor
from sb3_latent.extractors.base import PixelExtractor
from sb3_latent.extractors.encoders import drqv2_weight_init


class DrQv2Policy(PixelPolicyMixin, TD3Policy):
    """DrQ-v2 policy for pixels: shared critic-trained encoder, detached actor features, no actor
    target, target critic on the online encoder.

    Parameters as SB3's ``TD3Policy``, plus:

    :param augment: training augmentation by registry name (``"shift"``: DrQ's random shift, pad 4;
        ``"translate"``, ``"crop"``) or None. Prediction never augments (size-changing augmentations
        get their deterministic ``center`` version).
    :param augment_kwargs: constructor arguments of the augmentation (e.g. ``{"pad": 4}``)
    :param official_init: initialise actor and critic as the official ``utils.weight_init`` (every Linear orthogonal,
        biases zero, convolutions orthogonal with ReLU gain on every tap); False: PyTorch's defaults for the MLPs
        and the SAC-AE scheme for the convolutions
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = LatentStackExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        augment: str | None = "shift",
        augment_kwargs: dict[str, Any] | None = None,
        official_init: bool = True,
        **kwargs: Any,
    ) -> None:
        check_image_space(observation_space, "DrQ-v2")
        self.official_init = official_init
        if features_extractor_class is LatentStackExtractor:
            # DrQ-v2's encoder: the whole stack as one image, then the trunk Linear → LayerNorm → tanh (50)
            features_extractor_kwargs = {"n_frames": 1, "features_dim": 50, **(features_extractor_kwargs or {})}
        if isinstance(features_extractor_class, type) and issubclass(features_extractor_class, PixelExtractor):
            # DrQ-v2's trunk keeps its tanh (official drqv2.py), whatever pixel extractor feeds it
            features_extractor_kwargs = {"tanh": True, **(features_extractor_kwargs or {})}
        self._setup_augmentation(observation_space, augment, augment_kwargs)
        super().__init__(
            observation_space,
            action_space,
            lr_schedule,
            net_arch=net_arch,
            features_extractor_class=features_extractor_class,
            features_extractor_kwargs=features_extractor_kwargs,
            **kwargs,
        )

    def _build(self, lr_schedule: Schedule) -> None:
        init = drqv2_weight_init if self.official_init else None  # no actor target, no target encoder
        build_shared_encoder(self, lr_schedule, target_shares_encoder=True, init=init)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        """The actor's mean ``tanh(MLP(trunk(encoder(obs))))``; exploration noise is added by the
        algorithm while collecting, never here."""
        assert isinstance(observation, torch.Tensor)
        return self.actor(self.eval_view(observation))

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(augment=self.augment, augment_kwargs=self.augment_kwargs, official_init=self.official_init)
        return data


class DrQv2MlpPolicy(PixelPolicyMixin, TD3Policy):
    """DrQ-v2 on vector observations: TD3's MLP actor and twin critic, no actor target, no encoder,
    no augmentation (DDPG-style n-step learning with the scheduled exploration noise)."""

    def __init__(
        self, observation_space: gym.spaces.Space, action_space: gym.spaces.Box, lr_schedule: Schedule, **kwargs: Any
    ) -> None:
        self._setup_augmentation(observation_space, None, None)
        super().__init__(observation_space, action_space, lr_schedule, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        build_shared_encoder(self, lr_schedule, target_shares_encoder=True)
