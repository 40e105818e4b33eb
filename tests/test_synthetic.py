"""MovingDotEnv: a tiny pixel env in which only motion tells what to do."""

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.env_checker import check_env
from stable_baselines3.common.evaluation import evaluate_policy

from sb3_latent import MovingDotEnv, make_moving_dot_env, state_flare_kwargs


@pytest.mark.parametrize("obs_type", ["pixels", "position", "state"])
@pytest.mark.parametrize("action_type", ["continuous", "discrete"])
def test_passes_sb3_env_checker(obs_type, action_type) -> None:
    check_env(MovingDotEnv(obs_type=obs_type, action_type=action_type), warn=False)


def test_pixels_are_uint8_channel_first_and_show_the_dot() -> None:
    env = gym.make("sb3_latent/MovingDot-v0", size=24)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 24, 24) and obs.dtype == np.uint8
    assert (obs.max(axis=0) > 200).sum() == 16  # a 4x4 dot on a dark canvas
    assert env.render().shape == (24, 24, 3)


def test_reward_is_the_action_projected_on_the_hidden_velocity() -> None:
    env = MovingDotEnv(obs_type="state", episode_length=10)
    obs, _ = env.reset(seed=3)
    v = obs[2:] * env.speed[1]
    _, r, *_ = env.step(np.sign(v))
    assert r == pytest.approx(float(np.abs(v).sum()) / (2 * env.speed[1]), rel=1e-5)
    _, r, *_ = env.step(np.zeros(2))
    assert r == 0.0


def oracle_return(n_episodes: int = 20) -> tuple[float, float]:
    """Return of the best policy that knows the velocity, and of a constant action (one frame's best)."""
    env = MovingDotEnv(obs_type="state")
    best, constant = [], []
    for ep in range(n_episodes):
        for policy, out in ((lambda o: np.sign(o[2:]), best), (lambda o: np.array([1.0, 1.0]), constant)):
            obs, _ = env.reset(seed=ep)
            total, done = 0.0, False
            while not done:
                obs, r, term, trunc, _ = env.step(policy(obs))
                total += r
                done = term or trunc
            out.append(total)
    return float(np.mean(best)), float(np.mean(constant))


def test_knowing_the_motion_is_worth_a_lot_and_position_alone_is_worth_nothing() -> None:
    best, constant = oracle_return()
    assert best > 15.0  # 50 steps of ~0.4 (19.3 with these seeds)
    assert abs(constant) < 5.0


def test_sac_with_state_flare_reads_motion_from_stacked_positions() -> None:
    """Positions only, 3 stacked: state Flare hands SAC the offsets, SAC learns to follow the dot."""
    env = make_moving_dot_env(frame_stack=3, seed=0, obs_type="position")
    model = SAC(
        "MlpPolicy",
        env,
        policy_kwargs=state_flare_kwargs(n_frames=3, net_arch=[64, 64]),
        learning_starts=500,
        learning_rate=1e-3,
        seed=0,
    )
    model.learn(3000)
    mean, _ = evaluate_policy(
        model, make_moving_dot_env(frame_stack=3, seed=1, obs_type="position"), n_eval_episodes=10
    )
    best, _ = oracle_return()
    assert mean > 0.5 * best, f"learned {mean:.1f}, oracle {best:.1f}"


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="obs_type"):
        MovingDotEnv(obs_type="rgb")
    with pytest.raises(ValueError, match="action_type"):
        MovingDotEnv(action_type="multi")
    with pytest.raises(ValueError, match="speed"):
        MovingDotEnv(speed=(0.2, 0.1))
