"""SB3's save/load contracts (in the style of SB3's tests/test_save_load.py) for every registered algorithm: saved
and reloaded models predict the same (str, Path, BytesIO), parameters round-trip, replay buffers round-trip, a
model continues without its buffer, and files or buffers of another algorithm are refused by name."""

from __future__ import annotations

import io
import pathlib

import numpy as np
import pytest
import torch
from cases import our_cases

CASES = our_cases()


def same_parameters(a, b) -> bool:
    pa, pb = a.get_parameters(), b.get_parameters()
    return pa.keys() == pb.keys() and all(torch.equal(pa[k][n], pb[k][n]) for k in pa if k == "policy" for n in pa[k])


@pytest.mark.parametrize("name", CASES)
def test_save_load_predict_parameters_and_replay_buffer(name: str, tmp_path: pathlib.Path) -> None:
    case = CASES[name]
    model = case.make()
    model.learn(case.steps)
    cls = type(model)
    obs = model.get_env().reset()
    expected, _ = model.predict(obs, deterministic=True)

    # save/load: str, Path, BytesIO
    buffer = io.BytesIO()
    model.save(buffer)
    model.save(str(tmp_path / "model.zip"))
    model.save(tmp_path / "model_path")
    buffer.seek(0)
    for source in (str(tmp_path / "model.zip"), tmp_path / "model_path.zip", buffer):
        loaded = cls.load(source, env=case.env())
        actions, _ = loaded.predict(obs, deterministic=True)
        np.testing.assert_array_equal(actions, expected)
        assert loaded.num_timesteps == model.num_timesteps and same_parameters(model, loaded)

    # get_parameters / set_parameters
    other = case.make(seed=1)
    assert not same_parameters(model, other)
    other.set_parameters(model.get_parameters(), exact_match=True)
    np.testing.assert_array_equal(other.predict(obs, deterministic=True)[0], expected)

    # replay buffer round trip, then learning goes on with it
    model.save_replay_buffer(tmp_path / "buffer")
    fresh = cls.load(tmp_path / "model_path", env=case.env())
    fresh.load_replay_buffer(tmp_path / "buffer")
    assert fresh.replay_buffer.size() == model.replay_buffer.size() > 0
    fresh.learn(10, reset_num_timesteps=False)

    # load then continue without the buffer: the model waits for data (collects, no update raises)
    again = cls.load(tmp_path / "model_path", env=case.env())
    updates = again._n_updates
    again.learn(case.steps, reset_num_timesteps=False)
    assert again.num_timesteps == 2 * case.steps and again._n_updates > updates


@pytest.mark.parametrize("name", CASES)
def test_load_refuses_another_algorithms_model_and_buffer(name: str, tmp_path: pathlib.Path) -> None:
    """A model file or replay buffer written by another algorithm fails at load, naming what it holds (not later
    with a KeyError or inside learn)."""
    case = CASES[name]
    model = case.make(learning_starts=5)
    model.learn(8)
    other_name = next(n for n, c in CASES.items() if c.algo is not None and c.algo.__name__ != case.algo.__name__)
    other = CASES[other_name].make(learning_starts=5)
    other.learn(8)
    other.save(tmp_path / "other")
    with pytest.raises(ValueError, match=rf"holds a {type(other).__name__} model, not a {type(model).__name__}"):
        type(model).load(tmp_path / "other")
    other.save_replay_buffer(tmp_path / "other_buffer")
    if type(other.replay_buffer) is not type(model.replay_buffer) or other.observation_space != model.observation_space:
        kept = model.replay_buffer
        with pytest.raises(ValueError, match="does not fit this"):
            model.load_replay_buffer(tmp_path / "other_buffer")
        assert model.replay_buffer is kept  # the model keeps its own
    # a stock SB3 file (another policy class) is refused too
    from stable_baselines3 import SAC

    SAC("MlpPolicy", "Pendulum-v1", buffer_size=10).save(tmp_path / "sac")
    with pytest.raises(ValueError, match=r"saved by another algorithm .*SACPolicy"):
        type(model).load(tmp_path / "sac")


def test_load_refuses_a_newer_format_and_a_buffer_of_another_shape(tmp_path: pathlib.Path) -> None:
    case = CASES["rad"]
    model = case.make(learning_starts=5)
    model.learn(8)
    model.sb3_latent_format = 99
    from stable_baselines3.common.base_class import BaseAlgorithm

    BaseAlgorithm.save(model, tmp_path / "newer")  # as a newer sb3-latent writes it
    with pytest.raises(ValueError, match="written by a newer sb3-latent"):
        type(model).load(tmp_path / "newer")
    bigger = case.make(env=case.env(size=24), learning_starts=5)
    bigger.learn(8)
    bigger.save_replay_buffer(tmp_path / "bigger")
    with pytest.raises(ValueError, match=r"observation space is Box\(0, 255, \(9, 24, 24\)"):
        model.load_replay_buffer(tmp_path / "bigger")
    newer = case.make(learning_starts=5)
    newer.learn(8)
    newer.replay_buffer.format_version = 99
    newer.save_replay_buffer(tmp_path / "newer_buffer")
    with pytest.raises(ValueError, match=r"newer sb3-latent \(format 99"):
        model.load_replay_buffer(tmp_path / "newer_buffer")
    two = case.make(env=case.env(n_envs=2), learning_starts=5)
    two.learn(8)
    two.save_replay_buffer(tmp_path / "two")
    with pytest.raises(ValueError, match="filled by 2 envs, the model runs 1"):
        model.load_replay_buffer(tmp_path / "two")
