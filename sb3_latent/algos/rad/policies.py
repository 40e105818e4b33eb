"""RAD policies: SB3's SAC policy with one pixel encoder shared by actor and critic.

The critic's extractor owns the conv encoder and trains it through the critic loss; the actor's
extractor holds the *same* encoder module with ``detach_encoder=True``, so it trains only its own
``Linear → LayerNorm`` head (RAD/CURL; the opposite of SB3's ``share_features_extractor=True``).
The target critic has its own encoder copy, updated by EMA with its own τ.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import SACPolicy

from sb3_latent.algos.contracts import check_image_space
from sb3_latent.algos.shared_encoder import PixelPolicyMixin, build_shared_encoder
from sb3_latent.extractors import LatentStackExtractor


class RADPolicy(PixelPolicyMixin, SACPolicy):
    """SAC policy for RAD (pixels): shared critic-trained encoder, detached actor features.

    Extra parameters beyond SB3's ``SACPolicy``:

    :param augment: training augmentation by registry name (``"translate"``, ``"crop"``, ``"shift"``) or None.
        Encoders are built for the augmented size; at prediction time frames get the augmentation's
        deterministic ``center`` version so that they match.
    :param augment_kwargs: constructor arguments of the augmentation (e.g. ``{"size": 108}``)
    :param encoder_lr: learning rate of the shared encoder (Flare Table A.4: 1e-3); None: the critic's
    """

    def __init__(
        self,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Box,
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        features_extractor_class: type[BaseFeaturesExtractor] = LatentStackExtractor,
        features_extractor_kwargs: dict[str, Any] | None = None,
        augment: str | None = "translate",
        augment_kwargs: dict[str, Any] | None = None,
        encoder_lr: float | None = 1e-3,
        **kwargs: Any,
    ) -> None:
        check_image_space(observation_space, "RAD")
        if features_extractor_class is LatentStackExtractor:
            # RAD's own encoder: the whole stack as one image (early fusion), then Linear → LayerNorm (no tanh)
            features_extractor_kwargs = {"n_frames": 1, "features_dim": 64, **(features_extractor_kwargs or {})}
        self.encoder_lr = encoder_lr
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
        build_shared_encoder(self, lr_schedule, target_shares_encoder=False)  # the target has its own encoder copy

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        assert isinstance(observation, torch.Tensor)
        return self.actor(self.eval_view(observation), deterministic)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(augment=self.augment, augment_kwargs=self.augment_kwargs, encoder_lr=self.encoder_lr)
        return data


class RADMlpPolicy(SACPolicy):
    """RAD on vector observations: SAC's MLP policy (no encoder, no augmentation)."""
