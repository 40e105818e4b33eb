"""Helpers of the replay buffers that keep per-env rings of items (frames, reset stacks, episodes)."""

from __future__ import annotations

import numpy as np


def same(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two frames (or stacks) are equal, NaN equal to NaN."""
    return bool(np.array_equal(a, b, equal_nan=a.dtype.kind in "fc"))


def grow(ring: np.ndarray, lo: np.ndarray, hi: np.ndarray, capacity: int) -> np.ndarray:
    """Copy the live items of a per-env ring (item ``g`` of env ``e`` at ``ring[g % len, e]``, live for
    ``lo[e] <= g < hi[e]``) into a ring of ``capacity`` items."""
    new = np.zeros((capacity, *ring.shape[1:]), dtype=ring.dtype)
    for e in range(ring.shape[1]):
        g = np.arange(lo[e], hi[e])
        new[g % capacity, e] = ring[g % len(ring), e]
    return new
