"""Stock SB3 / sb3-contrib algorithms (rl_zoo3's, those the launcher runs) with every registered extractor and with
``attach_lever``: one short learn and a save/load that predicts the same each; the full contract list for one
representative (SAC with Flare). A stock algorithm or extractor without small settings in cases.py fails."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
import torch
from cases import LEVER, stock_algorithms, stock_case
from stable_baselines3.common.callbacks import CheckpointCallback, EvalCallback, StopTrainingOnMaxEpisodes
from stable_baselines3.common.vec_env import SubprocVecEnv

from sb3_latent import attach_lever, registry

PAIRS = [(a, e) for a in sorted(stock_algorithms()) for e in [None, *registry.names("extractors")]]


def round_trip(model, env, path: pathlib.Path):
    obs = env.reset()
    expected, _ = model.predict(obs, deterministic=True)
    model.save(path)
    loaded = type(model).load(path, env=env)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    return loaded


@pytest.mark.parametrize(("algo", "extractor"), PAIRS, ids=[f"{a}-{e or 'default'}" for a, e in PAIRS])
def test_stock_algorithm_with_extractor_learns_and_round_trips(algo: str, extractor: str | None, tmp_path) -> None:
    case, not_applicable = stock_case(algo, extractor)
    if not_applicable:
        pytest.skip(f"not applicable: {not_applicable}")
    model = case.make()
    model.learn(48)
    round_trip(model, case.env(), tmp_path / "model")


@pytest.mark.parametrize("algo", LEVER)
def test_stock_algorithm_with_attach_lever(algo: str, tmp_path) -> None:
    case, _ = stock_case(algo, "flare")
    model = attach_lever(case.make(learning_starts=16), T_f=4, K=2)  # DQN: an update every 4 steps
    model.learn(48)
    assert model.replay_buffer.frozen
    loaded = round_trip(model, case.env(), tmp_path / "model")
    # stock models: attach_lever again after load and after load_replay_buffer (README)
    model.save_replay_buffer(tmp_path / "buffer")
    loaded.load_replay_buffer(tmp_path / "buffer")
    attach_lever(loaded)
    loaded.learn(16, reset_num_timesteps=False)


def test_the_full_contract_list_for_sac_with_flare(tmp_path) -> None:
    case, _ = stock_case("sac", "flare")
    model = case.make()
    model.learn(48)
    obs = case.env().reset()
    expected, _ = model.predict(obs, deterministic=True)
    np.testing.assert_array_equal(model.predict(obs, deterministic=True)[0], expected)
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    loaded = type(model).load(buf, env=case.env())
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], expected)
    assert loaded.predict(obs[0])[0].shape == model.action_space.shape
    with pytest.raises(ValueError):
        loaded.predict(obs[0, :, :-2])
    other = case.make(seed=1)
    other.set_parameters(model.get_parameters())
    np.testing.assert_array_equal(other.predict(obs, deterministic=True)[0], expected)
    model.save_replay_buffer(tmp_path / "buffer")
    loaded.load_replay_buffer(tmp_path / "buffer")
    loaded.learn(16, reset_num_timesteps=False)
    assert loaded.num_timesteps == 64
    loaded.set_env(case.env(seed=3))
    loaded.learn(16, reset_num_timesteps=False)
    a = case.make().learn(48)
    for (k, x), (_, y) in zip(a.policy.state_dict().items(), model.policy.state_dict().items(), strict=True):
        assert torch.equal(x, y), k
    env = case.env(n_envs=2, vec_env_cls=SubprocVecEnv)
    try:
        case.make(env=env).learn(48)
    finally:
        env.close()
    callbacks = [
        EvalCallback(case.env(seed=7), eval_freq=20, n_eval_episodes=1, log_path=str(tmp_path)),
        CheckpointCallback(20, str(tmp_path / "ckpt")),
    ]
    case.make().learn(40, callback=callbacks)
    assert (tmp_path / "evaluations.npz").is_file() and (tmp_path / "ckpt" / "rl_model_40_steps.zip").is_file()
    stopper = case.make()
    stopper.learn(10_000, callback=StopTrainingOnMaxEpisodes(max_episodes=2))
    assert stopper.num_timesteps == 40
