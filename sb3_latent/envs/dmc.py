"""DeepMind Control Suite tasks for SB3, from pixels or from (position-only) state.

The stack, innermost first: ``dm_control.suite`` task → shimmy's ``DmControlCompatibilityV0`` →
:class:`ActionRepeat` → :class:`PixelObservation` (renders **once per agent step**, after the
repeat) or :class:`StateObservation` → :class:`FrameStack` → SB3 ``Monitor`` → VecEnv.
"""

from __future__ import annotations

import difflib
import os
import re
from collections import deque
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from sb3_latent.common.checks import check_int

os.environ.setdefault("MUJOCO_GL", "egl")

#: Every task of ``dm_control.suite`` 1.0.50 (checked against ``suite.ALL_TASKS`` by the tests);
#: listed here so that registering the gymnasium ids does not import MuJoCo.
DMC_TASKS: tuple[tuple[str, str], ...] = (
    ("acrobot", "swingup"),
    ("acrobot", "swingup_sparse"),
    ("ball_in_cup", "catch"),
    ("cartpole", "balance"),
    ("cartpole", "balance_sparse"),
    ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"),
    ("cartpole", "two_poles"),
    ("cartpole", "three_poles"),
    ("cheetah", "run"),
    ("dog", "stand"),
    ("dog", "walk"),
    ("dog", "trot"),
    ("dog", "run"),
    ("dog", "fetch"),
    ("finger", "spin"),
    ("finger", "turn_easy"),
    ("finger", "turn_hard"),
    ("fish", "upright"),
    ("fish", "swim"),
    ("hopper", "stand"),
    ("hopper", "hop"),
    ("humanoid", "stand"),
    ("humanoid", "walk"),
    ("humanoid", "run"),
    ("humanoid", "run_pure_state"),
    ("humanoid_CMU", "stand"),
    ("humanoid_CMU", "walk"),
    ("humanoid_CMU", "run"),
    ("lqr", "lqr_2_1"),
    ("lqr", "lqr_6_2"),
    ("manipulator", "bring_ball"),
    ("manipulator", "bring_peg"),
    ("manipulator", "insert_ball"),
    ("manipulator", "insert_peg"),
    ("pendulum", "swingup"),
    ("point_mass", "easy"),
    ("point_mass", "hard"),
    ("quadruped", "walk"),
    ("quadruped", "run"),
    ("quadruped", "escape"),
    ("quadruped", "fetch"),
    ("reacher", "easy"),
    ("reacher", "hard"),
    ("stacker", "stack_2"),
    ("stacker", "stack_4"),
    ("swimmer", "swimmer6"),
    ("swimmer", "swimmer15"),
    ("walker", "stand"),
    ("walker", "walk"),
    ("walker", "run"),
)

#: Camera per domain (Flare Table A.4 and DrQ-v2: camera 2 for quadruped, else 0).
DEFAULT_CAMERA: dict[str, int] = {"quadruped": 2}
#: Action repeat per domain: PlaNet/CURL/RAD values for their six tasks, Flare Table A.4 otherwise
#: (2 for walker and hopper, 4 for the rest).
DEFAULT_ACTION_REPEAT: dict[str, int] = {
    "cartpole": 8,
    "finger": 2,
    "walker": 2,
    "hopper": 2,
    "cheetah": 4,
    "reacher": 4,
    "ball_in_cup": 4,
}
#: Frames stacked by default: 3 frames of pixels (RAD/Flare), 4 positions for position-only state
#: (Flare Table A.5), none for full state.
DEFAULT_FRAME_STACK: dict[str, int] = {"pixels": 3, "position": 4, "state": 1}
#: Scene effects switched off by ``fast_render=True``. They change the images.
FAST_RENDER_FLAGS: dict[str, bool] = {"shadow": False, "reflection": False, "skybox": False}
#: Observation entries that carry temporal information and are removed for position-only state
#: (Flare, Section 3): every ``*vel*`` entry and the inertial sensors (gyro/accelerometer/velocimeter).
_TEMPORAL_KEY = re.compile(r"vel|^imu$|^inertial_sensors$")
MIN_SIZE = 32


def check_task(domain: str, task: str) -> None:
    """Raise a ValueError naming close matches when ``domain``/``task`` is not a DMC suite task."""
    if (domain, task) in DMC_TASKS:
        return
    domains = sorted({d for d, _ in DMC_TASKS})
    if domain not in domains:
        close = difflib.get_close_matches(domain, domains, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"Unknown DMC domain {domain!r}.{hint} Known domains: {', '.join(domains)}")
    tasks = [t for d, t in DMC_TASKS if d == domain]
    close = difflib.get_close_matches(task, tasks, n=3)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"Unknown task {task!r} for DMC domain {domain!r}.{hint} Its tasks: {', '.join(tasks)}")


class ActionRepeat(gym.Wrapper):
    """Repeat each action ``k`` times, summing the rewards; stops early when the episode ends.

    :param env: the environment
    :param k: number of repeats (>= 1)
    """

    def __init__(self, env: gym.Env, k: int) -> None:
        k = check_int("action_repeat", k, 1, whole_floats=True)
        super().__init__(env)
        self.k = k
        if "render_fps" in env.metadata:  # one frame per agent step
            self.metadata = {**env.metadata, "render_fps": env.metadata["render_fps"] / self.k}

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        total = 0.0
        for _ in range(self.k):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class PixelObservation(gym.ObservationWrapper):
    """Replace the observation by a rendered ``(3, size, size)`` uint8 frame (channel-first).

    Placed outside :class:`ActionRepeat`, it renders once per agent step.
    """

    def __init__(self, env: gym.Env, size: int) -> None:
        super().__init__(env)
        self.observation_space = spaces.Box(0, 255, (3, size, size), np.uint8)

    def observation(self, observation: Any) -> np.ndarray:
        frame = self.env.render()
        return np.ascontiguousarray(np.asarray(frame, dtype=np.uint8).transpose(2, 0, 1))


class StateObservation(gym.ObservationWrapper):
    """Flatten a DMC observation dict into one float32 vector (keys in the task's order).

    :param position_only: drop every entry that carries velocity (Flare, Section 3); for the
        quadruped's ``egocentric_state`` (hinge positions, hinge velocities, actuator state) its
        velocity block is cut out.
    """

    def __init__(self, env: gym.Env, position_only: bool = False) -> None:
        super().__init__(env)
        assert isinstance(env.observation_space, spaces.Dict)
        physics = env.unwrapped._env.physics  # type: ignore[attr-defined]
        n_hinge = int(np.sum(physics.model.jnt_type == 3))  # mjJNT_HINGE
        self._parts: list[tuple[str, slice | None]] = []
        size = 0
        for key, space in env.observation_space.spaces.items():
            n = int(np.prod(space.shape or ()))
            if position_only and _TEMPORAL_KEY.search(key):
                continue
            if position_only and key == "egocentric_state":
                keep = np.r_[0:n_hinge, 2 * n_hinge : n]
                self._parts.append((key, keep))
                size += len(keep)
                continue
            self._parts.append((key, None))
            size += n
        self.observation_space = spaces.Box(-np.inf, np.inf, (size,), np.float32)

    def observation(self, observation: dict[str, Any]) -> np.ndarray:
        out = []
        for key, keep in self._parts:
            v = np.asarray(observation[key], dtype=np.float32).ravel()
            out.append(v if keep is None else v[keep])
        return np.concatenate(out)


class FrameStack(gym.Wrapper):
    """Stack the last ``k`` observations, oldest first: along channels for images ``(k*C, H, W)``,
    along the last axis for vectors. At reset every slot holds the first observation (as in the
    RAD, Flare and DrQ-v2 code), so no stack ever mixes two episodes.

    :param env: the environment
    :param k: number of observations to stack (>= 1)
    """

    def __init__(self, env: gym.Env, k: int) -> None:
        k = check_int("frame_stack", k, 1, whole_floats=True)
        super().__init__(env)
        self.k = k
        space = env.observation_space
        assert isinstance(space, spaces.Box)
        self._axis = 0 if len(space.shape) == 3 else -1
        low = np.concatenate([space.low] * self.k, axis=self._axis)
        high = np.concatenate([space.high] * self.k, axis=self._axis)
        self.observation_space = spaces.Box(low, high, dtype=space.dtype)
        self._frames: deque[np.ndarray] = deque(maxlen=self.k)

    def _stack(self) -> np.ndarray:
        return np.concatenate(list(self._frames), axis=self._axis)

    def reset(self, **kwargs: Any) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._frames.extend([obs] * self.k)
        return self._stack(), info

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._frames.append(obs)
        return self._stack(), reward, terminated, truncated, info


def _dmc_base(domain: str, task: str, size: int, camera_id: int, fast_render: bool, seed: int | None) -> gym.Env:
    try:
        from dm_control import suite
        from shimmy.dm_control_compatibility import DmControlCompatibilityV0
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f"DeepMind Control envs need {e.name!r}, an optional dependency of sb3-latent: "
            "pip install 'sb3-latent[dmc]'",
            name=e.name,
        ) from e

    class _SeededDMC(DmControlCompatibilityV0):
        """shimmy's wrapper, with ``reset(seed=...)`` reseeding the task's own random state, float32 actions, the
        render modes that work here (``rgb_array``) and a ``close`` that frees the rendering contexts only."""

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # an instance's own metadata (shimmy writes render_fps into its class attribute): what make accepts
            self.metadata = {"render_modes": ["rgb_array"], "render_fps": 1.0 / self._env.control_timestep()}
            low, high = self.action_space.low, self.action_space.high  # type: ignore[has-type]
            self.action_space = spaces.Box(low.astype(np.float32), high.astype(np.float32), dtype=np.float32)

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
            if seed is not None:
                self._env.task.random.seed(seed)
            return super().reset(seed=seed, options=options)

        def close(self) -> None:
            """Free the rendering contexts (GL resources); the simulation stays usable, as gymnasium's and SB3's
            checkers expect (they reset an env after closing it); rendering again makes new contexts."""
            physics = self._env.physics
            with physics._contexts_lock:
                if physics._contexts:
                    physics._free_rendering_contexts()

    render_kwargs: dict[str, Any] = {"height": size, "width": size, "camera_id": camera_id}
    if fast_render:
        render_kwargs["render_flag_overrides"] = dict(FAST_RENDER_FLAGS)
    dm_env = suite.load(domain, task, task_kwargs={"random": seed})
    return _SeededDMC(dm_env, render_mode="rgb_array", render_kwargs=render_kwargs)


def _resolve(
    domain: str,
    task: str,
    pixels: bool,
    size: int,
    camera_id: int | None,
    action_repeat: int | None,
    frame_stack: int | None,
    position_only: bool,
) -> tuple[int, int, int]:
    check_task(domain, task)
    check_int("size", size, MIN_SIZE, whole_floats=True, unit="pixels")
    if pixels and position_only:
        raise ValueError("position_only=True applies to state observations; pass pixels=False with it")
    camera = DEFAULT_CAMERA.get(domain, 0) if camera_id is None else camera_id
    repeat = DEFAULT_ACTION_REPEAT.get(domain, 4) if action_repeat is None else action_repeat
    repeat = check_int("action_repeat", repeat, 1, whole_floats=True)
    kind = "pixels" if pixels else ("position" if position_only else "state")
    stack = DEFAULT_FRAME_STACK[kind] if frame_stack is None else frame_stack
    return camera, repeat, check_int("frame_stack", stack, 1, whole_floats=True)


def make_dmc_gym_env(
    domain: str,
    task: str,
    *,
    pixels: bool = True,
    size: int = 84,
    camera_id: int | None = None,
    action_repeat: int | None = None,
    frame_stack: int | None = None,
    position_only: bool = False,
    fast_render: bool = False,
    seed: int | None = None,
    render_mode: str | None = "rgb_array",
) -> gym.Env:
    """One DMC task as a gymnasium env (what the ``sb3_latent/<domain>-<task>-*-v0`` ids build).

    Arguments as in :func:`make_dmc_env`. ``env.render()`` returns the camera view at ``size``
    (``render_mode`` may only be ``"rgb_array"`` or None, which mean the same here).
    """
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"DMC envs render rgb arrays only; got render_mode={render_mode!r}")
    camera, repeat, stack = _resolve(domain, task, pixels, size, camera_id, action_repeat, frame_stack, position_only)
    env: gym.Env = _dmc_base(domain, task, size, camera, fast_render, seed)
    env = ActionRepeat(env, repeat)
    env = PixelObservation(env, size) if pixels else StateObservation(env, position_only=position_only)
    if stack > 1:
        env = FrameStack(env, stack)
    return env


def make_dmc_env(
    domain: str,
    task: str,
    *,
    pixels: bool = True,
    size: int = 84,
    camera_id: int | None = None,
    action_repeat: int | None = None,
    frame_stack: int | None = None,
    position_only: bool = False,
    fast_render: bool = False,
    n_envs: int = 1,
    seed: int | None = None,
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] = DummyVecEnv,
    monitor_dir: str | None = None,
) -> VecEnv:
    """A DeepMind Control Suite task as an SB3 VecEnv.

    :param domain: DMC domain, e.g. ``"cartpole"``
    :param task: DMC task, e.g. ``"swingup"``
    :param pixels: observe rendered ``(3 * frame_stack, size, size)`` uint8 frames; else the state vector
    :param size: frame side in pixels (>= 32); also the size of ``render()``
    :param camera_id: camera; default 2 for quadruped, else 0 (Flare, DrQ-v2)
    :param action_repeat: physics control steps per agent step; default per domain
        (:data:`DEFAULT_ACTION_REPEAT`). Pixels are rendered once per agent step, after the repeat.
    :param frame_stack: observations stacked (oldest first); default 3 for pixels, 4 for position-only
        state, 1 for full state
    :param position_only: state without any velocity entry (Flare, Section 3); needs ``pixels=False``
    :param fast_render: turn off shadows, reflections and the skybox (faster rendering on CPU, measured in
        ``benchmarks/results/envs.md``; the images look different, so do not mix with results rendered the default way)
    :param n_envs: number of parallel environments
    :param seed: seed of the first env (env ``i`` gets ``seed + i``)
    :param vec_env_cls: ``DummyVecEnv`` or ``SubprocVecEnv``
    :param monitor_dir: where SB3's ``Monitor`` writes episode logs (None: kept in memory only)
    """
    _resolve(domain, task, pixels, size, camera_id, action_repeat, frame_stack, position_only)
    kwargs = dict(
        pixels=pixels,
        size=size,
        camera_id=camera_id,
        action_repeat=action_repeat,
        frame_stack=frame_stack,
        position_only=position_only,
        fast_render=fast_render,
    )

    def env_fn(**extra: Any) -> gym.Env:
        return make_dmc_gym_env(domain, task, **kwargs, **extra)  # type: ignore[arg-type]

    return make_vec_env(env_fn, n_envs=n_envs, seed=seed, vec_env_cls=vec_env_cls, monitor_dir=monitor_dir)


def dmc_env_id(domain: str, task: str, variant: str = "pixels") -> str:
    """The gymnasium id of a DMC task: ``sb3_latent/<domain>-<task>-<pixels|state|position>-v0``."""
    if variant not in DEFAULT_FRAME_STACK:
        raise ValueError(f"variant must be one of {sorted(DEFAULT_FRAME_STACK)}, got {variant!r}")
    return f"sb3_latent/{domain}-{task}-{variant}-v0"


def register_dmc_envs() -> None:
    """Register ``sb3_latent/<domain>-<task>-{pixels,state,position}-v0`` for every suite task."""
    for domain, task in DMC_TASKS:
        for variant in DEFAULT_FRAME_STACK:
            env_id = dmc_env_id(domain, task, variant)
            if env_id in gym.registry:
                continue
            gym.register(
                env_id,
                entry_point="sb3_latent.envs.dmc:make_dmc_gym_env",
                kwargs={
                    "domain": domain,
                    "task": task,
                    "pixels": variant == "pixels",
                    "position_only": variant == "position",
                },
            )
