"""Mixed precision (bfloat16 autocast) for every algorithm and extractor, with one check of the device.

``amp=True`` computes the forward passes of an update under ``torch.autocast(device, torch.bfloat16)``;
parameters, optimizer states and the logged losses stay float32. It is a speed-up only where bfloat16 is native
(a CUDA GPU that supports it, or a CPU with AVX512-BF16 / AMX): elsewhere it would be emulated (slower than
float32), so it is refused at construction (:func:`check_amp`) and switched off with a warning when a model saved
with ``amp=True`` is loaded there (:func:`amp_after_load`, :class:`AmpMixin`).
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any

import torch


def bf16_supported(device: torch.device | str) -> bool:
    """Whether ``device`` computes bfloat16 natively (so that ``amp`` is a speed-up, not an emulation)."""
    device = torch.device(device)
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return device.type == "cpu" and bool(torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported())


def check_amp(amp: bool, device: torch.device | str, who: str = "") -> bool:
    """``amp`` as a bool, after raising a ``ValueError`` when it is asked for where bfloat16 is not native.

    :param amp: the ``amp`` argument given
    :param device: the device the model computes on (after SB3's ``get_device``)
    :param who: the class or function, for the message
    """
    if not isinstance(amp, bool):
        raise TypeError(f"{who + ': ' if who else ''}amp must be True or False, got {amp!r}")
    if amp and not bf16_supported(device):
        raise ValueError(
            f"{who + ': ' if who else ''}amp=True needs native bfloat16 (a CUDA GPU that supports it, or a CPU with "
            f"AVX512-BF16); {torch.device(device)} has none: use amp=False"
        )
    return amp


def amp_after_load(amp: bool, device: torch.device | str) -> bool:
    """A saved ``amp`` where the model is loaded: kept where bfloat16 is native, else False with a warning (the
    model loads and trains in float32)."""
    if amp and not bf16_supported(device):
        warnings.warn(
            f"this model was saved with amp=True; {torch.device(device)} has no native bfloat16: it trains in "
            "float32 here",
            stacklevel=3,
        )
        return False
    return bool(amp)


def autocast(device: torch.device | str, enabled: bool) -> Any:
    """bfloat16 autocast on ``device`` when ``enabled`` (a no-op context otherwise)."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


class AmpMixin:
    """``amp`` for an SB3 algorithm: put it first in the bases, set ``self.amp = check_amp(amp, get_device(device))``
    in ``__init__``; :meth:`_autocast` wraps the forward passes of an update. ``amp`` is saved with the model (an
    attribute); on ``load`` where bfloat16 is not native it is switched off with a warning."""

    amp: bool = False
    device: torch.device

    def _setup_model(self) -> None:
        super()._setup_model()  # type: ignore[misc]
        self.amp = amp_after_load(self.amp, self.device)

    def _autocast(self) -> Any:
        return autocast(self.device, self.amp)
