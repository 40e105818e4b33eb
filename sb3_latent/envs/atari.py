"""Atari 2600 games through the Arcade Learning Environment (``ale-py``, which ships the ROMs), for SB3.

The stack, innermost first: ``ale_py.AtariEnv`` (grayscale screen, every frame, no sticky actions by
default) → SB3 ``Monitor`` (true game scores) → SB3's ``NoopResetEnv`` (up to 30 no-ops at reset) →
SB3's ``MaxAndSkipEnv`` (frame skip 4, max over the last two frames) → SB3's ``EpisodicLifeEnv`` (a lost
life ends the episode; training only) → SB3's ``FireResetEnv`` (preset ``"sb3"`` only) →
:class:`Resize84` (84x84, area interpolation, channel-first ``(1, 84, 84)`` uint8) → SB3's
``ClipRewardEnv`` (sign of the reward; training only) → :class:`~sb3_latent.envs.FrameStack` (4 frames,
``(4, 84, 84)``, oldest first; at reset every slot holds the first frame).

Presets (:data:`ATARI_PRESETS`):

- ``"der"``: data-efficient Rainbow (van Hasselt et al. 2019) as run by the LeVER paper's code
  (lili-chen/SEER, built on Kaixhin/Rainbow): no sticky actions, up to 30 no-op starts, frame skip 4 with
  max-pooling, a lost life is terminal during training, rewards clipped to [-1, 1] during training, 4
  stacked 84x84 grayscale frames, 108K frames (27K agent steps) per episode at most, no FIRE at reset.
  LeVER's Appendix H (Table 5) uses the same environment: its "action repeat 1" counts agent steps of
  this env (whose frame skip is 4), and its differences from DER are on the agent side (500K steps and a
  buffer as large instead of 100K steps; no prioritized replay in its code; see ``Rainbow`` presets).
  The ``"lever"`` preset is therefore the same environment; the benchmark uses ``"der"``.
- ``"sb3"``: SB3's ``AtariWrapper`` defaults (as ``"der"``, plus FIRE at reset for the games that need it).

Differences from Kaixhin's env (for anyone comparing numbers): the reset stack holds copies of the
first frame, not zeros; after a lost life the stack restarts from the new frame (Kaixhin keeps it);
resizing is area interpolation (Kaixhin: bilinear). Evaluation envs (``training=False``) report the
unclipped score and play until the game is over, as the paper's evaluation does.
"""

from __future__ import annotations

import difflib
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.atari_wrappers import (
    ClipRewardEnv,
    EpisodicLifeEnv,
    FireResetEnv,
    MaxAndSkipEnv,
    NoopResetEnv,
)
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from sb3_latent.envs.dmc import FrameStack

#: every ROM ale-py 0.12.1 ships (snake_case ROM ids; checked against ``ale_py.roms.get_all_rom_ids()`` by the tests),
#: listed so that registering the gymnasium ids does not import ale-py
ATARI_GAMES: tuple[str, ...] = (
    "adventure",
    "air_raid",
    "alien",
    "amidar",
    "assault",
    "asterix",
    "asteroids",
    "atlantis2",
    "atlantis",
    "backgammon",
    "bank_heist",
    "basic_math",
    "battle_zone",
    "beam_rider",
    "berzerk",
    "blackjack",
    "bowling",
    "boxing",
    "breakout",
    "carnival",
    "casino",
    "centipede",
    "chopper_command",
    "combat",
    "crazy_climber",
    "crossbow",
    "darkchambers",
    "defender",
    "demon_attack",
    "donkey_kong",
    "double_dunk",
    "earthworld",
    "elevator_action",
    "enduro",
    "entombed",
    "et",
    "fishing_derby",
    "flag_capture",
    "freeway",
    "frogger",
    "frostbite",
    "galaxian",
    "gopher",
    "gravitar",
    "hangman",
    "haunted_house",
    "hero",
    "human_cannonball",
    "ice_hockey",
    "jamesbond",
    "journey_escape",
    "joust",
    "kaboom",
    "kangaroo",
    "keystone_kapers",
    "king_kong",
    "klax",
    "koolaid",
    "krull",
    "kung_fu_master",
    "laser_gates",
    "lost_luggage",
    "mario_bros",
    "maze_craze",
    "miniature_golf",
    "montezuma_revenge",
    "mr_do",
    "ms_pacman",
    "name_this_game",
    "othello",
    "pacman",
    "phoenix",
    "pitfall2",
    "pitfall",
    "pong",
    "pooyan",
    "private_eye",
    "qbert",
    "riverraid",
    "road_runner",
    "robotank",
    "seaquest",
    "sir_lancelot",
    "skiing",
    "solaris",
    "space_invaders",
    "space_war",
    "star_gunner",
    "superman",
    "surround",
    "tennis",
    "tetris",
    "tic_tac_toe_3d",
    "time_pilot",
    "trondead",
    "turmoil",
    "tutankham",
    "up_n_down",
    "venture",
    "video_checkers",
    "video_chess",
    "video_cube",
    "video_pinball",
    "warlords",
    "wizard_of_wor",
    "word_zapper",
    "yars_revenge",
    "zaxxon",
)
#: the eight games of the LeVER paper (Table 1, Figures 3-4), as gym-id names
LEVER_GAMES: tuple[str, ...] = (
    "Alien",
    "Amidar",
    "BankHeist",
    "CrazyClimber",
    "Krull",
    "PrivateEye",
    "Qbert",
    "Seaquest",
)

_BASE = dict(
    noop_max=30,
    frame_skip=4,
    episodic_life=True,
    clip_reward=True,
    fire_reset=False,
    repeat_action_probability=0.0,
    max_frames=108_000,
    size=84,
    frame_stack=4,
)
#: environment settings per preset (module docstring); any of them can be overridden by a keyword
ATARI_PRESETS: dict[str, dict[str, Any]] = {
    "der": dict(_BASE),
    "lever": dict(_BASE),
    "sb3": {**_BASE, "fire_reset": True},
}


def game_name(rom_id: str) -> str:
    """``"bank_heist"`` → ``"BankHeist"`` (the name in gym ids)."""
    return "".join(part.capitalize() for part in rom_id.split("_"))


def rom_id(game: str) -> str:
    """The ale-py ROM id of ``game`` (``"BankHeist"``, ``"bank_heist"``, ``"ALE/BankHeist-v5"``, ...).

    :raises ValueError: naming close matches, for an unknown game
    """
    name = game.split("/")[-1].split("-")[0]
    by_name = {game_name(r).lower(): r for r in ATARI_GAMES}
    key = name.replace("_", "").lower()
    if key in by_name:
        return by_name[key]
    close = difflib.get_close_matches(
        game_name(name) if "_" in name else name, [game_name(r) for r in ATARI_GAMES], n=3
    )
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"Unknown Atari game {game!r}.{hint} Known games: the ROMs of ale-py, e.g. 'Pong', 'BankHeist'")


def atari_env_id(game: str) -> str:
    """The gymnasium id of a game: ``sb3_latent/<Game>-atari-v0``."""
    return f"sb3_latent/{game_name(rom_id(game))}-atari-v0"


def _area_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Area interpolation along one axis: output pixel ``i`` averages the input interval
    ``[i * n_in / n_out, (i + 1) * n_in / n_out)``, partial pixels weighted by their overlap. Returned
    sparse: input indices ``(n_out, m)`` and weights ``(n_out, m)`` (``m`` pixels overlap at most)."""
    edges = np.arange(n_out + 1) * n_in / n_out
    lo, hi = edges[:-1, None], edges[1:, None]
    j = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, j + 1) - np.maximum(lo, j), 0.0, None)
    weights = overlap / overlap.sum(axis=1, keepdims=True)
    m = int((weights > 0).sum(axis=1).max())
    idx = np.argsort(weights <= 0, axis=1, kind="stable")[:, :m]
    return idx, np.take_along_axis(weights, idx, axis=1).astype(np.float32)


class Resize84(gym.ObservationWrapper):
    """A grayscale screen ``(H, W)`` → ``(1, size, size)`` uint8 by area interpolation (a few gathers and
    weighted sums; no OpenCV needed).

    :param env: an env with ``(H, W)`` uint8 observations
    :param size: side of the output frame
    """

    def __init__(self, env: gym.Env, size: int = 84) -> None:
        super().__init__(env)
        space = env.observation_space
        assert isinstance(space, spaces.Box) and len(space.shape) == 2, space
        self._rows, self._cols = _area_weights(space.shape[0], size), _area_weights(space.shape[1], size)
        self.observation_space = spaces.Box(0, 255, (1, size, size), np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        (ri, rw), (ci, cw) = self._rows, self._cols
        x = np.einsum("ijk,ij->ik", observation[ri].astype(np.float32), rw)  # (size, W)
        out = np.einsum("ijk,jk->ij", x[:, ci], cw)  # (size, size)
        return np.clip(np.rint(out), 0, 255).astype(np.uint8)[None]


class _ClipReward(ClipRewardEnv):
    """SB3's ``ClipRewardEnv`` (sign of the reward) keeping the raw reward in ``info["raw_reward"]``."""

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info["raw_reward"] = float(reward)
        return obs, self.reward(float(reward)), terminated, truncated, info


def _settings(preset: str, overrides: dict[str, Any]) -> dict[str, Any]:
    if preset not in ATARI_PRESETS:
        raise ValueError(f"Unknown Atari preset {preset!r}; expected one of {sorted(ATARI_PRESETS)}")
    unknown = set(overrides) - set(ATARI_PRESETS[preset])
    if unknown:
        raise ValueError(f"Unknown Atari env settings {sorted(unknown)}; expected some of {sorted(_BASE)}")
    s = {**ATARI_PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    for key in ("frame_skip", "frame_stack", "size"):
        if isinstance(s[key], bool) or not isinstance(s[key], (int, np.integer)) or s[key] < 1:
            raise ValueError(f"{key} must be an integer >= 1, got {s[key]!r}")
    return s


def _ale(game: str, s: dict[str, Any], render_mode: str | None = None) -> gym.Env:
    try:
        from ale_py import AtariEnv
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError("Atari needs ale-py: pip install 'sb3-latent[atari]' (ale-py ships the ROMs)") from e
    return AtariEnv(
        game=rom_id(game),
        obs_type="grayscale",
        frameskip=1,
        repeat_action_probability=float(s["repeat_action_probability"]),
        full_action_space=False,
        max_num_frames_per_episode=int(s["max_frames"]),
        render_mode=render_mode,
    )


def _wrap(env: gym.Env, s: dict[str, Any], training: bool) -> gym.Env:
    if s["noop_max"]:
        env = NoopResetEnv(env, noop_max=int(s["noop_max"]))
    if s["frame_skip"] > 1:
        env = MaxAndSkipEnv(env, skip=int(s["frame_skip"]))
    if training and s["episodic_life"]:
        env = EpisodicLifeEnv(env)
    if s["fire_reset"] and "FIRE" in env.unwrapped.get_action_meanings():  # type: ignore[attr-defined]
        env = FireResetEnv(env)
    env = Resize84(env, int(s["size"]))
    if training and s["clip_reward"]:
        env = _ClipReward(env)
    return FrameStack(env, int(s["frame_stack"])) if s["frame_stack"] > 1 else env


def make_atari_gym_env(
    game: str, *, preset: str = "der", training: bool = True, render_mode: str | None = None, **settings: Any
) -> gym.Env:
    """One Atari game as a gymnasium env (what the gym id ``sb3_latent/<Game>-atari-v0`` makes).

    :param game: e.g. ``"Pong"``, ``"BankHeist"`` (or ``"bank_heist"``)
    :param preset: ``"der"`` (default), ``"lever"`` or ``"sb3"`` (:data:`ATARI_PRESETS`)
    :param training: lost lives end episodes and rewards are clipped (as the preset says); False: the
        unclipped score of whole games (evaluation)
    :param render_mode: ``"rgb_array"`` or None
    :param settings: overrides of the preset (``noop_max``, ``frame_skip``, ``episodic_life``, ``clip_reward``,
        ``fire_reset``, ``repeat_action_probability``, ``max_frames``, ``size``, ``frame_stack``)
    """
    s = _settings(preset, settings)
    return _wrap(_ale(game, s, render_mode), s, training)


def make_atari_env(
    game: str,
    *,
    preset: str = "der",
    training: bool = True,
    n_envs: int = 1,
    seed: int | None = None,
    vec_env_cls: type[DummyVecEnv] | type[SubprocVecEnv] = DummyVecEnv,
    monitor_dir: str | None = None,
    **settings: Any,
) -> VecEnv:
    """An Atari game as an SB3 VecEnv of ``(4, 84, 84)`` uint8 stacks (oldest frame first)::

        env = make_atari_env("Pong", n_envs=1, seed=0)                       # training: clipped, lives
        eval_env = make_atari_env("Pong", training=False, seed=100)          # evaluation: scores

    SB3's ``Monitor`` sits under the Atari wrappers, so ``info["episode"]`` (and ``evaluate_policy``) report the
    true, unclipped score of whole games in both modes.

    :param game: e.g. ``"Pong"``, ``"BankHeist"``
    :param preset: ``"der"`` (data-efficient Rainbow / LeVER, default), ``"lever"`` (the same env) or ``"sb3"``
    :param training: lost life = episode end and clipped rewards (per the preset); False for evaluation
    :param n_envs: number of parallel environments
    :param seed: seed of the first env (env ``i`` gets ``seed + i``)
    :param vec_env_cls: ``DummyVecEnv`` or ``SubprocVecEnv``
    :param monitor_dir: where ``Monitor`` writes episode logs (None: in memory only)
    :param settings: overrides of the preset (see :func:`make_atari_gym_env`)
    """
    s = _settings(preset, settings)
    rom_id(game)

    def env_fn() -> gym.Env:
        return _ale(game, s)

    def wrapper(env: gym.Env) -> gym.Env:
        return _wrap(env, s, training)

    return make_vec_env(
        env_fn, n_envs=n_envs, seed=seed, vec_env_cls=vec_env_cls, monitor_dir=monitor_dir, wrapper_class=wrapper
    )


def register_atari_envs() -> None:
    """Register ``sb3_latent/<Game>-atari-v0`` for every ROM of ale-py (no import of ale-py)."""
    for rom in ATARI_GAMES:
        env_id = f"sb3_latent/{game_name(rom)}-atari-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point="sb3_latent.envs.atari:make_atari_gym_env", kwargs={"game": rom})
