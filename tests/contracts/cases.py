"""What the contract suite runs: every algorithm the registry lists (built-ins and installed plugins, CURL among
them), Flare on RAD, and rl_zoo3's stock SB3 / sb3-contrib algorithms with every registered extractor, each with
small settings (tiny frames and nets, few steps).

A registered algorithm, extractor or stock algorithm without an entry in the tables below gets a case that fails,
saying what to add: a new algorithm is covered the moment it is registered.
"""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv

from sb3_latent import make_moving_dot_env, registry
from sb3_latent.extractors.base import PixelExtractor

ROOT = Path(__file__).resolve().parents[2]
CURL_SOURCE = ROOT / "plugins" / "sb3-latent-curl"


def install_curl() -> None:
    """pip-install plugins/sb3-latent-curl (as tests/test_plugins.py does: from its own pyproject, into a folder
    put on ``sys.path``), so that CURL reaches the registry through its entry point like any third-party plugin."""
    if "curl" in registry.names("algorithms"):
        return
    site = Path(tempfile.mkdtemp(prefix="sb3-latent-contracts-site-"))
    source = site.parent / f"{site.name}-src"
    shutil.copytree(CURL_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    shutil.rmtree(source, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(f"could not install the CURL plugin for the contract suite: {proc.stderr[-2000:]}")
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    assert "curl" in registry.names("algorithms")


install_curl()

#: MovingDot frames: small, fast, and every pixel algorithm here takes them
SIZE = 20
EPISODE = 20  # steps per episode: several episodes in a short run
PIXEL_TINY = dict(features_dim=8, encoder_kwargs={"num_filters": 4})


def dot_env(
    n_envs: int = 1,
    vec_env_cls: type[VecEnv] = DummyVecEnv,
    frame_stack: int = 3,
    size: int = SIZE,
    seed: int = 0,
    **kw: Any,
) -> VecEnv:
    return make_moving_dot_env(
        n_envs=n_envs,
        frame_stack=frame_stack,
        seed=seed,
        size=size,
        episode_length=EPISODE,
        vec_env_cls=vec_env_cls,
        **kw,
    )  # type: ignore[arg-type]


@dataclass
class Case:
    """One algorithm with small settings.

    :param algo: the class (None: a registered name without an entry; the test fails with ``missing``)
    :param policy: policy name
    :param kwargs: constructor arguments (small)
    :param env_kwargs: for :func:`dot_env`
    :param steps: a short ``learn`` that makes a few updates
    :param recurrent: ``predict`` keeps a state (SLAC, Dreamer)
    :param ours: an sb3-latent algorithm (a plugin's included): the load checks and the non-finite check apply
    :param missing: why there is no case
    """

    algo: type[BaseAlgorithm] | None
    policy: str = "CnnPolicy"
    kwargs: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    steps: int = 50
    recurrent: bool = False
    ours: bool = True
    missing: str = ""

    def env(self, n_envs: int = 1, vec_env_cls: type[VecEnv] = DummyVecEnv, **kw: Any) -> VecEnv:
        return dot_env(n_envs, vec_env_cls, **{**self.env_kwargs, **kw})

    def make(self, env: Any = None, **kw: Any) -> BaseAlgorithm:
        if self.algo is None:
            pytest.fail(self.missing)
        kwargs = {"seed": 0, **_fresh(self.kwargs), **kw}
        return self.algo(self.policy, env if env is not None else self.env(), **kwargs)


def _fresh(d: Any) -> Any:
    """A deep copy of nested dicts/lists (SB3 writes into the policy_kwargs it is given)."""
    if isinstance(d, dict):
        return {k: _fresh(v) for k, v in d.items()}
    return [_fresh(v) for v in d] if isinstance(d, list) else d


OFF = dict(buffer_size=400, batch_size=8, learning_starts=30)
PIXEL_PK = dict(net_arch=[16], features_extractor_kwargs=PIXEL_TINY)

#: small settings of every registered algorithm, by registry name (plus ``rad_flare``: RAD with Flare)
OURS: dict[str, Callable[[type[BaseAlgorithm]], Case]] = {
    "rad": lambda cls: Case(cls, kwargs=dict(**OFF, policy_kwargs=PIXEL_PK)),
    "curl": lambda cls: Case(cls, kwargs=dict(**OFF, augment_kwargs={"size": 16}, policy_kwargs=PIXEL_PK)),
    "drqv2": lambda cls: Case(cls, kwargs=dict(**OFF, train_freq=1, policy_kwargs=PIXEL_PK)),
    "slac": lambda cls: Case(
        cls,
        kwargs=dict(
            buffer_size=600,
            learning_starts=30,
            batch_size=8,
            model_batch_size=4,
            initial_model_updates=2,
            policy_kwargs=dict(sequence_length=3, conv_width=4, feature_dim=16, z1_dim=4, z2_dim=8, hidden=[16]),
        ),
        env_kwargs=dict(frame_stack=1, size=16),
        recurrent=True,
    ),
    "rainbow": lambda cls: Case(
        cls,
        kwargs=dict(
            **OFF,
            n_steps=3,
            target_update_interval=20,
            hidden=16,
            policy_kwargs=dict(features_extractor_kwargs=dict(arch=[(4, 3, 2), (8, 3, 2)])),
        ),
        env_kwargs=dict(action_type="discrete"),
    ),
    "dreamer": lambda cls: Case(
        cls,
        kwargs=dict(
            buffer_size=600,
            learning_starts=30,
            batch_size=2,
            batch_length=6,
            train_ratio=6,
            policy_kwargs=dict(size=dict(deter=16, stoch=4, classes=4, units=16, layers=1, depth=2)),
        ),
        env_kwargs=dict(frame_stack=1, size=16),
        recurrent=True,
    ),
}


def our_cases() -> dict[str, Case]:
    """A case per registered algorithm (from ``sb3_latent.registry``, not a hand list), plus RAD with Flare."""
    from sb3_latent import flare_kwargs

    cases = {}
    for name in registry.names("algorithms"):
        cls = registry.load("algorithms", name)
        if name in OURS:
            cases[name] = OURS[name](cls)
        else:
            cases[name] = Case(
                None,
                missing=f"the registered algorithm {name!r} ({cls.__module__}.{cls.__name__}) has "
                "no entry in tests/contracts/cases.py OURS: add small settings for it",
            )
    if "rad" in cases:
        rad = cases["rad"]
        cases["rad_flare"] = Case(
            rad.algo, kwargs={**OFF, "policy_kwargs": flare_kwargs(n_frames=3, net_arch=[16], **PIXEL_TINY)}
        )
    return cases


# --- stock SB3 / sb3-contrib --------------------------------------------------------------------------------------

STOCK_OFF = dict(buffer_size=400, batch_size=8, learning_starts=30)
#: small settings of rl_zoo3's stock algorithms: (policy, discrete actions, kwargs, takes a features extractor)
STOCK: dict[str, tuple[str, bool, dict[str, Any], bool]] = {
    "sac": ("CnnPolicy", False, STOCK_OFF, True),
    "td3": ("CnnPolicy", False, STOCK_OFF, True),
    "ddpg": ("CnnPolicy", False, STOCK_OFF, True),
    "tqc": ("CnnPolicy", False, dict(**STOCK_OFF, policy_kwargs=dict(n_quantiles=5)), True),
    "crossq": ("MlpPolicy", False, dict(**STOCK_OFF), True),
    "dqn": ("CnnPolicy", True, STOCK_OFF, True),
    "qrdqn": ("CnnPolicy", True, dict(**STOCK_OFF, policy_kwargs=dict(n_quantiles=5)), True),
    "ppo": ("CnnPolicy", False, dict(n_steps=16, batch_size=8, n_epochs=1), True),
    "a2c": ("CnnPolicy", False, dict(n_steps=8), True),
    "trpo": ("CnnPolicy", False, dict(n_steps=16, batch_size=8, n_critic_updates=1, cg_max_steps=2), True),
    "ppo_lstm": (
        "CnnLstmPolicy",
        False,
        dict(n_steps=16, batch_size=8, n_epochs=1, policy_kwargs=dict(lstm_hidden_size=8)),
        True,
    ),
    # ARS's policies are linear or MLP maps of the raw observation: no features extractor to plug into
    "ars": ("MlpPolicy", False, dict(n_delta=2, n_eval_episodes=1), False),
}
#: algorithms attach_lever supports
LEVER = ("sac", "td3", "dqn", "qrdqn")
#: small settings of every registered extractor, by registry name
EXTRACTOR_KWARGS: dict[str, dict[str, Any]] = {
    "flare": dict(n_frames=3, **PIXEL_TINY),
    "latent_stack": dict(n_frames=3, **PIXEL_TINY),
    "pixel_flow": dict(n_frames=3, **PIXEL_TINY),
    "state_flare": dict(n_frames=3),
}


def stock_algorithms() -> dict[str, type[BaseAlgorithm]]:
    """rl_zoo3's stock algorithms (those the launcher runs), ours left out."""
    from rl_zoo3.utils import ALGOS

    ours = set(registry.names("algorithms"))
    return {k: v for k, v in ALGOS.items() if k not in ours}


def stock_case(name: str, extractor: str | None) -> tuple[Case, str | None]:
    """A stock algorithm with a registered extractor (None: its default one); the second item is why the pair
    does not apply (None if it does)."""
    algos = stock_algorithms()
    if name not in STOCK:
        return Case(
            None,
            missing=f"the stock algorithm {name!r} ({algos[name].__name__}) has no entry in "
            "tests/contracts/cases.py STOCK: add small settings for it",
        ), None
    policy, discrete, kwargs, takes_extractor = STOCK[name]
    kwargs = _fresh(kwargs)
    env_kwargs: dict[str, Any] = {"action_type": "discrete" if discrete else "continuous"}
    if extractor is None:
        if policy == "MlpPolicy":
            env_kwargs.update(obs_type="position")
        else:  # SB3's NatureCNN needs frames of 36 pixels or more
            kwargs.setdefault("policy_kwargs", {})["features_extractor_kwargs"] = dict(features_dim=8)
            env_kwargs.update(size=36)
        return Case(algos[name], policy, kwargs, env_kwargs, ours=False), None
    if not takes_extractor:
        return Case(algos[name], ours=False), f"{algos[name].__name__}'s policies take no features extractor"
    if extractor not in EXTRACTOR_KWARGS:
        return Case(
            None,
            missing=f"the registered extractor {extractor!r} has no entry in tests/contracts/cases.py "
            "EXTRACTOR_KWARGS: add small settings for it",
        ), None
    cls = registry.load("extractors", extractor)
    pixels = issubclass(cls, PixelExtractor)
    if not pixels:
        env_kwargs.update(obs_type="position")
    if pixels and policy == "MlpPolicy":
        policy = "CnnPolicy" if "CnnPolicy" in algos[name].policy_aliases else policy
    pk = kwargs.setdefault("policy_kwargs", {})
    pk.update(features_extractor_class=cls, features_extractor_kwargs=dict(EXTRACTOR_KWARGS[extractor]))
    pk.setdefault("net_arch", [16] if name != "ppo_lstm" else dict(pi=[16], vf=[16]))
    return Case(algos[name], policy, kwargs, env_kwargs, ours=False), None


# --- helpers ------------------------------------------------------------------------------------------------------


class NaNReward(gym.Wrapper):
    """Rewards become NaN after ``after`` steps."""

    def __init__(self, env: gym.Env, after: int = 35) -> None:
        super().__init__(env)
        self.after, self.t = after, 0

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.t += 1
        return obs, float("nan") if self.t > self.after else reward, terminated, truncated, info
