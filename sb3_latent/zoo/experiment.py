"""rl_zoo3's ``ExperimentManager`` fed with our checked zoo entries (imported by :mod:`sb3_latent.zoo.manager` when a
run starts: rl_zoo3 is an optional dependency, the ``zoo`` extra)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from rl_zoo3.exp_manager import ExperimentManager
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import EvalCallback

from sb3_latent.zoo.entry import ZooEntry


def latest_model(run: Path, env_name: str) -> Path:
    """The newest model of a run: its final ``ENV.zip`` or the latest checkpoint, whichever is newer."""
    candidates = [p for p in [run / f"{env_name}.zip", *run.glob("rl_model_*_steps.zip")] if p.is_file()]
    if not candidates:
        raise ValueError(f"{run} holds no model to resume ({env_name}.zip or rl_model_*_steps.zip)")
    return max(candidates, key=lambda p: p.stat().st_mtime)


class LatentExperimentManager(ExperimentManager):
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
        return result

    def remove_new_folder(self) -> None:
        """Remove the run folder this manager created, when nothing was trained in it."""
        if self.new_folder and os.path.isdir(self.save_path):
            shutil.rmtree(self.save_path, ignore_errors=True)

    def _load_pretrained_agent(self, hyperparams: dict[str, Any], env: Any) -> BaseAlgorithm:
        print(f"Resuming from {self.trained_agent}")
        model = self.entry.algo.load(
            self.trained_agent,
            env=env,
            device=self.device,
            verbose=self.verbose,
            tensorboard_log=self.tensorboard_log,
        )
        buffer = Path(self.save_path) / "replay_buffer.pkl"
        if buffer.is_file() and hasattr(model, "load_replay_buffer"):
            print(f"Loading the replay buffer {buffer}")
            model.load_replay_buffer(str(buffer))
        elif hasattr(model, "replay_buffer"):
            print(
                "No replay_buffer.pkl in the run (train with --save-replay-buffer to keep it): the buffer starts empty"
            )
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
            return super().learn(model)
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
            + yaml.safe_dump({self.entry.env_id: self.entry.raw}, sort_keys=True)
        )
