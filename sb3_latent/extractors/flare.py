"""Flare and its ablations as SB3 features extractors (Shang et al., "Reinforcement Learning with
Latent Flow"), plus the state-based Flare of the paper's Section 3.

Stacked observations come oldest first, as frame stacking produces them: ``(T*C, H, W)`` images
(channels-last ``(H, W, T*C)`` also accepted) or ``(T*d,)`` vectors of positions.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_latent.extractors.base import PixelExtractor, _check_flow_frames

__all__ = [  # PixelExtractor lives in sb3_latent.extractors.base; imported from here too
    "FlareExtractor",
    "LatentStackExtractor",
    "PixelExtractor",
    "PixelFlowExtractor",
    "StateFlareExtractor",
    "flare_kwargs",
    "latent_stack_kwargs",
    "pixel_flow_kwargs",
    "state_flare_kwargs",
]


class FlareExtractor(PixelExtractor):
    """Flare: every frame of the stack goes through one shared conv encoder; the latent flow
    ``z_j - sg(z_{j-1})`` is taken on the conv maps; ``[z_2..z_T, flow_2..flow_T]`` →
    Linear → LayerNorm (Algorithm 1; the oldest frame enters only through the flow, and
    ``z_{j-1}`` is detached so the flow's gradient reaches the encoder through ``z_j`` alone). No ``tanh`` after the
    LayerNorm, as the official code (``output_logits=True``); ``tanh=True`` adds one (DrQ-v2's trunk).

    :param observation_space: stacked image space ``(T*C, H, W)`` (or channels-last)
    :param features_dim: output size (Flare Table A.4: latent dimension 64)
    :param n_frames: frames per stack ``T`` (>= 2)
    :param encoder: ``"rad"`` (4 x 32 3x3 convs, default), ``"nature"`` or an ``nn.Module`` class
    :param encoder_kwargs: passed to the encoder
    :param channels_last: input layout; None detects it from the space
    :param tanh: ``tanh`` after the LayerNorm (False: the official flare/rad/curl head; DrQ-v2's policy sets True)
    """

    needs_flow = True
    detached_prefix = 1  # z_{t-T+1} appears only as the detached z_{j-1} of the first flow term

    @staticmethod
    def layout(c: int, n_frames: int) -> tuple[int, int]:
        return c, 2 * (n_frames - 1)

    def fuse(self, maps: torch.Tensor) -> torch.Tensor:
        flow = maps[:, 1:] - maps[:, :-1].detach()
        return torch.cat([maps[:, 1:], flow], dim=1).flatten(1)


class LatentStackExtractor(PixelExtractor):
    """Frame-wise latent stack (Flare ablation Q2, Figure 4b): every frame through the shared
    encoder, the ``T`` latents concatenated, no flow; then Linear → LayerNorm.

    Parameters as :class:`FlareExtractor` (``n_frames`` >= 1).
    """

    @staticmethod
    def layout(c: int, n_frames: int) -> tuple[int, int]:
        return c, n_frames

    def fuse(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(1)


class PixelFlowExtractor(PixelExtractor):
    """Pixel flow (Flare ablation Q1): early fusion of the ``T`` frames with their ``T - 1``
    pixel differences ``o_j - o_{j-1}`` along channels, one conv encoder over the lot, then
    Linear → LayerNorm.

    Parameters as :class:`FlareExtractor` (``n_frames`` >= 2).
    """

    needs_flow = True
    framewise = False

    @staticmethod
    def layout(c: int, n_frames: int) -> tuple[int, int]:
        return (2 * n_frames - 1) * c, 1

    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        frames = self.frames(observations)
        x = torch.cat([frames, frames[:, 1:] - frames[:, :-1]], dim=1)
        return self.run_encoder(x.flatten(1, 2)).unsqueeze(1)

    def fuse(self, maps: torch.Tensor) -> torch.Tensor:
        return maps.flatten(1)


class StateFlareExtractor(BaseFeaturesExtractor):
    """State-based Flare (Section 3): from ``T`` stacked position vectors ``s_{t-T+1} .. s_t`` build
    ``(s_t, s_t - s_{t-1}, ..., s_{t-T+2} - s_{t-T+1})``, the positions of now and their offsets
    (finite-difference velocities). No parameters; the SB3 networks read this vector.

    :param observation_space: ``Box`` of shape ``(T*d,)``, positions stacked oldest first
    :param n_frames: ``T`` (>= 2; Flare Table A.5 uses 4)
    """

    def __init__(self, observation_space: gym.Space, n_frames: int = 4) -> None:
        if not isinstance(observation_space, gym.spaces.Box) or len(observation_space.shape) != 1:
            raise TypeError(
                f"StateFlareExtractor needs a 1-D Box of stacked positions (T*d,), got "
                f"{observation_space}; for images use FlareExtractor"
            )
        _check_flow_frames(n_frames, "StateFlareExtractor")
        size = observation_space.shape[0]
        if size % n_frames != 0:
            raise ValueError(
                f"StateFlareExtractor: observation size {size} is not divisible by "
                f"n_frames={n_frames}; expected n_frames * position_dim"
            )
        super().__init__(observation_space, size)
        self.n_frames = int(n_frames)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        s = observations.reshape(observations.shape[0], self.n_frames, -1)
        delta = (s[:, 1:] - s[:, :-1]).flip(1)  # newest offset first, as delta_t in the paper
        return torch.cat([s[:, -1], delta.flatten(1)], dim=1)


def _policy_kwargs(
    cls: type[BaseFeaturesExtractor], net_arch: Any, extra: dict[str, Any], **extractor_kwargs: Any
) -> dict[str, Any]:
    if extractor_kwargs.get("tanh") is None:  # None: the extractor's own default
        extractor_kwargs.pop("tanh", None)
    kwargs: dict[str, Any] = {"features_extractor_class": cls, "features_extractor_kwargs": extractor_kwargs}
    if net_arch is not None:
        kwargs["net_arch"] = net_arch
    kwargs.update(extra)
    return kwargs


def flare_kwargs(
    n_frames: int = 3,
    features_dim: int = 64,
    encoder: str | type[nn.Module] = "rad",
    encoder_kwargs: dict[str, Any] | None = None,
    net_arch: Any = None,
    tanh: bool | None = None,
    **policy_kwargs: Any,
) -> dict[str, Any]:
    """``policy_kwargs`` that give any SB3 / sb3-contrib policy the Flare extractor::

        SAC("CnnPolicy", env, policy_kwargs=flare_kwargs(n_frames=3))

    :param n_frames: frames per stack (2 for pendulum, 3 otherwise in the paper)
    :param features_dim: Flare latent size (paper: 64)
    :param encoder: ``"rad"``, ``"nature"`` or an ``nn.Module`` class
    :param encoder_kwargs: passed to the encoder
    :param net_arch: SB3 ``net_arch`` (paper: ``[1024, 1024]``); None keeps the algorithm's default
    :param tanh: ``tanh`` after the head's LayerNorm; None: the extractor's default (none, as the official
        Flare head) or the algorithm's (DrQ-v2 adds its trunk's tanh)
    :param policy_kwargs: any other policy keyword (e.g. ``share_features_extractor``)
    """
    return _policy_kwargs(
        FlareExtractor,
        net_arch,
        policy_kwargs,
        n_frames=n_frames,
        features_dim=features_dim,
        encoder=encoder,
        encoder_kwargs=encoder_kwargs,
        tanh=tanh,
    )


def latent_stack_kwargs(
    n_frames: int = 3,
    features_dim: int = 64,
    encoder: str | type[nn.Module] = "rad",
    encoder_kwargs: dict[str, Any] | None = None,
    net_arch: Any = None,
    tanh: bool | None = None,
    **policy_kwargs: Any,
) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`LatentStackExtractor`; arguments as :func:`flare_kwargs`."""
    return _policy_kwargs(
        LatentStackExtractor,
        net_arch,
        policy_kwargs,
        n_frames=n_frames,
        features_dim=features_dim,
        encoder=encoder,
        encoder_kwargs=encoder_kwargs,
        tanh=tanh,
    )


def pixel_flow_kwargs(
    n_frames: int = 3,
    features_dim: int = 64,
    encoder: str | type[nn.Module] = "rad",
    encoder_kwargs: dict[str, Any] | None = None,
    net_arch: Any = None,
    tanh: bool | None = None,
    **policy_kwargs: Any,
) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`PixelFlowExtractor`; arguments as :func:`flare_kwargs`."""
    return _policy_kwargs(
        PixelFlowExtractor,
        net_arch,
        policy_kwargs,
        n_frames=n_frames,
        features_dim=features_dim,
        encoder=encoder,
        encoder_kwargs=encoder_kwargs,
        tanh=tanh,
    )


def state_flare_kwargs(n_frames: int = 4, net_arch: Any = None, **policy_kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`StateFlareExtractor` (use with ``"MlpPolicy"`` on stacked
    position-only state, e.g. ``sb3_latent/cartpole-swingup-position-v0``).

    :param n_frames: positions per stack (paper: 4)
    :param net_arch: SB3 ``net_arch``; None keeps the algorithm's default
    :param policy_kwargs: any other policy keyword
    """
    return _policy_kwargs(StateFlareExtractor, net_arch, policy_kwargs, n_frames=n_frames)
