"""SB3's running contracts (in the style of SB3's tests/test_run.py and test_vec_envs.py) for every registered
algorithm: learn, learn again with ``reset_num_timesteps=False``, ``set_env``, two envs (DummyVecEnv and
SubprocVecEnv), the same seed gives the same model, and NaN rewards stop training with a clear error."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
from cases import NaNReward, our_cases
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import SubprocVecEnv

from sb3_latent import MovingDotEnv
from sb3_latent.algos.contracts import NonFiniteError
from sb3_latent.envs.dmc import FrameStack

CASES = our_cases()


@pytest.mark.parametrize("name", CASES)
def test_learn_continue_set_env_and_seeding(name: str) -> None:
    case = CASES[name]
    model = case.make()
    assert model.learn(case.steps) is model
    assert model.num_timesteps == case.steps and model._n_updates > 0
    updates = model._n_updates
    model.learn(20, reset_num_timesteps=False)  # continues: counters go on
    assert model.num_timesteps == case.steps + 20 and model._n_updates > updates

    model.set_env(case.env(seed=3))  # SB3's set_env: another env of the same spaces, learning goes on
    model.learn(20, reset_num_timesteps=False)
    assert model.num_timesteps == case.steps + 40
    with pytest.raises(ValueError, match=r"[Oo]bservation spaces do not match"):
        model.set_env(case.env(size=case.env_kwargs.get("size", 20) + 16))

    # the same seed gives the same model (one after the other: the seed sets the global random generators)
    a = case.make().learn(case.steps)
    b = case.make().learn(case.steps)
    for (k, x), (_, y) in zip(a.policy.state_dict().items(), b.policy.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


@pytest.mark.parametrize("vec_env_cls", ["dummy", "subproc"])
@pytest.mark.parametrize("name", CASES)
def test_two_envs(name: str, vec_env_cls: str) -> None:
    case = CASES[name]
    cls = SubprocVecEnv if vec_env_cls == "subproc" else None
    env = case.env(n_envs=2, **({"vec_env_cls": cls} if cls else {}))
    try:
        model = case.make(env=env)
        model.learn(case.steps)
        assert model.num_timesteps >= case.steps and model._n_updates > 0
        obs = env.reset()
        actions, _ = model.predict(obs, deterministic=True)
        assert np.asarray(actions).shape[0] == 2
    finally:
        env.close()


@pytest.mark.parametrize("name", CASES)
def test_nan_rewards_stop_training_with_a_clear_error(name: str) -> None:
    case = CASES[name]
    kw = case.env_kwargs

    def nan_env():
        env = NaNReward(
            MovingDotEnv(size=kw.get("size", 20), episode_length=20, action_type=kw.get("action_type", "continuous"))
        )
        stack = kw.get("frame_stack", 3)
        return FrameStack(env, stack) if stack > 1 else env

    model = case.make(env=make_vec_env(nan_env, n_envs=1, seed=0))
    with pytest.raises(NonFiniteError, match=r"train/\w+ is nan at update \d+.*check_finite=False"):
        model.learn(120)
    # check_finite=False: training goes on, to a model of NaN (as before the check existed), unless something else
    # refuses NaN first (torch's Gaussians, acting or imagining from NaN parameters)
    model = case.make(env=make_vec_env(nan_env, n_envs=1, seed=0), check_finite=False)
    with contextlib.suppress(ValueError, RuntimeError):
        model.learn(120)
    assert any(not torch.isfinite(p).all() for p in model.policy.parameters())


@pytest.mark.parametrize("name", CASES)
def test_tensorboard_runs_are_named_after_the_algorithm(name: str, tmp_path) -> None:
    """SB3 names a run after the algorithm (``SAC_1``); ours too, a subclass by its own name (CURL's is ``CURL_1``)."""
    case = CASES[name]
    model = case.make(tensorboard_log=str(tmp_path))
    model.learn(4)
    assert [p.name for p in tmp_path.iterdir()] == [f"{type(model).__name__}_1"]
    model.learn(4, reset_num_timesteps=False, tb_log_name="mine")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"{type(model).__name__}_1", "mine_0"]
