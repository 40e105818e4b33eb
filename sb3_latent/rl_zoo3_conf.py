"""Hyperparameters handed to rl_zoo3 by ``python -m sb3_latent.zoo_train`` (rl_zoo3's ``-conf`` accepts a
Python module holding a ``hyperparams`` dict; this is that module). Filled at launch from a checked zoo
file: every name already resolved to its class, nothing left for rl_zoo3 to ``eval``."""

from typing import Any

#: ``{env id: rl_zoo3 hyperparameters}``, set by :func:`sb3_latent.zoo_train.main`
hyperparams: dict[str, Any] = {}
