"""RAD policies: SB3's SAC policy with one pixel encoder shared by actor and critic.

The critic's extractor owns the conv encoder and trains it through the critic loss; the actor's
extractor holds the *same* encoder module with ``detach_encoder=True``, so it trains only its own
``Linear → LayerNorm`` head (RAD/CURL; the opposite of SB3's ``share_features_extractor=True``).
The target critic has its own encoder copy, updated by EMA with its own τ.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from stable_baselines3.sac.policies import SACPolicy

from sb3_latent.augment import Augmentation, make_augmentation
from sb3_latent.extractors import LatentStackExtractor
from sb3_latent.extractors.flare import PixelExtractor


def build_augmentation(
    space: gym.Space, augment: str | None, augment_kwargs: dict[str, Any] | None
) -> Augmentation | None:
    """The training augmentation; ``"translate"`` defaults to a canvas 8 pixels larger than the
    frames (Flare Table A.4: 100 → 108)."""
    kwargs = dict(augment_kwargs or {})
    if augment == "translate" and "size" not in kwargs and isinstance(space, gym.spaces.Box):
        kwargs["size"] = int(space.shape[-1]) + 8
    return make_augmentation(augment, **kwargs)


class RADPolicy(SACPolicy):
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
        if not is_image_space(observation_space, check_channels=False):
            raise TypeError(f"RAD's CnnPolicy needs image observations (uint8, (C, H, W)), got {observation_space}; "
                            f"use 'MlpPolicy' for vector observations")
        if features_extractor_class is LatentStackExtractor:
            # RAD's own encoder: the whole stack as one image (early fusion), then Linear → LayerNorm → tanh
            features_extractor_kwargs = {"n_frames": 1, "features_dim": 64, **(features_extractor_kwargs or {})}
        self.augment, self.augment_kwargs, self.encoder_lr = augment, augment_kwargs, encoder_lr
        self.augmentation = build_augmentation(observation_space, augment, augment_kwargs)
        self.encoder_space = observation_space
        if self.augmentation is not None and isinstance(observation_space, gym.spaces.Box):
            c, h, w = observation_space.shape
            oh, ow = self.augmentation.output_size(h, w)
            self.encoder_space = gym.spaces.Box(0, 255, (c, oh, ow), np.uint8)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=net_arch,
                         features_extractor_class=features_extractor_class,
                         features_extractor_kwargs=features_extractor_kwargs, **kwargs)

    def make_features_extractor(self) -> BaseFeaturesExtractor:
        """Extractors are built for the augmented frame size."""
        return self.features_extractor_class(self.encoder_space, **self.features_extractor_kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        self.critic = self.make_critic(features_extractor=None)
        self.actor = self.make_actor()
        critic_fe = self.critic.features_extractor
        encoder_params: list[torch.nn.Parameter] = []
        if isinstance(critic_fe, PixelExtractor):
            actor_fe = self.actor.features_extractor
            assert isinstance(actor_fe, PixelExtractor)
            actor_fe.encoder = critic_fe.encoder  # one encoder, trained by the critic only
            actor_fe.detach_encoder = True
            encoder_params = list(critic_fe.encoder.parameters())
        shared = {id(p) for p in encoder_params}
        self.actor.optimizer = self.optimizer_class(
            [p for p in self.actor.parameters() if id(p) not in shared], lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        groups: list[dict[str, Any]] = [{"params": [p for p in self.critic.parameters() if id(p) not in shared],
                                         "name": "critic"}]
        if encoder_params:
            groups.append({"params": encoder_params, "name": "encoder", "lr": self.encoder_lr or lr_schedule(1)})
        self.critic.optimizer = self.optimizer_class(groups, lr=lr_schedule(1), **self.optimizer_kwargs)  # type: ignore[call-arg]
        self.critic_target = self.make_critic(features_extractor=None)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.set_training_mode(False)

    def eval_view(self, obs: torch.Tensor) -> torch.Tensor:
        """Frames as the encoder expects them outside training: the augmentation's centred version
        when it changes the frame size (translate: centred on the canvas; crop: centre crop)."""
        if self.augmentation is not None and obs.dim() == 4 and obs.shape[1:] != self.encoder_space.shape:
            return self.augmentation.center(obs)
        return obs

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

