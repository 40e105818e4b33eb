"""SB3's callbacks (in the style of SB3's tests/test_callbacks.py) with every registered algorithm: EvalCallback
(reproducible evaluations with deterministic actions), CheckpointCallback (model and replay buffer) and
StopTrainingOnMaxEpisodes."""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from cases import our_cases
from stable_baselines3.common.callbacks import CallbackList, CheckpointCallback, EvalCallback, StopTrainingOnMaxEpisodes
from stable_baselines3.common.evaluation import evaluate_policy

CASES = our_cases()


@pytest.mark.parametrize("name", CASES)
def test_eval_checkpoint_and_stop_callbacks(name: str, tmp_path: pathlib.Path) -> None:
    case = CASES[name]
    model = case.make()
    eval_cb = EvalCallback(
        case.env(seed=7),
        n_eval_episodes=1,
        eval_freq=25,
        log_path=str(tmp_path / "eval"),
        best_model_save_path=str(tmp_path / "best"),
        deterministic=True,
    )
    ckpt = CheckpointCallback(save_freq=25, save_path=str(tmp_path / "ckpt"), save_replay_buffer=True)
    model.learn(case.steps, callback=CallbackList([eval_cb, ckpt]))
    assert (tmp_path / "eval" / "evaluations.npz").is_file() and (tmp_path / "best" / "best_model.zip").is_file()
    assert len(np.load(tmp_path / "eval" / "evaluations.npz")["results"]) == case.steps // 25
    assert (tmp_path / "ckpt" / "rl_model_50_steps.zip").is_file()
    assert (tmp_path / "ckpt" / "rl_model_replay_buffer_50_steps.pkl").is_file()
    type(model).load(tmp_path / "ckpt" / "rl_model_50_steps.zip").load_replay_buffer(
        tmp_path / "ckpt" / "rl_model_replay_buffer_50_steps.pkl"
    )

    # deterministic evaluation is reproducible (same env seed, same returns)
    runs = [evaluate_policy(model, case.env(seed=7), n_eval_episodes=1, deterministic=True) for _ in range(2)]
    assert runs[0] == runs[1]

    stopper = case.make()
    stopper.learn(10_000, callback=StopTrainingOnMaxEpisodes(max_episodes=2))
    assert stopper.num_timesteps == 2 * 20  # episodes of 20 steps
