"""rl-zoo style hyperparameter files: one YAML per algorithm, keyed by env id (``default`` as fallback).

An entry holds rl-zoo's keys (``n_timesteps``, ``policy``, ``policy_kwargs``, ``env_wrapper``,
``frame_stack``, ``n_envs``, ``normalize``, ``callback``, ``replay_buffer_class``,
``replay_buffer_kwargs``, ``env_kwargs``, ``noise_type``, ``noise_std``, ``monitor_kwargs``), our keys
(``extractor`` with ``extractor_kwargs``, ``augment`` with ``augment_kwargs``, ``lever``) and
constructor arguments of the algorithm. Anything else, a name that is not registered or importable,
or a value of the wrong type is a ``ValueError``/``TypeError`` naming the key and the file, raised
before any env or model is built. Classes are named by registry name (``extractor: flare``,
``replay_buffer_class: lever``) or dotted path (``my_pkg.module:MyClass`` or ``my_pkg.module.MyClass``);
nothing in a file is ever ``eval``-ed.
"""

from __future__ import annotations

import importlib
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

from sb3_latent import registry

#: rl-zoo's own keys: what the launcher does with them, not constructor arguments.
ZOO_KEYS = {"n_timesteps", "policy", "policy_kwargs", "env_wrapper", "frame_stack", "n_envs", "normalize",
            "callback", "env_kwargs", "noise_type", "noise_std", "monitor_kwargs"}
#: sb3-latent's keys.
OWN_KEYS = {"extractor", "extractor_kwargs", "augment", "augment_kwargs", "lever"}
#: ``policy_kwargs`` entries that name a class.
_CLASS_KWARGS = {"features_extractor_class": "extractors", "optimizer_class": None, "activation_fn": None}
_ACTIVATIONS = {"relu": "torch.nn:ReLU", "tanh": "torch.nn:Tanh", "elu": "torch.nn:ELU", "gelu": "torch.nn:GELU",
                "leaky_relu": "torch.nn:LeakyReLU", "silu": "torch.nn:SiLU"}
_OPTIMIZERS = {"adam": "torch.optim:Adam", "adamw": "torch.optim:AdamW", "sgd": "torch.optim:SGD",
               "rmsprop": "torch.optim:RMSprop"}


def read_yaml_mapping(path: str | Path, what: str, expectation: str = "must be a mapping") -> dict[str, Any]:
    """The YAML mapping in ``path``; a clear ``ValueError`` (naming ``what`` and the file) when the file is
    missing or holds something else."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{what} {str(path)!r} does not exist")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{what} {str(path)!r} {expectation}, got {type(data).__name__}")
    return data


def load_zoo_config(path: str | Path, env_id: str) -> dict[str, Any]:
    """The entry for ``env_id`` in the YAML file ``path`` (or its ``default`` entry).

    :param path: the YAML file
    :param env_id: gymnasium id
    :raises ValueError: for a missing file, a file that is not a mapping, or an env id it lacks
    """
    path = Path(path)
    data = read_yaml_mapping(path, "zoo config", "must map env ids to hyperparameters")
    entry = data.get(env_id, data.get("default"))
    if entry is None:
        raise ValueError(f"{env_id!r} is not in {str(path)!r} (and it has no 'default' entry); it has: "
                         f"{', '.join(sorted(map(str, data)))}")
    if not isinstance(entry, dict):
        raise ValueError(f"{str(path)!r}: the entry for {env_id!r} must be a mapping of hyperparameters, "
                         f"got {type(entry).__name__}")
    return dict(entry)


def import_object(path: str, what: str = "object") -> Any:
    """Import ``package.module:Name`` or ``package.module.Name`` (no ``eval``).

    :param path: dotted path
    :param what: what it should be, for the error message
    :raises ValueError: when it cannot be imported
    """
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ValueError(f"{path!r} is not a dotted path to a {what} (expected 'package.module.Name')")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"cannot import module {module_name!r} for {what} {path!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"module {module_name!r} has no {attr!r} ({what} {path!r})")
        obj = getattr(obj, part)
    return obj


def resolve_name(value: str, kind: str | None, what: str) -> Any:
    """A registry name of ``kind`` or a dotted path → the object.

    :param value: ``"flare"`` or ``"my_pkg.module:MyExtractor"``
    :param kind: registry kind (``"extractors"``, ``"buffers"``, ...) or None for dotted paths only
    :param what: what it is, for error messages
    """
    if kind is not None and "." not in value and ":" not in value:
        return registry.load(kind, value)
    return import_object(value, what)


def _type_ok(value: Any, annotation: Any) -> bool:  # noqa: C901
    """Whether a YAML value fits a constructor annotation (unknown annotations accept anything)."""
    if annotation is inspect.Parameter.empty or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, a) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if origin in (tuple, list) or annotation in (tuple, list):
        return isinstance(value, list | tuple)
    if origin is type:  # classes come as names (resolved separately) or classes
        return isinstance(value, str | type)
    if origin is Callable or annotation is Callable:  # schedules: a number or rl-zoo's "lin_0.001"
        return isinstance(value, int | float | str) and not isinstance(value, bool)
    return True


def _init_params(algo: type[BaseAlgorithm]) -> dict[str, inspect.Parameter]:
    """Constructor parameters; a subclass that passes ``**kwargs`` on gets its bases' too."""
    out: dict[str, inspect.Parameter] = {}
    for cls in algo.__mro__:
        if "__init__" not in vars(cls):
            continue
        params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
        out.update({k: p for k, p in params.items() if p.kind is not p.VAR_KEYWORD and k not in out})
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            break
    return out


def _hints(algo: type[BaseAlgorithm]) -> dict[str, Any]:
    """Constructor annotations, resolved one by one (an annotation that does not resolve is skipped)."""
    out = {}
    for name, param in _init_params(algo).items():
        owner = next((c for c in algo.__mro__ if "__init__" in vars(c)
                      and name in inspect.signature(c.__init__).parameters), algo)  # type: ignore[misc]
        module = inspect.getmodule(owner)

        def one() -> None: ...

        one.__annotations__ = {name: param.annotation}
        try:
            out.update(typing.get_type_hints(one, globalns=vars(module) if module else {}))
        except Exception:  # noqa: BLE001, S112 - left unchecked
            continue
    return out


@dataclass
class ZooEntry:
    """A checked entry: what the launcher needs, split by who consumes it.

    :param algo: the algorithm class
    :param env_id: gymnasium id
    :param source: the file it came from (for messages)
    :param raw: the entry as written (what is saved as the config used)
    :param hyperparams: constructor arguments, classes resolved (``policy`` included)
    :param n_timesteps: training budget in agent steps (0 when absent)
    :param n_envs: parallel envs
    :param frame_stack: rl-zoo's ``VecFrameStack`` size, or None
    :param normalize: ``VecNormalize`` arguments, or None
    :param env_kwargs: passed to the env constructor
    :param env_wrapper: rl-zoo ``env_wrapper`` spec (dotted paths), or None
    :param callback: rl-zoo ``callback`` spec (dotted paths), or None
    :param lever: LeVER settings for :func:`sb3_latent.attach_lever` (stock algorithms), or None
    """

    algo: type[BaseAlgorithm]
    env_id: str
    source: str
    raw: dict[str, Any]
    hyperparams: dict[str, Any] = field(default_factory=dict)
    n_timesteps: int = 0
    n_envs: int = 1
    frame_stack: int | None = None
    normalize: dict[str, Any] | None = None
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    env_wrapper: Any = None
    callback: Any = None
    lever: dict[str, Any] | None = None

    def zoo_hyperparams(self) -> dict[str, Any]:
        """The entry in the form rl_zoo3's ``ExperimentManager`` consumes: every value an object, no
        string left for it to ``eval``."""
        out = dict(self.hyperparams)
        if isinstance(out.get("policy"), type):  # rl_zoo3 imports dotted policy names itself
            out["policy"] = f"{out['policy'].__module__}.{out['policy'].__qualname__}"
        out["n_timesteps"] = self.n_timesteps
        out["n_envs"] = self.n_envs
        out["env_kwargs"] = dict(self.env_kwargs)
        for key in ("frame_stack", "env_wrapper", "callback"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        if self.normalize is not None:
            out["normalize"] = dict(self.normalize)
        for key in ("noise_type", "noise_std", "monitor_kwargs"):
            if key in self.raw:
                out[key] = self.raw[key]
        return out


def _check_dotted_spec(key: str, value: Any, source: str) -> None:
    """rl-zoo's ``env_wrapper``/``callback`` forms: a dotted name, a ``{name: kwargs}`` mapping, or a
    list of those; every name must import."""
    items = value if isinstance(value, list) else [value]
    for item in items:
        if isinstance(item, str):
            name = item
        elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), dict | None):
            name = next(iter(item))
        else:
            raise TypeError(f"{source}: {key!r} must be a dotted class name, a {{name: kwargs}} mapping or a "
                            f"list of them, got {item!r}")
        try:
            import_object(name.replace(":", "."), key)
        except ValueError as e:
            raise ValueError(f"{source}: {key!r}: {e}") from e


def check_entry(algo: type[BaseAlgorithm], env_id: str, entry: dict[str, Any], source: str = "<config>") -> ZooEntry:
    """Check a zoo entry against ``algo`` and resolve every name in it, before anything is built.

    :param algo: algorithm class (ours, a plugin's, SB3's or sb3-contrib's)
    :param env_id: gymnasium id (for messages)
    :param entry: the entry (see :func:`load_zoo_config`)
    :param source: file name, for error messages
    :raises ValueError: unknown keys, unknown or unimportable names
    :raises TypeError: values of the wrong type
    """
    where = f"{source} [{env_id}]"
    params = _init_params(algo)
    allowed = set(params) - {"self", "env", "_init_setup_model"}
    unknown = sorted(set(entry) - ZOO_KEYS - OWN_KEYS - allowed)
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))} for {algo.__name__} "
                         f"under {env_id!r}; expected rl-zoo keys {sorted(ZOO_KEYS)}, ours {sorted(OWN_KEYS)} "
                         f"or arguments of {algo.__name__}")

    def need(key: str, ok: bool, expected: str) -> None:
        if not ok:
            raise TypeError(f"{where}: {key!r} must be {expected}, got {entry[key]!r} ({type(entry[key]).__name__})")

    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    for key in ("policy_kwargs", "replay_buffer_kwargs", "env_kwargs", "extractor_kwargs", "augment_kwargs",
                "monitor_kwargs"):
        if key in entry and entry[key] is not None:
            need(key, isinstance(entry[key], dict), "a mapping (strings are never evaluated)")
    for key in ("n_envs", "frame_stack"):
        if key in entry:
            need(key, is_int(entry[key]) and entry[key] >= 1, "an integer >= 1")
    if "n_timesteps" in entry:
        v = entry["n_timesteps"]
        need("n_timesteps", isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 and float(v) == int(v),
             "a non-negative whole number")
    if "normalize" in entry:
        need("normalize", isinstance(entry["normalize"], bool | dict), "true/false or a mapping of VecNormalize "
             "arguments (strings are never evaluated)")
    if "policy" in entry:
        need("policy", isinstance(entry["policy"], str), "a policy name ('CnnPolicy') or a dotted path")
    if "noise_std" in entry:
        need("noise_std", isinstance(entry["noise_std"], int | float), "a number")
    if "noise_type" in entry:
        need("noise_type", entry["noise_type"] in ("normal", "ornstein-uhlenbeck"), "'normal' or 'ornstein-uhlenbeck'")
    hints = _hints(algo)
    for key in sorted(set(entry) & allowed - ZOO_KEYS - {"replay_buffer_class", "policy_kwargs"}):
        if key in hints and not _type_ok(entry[key], hints[key]):
            need(key, False, f"of type {getattr(hints[key], '__name__', None) or hints[key]}")

    out = ZooEntry(algo=algo, env_id=env_id, source=source, raw=dict(entry))
    config = dict(entry)
    out.n_timesteps = int(config.pop("n_timesteps", 0))
    out.n_envs = int(config.pop("n_envs", 1))
    out.frame_stack = config.pop("frame_stack", None)
    out.env_kwargs = dict(config.pop("env_kwargs", None) or {})
    norm = config.pop("normalize", None)
    out.normalize = (dict(norm) if isinstance(norm, dict) else {}) if norm else None
    for key in ("env_wrapper", "callback"):
        if key in config:
            _check_dotted_spec(key, config[key], where)
            setattr(out, key, config.pop(key))
    for key in ("noise_type", "noise_std", "monitor_kwargs"):
        config.pop(key, None)

    def resolve(key: str, value: str, kind: str | None, what: str) -> Any:
        try:
            return resolve_name(value, kind, what)
        except (ValueError, ImportError) as e:
            raise ValueError(f"{where}: {key!r}: {e}") from e

    policy = config.pop("policy", "CnnPolicy")
    aliases = getattr(algo, "policy_aliases", {})
    if "." in policy or ":" in policy:
        policy = resolve("policy", policy, None, "policy class")
    elif policy not in aliases:
        raise ValueError(f"{where}: 'policy': {algo.__name__} has no policy {policy!r}; it has {sorted(aliases)} "
                         "(or give a dotted path to a policy class)")
    policy_kwargs = dict(config.pop("policy_kwargs", None) or {})
    for key, kind in _CLASS_KWARGS.items():
        value = policy_kwargs.get(key)
        if isinstance(value, str):
            table = _ACTIVATIONS if key == "activation_fn" else _OPTIMIZERS if key == "optimizer_class" else {}
            policy_kwargs[key] = resolve(f"policy_kwargs.{key}", table.get(value.lower(), value), kind, key)
    extractor = config.pop("extractor", None)
    extractor_kwargs = config.pop("extractor_kwargs", None)
    if extractor is not None:
        need("extractor", isinstance(extractor, str), "a registry name or a dotted path")
        policy_kwargs["features_extractor_class"] = resolve("extractor", extractor, "extractors", "extractor")
    if extractor_kwargs is not None:
        policy_kwargs["features_extractor_kwargs"] = dict(extractor_kwargs)
    hyper: dict[str, Any] = {"policy": policy}
    if policy_kwargs:
        hyper["policy_kwargs"] = policy_kwargs

    for key in ("augment", "augment_kwargs"):
        if key in config and key not in params:
            raise ValueError(f"{where}: {key!r}: {algo.__name__} does not augment its batches; use an algorithm "
                             "that does (rad, drqv2, or a plugin's)")
    augment = config.get("augment")
    if isinstance(augment, str):
        resolve("augment", augment, "augmentations", "augmentation")

    buffer_class = config.pop("replay_buffer_class", None)
    if buffer_class is not None:
        need("replay_buffer_class", isinstance(buffer_class, str), "a registry name or a dotted path")
        hyper["replay_buffer_class"] = resolve("replay_buffer_class", buffer_class, "buffers", "replay buffer")
    if "replay_buffer_kwargs" in config:
        hyper["replay_buffer_kwargs"] = dict(config.pop("replay_buffer_kwargs") or {})
    lever = config.pop("lever", None)
    if lever is not None and lever is not False:
        need("lever", lever is True or isinstance(lever, dict), "true or a mapping of LeVERReplayBuffer arguments")
        lever = {} if lever is True else dict(lever)
        if "replay_buffer_class" not in params:
            raise ValueError(f"{where}: 'lever': {algo.__name__} has no replay buffer")
        from sb3_latent.lever import LeVERReplayBuffer

        bad = sorted(set(lever) - set(inspect.signature(LeVERReplayBuffer.__init__).parameters))
        if bad:
            raise ValueError(f"{where}: 'lever': unknown LeVER setting(s) {', '.join(map(repr, bad))}")
        if hyper.get("replay_buffer_class") not in (None, LeVERReplayBuffer):
            raise ValueError(f"{where}: 'lever' and 'replay_buffer_class' {buffer_class!r} exclude each other")
        if getattr(algo, "lever_native", False):
            hyper["replay_buffer_class"] = LeVERReplayBuffer
            hyper["replay_buffer_kwargs"] = {**hyper.get("replay_buffer_kwargs", {}), **lever}
        else:
            out.lever = lever
    hyper.update(config)
    if isinstance(hyper.get("train_freq"), list):
        hyper["train_freq"] = tuple(hyper["train_freq"])
    for key in ("learning_rate",):  # rl-zoo schedules: 'lin_0.001'
        v = hyper.get(key)
        if isinstance(v, str):
            kind_, _, init = v.partition("_")
            try:
                ok = kind_ == "lin" and math.isfinite(float(init))
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{where}: {key!r} must be a number or 'lin_<initial value>', got {v!r}")
    out.hyperparams = hyper
    return out


def make_env(entry: ZooEntry, n_envs: int | None = None, seed: int | None = None, **make_kwargs: Any) -> VecEnv:
    """The vectorised env an entry describes (env kwargs, wrapper, rl-zoo frame stacking), without
    normalisation or logging; what :func:`build_from_config` and ``sb3-latent enjoy`` use.

    :param entry: a checked entry
    :param n_envs: parallel envs (default: the entry's)
    :param seed: seed of the envs
    :param make_kwargs: more arguments of SB3's ``make_vec_env``
    """
    from rl_zoo3.utils import get_wrapper_class

    if entry.env_id not in gym.registry:
        import sb3_latent.envs  # noqa: F401  (registers our ids)
    wrapper = get_wrapper_class({"env_wrapper": entry.env_wrapper}) if entry.env_wrapper else None
    env = make_vec_env(entry.env_id, n_envs=n_envs or entry.n_envs, seed=seed, env_kwargs=entry.env_kwargs,
                       wrapper_class=wrapper, **make_kwargs)
    if entry.frame_stack is not None:
        env = VecFrameStack(env, entry.frame_stack)
    return env


def build_from_config(
    algo: type[BaseAlgorithm],
    env_id: str,
    config: dict[str, Any],
    *,
    source: str = "<config>",
    seed: int | None = None,
    n_envs: int | None = None,
    **overrides: Any,
) -> tuple[BaseAlgorithm, int]:
    """Build ``algo`` on ``env_id`` from a zoo entry; return the model and its ``n_timesteps``.

    :param algo: algorithm class, e.g. :class:`sb3_latent.RAD`
    :param env_id: gymnasium id, e.g. ``sb3_latent/pendulum-swingup-pixels-v0``
    :param config: the entry (see :func:`load_zoo_config`)
    :param source: file name, for error messages
    :param seed: seed of the env and the algorithm
    :param n_envs: parallel envs (default: the entry's ``n_envs`` or 1)
    :param overrides: entries that replace the config's (``env_kwargs`` merge)
    """
    merged = {**config, **{k: v for k, v in overrides.items() if k != "env_kwargs"}}
    if "env_kwargs" in overrides:
        merged["env_kwargs"] = {**(config.get("env_kwargs") or {}), **overrides["env_kwargs"]}
    entry = check_entry(algo, env_id, merged, source)
    env = make_env(entry, n_envs=n_envs, seed=seed)
    model = algo(env=env, seed=seed, **entry.hyperparams)
    if entry.lever is not None:
        from sb3_latent.lever import attach_lever

        attach_lever(model, **entry.lever)
    return model, entry.n_timesteps
