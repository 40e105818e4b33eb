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
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
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
        except Exception:  # noqa: BLE001 - reported by `sb3-latent list`
            continue
        done.append(name)
    for name, sampler in (samplers or {}).items():
        HYPERPARAMS_SAMPLER[name] = sampler
        HYPERPARAMS_CONVERTER[name] = _same
    return done


def read_entry(algo: str, env_id: str, config: str | Path | None, overrides: dict[str, Any] | None = None,
               n_timesteps: int | None = None) -> ZooEntry:
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


def latest_model(run: Path, env_name: str) -> Path:
    """The newest model of a run: its final ``ENV.zip`` or the latest checkpoint, whichever is newer."""
    candidates = [p for p in [run / f"{env_name}.zip", *run.glob("rl_model_*_steps.zip")] if p.is_file()]
    if not candidates:
        raise ValueError(f"{run} holds no model to resume ({env_name}.zip or rl_model_*_steps.zip)")
    return max(candidates, key=lambda p: p.stat().st_mtime)


def _rl_zoo3_manager() -> type:
    from rl_zoo3.exp_manager import ExperimentManager
    from stable_baselines3.common.callbacks import EvalCallback

    class LatentExperimentManager(ExperimentManager):  # type: ignore[misc]
        """rl_zoo3's ``ExperimentManager`` fed with a checked :class:`~sb3_latent.zoo.ZooEntry` instead of
        reading (and ``eval``-ing) the file itself; the rest (envs, VecNormalize, frame stacking,
        callbacks, eval, checkpoints, the ``logs/ALGO/ENV_N`` layout) is rl_zoo3's."""

        def __init__(self, entry: ZooEntry, resume: Path | None = None, **kwargs: Any) -> None:
            self.entry, self.resume = entry, resume
            super().__init__(config=entry.source, **kwargs)
            if resume is not None:  # the run's own folder, its newest model
                self.save_path, self.params_path = str(resume), str(resume / self.env_name)
                self.trained_agent = str(latest_model(resume, str(self.env_name)))
                self.continue_training = True
            self.new_folder = not os.path.exists(self.save_path)
            if kwargs.get("tensorboard_log") == "auto":
                self.tensorboard_log = os.path.join(self.save_path, "tb")

        def read_hyperparameters(self) -> tuple[dict[str, Any], dict[str, Any]]:
            hyperparams = self.entry.zoo_hyperparams()
            if self.custom_hyperparams:  # rl_zoo3's own route for tuned values
                hyperparams.update(self.custom_hyperparams)
            return hyperparams, dict(sorted(self.entry.raw.items()))

        def _preprocess_hyperparams(self, hyperparams: dict[str, Any]) -> Any:
            out = super()._preprocess_hyperparams(hyperparams)
            # rl_zoo3 applies an entry's env_kwargs to the training env only: evaluate on the same env
            self.eval_env_kwargs = dict(self.env_kwargs)
            if str(self.env_name).endswith("-atari-v0"):  # Atari: evaluate whole games, unclipped scores
                self.eval_env_kwargs["training"] = False
            if self.resume is not None:  # append to the run's monitor files
                self.monitor_kwargs = {**self.monitor_kwargs, "override_existing": False}
            return out

        def setup_experiment(self) -> tuple[BaseAlgorithm, dict[str, Any]] | None:
            try:
                result = super().setup_experiment()
                if result is not None and self.entry.lever is not None:
                    from sb3_latent.lever import attach_lever

                    attach_lever(result[0], **self.entry.lever)
            except BaseException:
                self.remove_new_folder()
                raise
            return result  # type: ignore[no-any-return]

        def remove_new_folder(self) -> None:
            """Remove the run folder this manager created, when nothing was trained in it."""
            if self.new_folder and os.path.isdir(self.save_path):
                shutil.rmtree(self.save_path, ignore_errors=True)

        def _load_pretrained_agent(self, hyperparams: dict[str, Any], env: Any) -> BaseAlgorithm:
            print(f"Resuming from {self.trained_agent}")
            model = self.entry.algo.load(self.trained_agent, env=env, device=self.device, verbose=self.verbose,
                                         tensorboard_log=self.tensorboard_log)
            buffer = Path(self.save_path) / "replay_buffer.pkl"
            if buffer.is_file() and hasattr(model, "load_replay_buffer"):
                print(f"Loading the replay buffer {buffer}")
                model.load_replay_buffer(str(buffer))
            elif hasattr(model, "replay_buffer"):
                print("No replay_buffer.pkl in the run (train with --save-replay-buffer to keep it): "
                      "the buffer starts empty")
            return model

        def create_callbacks(self) -> None:
            super().create_callbacks()
            npz = Path(self.save_path) / "evaluations.npz"
            if self.resume is None or not npz.is_file():
                return
            data = np.load(npz)
            for cb in self.callbacks:  # continue the run's evaluations instead of overwriting them
                if isinstance(cb, EvalCallback):
                    cb.evaluations_timesteps = data["timesteps"].tolist()
                    cb.evaluations_results = data["results"].tolist()
                    cb.evaluations_length = data["ep_lengths"].tolist()
                    if len(data["results"]):
                        cb.best_mean_reward = float(np.max(data["results"].mean(axis=1)))

        def learn(self, model: BaseAlgorithm) -> None:
            if self.resume is None:
                return super().learn(model)  # type: ignore[no-any-return]
            remaining = self.n_timesteps - model.num_timesteps
            print(f"Resuming at step {model.num_timesteps}: {max(remaining, 0)} steps to go")
            try:
                if remaining > 0:
                    model.learn(remaining, callback=self.callbacks, reset_num_timesteps=False)
            except KeyboardInterrupt:
                pass
            finally:
                if self.callbacks:
                    self.callbacks[0].on_training_end()
                assert model.env is not None
                model.env.close()
            return None

        def _save_config(self, saved_hyperparams: dict[str, Any]) -> None:
            if self.resume is not None:  # the run's config stays as it was written; the command is added
                with open(Path(self.params_path) / "command.txt", "a") as f:
                    f.write("\n" + " ".join(getattr(sys, "orig_argv", sys.argv)))
                return
            super()._save_config(saved_hyperparams)
            # the same entry, keyed by env id: a zoo file that reproduces this run with `-c`
            Path(self.params_path, "zoo_config.yml").write_text(
                f"# the entry this run used (from {self.entry.source})\n"
                + yaml.safe_dump({self.entry.env_id: self.entry.raw}, sort_keys=True))

    return LatentExperimentManager


def make_experiment(entry: ZooEntry, algo: str, args: argparse.Namespace | None = None, resume: Path | None = None,
                    **kwargs: Any) -> Any:
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

    ALGOS.setdefault(algo, entry.algo)
    manager_cls = _rl_zoo3_manager()
    kwargs.setdefault("n_timesteps", entry.n_timesteps)
    kwargs.setdefault("log_interval", -1)  # the algorithm's own default
    return manager_cls(entry, resume=resume, args=args or argparse.Namespace(), algo=algo, env_id=entry.env_id,
                       **kwargs)
