"""At most one device→host transfer per ``train`` call.

An update's logged values stay tensors on the device; :func:`finite_means` reads them once at the end of a
``train`` call (their means and the non-finite check in one transfer, plus any values the algorithm needs on the
host, such as Rainbow's new priorities). Inside the update loop nothing is read back: torch.distributions' argument
checks (a host sync each) are off there (:func:`update_loop`); a non-finite value is found by the one check at the
end, and an error it causes inside the loop (a distribution or sampler refusing NaN) is reported as the
:class:`~sb3_latent.algos.contracts.NonFiniteError` it is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.distributions import Distribution

from sb3_latent.algos.contracts import NonFiniteError


@contextlib.contextmanager
def update_loop(model: Any, updates: list[dict[str, Any]], first_update: int) -> Iterator[None]:
    """The per-update loop of ``model.train``: torch.distributions' validation off (it reads every distribution's
    arguments back to the host), restored after; an error raised by a non-finite value inside becomes the
    ``NonFiniteError`` of ``model._check_finite`` (naming the update; ``updates`` are those finished so far)."""
    previous = Distribution._validate_args
    Distribution.set_default_validate_args(False)
    try:
        yield
    except (ValueError, RuntimeError) as error:
        if getattr(model, "check_finite", False):
            model._check_finite(updates, first_update)  # raises for a non-finite logged value
            params = torch.cat([p.detach().reshape(-1) for p in model.policy.parameters()])
            bad = params[~torch.isfinite(params)]
            if len(bad):
                raise NonFiniteError(
                    f"{type(model).__name__}: train/parameters is {bad[0].item()} at update "
                    f"{first_update + len(updates)} (it made the update fail: {error}); the networks are no longer "
                    "usable. Look for NaN/inf in the rewards or observations (SB3's VecCheckNan finds them) or lower "
                    "the learning rates; pass check_finite=False to train on regardless"
                ) from error
        raise
    finally:
        Distribution.set_default_validate_args(previous)


def finite_means(
    model: Any, updates: list[dict[str, Any]], first_update: int, extra: torch.Tensor | None = None
) -> tuple[dict[str, float], np.ndarray | None]:
    """The mean of each logged value over ``updates`` (a key missing from some updates: over those that have it),
    checked to be finite (``model.check_finite``; else ``model._check_finite`` raises its ``NonFiniteError``), and
    ``extra`` (a 1-D tensor, or None) on the host: one device→host transfer for them all.

    :param model: the algorithm (``check_finite``, ``_check_finite``)
    :param updates: one dict of detached scalar tensors per update
    :param first_update: the number of the first of them (for the error message)
    :param extra: further values wanted on the host (e.g. new priorities), or None
    :return: ``{key: mean}`` and ``extra`` as a float64 array (None if not given)
    """
    keys: dict[str, None] = {}
    for u in updates:
        keys.update(dict.fromkeys(u))
    tensors = [v for u in updates for v in u.values() if isinstance(v, torch.Tensor)]
    device = tensors[0].device if tensors else torch.device("cpu")

    def flat(v: Any) -> torch.Tensor:
        return torch.as_tensor(v, device=device).detach().float().reshape(-1)

    means = [torch.cat([flat(u[k]) for u in updates if k in u]).mean() for k in keys]
    parts = [torch.stack(means)] if means else []
    check = bool(getattr(model, "check_finite", False)) and bool(updates)
    if check:
        parts.insert(0, torch.isfinite(torch.cat([flat(v) for u in updates for v in u.values()])).all().float()[None])
    if extra is not None:
        parts.append(extra.detach().float().reshape(-1).to(device))
    if not parts:
        return {}, None
    host = torch.cat(parts).tolist()  # the one transfer
    if check:
        if host[0] != 1.0:
            model._check_finite(updates, first_update)
        host = host[1:]
    values = dict(zip(keys, host[: len(keys)], strict=True))
    return values, (np.asarray(host[len(keys) :], dtype=np.float64) if extra is not None else None)
