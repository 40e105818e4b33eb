"""The launcher's engine: rl_zoo3's ``ExperimentManager`` reading our checked zoo entries.

rl_zoo3 learns our algorithms (and plugins') only when :func:`register_with_rl_zoo3` is called, which
our launcher does explicitly, the way rl_zoo3's documentation shows for third-party algorithms
(``rl_zoo3.ALGOS[name] = cls``); nothing is patched at import time.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import yaml
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_latent import registry
from sb3_latent.zoo import ZooEntry, check_entry, load_zoo_config


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
        return registry.load("algorithms", name)  # type: ignore[no-any-return]
    stock = stock_algorithms()
    if name in stock:
        return stock[name]
    raise ValueError(f"Unknown algorithm {name!r}. sb3-latent and plugins: {', '.join(registry.names('algorithms'))}; "
                     f"SB3/sb3-contrib (through rl_zoo3): {', '.join(sorted(stock))}")


def _same(sampled_params: dict[str, Any]) -> dict[str, Any]:
    return dict(sampled_params)


def register_with_rl_zoo3(samplers: dict[str, Any] | None = None) -> list[str]:
    """Make our algorithms and plugins' known to rl_zoo3 (its ``ALGOS`` table) and, optionally, their
    hyperparameter samplers (``HYPERPARAMS_SAMPLER``/``HYPERPARAMS_CONVERTER``) so rl_zoo3's
    ``--optimize`` can tune them. Returns the names registered. A broken plugin is skipped (it is
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
        except Exception:  # noqa: BLE001 - reported by `sb3-latent list`
            continue
        done.append(name)
    for name, sampler in (samplers or {}).items():
        HYPERPARAMS_SAMPLER[name] = sampler
        HYPERPARAMS_CONVERTER[name] = _same
    return done


def default_config_path(algo: str) -> Path:
    """``zoo_configs/<algo>.yml`` in the working directory."""
    return Path("zoo_configs") / f"{algo}.yml"


def read_entry(algo: str, env_id: str, config: str | Path | None, overrides: dict[str, Any] | None = None,
               n_timesteps: int | None = None) -> ZooEntry:
    """Find, read and check the entry for ``env_id``: ``config``, or ``zoo_configs/<algo>.yml``, or
    (when that does not exist) an empty entry, which then needs ``n_timesteps``.

    :param algo: algorithm name
    :param env_id: gymnasium id
    :param config: YAML file, or None for the default
    :param overrides: entries that replace the file's (``--hyperparams``)
    :param n_timesteps: replaces the entry's budget when > 0
    """
    cls = resolve_algo(algo)
    path = Path(config) if config is not None else default_config_path(algo)
    if config is None and not path.is_file():
        raw: dict[str, Any] = {}
        source = f"<no zoo config: {path} does not exist>"
    else:
        raw, source = load_zoo_config(path, env_id), str(path)
    for key, value in (overrides or {}).items():
        if key == "env_kwargs" and isinstance(value, dict):
            raw["env_kwargs"] = {**(raw.get("env_kwargs") or {}), **value}
        else:
            raw[key] = value
    if n_timesteps is not None and n_timesteps > 0:
        raw["n_timesteps"] = n_timesteps
    entry = check_entry(cls, env_id, raw, source)
    if entry.n_timesteps <= 0:
        raise ValueError(f"{source}: no 'n_timesteps' for {env_id!r}; put one in the file or pass --n-timesteps")
    return entry


def _rl_zoo3_manager() -> type:
    from rl_zoo3.exp_manager import ExperimentManager

    class LatentExperimentManager(ExperimentManager):  # type: ignore[misc]
        """rl_zoo3's ``ExperimentManager`` fed with a checked :class:`~sb3_latent.zoo.ZooEntry` instead of
        reading (and ``eval``-ing) the file itself; the rest (envs, VecNormalize, frame stacking,
        callbacks, eval, checkpoints, the ``logs/ALGO/ENV_N`` layout) is rl_zoo3's."""

        def __init__(self, entry: ZooEntry, **kwargs: Any) -> None:
            self.entry = entry
            super().__init__(config=entry.source, **kwargs)
            if kwargs.get("tensorboard_log") == "auto":
                self.tensorboard_log = os.path.join(self.save_path, "tb")

        def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
            hyperparams = self.entry.zoo_hyperparams()
            if self.custom_hyperparams:  # rl_zoo3's own route for tuned values
                hyperparams.update(self.custom_hyperparams)
            return hyperparams, dict(sorted(self.entry.raw.items()))

        def setup_experiment(self) -> tuple[BaseAlgorithm, dict[str, Any]] | None:
            result = super().setup_experiment()
            if result is not None and self.entry.lever is not None:
                from sb3_latent.lever import attach_lever

                attach_lever(result[0], **self.entry.lever)
            return result  # type: ignore[no-any-return]

        def _save_config(self, saved_hyperparams: dict[str, Any]) -> None:
            super()._save_config(saved_hyperparams)
            # the same entry, keyed by env id: a zoo file that reproduces this run with `-c`
            Path(self.params_path, "zoo_config.yml").write_text(
                f"# the entry this run used (from {self.entry.source})\n"
                + yaml.safe_dump({self.entry.env_id: self.entry.raw}, sort_keys=True))

    return LatentExperimentManager


def make_experiment(entry: ZooEntry, algo: str, args: argparse.Namespace | None = None, **kwargs: Any) -> Any:
    """A ``LatentExperimentManager`` for ``entry``; ``kwargs`` are rl_zoo3 ``ExperimentManager`` arguments
    (``log_folder``, ``seed``, ``eval_freq``, ``save_freq``, ``device``, ``tensorboard_log="auto"`` for
    ``<run>/tb``, ...). rl_zoo3 learns our algorithms first (:func:`register_with_rl_zoo3`)."""
    register_with_rl_zoo3()
    from rl_zoo3.utils import ALGOS

    ALGOS.setdefault(algo, entry.algo)
    manager_cls = _rl_zoo3_manager()
    kwargs.setdefault("n_timesteps", entry.n_timesteps)
    kwargs.setdefault("log_interval", -1)  # the algorithm's own default
    return manager_cls(entry, args=args or argparse.Namespace(), algo=algo, env_id=entry.env_id, **kwargs)
