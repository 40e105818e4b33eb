"""The launcher's engine: rl_zoo3's ``ExperimentManager`` fed with our checked zoo entries.

rl_zoo3 learns our algorithms (and plugins') only when :func:`register_with_rl_zoo3` is called, which
our launcher does explicitly, the way rl_zoo3's documentation shows for third-party algorithms
(``rl_zoo3.ALGOS[name] = cls``); nothing is patched at import time.

What the manager adds to rl_zoo3's: the evaluation env is built exactly as the training env (the entry's
``env_kwargs`` travel with its hyperparameters, which rl_zoo3 applies to the training env only); a run
whose setup fails leaves no half-made run folder behind; a run can be resumed in its own folder
(model, replay buffer, step count, evaluations, monitor files and TensorBoard run continued).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_latent import registry
from sb3_latent.zoo.config import find_file, load_zoo_config, with_values
from sb3_latent.zoo.entry import ZooEntry, check_entry


def stock_algorithms() -> dict[str, type[BaseAlgorithm]]:
    """SB3 and sb3-contrib algorithms rl_zoo3 knows by name (``sac``, ``td3``, ``ppo``, ``tqc``, ...)."""
    from rl_zoo3.utils import ALGOS

    ours = set(registry.names("algorithms"))
    return {k: v for k, v in ALGOS.items() if k not in ours}


def resolve_algo(name: str) -> type[BaseAlgorithm]:
    """An algorithm by name: ours and plugins' (entry points) first, then rl_zoo3's stock ones.

    :raises ValueError: for an unknown name, listing the known ones
    """
    if name in registry.names("algorithms"):
        return registry.load("algorithms", name)
    stock = stock_algorithms()
    if name in stock:
        return stock[name]
    raise ValueError(
        f"Unknown algorithm {name!r}. sb3-latent and plugins: {', '.join(registry.names('algorithms'))}; "
        f"SB3/sb3-contrib (through rl_zoo3): {', '.join(sorted(stock))}"
    )


def _same(sampled_params: dict[str, Any]) -> dict[str, Any]:
    return dict(sampled_params)


def register_with_rl_zoo3(samplers: dict[str, Any] | None = None) -> list[str]:
    """Make our algorithms and plugins' known to rl_zoo3 (its ``ALGOS`` table) and, optionally, their
    hyperparameter samplers (``HYPERPARAMS_SAMPLER``, with an identity ``HYPERPARAMS_CONVERTER``) so
    rl_zoo3's ``-optimize`` can tune them. Returns the names registered. A broken plugin is skipped (it is
    reported by ``sb3-latent list``).

    :param samplers: ``{algo name: sampler}`` with rl_zoo3's sampler signature
        ``(trial, n_actions, n_envs, additional_args) -> dict``
    """
    from rl_zoo3.hyperparams_opt import HYPERPARAMS_CONVERTER, HYPERPARAMS_SAMPLER
    from rl_zoo3.utils import ALGOS

    done = []
    for name in registry.names("algorithms"):
        try:
            ALGOS[name] = registry.load("algorithms", name)
        except Exception:
            continue
        done.append(name)
    for name, sampler in (samplers or {}).items():
        HYPERPARAMS_SAMPLER[name] = sampler
        HYPERPARAMS_CONVERTER[name] = _same
    return done


def read_entry(
    algo: str,
    env_id: str,
    config: str | Path | None,
    overrides: dict[str, Any] | None = None,
    n_timesteps: int | None = None,
) -> ZooEntry:
    """Find, read and check the entry for ``env_id``: ``config`` (a file or a shipped name), or the
    shipped ``<algo>.yml``; an algorithm without a shipped file and no ``config`` gets an empty entry,
    which then needs ``n_timesteps``.

    :param algo: algorithm name
    :param env_id: gymnasium id
    :param config: YAML file or shipped name, or None for the shipped ``<algo>.yml``
    :param overrides: values set on the entry, dotted keys reaching into mappings (``--hyperparams``)
    :param n_timesteps: replaces the entry's budget when > 0
    """
    cls = resolve_algo(algo)
    try:
        path, _ = find_file(config, "zoo config", algo)
        raw, source = load_zoo_config(path, env_id), str(path)
    except ValueError:
        if config is not None:
            raise
        raw, source = {}, f"<no zoo config: sb3-latent ships none for {algo!r}>"
    raw = with_values(raw, overrides or {})
    if n_timesteps is not None and n_timesteps > 0:
        raw["n_timesteps"] = n_timesteps
    entry = check_entry(cls, env_id, raw, source)
    if entry.n_timesteps <= 0:
        raise ValueError(f"{source}: no 'n_timesteps' for {env_id!r}; put one in the file or pass --n-timesteps")
    return entry


def make_experiment(
    entry: ZooEntry, algo: str, args: argparse.Namespace | None = None, resume: Path | None = None, **kwargs: Any
) -> Any:
    """A ``LatentExperimentManager`` for ``entry``; ``kwargs`` are rl_zoo3 ``ExperimentManager`` arguments
    (``log_folder``, ``seed``, ``eval_freq``, ``save_freq``, ``device``, ``tensorboard_log="auto"`` for
    ``<run>/tb``, ...). rl_zoo3 learns our algorithms first (:func:`register_with_rl_zoo3`).

    :param entry: the checked entry
    :param algo: the algorithm's name (the run folder is ``log_folder/algo/ENV_N``)
    :param args: the command line, saved as ``args.yml``
    :param resume: an existing run folder to continue in, or None for a new run
    """
    register_with_rl_zoo3()
    from rl_zoo3.utils import ALGOS

    from sb3_latent.zoo.experiment import LatentExperimentManager

    ALGOS.setdefault(algo, entry.algo)
    kwargs.setdefault("n_timesteps", entry.n_timesteps)
    kwargs.setdefault("log_interval", -1)  # the algorithm's own default
    return LatentExperimentManager(
        entry, resume=resume, args=args or argparse.Namespace(), algo=algo, env_id=entry.env_id, **kwargs
    )
