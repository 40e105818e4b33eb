"""sb3_latent.common: the integer check every layer uses."""

import re

import numpy as np
import pytest

from sb3_latent.common import check_int


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (3, {}, 3),
        (np.int64(2), {}, 2),
        (0, {"minimum": 0}, 0),
        (2.0, {"whole_floats": True}, 2),
    ],
)
def test_accepts_integers_at_or_above_the_minimum(value, kwargs, expected) -> None:
    out = check_int("n", value, **kwargs)
    assert out == expected and type(out) is int


@pytest.mark.parametrize(
    ("value", "kwargs"),
    [
        (0, {}),
        (True, {}),
        (2.0, {}),
        (2.5, {"whole_floats": True}),
        (float("nan"), {"whole_floats": True}),
        ("3", {}),
        (None, {}),
        (1, {"minimum": 2}),
    ],
)
def test_refuses_the_rest_naming_argument_minimum_and_value(value, kwargs) -> None:
    minimum = kwargs.get("minimum", 1)
    with pytest.raises(ValueError, match=f"^{re.escape(f'n must be an integer >= {minimum}, got {value!r}')}$"):
        check_int("n", value, **kwargs)


def test_the_unit_follows_the_minimum() -> None:
    with pytest.raises(ValueError, match="size must be an integer >= 16 pixels, got 8"):
        check_int("size", 8, 16, unit="pixels")
