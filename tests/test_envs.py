"""DMC envs: what a user gets from make_dmc_env and the registered gymnasium ids."""

import gymnasium as gym
import numpy as np
import pytest

import sb3_latent  # noqa: F401  (registers the ids)
from sb3_latent.envs import (
    DMC_TASKS,
    ActionRepeat,
    FrameStack,
    MovingDotEnv,
    dmc_env_id,
    make_dmc_env,
    make_dmc_gym_env,
)

pytestmark = pytest.mark.dmc


def physics_of(env: gym.Env):
    return env.unwrapped._env.physics


def count_renders(env: gym.Env, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    physics = physics_of(env)
    calls = [0]
    original = physics.render

    def counting_render(*args, **kwargs):
        calls[0] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(physics, "render", counting_render)
    return calls


def test_the_task_list_is_dm_control_suite() -> None:
    from dm_control import suite

    assert tuple(suite.ALL_TASKS) == DMC_TASKS


def test_ids_are_registered_for_every_task_and_variant() -> None:
    for domain, task in DMC_TASKS:
        for variant in ("pixels", "state", "position"):
            assert dmc_env_id(domain, task, variant) in gym.registry
    assert "sb3_latent/cartpole-swingup-pixels-v0" in gym.registry


def test_gym_make_pixels_gives_stacked_uint8_channel_first_frames() -> None:
    env = gym.make("sb3_latent/cartpole-swingup-pixels-v0", size=32)
    obs, _ = env.reset(seed=0)
    assert obs.shape == (9, 32, 32) and obs.dtype == np.uint8  # default stack of 3 RGB frames
    assert env.observation_space.contains(obs)
    # at reset every slot of the stack holds the first frame
    assert np.array_equal(obs[:3], obs[6:]) and np.array_equal(obs[3:6], obs[6:])
    obs, reward, _terminated, _truncated, _ = env.step(env.action_space.sample())
    assert obs.shape == (9, 32, 32) and isinstance(reward, float)
    env.close()


def test_make_dmc_env_returns_a_vec_env() -> None:
    env = make_dmc_env("cartpole", "swingup", size=32, frame_stack=2, n_envs=2, seed=0)
    obs = env.reset()
    assert obs.shape == (2, 6, 32, 32) and obs.dtype == np.uint8
    obs, rewards, _dones, _infos = env.step(np.zeros((2, 1), dtype=np.float32))
    assert obs.shape == (2, 6, 32, 32) and rewards.shape == (2,)
    env.close()


def test_pixels_are_rendered_once_per_agent_step(monkeypatch) -> None:
    env = make_dmc_gym_env("cartpole", "swingup", size=32, action_repeat=4, frame_stack=3)
    calls = count_renders(env, monkeypatch)
    env.reset(seed=0)
    assert calls[0] == 1
    for _ in range(5):
        env.step(env.action_space.sample())
    assert calls[0] == 6  # 1 at reset + 1 per agent step, not 4 per agent step


def test_state_envs_never_render(monkeypatch) -> None:
    env = make_dmc_gym_env("cartpole", "swingup", pixels=False, action_repeat=4)
    calls = count_renders(env, monkeypatch)
    env.reset(seed=0)
    for _ in range(3):
        env.step(env.action_space.sample())
    assert calls[0] == 0


def test_episode_length_and_reward_follow_the_action_repeat() -> None:
    env = make_dmc_gym_env("cartpole", "swingup", pixels=False, action_repeat=8)
    env.reset(seed=0)
    steps, truncated, terminated = 0, False, False
    while not (truncated or terminated):
        _, reward, terminated, truncated, _ = env.step(np.zeros(1, dtype=np.float32))
        assert 0.0 <= reward <= 8.0  # DMC rewards are in [0, 1] per control step, summed over 8
        steps += 1
    assert steps == 125 and truncated and not terminated  # 1000 control steps / 8


def test_action_repeat_sums_rewards_over_the_repeats() -> None:
    inner = MovingDotEnv(obs_type="state", episode_length=100)
    env = ActionRepeat(MovingDotEnv(obs_type="state", episode_length=100), 3)
    inner.reset(seed=1)
    env.reset(seed=1)
    action = np.array([0.5, -0.25], dtype=np.float32)
    expected = sum(inner.step(action)[1] for _ in range(3))
    _, reward, *_ = env.step(action)
    assert reward == pytest.approx(expected)


def test_frame_stack_drops_the_oldest_frame() -> None:
    env = FrameStack(MovingDotEnv(obs_type="position"), 3)
    first, _ = env.reset(seed=0)
    assert np.array_equal(first[0:2], first[4:6])
    nxt, *_ = env.step(np.zeros(2, dtype=np.float32))
    assert np.array_equal(nxt[0:4], first[2:6]) and not np.array_equal(nxt[4:6], first[4:6])


def test_default_camera_is_2_for_quadruped_else_0() -> None:
    assert make_dmc_gym_env("quadruped", "walk", size=32).unwrapped.render_kwargs["camera_id"] == 2
    assert make_dmc_gym_env("cheetah", "run", size=32).unwrapped.render_kwargs["camera_id"] == 0
    assert make_dmc_gym_env("cheetah", "run", size=32, camera_id=1).unwrapped.render_kwargs["camera_id"] == 1


@pytest.mark.parametrize(
    "domain,task,full,position",
    [
        ("cartpole", "swingup", 5, 3),
        ("walker", "walk", 24, 15),
        ("reacher", "easy", 6, 4),
        ("quadruped", "walk", 78, 53),
    ],  # 16 hinge angles + 12 actuator states + upright + 24 force/torque
)
def test_position_only_removes_every_velocity(domain, task, full, position) -> None:
    state = make_dmc_gym_env(domain, task, pixels=False, frame_stack=1)
    pos = make_dmc_gym_env(domain, task, pixels=False, position_only=True, frame_stack=1)
    assert state.observation_space.shape == (full,)
    assert pos.observation_space.shape == (position,)
    assert pos.reset(seed=0)[0].shape == (position,)


def test_position_only_state_is_stacked_four_deep_by_default() -> None:
    env = make_dmc_gym_env("cartpole", "swingup", pixels=False, position_only=True)
    assert env.observation_space.shape == (12,)


def test_fast_render_changes_the_images_but_not_their_shape() -> None:
    default = make_dmc_gym_env("cheetah", "run", size=48, frame_stack=1)
    fast = make_dmc_gym_env("cheetah", "run", size=48, frame_stack=1, fast_render=True)
    a, _ = default.reset(seed=0)
    b, _ = fast.reset(seed=0)
    assert a.shape == b.shape == (3, 48, 48)
    assert not np.array_equal(a, b)


def test_same_seed_same_episode_different_seed_different_episode() -> None:
    def first_obs(seed: int) -> np.ndarray:
        return make_dmc_gym_env("reacher", "easy", pixels=False, frame_stack=1).reset(seed=seed)[0]

    assert np.array_equal(first_obs(3), first_obs(3))
    assert not np.array_equal(first_obs(3), first_obs(4))


def test_bad_arguments_get_clear_errors_before_any_env_is_built() -> None:
    with pytest.raises(ValueError, match=r"Unknown DMC domain 'cartpol'.*Did you mean 'cartpole'"):
        make_dmc_env("cartpol", "swingup")
    with pytest.raises(ValueError, match=r"Unknown task 'swing_up'.*Did you mean 'swingup'"):
        make_dmc_env("cartpole", "swing_up")
    with pytest.raises(ValueError, match="size must be an integer >= 32"):
        make_dmc_env("cartpole", "swingup", size=16)
    with pytest.raises(ValueError, match="action_repeat must be an integer >= 1"):
        make_dmc_env("cartpole", "swingup", action_repeat=0)
    with pytest.raises(ValueError, match="frame_stack must be an integer >= 1"):
        make_dmc_env("cartpole", "swingup", frame_stack=0)
    with pytest.raises(ValueError, match="position_only=True applies to state"):
        make_dmc_env("cartpole", "swingup", position_only=True)
    with pytest.raises(ValueError, match="variant must be one of"):
        dmc_env_id("cartpole", "swingup", "rgb")


@pytest.mark.parametrize("variant", ["pixels", "state", "position"])
@pytest.mark.parametrize(("domain", "task"), [("cartpole", "swingup"), ("walker", "walk"), ("ball_in_cup", "catch")])
def test_sb3_and_gymnasium_check_env_pass_with_the_render_check(domain, task, variant) -> None:
    """Both checkers, render check on (gymnasium's through gym.make, so that it tries every advertised render mode;
    both reset the env after closing it)."""
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    kwargs = {"size": 36} if variant == "pixels" else {}
    env = gym.make(dmc_env_id(domain, task, variant), **kwargs)
    assert env.metadata["render_modes"] == ["rgb_array"]  # what make accepts
    assert env.action_space.dtype == np.float32
    gym_check_env(env, skip_render_check=False)
    sb3_check_env(gym.make(dmc_env_id(domain, task, variant), **kwargs), skip_render_check=False)
    for mode in env.metadata["render_modes"]:
        gym.make(dmc_env_id(domain, task, variant), render_mode=mode, **kwargs).close()


def test_a_closed_env_renders_and_steps_again() -> None:
    env = make_dmc_gym_env("cartpole", "balance", size=32, frame_stack=1)
    first, _ = env.reset(seed=0)
    env.close()
    env.close()  # twice is fine
    again, _ = env.reset(seed=0)
    np.testing.assert_array_equal(first, again)
    assert env.step(env.action_space.sample())[0].shape == (3, 32, 32) and env.render().shape == (32, 32, 3)
