"""Argument checks shared by every layer; their messages name the argument, what it must be and the value given."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int(name: str, value: Any, minimum: int = 1, *, whole_floats: bool = False, unit: str = "") -> int:
    """``value`` as an ``int``, checked to be an integer (not a bool) of at least ``minimum``.

    :param name: what the value is, as the message names it (e.g. ``"n_frames"`` or ``"FlareExtractor: n_frames"``)
    :param value: the value given
    :param minimum: the smallest value allowed
    :param whole_floats: also accept floats with an integral value (``2.0``), as ``int(value) == value`` does
    :param unit: a word after the minimum in the message (e.g. ``"pixels"``)
    :raises ValueError: ``"<name> must be an integer >= <minimum>, got <value>"``
    """
    kinds: tuple[type, ...] = (int, np.integer, float, np.floating) if whole_floats else (int, np.integer)
    ok = not isinstance(value, bool) and isinstance(value, kinds)
    if ok and isinstance(value, (float, np.floating)):
        ok = bool(np.isfinite(value)) and int(value) == value
    if not ok or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' ' + unit if unit else ''}, got {value!r}")
    return int(value)
