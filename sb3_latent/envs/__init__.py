"""Environments: DeepMind Control from pixels or state, and a small synthetic pixel env.

Importing this package registers the gymnasium ids ``sb3_latent/<domain>-<task>-pixels-v0``,
``...-state-v0`` and ``...-position-v0`` for every DMC suite task, ``sb3_latent/<Game>-atari-v0`` for every
Atari game of ale-py, and ``sb3_latent/MovingDot-v0``.
"""

import gymnasium as gym

from sb3_latent.envs.atari import (
    ATARI_GAMES,
    ATARI_PRESETS,
    LEVER_GAMES,
    atari_env_id,
    make_atari_env,
    make_atari_gym_env,
    register_atari_envs,
)
from sb3_latent.envs.dmc import (
    DEFAULT_ACTION_REPEAT,
    DEFAULT_CAMERA,
    DEFAULT_FRAME_STACK,
    DMC_TASKS,
    FAST_RENDER_FLAGS,
    ActionRepeat,
    FrameStack,
    PixelObservation,
    StateObservation,
    check_task,
    dmc_env_id,
    make_dmc_env,
    make_dmc_gym_env,
    register_dmc_envs,
)
from sb3_latent.envs.synthetic import MovingDotEnv, make_moving_dot_env

register_dmc_envs()
register_atari_envs()
if "sb3_latent/MovingDot-v0" not in gym.registry:
    gym.register("sb3_latent/MovingDot-v0", entry_point="sb3_latent.envs.synthetic:MovingDotEnv")

__all__ = [
    "ATARI_GAMES",
    "ATARI_PRESETS",
    "DEFAULT_ACTION_REPEAT",
    "DEFAULT_CAMERA",
    "DEFAULT_FRAME_STACK",
    "DMC_TASKS",
    "FAST_RENDER_FLAGS",
    "LEVER_GAMES",
    "ActionRepeat",
    "FrameStack",
    "MovingDotEnv",
    "PixelObservation",
    "StateObservation",
    "atari_env_id",
    "check_task",
    "dmc_env_id",
    "make_atari_env",
    "make_atari_gym_env",
    "make_dmc_env",
    "make_dmc_gym_env",
    "make_moving_dot_env",
    "register_atari_envs",
    "register_dmc_envs",
]
