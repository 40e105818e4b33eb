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
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN, Actor, SACPolicy

from sb3_latent.algos.contracts import check_image_space
from sb3_latent.algos.shared_encoder import PixelPolicyMixin, build_shared_encoder
from sb3_latent.extractors import LatentStackExtractor, weight_init

#: The official rad/flare/curl actor's log-std range (``actor_log_std_min``, ``actor_log_std_max``)
RAD_LOG_STD_BOUNDS = (-10.0, 2.0)


class RADActor(Actor):
    """SB3's SAC actor whose log-std is ``tanh``-rescaled into ``[lo, hi]`` as the official rad/flare/curl
    ``Actor.forward`` (``lo + (hi - lo) (tanh(x) + 1) / 2``; at initialisation ``x`` is near 0, so σ starts near
    ``exp(-4)``), instead of SB3's hard clamp to [-20, 2] (σ near 1).

    :param log_std_bounds: ``(lo, hi)``; None: SB3's clamp
    """

    def __init__(
        self, *args: Any, log_std_bounds: tuple[float, float] | None = RAD_LOG_STD_BOUNDS, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.log_std_bounds = log_std_bounds

    def squash_log_std(self, log_std: torch.Tensor) -> torch.Tensor:
        """The log-std head's output → the log-std of the Gaussian."""
        if self.log_std_bounds is None:
            return torch.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX)
        lo, hi = self.log_std_bounds
        return lo + 0.5 * (hi - lo) * (torch.tanh(log_std) + 1.0)

    def get_action_dist_params(self, obs: PyTorchObs) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
        mean, log_std, kwargs = super().get_action_dist_params(obs)
        if self.use_sde:
            return mean, log_std, kwargs
        latent = self.latent_pi(self.extract_features(obs, self.features_extractor))
        return mean, self.squash_log_std(self.log_std(latent)), kwargs  # type: ignore[operator]


class RADPolicy(PixelPolicyMixin, SACPolicy):
    """SAC policy for RAD (pixels): shared critic-trained encoder, detached actor features.

    Extra parameters beyond SB3's ``SACPolicy``:

    :param augment: training augmentation by registry name (``"translate"``, ``"crop"``, ``"shift"``) or None.
        Encoders are built for the augmented size; at prediction time frames get the augmentation's
        deterministic ``center`` version so that they match.
    :param augment_kwargs: constructor arguments of the augmentation (e.g. ``{"size": 108}``)
    :param encoder_lr: learning rate of the shared encoder; None (default): the critic's, as the official flare/rad
        code (the encoder sits in the critic's optimizer); Flare's Table A.4 states 1e-3
    :param log_std_bounds: the actor's log-std is ``tanh``-rescaled into these bounds (official rad/flare/curl:
        (-10, 2)); None: SB3's hard clamp
    :param official_init: initialise actor and critic as the official ``weight_init`` (every Linear orthogonal, biases
        zero, convolutions delta-orthogonal with ReLU gain); False: PyTorch's defaults for the MLPs
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
        encoder_lr: float | None = None,
        log_std_bounds: tuple[float, float] | None = RAD_LOG_STD_BOUNDS,
        official_init: bool = True,
        **kwargs: Any,
    ) -> None:
        check_image_space(observation_space, "RAD")
        if features_extractor_class is LatentStackExtractor:
            # RAD's own encoder: the whole stack as one image (early fusion), then Linear → LayerNorm (no tanh)
            features_extractor_kwargs = {"n_frames": 1, "features_dim": 64, **(features_extractor_kwargs or {})}
        self.encoder_lr, self.official_init = encoder_lr, official_init
        self.log_std_bounds = None if log_std_bounds is None else (float(log_std_bounds[0]), float(log_std_bounds[1]))
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
        init = weight_init if self.official_init else None  # the target has its own encoder copy
        build_shared_encoder(self, lr_schedule, target_shares_encoder=False, init=init)

    def make_actor(self, features_extractor: BaseFeaturesExtractor | None = None) -> Actor:
        actor_kwargs = self._update_features_extractor(self.actor_kwargs, features_extractor)
        return RADActor(**actor_kwargs, log_std_bounds=self.log_std_bounds).to(self.device)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        assert isinstance(observation, torch.Tensor)
        return self.actor(self.eval_view(observation), deterministic)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> torch.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            augment=self.augment,
            augment_kwargs=self.augment_kwargs,
            encoder_lr=self.encoder_lr,
            log_std_bounds=self.log_std_bounds,
            official_init=self.official_init,
        )
        return data


class RADMlpPolicy(SACPolicy):
    """RAD on vector observations: SAC's MLP policy (no encoder, no augmentation)."""
