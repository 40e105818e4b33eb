"""rl-zoo style hyperparameter files: one YAML per algorithm, keyed by env id (``default`` as fallback).

Besides the algorithm's own constructor arguments, an entry may hold ``n_timesteps``, ``policy``,
``env_kwargs`` (passed to ``gymnasium.make``), ``policy_kwargs``, and our keys ``extractor`` (a
registry name, e.g. ``flare``) with ``extractor_kwargs``. Every other key must be a constructor
argument of the algorithm; anything else is an error that names the key and the file. Nothing in
a file is ever ``eval``-ed.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env

from sb3_latent import registry

OWN_KEYS = {"n_timesteps", "policy", "env_kwargs", "policy_kwargs", "extractor", "extractor_kwargs"}


def load_zoo_config(path: str | Path, env_id: str) -> dict[str, Any]:
    """The entry for ``env_id`` in the YAML file ``path`` (or its ``default`` entry).

    :raises ValueError: for a missing file, a file that is not a mapping, or an env id it lacks
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"zoo config {str(path)!r} does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"zoo config {str(path)!r} must map env ids to hyperparameters, got {type(data).__name__}")
    entry = data.get(env_id, data.get("default"))
    if entry is None:
        raise ValueError(f"{env_id!r} is not in {str(path)!r} (and it has no 'default' entry); it has: "
                         f"{', '.join(sorted(map(str, data)))}")
    return dict(entry)


def build_from_config(
    algo: type[BaseAlgorithm],
    env_id: str,
    config: dict[str, Any],
    *,
    source: str = "<config>",
    seed: int | None = None,
    n_envs: int = 1,
    **overrides: Any,
) -> tuple[BaseAlgorithm, int]:
    """Build ``algo`` on ``env_id`` from a zoo entry; return the model and its ``n_timesteps``.

    :param algo: algorithm class, e.g. :class:`sb3_latent.RAD`
    :param env_id: gymnasium id, e.g. ``sb3_latent/pendulum-swingup-pixels-v0``
    :param config: the entry (see :func:`load_zoo_config`)
    :param source: file name, for error messages
    :param seed: seed of the env and the algorithm
    :param n_envs: parallel envs
    :param overrides: constructor arguments that replace the entry's (``env_kwargs`` merge)
    """
    config = {**config, **{k: v for k, v in overrides.items() if k != "env_kwargs"}}
    env_kwargs = {**config.pop("env_kwargs", {}), **overrides.get("env_kwargs", {})}
    allowed = set(inspect.signature(algo.__init__).parameters) - {"self", "policy", "env"}
    unknown = sorted(set(config) - OWN_KEYS - allowed)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))} for {algo.__name__} "
                         f"under {env_id!r}; expected {sorted(OWN_KEYS)} or arguments of {algo.__name__}")
    n_timesteps = int(config.pop("n_timesteps", 0))
    policy = config.pop("policy", "CnnPolicy")
    policy_kwargs = dict(config.pop("policy_kwargs", {}) or {})
    extractor = config.pop("extractor", None)
    extractor_kwargs = config.pop("extractor_kwargs", None)
    if extractor is not None:
        policy_kwargs["features_extractor_class"] = registry.load("extractors", extractor)
    if extractor_kwargs is not None:
        policy_kwargs["features_extractor_kwargs"] = dict(extractor_kwargs)
    if env_id not in gym.registry:
        import sb3_latent.envs  # noqa: F401  (registers our ids)
    env = make_vec_env(env_id, n_envs=n_envs, seed=seed, env_kwargs=env_kwargs)
    model = algo(policy, env, policy_kwargs=policy_kwargs, seed=seed, **config)
    return model, n_timesteps
