"""Flare and its ablations as SB3 features extractors (Shang et al., "Reinforcement Learning with
Latent Flow"), plus the state-based Flare of the paper's Section 3.

Stacked observations come oldest first, as frame stacking produces them: ``(T*C, H, W)`` images
(channels-last ``(H, W, T*C)`` also accepted) or ``(T*d,)`` vectors of positions.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_latent.extractors.encoders import conv_output_shape, make_encoder, weight_init


def _image_layout(space: gym.Space, n_frames: int, name: str, channels_last: bool | None) -> tuple[int, int, int, bool]:
    """Validate an image space of ``n_frames`` stacked frames; return (C per frame, H, W, channels_last)."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        raise TypeError(
            f"{name} needs an image observation space of stacked frames, shape (frames*C, H, W) or "
            f"(H, W, frames*C); got {space}. For vector observations of positions use StateFlareExtractor."
        )
    if int(n_frames) != n_frames or n_frames < 1:
        raise ValueError(f"{name}: n_frames must be a positive integer, got {n_frames!r}")
    if channels_last is None:
        channels_last = not is_image_space_channels_first(space)
    channels, h, w = (space.shape[2], space.shape[0], space.shape[1]) if channels_last else space.shape
    if channels % n_frames != 0:
        raise ValueError(
            f"{name}: the observation has {channels} channels, which n_frames={n_frames} does not divide; "
            f"expected n_frames * channels_per_frame (e.g. 9 channels = 3 RGB frames)"
        )
    return channels // n_frames, h, w, channels_last


#: On CPU, encoders run on at most this many images at a time: one conv over a few hundred 92x92 frames
#: falls out of cache and runs ~2x slower per image than in chunks of 128 (2 cores; see
#: benchmarks/update_speed.py). GPUs get the whole batch.
CPU_ENCODE_CHUNK = 128


def _check_flow_frames(n_frames: int, name: str) -> None:
    if n_frames < 2:
        raise ValueError(f"{name} computes differences between consecutive frames and needs n_frames >= 2, "
                         f"got {n_frames}")


class PixelExtractor(BaseFeaturesExtractor, ABC):
    """Shared machinery of the pixel extractors: split a stack into frames, :meth:`encode` them with
    one conv encoder, then :meth:`head` fuses the maps and applies ``Linear → LayerNorm → tanh``
    (Flare, Figure 4).

    The split lets algorithms share one encoder between several heads: with ``detach_encoder=True``
    the maps are detached before the head, so this copy trains its head but never the encoder
    (RAD/CURL/DrQ: the actor reads the critic-trained encoder).
    """

    needs_flow = False
    #: True when maps are per frame, so frames shared by two stacks can be encoded once.
    framewise = True
    #: Number of oldest frames whose maps enter the features only detached (no encoder gradient).
    detached_prefix = 0

    def __init__(
        self,
        observation_space: gym.Space,
        features_dim: int = 64,
        n_frames: int = 3,
        encoder: str | type[nn.Module] = "rad",
        encoder_kwargs: dict[str, Any] | None = None,
        channels_last: bool | None = None,
    ) -> None:
        name = type(self).__name__
        c, h, w, self.channels_last = _image_layout(observation_space, n_frames, name, channels_last)
        if self.needs_flow:
            _check_flow_frames(n_frames, name)
        super().__init__(observation_space, features_dim)
        self.n_frames, self.frame_channels = int(n_frames), c
        in_channels, n_maps = self.layout(c, self.n_frames)
        self.encoder = make_encoder(encoder, in_channels, **(encoder_kwargs or {}))
        self.map_shape = conv_output_shape(self.encoder, in_channels, h, w)
        self.fc = nn.Linear(n_maps * int(torch.Size(self.map_shape).numel()), features_dim)
        self.ln = nn.LayerNorm(features_dim)
        self.detach_encoder = False
        self.apply(weight_init)

    @staticmethod
    @abstractmethod
    def layout(c: int, n_frames: int) -> tuple[int, int]:
        """(input channels of the encoder, number of encoder maps fused) for ``n_frames`` frames of ``c``."""

    @abstractmethod
    def fuse(self, maps: torch.Tensor) -> torch.Tensor:
        """Encoder maps from :meth:`encode` → ``(B, n_maps * map size)`` fused vector."""

    def frames(self, observations: torch.Tensor) -> torch.Tensor:
        """``(B, T*C, H, W)`` (or channels-last) → ``(B, T, C, H, W)``, oldest frame first."""
        if self.channels_last:
            observations = observations.permute(0, 3, 1, 2)
        b, _, h, w = observations.shape
        return observations.reshape(b, self.n_frames, self.frame_channels, h, w)

    def run_encoder(self, x: torch.Tensor) -> torch.Tensor:
        """The encoder on a batch of images, on CPU in chunks of at most :data:`CPU_ENCODE_CHUNK` images.

        An encoder stored channels-last gets its input in that format (converted once, not again in the
        backward pass); maps are returned in the standard layout, so the heads that read them flatten views."""
        w = next((p for p in self.encoder.parameters() if p.dim() == 4), None)
        if w is not None and w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
            x = x.contiguous(memory_format=torch.channels_last)
        if x.is_cuda or x.shape[0] <= CPU_ENCODE_CHUNK:
            return self.encoder(x).contiguous()
        return torch.cat([self.encoder(c) for c in x.split(CPU_ENCODE_CHUNK)]).contiguous()

    def encode_frames(self, frames: torch.Tensor) -> torch.Tensor:
        """One encoder pass over every frame: ``(B, T, C, H, W)`` → maps ``(B, T, F, h, w)``."""
        b, t = frames.shape[:2]
        maps = self.run_encoder(frames.reshape(b * t, *frames.shape[2:]))
        return maps.reshape(b, t, *maps.shape[1:])

    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        """Stacked observations → encoder maps ``(B, T', F, h, w)`` (``T'`` = frames, or 1 for early fusion)."""
        return self.encode_frames(self.frames(observations))

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Encoder maps → features: fuse, then ``tanh(LayerNorm(Linear(.)))``."""
        if self.detach_encoder:
            maps = maps.detach()
        return torch.tanh(self.ln(self.fc(self.fuse(maps))))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.detach_encoder:  # no graph through the encoder at all; the head still learns
            with torch.no_grad():
                maps = self.encode(observations)
            return self.head(maps)
        return self.head(self.encode(observations))


class FlareExtractor(PixelExtractor):
    """Flare: every frame of the stack goes through one shared conv encoder; the latent flow
    ``z_j - sg(z_{j-1})`` is taken on the conv maps; ``[z_2..z_T, flow_2..flow_T]`` →
    Linear → LayerNorm → tanh (Algorithm 1; the oldest frame enters only through the flow, and
    ``z_{j-1}`` is detached so the flow's gradient reaches the encoder through ``z_j`` alone).

    :param observation_space: stacked image space ``(T*C, H, W)`` (or channels-last)
    :param features_dim: output size (Flare Table A.4: latent dimension 64)
    :param n_frames: frames per stack ``T`` (>= 2)
    :param encoder: ``"rad"`` (4 x 32 3x3 convs, default), ``"nature"`` or an ``nn.Module`` class
    :param encoder_kwargs: passed to the encoder
    :param channels_last: input layout; None detects it from the space
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
    encoder, the ``T`` latents concatenated, no flow; then Linear → LayerNorm → tanh.

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
    Linear → LayerNorm → tanh.

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
            raise TypeError(f"StateFlareExtractor needs a 1-D Box of stacked positions (T*d,), got "
                            f"{observation_space}; for images use FlareExtractor")
        _check_flow_frames(n_frames, "StateFlareExtractor")
        size = observation_space.shape[0]
        if size % n_frames != 0:
            raise ValueError(f"StateFlareExtractor: observation size {size} is not divisible by "
                             f"n_frames={n_frames}; expected n_frames * position_dim")
        super().__init__(observation_space, size)
        self.n_frames = int(n_frames)

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        s = observations.reshape(observations.shape[0], self.n_frames, -1)
        delta = (s[:, 1:] - s[:, :-1]).flip(1)  # newest offset first, as delta_t in the paper
        return torch.cat([s[:, -1], delta.flatten(1)], dim=1)


def _policy_kwargs(cls: type[BaseFeaturesExtractor], net_arch: Any, extra: dict[str, Any],
                   **extractor_kwargs: Any) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"features_extractor_class": cls, "features_extractor_kwargs": extractor_kwargs}
    if net_arch is not None:
        kwargs["net_arch"] = net_arch
    kwargs.update(extra)
    return kwargs


def flare_kwargs(n_frames: int = 3, features_dim: int = 64, encoder: str | type[nn.Module] = "rad",
                 encoder_kwargs: dict[str, Any] | None = None, net_arch: Any = None,
                 **policy_kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs`` that give any SB3 / sb3-contrib policy the Flare extractor::

        SAC("CnnPolicy", env, policy_kwargs=flare_kwargs(n_frames=3))

    :param n_frames: frames per stack (2 for pendulum, 3 otherwise in the paper)
    :param features_dim: Flare latent size (paper: 64)
    :param encoder: ``"rad"``, ``"nature"`` or an ``nn.Module`` class
    :param encoder_kwargs: passed to the encoder
    :param net_arch: SB3 ``net_arch`` (paper: ``[1024, 1024]``); None keeps the algorithm's default
    :param policy_kwargs: any other policy keyword (e.g. ``share_features_extractor``)
    """
    return _policy_kwargs(FlareExtractor, net_arch, policy_kwargs, n_frames=n_frames, features_dim=features_dim,
                          encoder=encoder, encoder_kwargs=encoder_kwargs)


def latent_stack_kwargs(n_frames: int = 3, features_dim: int = 64, encoder: str | type[nn.Module] = "rad",
                        encoder_kwargs: dict[str, Any] | None = None, net_arch: Any = None,
                        **policy_kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`LatentStackExtractor`; arguments as :func:`flare_kwargs`."""
    return _policy_kwargs(LatentStackExtractor, net_arch, policy_kwargs, n_frames=n_frames,
                          features_dim=features_dim, encoder=encoder, encoder_kwargs=encoder_kwargs)


def pixel_flow_kwargs(n_frames: int = 3, features_dim: int = 64, encoder: str | type[nn.Module] = "rad",
                      encoder_kwargs: dict[str, Any] | None = None, net_arch: Any = None,
                      **policy_kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`PixelFlowExtractor`; arguments as :func:`flare_kwargs`."""
    return _policy_kwargs(PixelFlowExtractor, net_arch, policy_kwargs, n_frames=n_frames,
                          features_dim=features_dim, encoder=encoder, encoder_kwargs=encoder_kwargs)


def state_flare_kwargs(n_frames: int = 4, net_arch: Any = None, **policy_kwargs: Any) -> dict[str, Any]:
    """``policy_kwargs`` for :class:`StateFlareExtractor` (use with ``"MlpPolicy"`` on stacked
    position-only state, e.g. ``sb3_latent/cartpole-swingup-position-v0``).

    :param n_frames: positions per stack (paper: 4)
    :param net_arch: SB3 ``net_arch``; None keeps the algorithm's default
    :param policy_kwargs: any other policy keyword
    """
    return _policy_kwargs(StateFlareExtractor, net_arch, policy_kwargs, n_frames=n_frames)
