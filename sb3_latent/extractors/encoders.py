"""Convolutional frame encoders: image batch ``(N, C, H, W)`` → feature maps ``(N, F, h, w)``."""

from __future__ import annotations

import torch
from torch import nn


def weight_init(m: nn.Module) -> None:
    """SAC-AE/RAD initialisation: orthogonal Linear weights, delta-orthogonal convolutions
    (only the kernel's centre tap is non-zero, orthogonal with ReLU gain), zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d) and m.kernel_size[0] == m.kernel_size[1]:
        nn.init.zeros_(m.weight)
        mid = m.kernel_size[0] // 2
        nn.init.orthogonal_(m.weight[:, :, mid, mid], nn.init.calculate_gain("relu"))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def drqv2_weight_init(m: nn.Module) -> None:
    """DrQ-v2's initialisation (facebookresearch/drqv2 ``utils.weight_init``): orthogonal Linear weights (gain 1),
    orthogonal convolutions with ReLU gain on every tap of the kernel (not only the centre), zero biases."""
    if isinstance(m, nn.Linear):
        nn.init.orthogonal_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.Conv2d):
        nn.init.orthogonal_(m.weight, nn.init.calculate_gain("relu"))
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class RadEncoder(nn.Sequential):
    """The RAD / SAC-AE / Flare conv stack: ``num_layers`` 3x3 convolutions of ``num_filters``
    channels, the first with stride 2, ReLU after each (84x84 → 35x35 maps with 4 layers).

    :param in_channels: channels of one input image
    :param num_layers: number of conv layers (paper: 4)
    :param num_filters: filters per layer (paper: 32)
    """

    def __init__(self, in_channels: int, num_layers: int = 4, num_filters: int = 32) -> None:
        layers: list[nn.Module] = []
        for i in range(num_layers):
            layers += [
                nn.Conv2d(in_channels if i == 0 else num_filters, num_filters, 3, stride=2 if i == 0 else 1),
                nn.ReLU(inplace=True),
            ]  # in place: the conv's backward needs its input, not its output
        super().__init__(*layers)


class NatureEncoder(nn.Sequential):
    """The DQN (Nature) conv stack as in SB3's ``NatureCNN``: 32 8x8/4, 64 4x4/2, 64 3x3/1, ReLU.

    :param in_channels: channels of one input image
    """

    def __init__(self, in_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 32, 8, stride=4),
            nn.ReLU(),
            nn.Conv2d(32, 64, 4, stride=2),
            nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1),
            nn.ReLU(),
        )


#: Encoders by name, for ``encoder="rad"`` / ``encoder="nature"``.
ENCODERS: dict[str, type[nn.Module]] = {"rad": RadEncoder, "nature": NatureEncoder}


def make_encoder(encoder: str | type[nn.Module], in_channels: int, **kwargs: int) -> nn.Module:
    """Build an encoder by name (``"rad"``, ``"nature"``) or from a class taking ``in_channels``.

    :param encoder: name or ``nn.Module`` subclass whose first argument is the input channel count
    :param in_channels: channels of one input image
    :param kwargs: passed to the encoder (e.g. ``num_layers``, ``num_filters`` for ``"rad"``)
    """
    if isinstance(encoder, str):
        if encoder not in ENCODERS:
            raise ValueError(f"Unknown encoder {encoder!r}; expected one of {sorted(ENCODERS)} or an nn.Module class")
        encoder = ENCODERS[encoder]
    if not (isinstance(encoder, type) and issubclass(encoder, nn.Module)):
        raise TypeError(f"encoder must be a name or an nn.Module subclass, got {encoder!r}")
    return encoder(in_channels, **kwargs)


def conv_output_shape(encoder: nn.Module, in_channels: int, height: int, width: int) -> tuple[int, int, int]:
    """Shape ``(F, h, w)`` of the encoder's maps for one image, with a clear error if it is too small."""
    try:
        with torch.no_grad():
            out = encoder(torch.zeros(1, in_channels, height, width))
    except RuntimeError as e:
        raise ValueError(
            f"{type(encoder).__name__} cannot encode {height}x{width} images ({e}); use larger frames "
            f"or another encoder (the default 4-layer 'rad' stack needs at least 15x15, 'nature' 36x36)"
        ) from e
    return tuple(out.shape[1:])
