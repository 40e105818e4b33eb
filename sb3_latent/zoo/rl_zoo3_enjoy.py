"""rl_zoo3's own enjoy script (play a trained run, record a video), with sb3-latent's algorithms (and plugins')
registered and our env ids known (``python -m sb3_latent.zoo_enjoy`` runs :func:`main`)::

    python -m sb3_latent.zoo_enjoy --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -f logs -n 1000

Runs of ``sb3-latent train`` keep in ``ENV/args.yml`` the ``env_kwargs`` their env was built with and in
``ENV/config.yml`` the rest of the env settings, which is what rl_zoo3's enjoy reads. ``sb3-latent enjoy`` does
the same with fewer options and a GIF/MP4 of its own.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> None:
    """Register our algorithms with rl_zoo3, then run ``rl_zoo3.enjoy.enjoy()`` unchanged.

    :param argv: rl_zoo3.enjoy arguments (default ``sys.argv[1:]``)
    """
    import sb3_latent.envs  # noqa: F401  (our env ids)
    from sb3_latent.zoo.manager import register_with_rl_zoo3

    register_with_rl_zoo3()
    from rl_zoo3.enjoy import enjoy

    sys.argv = [sys.argv[0], *(sys.argv[1:] if argv is None else argv)]
    enjoy()
