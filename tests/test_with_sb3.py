"""Every extractor plugs into stock SB3 / sb3-contrib algorithms through policy_kwargs."""

import numpy as np
import pytest
import torch
from sb3_contrib import QRDQN, TQC
from stable_baselines3 import DQN, PPO, SAC, TD3

from sb3_latent import (
    StateFlareExtractor,
    flare_kwargs,
    latent_stack_kwargs,
    make_dmc_env,
    make_moving_dot_env,
    pixel_flow_kwargs,
    state_flare_kwargs,
)

PIXEL_KWARGS = {"flare": flare_kwargs, "latent_stack": latent_stack_kwargs, "pixel_flow": pixel_flow_kwargs}
OFF_POLICY = dict(buffer_size=500, batch_size=16, learning_starts=100)
ALGOS = {
    "SAC": (SAC, "continuous", OFF_POLICY),
    "TD3": (TD3, "continuous", OFF_POLICY),
    "TQC": (TQC, "continuous", OFF_POLICY),
    "DQN": (DQN, "discrete", OFF_POLICY),
    "QRDQN": (QRDQN, "discrete", OFF_POLICY),
    "PPO": (PPO, "continuous", dict(n_steps=64, batch_size=32, n_epochs=2)),
}
TINY = dict(features_dim=16, encoder_kwargs={"num_filters": 8}, net_arch=[32, 32])


def changed(before: dict, model) -> bool:
    after = model.policy.state_dict()
    return any(not torch.equal(before[k], after[k]) for k in before if "encoder" in k)


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("extractor", PIXEL_KWARGS)
def test_pixel_extractor_trains_with_algorithm(algo, extractor) -> None:
    cls, action_type, kw = ALGOS[algo]
    env = make_moving_dot_env(n_envs=2, frame_stack=3, seed=0, size=20, action_type=action_type)
    model = cls("CnnPolicy", env, policy_kwargs=PIXEL_KWARGS[extractor](n_frames=3, **TINY), seed=0, **kw)
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(300)
    assert model.num_timesteps >= 300
    assert changed(before, model), "the conv encoder was not trained"
    action, _ = model.predict(env.reset(), deterministic=True)
    assert env.action_space.contains(action[0])


@pytest.mark.parametrize("algo", ALGOS)
def test_state_flare_trains_with_algorithm(algo) -> None:
    cls, action_type, kw = ALGOS[algo]
    env = make_moving_dot_env(n_envs=2, frame_stack=4, seed=0, obs_type="position", action_type=action_type)
    model = cls("MlpPolicy", env, policy_kwargs=state_flare_kwargs(n_frames=4, net_arch=[32, 32]), seed=0, **kw)
    model.learn(300)
    extractors = [m for m in model.policy.modules() if isinstance(m, StateFlareExtractor)]
    assert extractors and all(e.features_dim == 8 for e in extractors)  # 2 positions + 3 offsets of 2


@pytest.mark.dmc
@pytest.mark.parametrize("extractor", PIXEL_KWARGS)
def test_pixel_extractor_trains_sac_on_dmc_pixels(extractor) -> None:
    env = make_dmc_env("cartpole", "swingup", size=32, frame_stack=3, action_repeat=8, seed=0)
    model = SAC(
        "CnnPolicy",
        env,
        policy_kwargs=PIXEL_KWARGS[extractor](n_frames=3, **TINY),
        seed=0,
        buffer_size=300,
        batch_size=16,
        learning_starts=150,
    )
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.learn(200)
    assert changed(before, model)


@pytest.mark.parametrize("extractor", [*PIXEL_KWARGS, "state_flare"])
@pytest.mark.parametrize("algo", ["SAC", "DQN", "PPO"])
def test_save_load_reproduces_predictions(tmp_path, algo, extractor) -> None:
    cls, action_type, kw = ALGOS[algo]
    if extractor == "state_flare":
        env = make_moving_dot_env(frame_stack=4, seed=0, obs_type="position", action_type=action_type)
        policy, pkw = "MlpPolicy", state_flare_kwargs(n_frames=4, net_arch=[32, 32])
    else:
        env = make_moving_dot_env(frame_stack=3, seed=0, size=20, action_type=action_type)
        policy, pkw = "CnnPolicy", PIXEL_KWARGS[extractor](n_frames=3, **TINY)
    model = cls(policy, env, policy_kwargs=pkw, seed=0, **kw)
    model.learn(150)
    model.save(tmp_path / "model.zip")
    loaded = cls.load(tmp_path / "model.zip", env=env)
    obs = np.stack([env.observation_space.sample() for _ in range(8)])
    a, _ = model.predict(obs, deterministic=True)
    b, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_array_equal(a, b)
    kinds = {type(m).__name__ for m in loaded.policy.modules() if m.__class__.__name__.endswith("Extractor")}
    assert kinds == {type(m).__name__ for m in model.policy.modules() if m.__class__.__name__.endswith("Extractor")}
