"""A small, fast pixel env in which only motion tells what to do (for tests, docs and quick checks)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from sb3_latent.envs.dmc import FrameStack

#: Discrete actions: unit directions +x, -x, +y, -y.
_DIRECTIONS = np.array([[1, 0], [-1, 0], [0, 1], [0, -1]], dtype=np.float32)


class MovingDotEnv(gym.Env):
    """A dot drifts over a dark canvas with a velocity drawn at each reset and bounces off the walls.

    The reward is the action projected on the dot's velocity: ``a . v / (2 v_max)`` for continuous
    actions in ``[-1, 1]^2``, ``e_a . v / v_max`` for the four discrete directions. One frame shows
    where the dot is but not where it goes, so any single-frame policy earns 0 in expectation; a
    policy that reads motion from stacked frames (or latent flow) earns up to about 0.5-0.7 a step.

    :param size: canvas side in pixels
    :param obs_type: ``"pixels"`` (``(3, size, size)`` uint8, channel-first), ``"position"`` (x, y in
        [0, 1], the analogue of DMC position-only state) or ``"state"`` (position and velocity)
    :param action_type: ``"continuous"`` (Box(-1, 1, (2,))) or ``"discrete"`` (4 directions)
    :param episode_length: steps before the episode is truncated
    :param speed: range of the speed, in canvas widths per step
    :param dot: side of the dot in pixels
    :param render_mode: only ``"rgb_array"``
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012 - gymnasium's own attribute

    def __init__(
        self,
        size: int = 32,
        obs_type: str = "pixels",
        action_type: str = "continuous",
        episode_length: int = 50,
        speed: tuple[float, float] = (0.04, 0.1),
        dot: int = 4,
        render_mode: str | None = "rgb_array",
    ) -> None:
        if obs_type not in ("pixels", "position", "state"):
            raise ValueError(f"obs_type must be 'pixels', 'position' or 'state', got {obs_type!r}")
        if action_type not in ("continuous", "discrete"):
            raise ValueError(f"action_type must be 'continuous' or 'discrete', got {action_type!r}")
        if size < 8 or dot < 1 or dot >= size:
            raise ValueError(f"need size >= 8 and 1 <= dot < size, got size={size}, dot={dot}")
        if not 0 < speed[0] <= speed[1] < 0.5:
            raise ValueError(f"speed must be a range (low, high) with 0 < low <= high < 0.5, got {speed}")
        if render_mode not in (None, "rgb_array"):
            raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")
        self.size, self.obs_type, self.action_type = size, obs_type, action_type
        self.episode_length, self.speed, self.dot = episode_length, speed, dot
        self.render_mode = render_mode
        if obs_type == "pixels":
            self.observation_space: spaces.Space = spaces.Box(0, 255, (3, size, size), np.uint8)
        else:
            dim = 2 if obs_type == "position" else 4
            self.observation_space = spaces.Box(-1.0, 1.0, (dim,), np.float32)
        if action_type == "continuous":
            self.action_space: spaces.Space = spaces.Box(-1.0, 1.0, (2,), np.float32)
        else:
            self.action_space = spaces.Discrete(4)
        self._pos = np.zeros(2)
        self._vel = np.zeros(2)
        self._t = 0

    def _frame(self) -> np.ndarray:
        img = np.full((self.size, self.size, 3), (20, 24, 40), dtype=np.uint8)
        r, c = np.round(self._pos * (self.size - self.dot)).astype(int)
        img[r : r + self.dot, c : c + self.dot] = (250, 200, 60)
        return img

    def _obs(self) -> np.ndarray:
        if self.obs_type == "pixels":
            return np.ascontiguousarray(self._frame().transpose(2, 0, 1))
        if self.obs_type == "position":
            return self._pos.astype(np.float32)
        return np.concatenate([self._pos, self._vel / self.speed[1]]).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self._pos = self.np_random.uniform(0.2, 0.8, size=2)
        angle = self.np_random.uniform(0, 2 * np.pi)
        self._vel = self.np_random.uniform(*self.speed) * np.array([np.cos(angle), np.sin(angle)])
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self.action_type == "continuous":
            a = np.clip(np.asarray(action, dtype=np.float32).reshape(2), -1.0, 1.0)
            reward = float(a @ self._vel) / (2 * self.speed[1])
        else:
            reward = float(_DIRECTIONS[int(action)] @ self._vel) / self.speed[1]
        self._pos = self._pos + self._vel
        for i in range(2):  # bounce off the walls
            if self._pos[i] < 0.0 or self._pos[i] > 1.0:
                self._pos[i] = -self._pos[i] if self._pos[i] < 0.0 else 2.0 - self._pos[i]
                self._vel[i] = -self._vel[i]
        self._t += 1
        return self._obs(), reward, False, self._t >= self.episode_length, {}

    def render(self) -> np.ndarray:
        return self._frame()


def make_moving_dot_env(
    n_envs: int = 1,
    frame_stack: int = 3,
    seed: int | None = None,
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] = DummyVecEnv,
    **env_kwargs: Any,
) -> VecEnv:
    """:class:`MovingDotEnv` as an SB3 VecEnv with ``frame_stack`` observations stacked (oldest first).

    :param n_envs: number of envs
    :param frame_stack: observations per stack (channels for pixels, last axis for vectors)
    :param seed: seed of the first env
    :param vec_env_cls: VecEnv class
    :param env_kwargs: passed to :class:`MovingDotEnv`
    """

    def env_fn() -> gym.Env:
        env: gym.Env = MovingDotEnv(**env_kwargs)
        return FrameStack(env, frame_stack) if frame_stack > 1 else env

    return make_vec_env(env_fn, n_envs=n_envs, seed=seed, vec_env_cls=vec_env_cls)
