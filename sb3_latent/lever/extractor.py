"""LeVER's cut of an extractor (:func:`split_extractor`) and the adapter that puts it in a network
(:class:`LeVERExtractor`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, NatureCNN
from torch import nn

from sb3_latent.extractors.base import PixelExtractor


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
            return Split(
                body,
                fe.fc,
                lambda z: fe.act(fe.ln(z)),
                [*conv, *fe.fc.parameters()],
                fe.fc.out_features,
                id(fe.encoder),
            )
        return Split(body, _identity, lambda z: fe.act(fe.ln(fe.fc(z))), conv, fe.fc.in_features, id(fe.encoder))
    if isinstance(fe, NatureCNN):
        fc = fe.linear[0]
        assert isinstance(fc, nn.Linear)
        if freeze == "fc":
            return Split(
                fe.cnn, fc, fe.linear[1:], [*fe.cnn.parameters(), *fc.parameters()], fc.out_features, id(fe.cnn)
            )
        return Split(fe.cnn, _identity, fe.linear, list(fe.cnn.parameters()), fc.in_features, id(fe.cnn))
    raise TypeError(
        f"LeVER cannot split a {type(fe).__name__}: it freezes SB3's NatureCNN and the sb3-latent pixel "
        "extractors (Flare, latent stack, pixel flow, DrQ-v2/RAD encoders); use one of them"
    )


class LeVERExtractor(BaseFeaturesExtractor):
    """Stands in for the extractor of every network LeVER binds to (stock SB3 models, RAD, DrQ-v2): it holds the
    very same submodules and parameters under the same names (checkpoints and optimizers are unchanged) and reads
    either images (the whole extractor, e.g. when acting) or latents ``(B, N, L)`` from the LeVER buffer (its
    slot's latent through the layers after the cut).

    Besides ``forward`` (SB3's networks) it has the encoder/head interface that algorithms sharing one encoder use
    (:class:`~sb3_latent.extractors.base.EncodingExtractor`): ``encode`` and ``encode_pair`` pass latents through
    as they are (the frozen encoders' work is in the buffer already) and ``head`` reads this network's slot of
    them; images go through the wrapped extractor.

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
        self.inner: BaseFeaturesExtractor
        object.__setattr__(self, "inner", inner)  # kept, not registered: its parameters are ours already

    @staticmethod
    def is_latent(x: torch.Tensor) -> bool:
        """Whether ``x`` holds latents ``(B, N, L)`` from the LeVER buffer (images are ``(B, C, H, W)``)."""
        return x.dim() == 3

    def _images(self, x: torch.Tensor) -> torch.Tensor:
        return x / 255.0 if self.normalize else x

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        if self.is_latent(observations):
            return self.split.rest(observations[:, self.slot])
        return self.split.rest(self.split.latent(self._images(observations)))

    def encode(self, observations: torch.Tensor) -> torch.Tensor:
        """Latents as they are; images: the wrapped pixel extractor's maps (another extractor: the images)."""
        if self.is_latent(observations):
            return observations
        x = self._images(observations)
        return self.inner.encode(x) if isinstance(self.inner, PixelExtractor) else x

    def encode_pair(self, obs: torch.Tensor, next_obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """As :meth:`encode`, for obs and next_obs (a pixel extractor encodes each unique frame once)."""
        if self.is_latent(obs):
            return obs, next_obs
        o, n = self._images(obs), self._images(next_obs)
        return self.inner.encode_pair(o, n) if isinstance(self.inner, PixelExtractor) else (o, n)

    def head(self, maps: torch.Tensor) -> torch.Tensor:
        """Features from :meth:`encode`'s output: this network's latent slot through the layers after the cut, or
        the wrapped extractor's head (another extractor: the whole extractor)."""
        if self.is_latent(maps):
            return self.split.rest(maps[:, self.slot])
        return self.inner.head(maps) if isinstance(self.inner, PixelExtractor) else self.inner(maps)
