"""Small torch utilities used by several algorithms and extractors."""

from __future__ import annotations

import torch
from torch import nn


def channels_last(module: nn.Module) -> nn.Module:
    """Store the 4-D weights of ``module`` channels-last (NHWC): on CPU (oneDNN) and GPU (cuDNN) the
    convolutions then run in that format, typically faster; the maths is unchanged."""
    return module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]


@torch.no_grad()
def ema_(targets: list[torch.Tensor], sources: list[torch.Tensor], tau: float) -> None:
    """``target <- (1 - tau) * target + tau * source`` for each pair, in one fused op."""
    if targets:
        torch._foreach_lerp_(targets, sources, tau)
