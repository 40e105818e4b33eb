"""Batched image augmentations for pixel RL, run on the batch's device.

Every augmentation draws **one random transform per sample** and applies it to all channels of that
sample, so every frame of a stacked observation ``(B, frames * C, H, W)`` moves together. Passing
several batches with ``same=True`` reuses the transforms (e.g. the same shift for ``obs`` and
``next_obs``); the default draws independent transforms for each, as DrQ-v2 does.

=================  =========================================================  ==================
name               what it does                                               paper
=================  =========================================================  ==================
``RandomShift``    replicate-pad by ``pad``, shift by an integer in            DrQ / DrQ-v2
                   ``[-pad, pad]`` (DrQ's bilinear resampling); size kept
``RandomTranslate`` place the ``H x W`` image at a random position on a        RAD, Flare (100→108)
                   zero ``size x size`` canvas
``RandomCrop``     cut a random ``size x size`` window                        CURL, RAD (100→84)
=================  =========================================================  ==================

Inputs may be uint8 or float; ``RandomShift`` returns float (as DrQ's interpolation does), the others keep the
dtype, so augmenting before the float conversion is possible and cheaper.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class Augmentation(ABC):
    """Base class: ``aug(obs)``, ``aug(obs, next_obs)`` or ``aug(obs, next_obs, same=True)``."""

    @abstractmethod
    def sample_params(self, x: torch.Tensor) -> torch.Tensor:
        """Draw one transform per sample of ``x`` (shape ``(B, C, H, W)``)."""

    @abstractmethod
    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        """Apply the transforms ``params`` (from :meth:`sample_params`) to ``x``."""

    @abstractmethod
    def center(self, x: torch.Tensor) -> torch.Tensor:
        """The deterministic version used at evaluation time (no shift, centred canvas or crop)."""

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size of the output for an input of ``height x width``."""
        return height, width

    def __call__(self, *xs: torch.Tensor, same: bool = False) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if not xs:
            raise TypeError("an augmentation needs at least one batch of images")
        for x in xs:
            if x.dim() != 4:
                raise ValueError(f"expected image batches of shape (B, C, H, W), got {tuple(x.shape)}")
        if same and any(x.shape != xs[0].shape for x in xs):
            raise ValueError(f"same=True needs batches of one shape, got {[tuple(x.shape) for x in xs]}")
        shared = self.sample_params(xs[0]) if same else None
        out = tuple(self.apply(x, shared if shared is not None else self.sample_params(x)) for x in xs)
        return out[0] if len(out) == 1 else out


def _windows(x: torch.Tensor, offsets: torch.Tensor, h: int, w: int) -> tuple[torch.Tensor, ...]:
    """Index tensors that select an ``h x w`` window at per-sample ``offsets`` (B, 2) = (row, col)."""
    b = torch.arange(x.shape[0], device=x.device)[:, None, None]
    rows = offsets[:, 0, None] + torch.arange(h, device=x.device)
    cols = offsets[:, 1, None] + torch.arange(w, device=x.device)
    return b, rows[:, :, None], cols[:, None, :]


class RandomShift(Augmentation):
    """DrQ random shift: replicate-pad by ``pad`` pixels, then a random integer shift in
    ``[-pad, pad]`` per sample. DrQ/DrQ-v2 resample with bilinear ``grid_sample`` on a grid that
    lands on pixel centres, i.e. the integer-shifted padded image; here that image is gathered
    directly (replicate padding = clamped indices): the same values without the interpolation's
    rounding, without ``grid_sample``'s arithmetic, and uint8 input is read as bytes.

    :param pad: padding in pixels (DrQ-v2: 4 for 84x84 frames)
    """

    def __init__(self, pad: int = 4) -> None:
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}")
        self.pad = pad

    def sample_params(self, x: torch.Tensor) -> torch.Tensor:
        return torch.randint(0, 2 * self.pad + 1, (x.shape[0], 2), device=x.device)

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if self.pad == 0:
            return x.float()
        # output pixel (y, x) of sample i is padded[i, :, y + row_i, x + col_i], i.e. the input pixel at
        # (y + row_i - pad, x + col_i - pad) clamped to the image (replicate padding)
        rows = (torch.arange(h, device=x.device) + params[:, :1] - self.pad).clamp_(0, h - 1)
        cols = (torch.arange(w, device=x.device) + params[:, 1:] - self.pad).clamp_(0, w - 1)
        index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
        return x.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w).float()

    def center(self, x: torch.Tensor) -> torch.Tensor:
        return x.float()


class RandomTranslate(Augmentation):
    """RAD/Flare random translate: the ``H x W`` image is placed at a random position on a
    ``size x size`` canvas of zeros (Flare, Table A.4: 100x100 frames on a 108x108 canvas).

    :param size: canvas side; must be >= the image sides
    """

    def __init__(self, size: int = 108) -> None:
        self.size = size

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-2] > self.size or x.shape[-1] > self.size:
            raise ValueError(
                f"RandomTranslate(size={self.size}) needs images no larger than the canvas, got "
                f"{x.shape[-2]}x{x.shape[-1]}; render smaller frames (Flare: 100 -> 108) or raise size"
            )

    def sample_params(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        hi = torch.tensor([self.size - x.shape[-2] + 1, self.size - x.shape[-1] + 1], device=x.device)
        return (torch.rand(x.shape[0], 2, device=x.device) * hi).long()

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        self._check(x)
        out = x.new_zeros(x.shape[0], x.shape[1], self.size, self.size)
        b, rows, cols = _windows(x, params, x.shape[-2], x.shape[-1])
        out[b, :, rows, cols] = x.permute(0, 2, 3, 1)
        return out

    def center(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        off = torch.tensor([(self.size - x.shape[-2]) // 2, (self.size - x.shape[-1]) // 2], device=x.device)
        return self.apply(x, off.expand(x.shape[0], 2))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.size, self.size


class RandomCrop(Augmentation):
    """CURL/RAD random crop: a random ``size x size`` window of the image (CURL: 100 -> 84).

    :param size: side of the crop; must be <= the image sides
    """

    def __init__(self, size: int = 84) -> None:
        self.size = size

    def _check(self, x: torch.Tensor) -> None:
        if x.shape[-2] < self.size or x.shape[-1] < self.size:
            raise ValueError(
                f"RandomCrop(size={self.size}) needs images at least that large, got "
                f"{x.shape[-2]}x{x.shape[-1]}; render larger frames (CURL: 100 -> 84) or lower size"
            )

    def sample_params(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        hi = torch.tensor([x.shape[-2] - self.size + 1, x.shape[-1] - self.size + 1], device=x.device)
        return (torch.rand(x.shape[0], 2, device=x.device) * hi).long()

    def apply(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        self._check(x)
        b, rows, cols = _windows(x, params, self.size, self.size)
        return x[b, :, rows, cols].permute(0, 3, 1, 2).contiguous()

    def center(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        off = torch.tensor([(x.shape[-2] - self.size) // 2, (x.shape[-1] - self.size) // 2], device=x.device)
        return self.apply(x, off.expand(x.shape[0], 2))

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        return self.size, self.size


def make_augmentation(spec: str | Augmentation | None, **kwargs: int) -> Augmentation | None:
    """An augmentation from a registry name (``"shift"``, ``"translate"``, ``"crop"`` or a plugin's),
    an instance (returned as is), or None.

    :param spec: name, instance or None
    :param kwargs: constructor arguments, e.g. ``pad=4`` or ``size=108``
    """
    if spec is None or isinstance(spec, Augmentation):
        return spec
    from sb3_latent.registry import load

    cls = load("augmentations", spec)
    return cls(**kwargs)
