"""The base class of the pixel extractors: a stack split into frames, one conv encoder, a head.

Algorithms that share one encoder between several networks (RAD, DrQ-v2) talk to extractors through
:meth:`PixelExtractor.encode_pair` and :meth:`PixelExtractor.head`; anything that stands in for a pixel
extractor (an adapter that wraps one) provides the same methods.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import torch
from stable_baselines3.common.preprocessing import is_image_space_channels_first
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from sb3_latent.common.checks import check_int
from sb3_latent.extractors.encoders import conv_output_shape, make_encoder, weight_init


def _image_layout(space: gym.Space, n_frames: int, name: str, channels_last: bool | None) -> tuple[int, int, int, bool]:
    """Validate an image space of ``n_frames`` stacked frames; return (C per frame, H, W, channels_last)."""
    if not isinstance(space, gym.spaces.Box) or len(space.shape) != 3:
        raise TypeError(
            f"{name} needs an image observation space of stacked frames, shape (frames*C, H, W) or "
            f"(H, W, frames*C); got {space}. For vector observations of positions use StateFlareExtractor."
        )
    check_int(f"{name}: n_frames", n_frames, 1, whole_floats=True)
    if channels_last is None:
        channels_last = not is_image_space_channels_first(space)
    channels, h, w = (space.shape[2], space.shape[0], space.shape[1]) if channels_last else space.shape
    if channels % n_frames != 0:
        raise ValueError(
            f"{name}: the observation has {channels} channels, which n_frames={n_frames} does not divide; "
            f"expected n_frames * channels_per_frame (e.g. 9 channels = 3 RGB frames)"
        )
    return channels // n_frames, h, w, channels_last


@runtime_checkable
class EncodingExtractor(Protocol):
    """What an algorithm that shares one encoder between several networks (RAD, DrQ-v2) needs of an extractor:
    encoder maps of preprocessed observations, and features from maps. :class:`PixelExtractor` provides it, and so
    does anything standing in for one (an adapter that wraps one, whose "maps" may be something else entirely)."""

    def encode(self, observations: torch.Tensor) -> torch.Tensor: ...

    def encode_pair(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def head(self, maps: torch.Tensor) -> torch.Tensor: ...


#: On CPU, encoders run on at most this many images at a time (a conv over a few hundred frames at once
#: falls out of cache; benchmarks/update_speed.py measures it). GPUs get the whole batch.
CPU_ENCODE_CHUNK = 128


def _check_flow_frames(n_frames: int, name: str) -> None:
    if n_frames < 2:
        raise ValueError(
            f"{name} computes differences between consecutive frames and needs n_frames >= 2, got {n_frames}"
        )


class PixelExtractor(BaseFeaturesExtractor, ABC):
    """Shared machinery of the pixel extractors: split a stack into frames, :meth:`encode` them with
    one conv encoder, then :meth:`head` fuses the maps and applies ``Linear → LayerNorm`` (Flare, Algorithm 1;
    the official flare/rad/curl encoders run with ``output_logits=True``, no ``tanh``), or
    ``Linear → LayerNorm → tanh`` with ``tanh=True`` (DrQ-v2's trunk; SAC-AE's encoder).

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
        tanh: bool = False,
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
        self.tanh = bool(tanh)
        #: what follows the LayerNorm: ``tanh`` (DrQ-v2's trunk) or nothing (Flare/RAD/CURL, ``output_logits``)
        self.act: nn.Module = nn.Tanh() if tanh else nn.Identity()
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

    def encode_pair(
        self, obs: torch.Tensor, next_obs: torch.Tensor, shared: bool | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Maps of preprocessed ``obs`` (with gradient) and ``next_obs`` (without). When the two share frames
        (frame-wise encoder, frame stacking, the same augmentation), each unique frame is encoded once, and
        frames that enter the features only detached (Flare's oldest) are encoded without gradient.

        :param shared: whether ``next_obs`` is ``obs`` shifted by one frame, when the caller knows it (a frame store's
            1-step samples, the same augmentation); None compares the frames (a device→host sync)"""
        fo, fn = self.frames(obs), self.frames(next_obs)
        if not (self.framewise and self.n_frames > 1):
            shared = False
        if shared is None:
            shared = bool(torch.equal(fo[:, 1:], fn[:, :-1]))
        if not shared:
            obs_maps = self.encode(obs)
            with torch.no_grad():
                return obs_maps, self.encode(next_obs)
        g = self.detached_prefix
        grad_maps = self.encode_frames(fo[:, g:])
        with torch.no_grad():
            rest = self.encode_frames(torch.cat([fo[:, :g], fn[:, -1:]], dim=1))
        obs_maps = torch.cat([rest[:, :g], grad_maps], dim=1)
        next_maps = torch.cat([grad_maps[:, 1 - g :].detach(), rest[:, g:]], dim=1)
        return obs_maps, next_maps

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Encoder maps → features: fuse, then ``LayerNorm(Linear(.))`` (and ``tanh`` with ``tanh=True``)."""
        if self.detach_encoder:
            maps = maps.detach()
        return self.act(self.ln(self.fc(self.fuse(maps))))

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.detach_encoder:  # no graph through the encoder at all; the head still learns
            with torch.no_grad():
                maps = self.encode(observations)
            return self.head(maps)
        return self.head(self.encode(observations))
