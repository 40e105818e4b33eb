"""The launcher: rl-zoo style YAML entries, rl_zoo3's ``ExperimentManager`` underneath, Optuna tuning and the
``sb3-latent`` command. It sits on top of the library and is imported by nothing in it.

==================  ===========================================================================
``config``          YAML files, the shipped zoo configs and study specs, dotted keys, names → classes
``entry``           a zoo entry checked and resolved (:func:`check_entry`), envs and models built from it
``manager``         rl_zoo3's ``ExperimentManager`` fed with checked entries (runs, evaluation, resume)
``tune``            Optuna study specs and workers sharing one study (SQLite to PostgreSQL)
``commands``        what ``sb3-latent train/enjoy/plot/list/tune/bench`` do
``cli``             the ``sb3-latent`` argument parser
``rl_zoo3_train``   rl_zoo3's own ``train`` script with our algorithms registered (``python -m sb3_latent.zoo_train``)
``rl_zoo3_enjoy``   rl_zoo3's own ``enjoy`` script with our algorithms registered (``python -m sb3_latent.zoo_enjoy``)
==================  ===========================================================================
"""

from __future__ import annotations

import importlib
from typing import Any

#: the public names, imported when first used (so that ``sb3-latent`` can say which extra is missing)
_EXPORTS = {
    "load_zoo_config": "config",
    "shipped": "config",
    "ZooEntry": "entry",
    "build_from_config": "entry",
    "check_entry": "entry",
    "make_env": "entry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sb3_latent.zoo' has no attribute {name!r}")
    return getattr(importlib.import_module(f"sb3_latent.zoo.{_EXPORTS[name]}"), name)
