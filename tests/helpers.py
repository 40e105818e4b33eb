"""Helpers shared by the test modules (``from helpers import ...``; pytest puts ``tests/`` on ``sys.path``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sb3_latent.envs import make_moving_dot_env


def pixel_env(**kw: Any) -> Any:
    """A tiny pixel env: MovingDot, 3 stacked 20x20 frames, one env, seed 0 (``kw`` overrides)."""
    return make_moving_dot_env(**{"n_envs": 1, "frame_stack": 3, "seed": 0, "size": 20, **kw})


def fill(model: Any, n: int = 80) -> None:
    """Collect ``n`` steps (with ``learning_starts=64``: a few updates at the end)."""
    model.learn(n)


def shadowed(base: type, make_ref: Callable[..., Any], module: str) -> type:
    """A subclass of the buffer class ``base`` that also feeds every ``add`` to a reference buffer
    ``self.ref = make_ref(buffer, *constructor args)``, to compare the two. Assign it to ``Shadowed`` in
    ``module`` (the caller's ``__name__``), where pickle finds it (``save_replay_buffer``)."""

    class Shadowed(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.ref = make_ref(self, *args)

        def add(self, *args: Any) -> None:
            super().add(*args)
            self.ref.add(*args)

    Shadowed.__module__, Shadowed.__qualname__ = module, "Shadowed"
    return Shadowed
