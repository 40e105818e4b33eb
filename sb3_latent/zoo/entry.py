"""A zoo entry: one algorithm's hyperparameters for one env, checked and resolved before anything is built.

An entry holds rl-zoo's keys (``n_timesteps``, ``policy``, ``policy_kwargs``, ``env_wrapper``,
``frame_stack``, ``n_envs``, ``normalize``, ``callback``, ``replay_buffer_class``,
``replay_buffer_kwargs``, ``env_kwargs``, ``noise_type``, ``noise_std``, ``monitor_kwargs``), our keys
(``extractor`` with ``extractor_kwargs``, ``augment`` with ``augment_kwargs``, ``lever``) and
constructor arguments of the algorithm. An unknown key (at the top or inside ``policy_kwargs``,
``env_kwargs``, ``extractor_kwargs``, ``augment_kwargs``, ``replay_buffer_kwargs``, ``lever``), a name that
is not registered or importable, or a value of the wrong type is a ``ValueError``/``TypeError`` naming the
file, the env id and the key. Classes are named by registry name (``extractor: flare``,
``replay_buffer_class: lever``) or dotted path (``my_pkg.module:MyClass`` or ``my_pkg.module.MyClass``);
nothing in a file is ever ``eval``-ed.
"""

from __future__ import annotations

import difflib
import inspect
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecEnv, VecFrameStack

from sb3_latent.zoo.config import import_object, resolve_name

#: rl-zoo's own keys: what the launcher does with them, not constructor arguments.
ZOO_KEYS = {
    "n_timesteps",
    "policy",
    "policy_kwargs",
    "env_wrapper",
    "frame_stack",
    "n_envs",
    "normalize",
    "callback",
    "env_kwargs",
    "noise_type",
    "noise_std",
    "monitor_kwargs",
}
#: sb3-latent's keys.
OWN_KEYS = {"extractor", "extractor_kwargs", "augment", "augment_kwargs", "lever"}
#: keys whose value must be a mapping
MAPPING_KEYS = (
    "policy_kwargs",
    "replay_buffer_kwargs",
    "env_kwargs",
    "extractor_kwargs",
    "augment_kwargs",
    "monitor_kwargs",
)
_ACTIVATIONS = {
    "relu": "torch.nn:ReLU",
    "tanh": "torch.nn:Tanh",
    "elu": "torch.nn:ELU",
    "gelu": "torch.nn:GELU",
    "leaky_relu": "torch.nn:LeakyReLU",
    "silu": "torch.nn:SiLU",
}
_OPTIMIZERS = {
    "adam": "torch.optim:Adam",
    "adamw": "torch.optim:AdamW",
    "sgd": "torch.optim:SGD",
    "rmsprop": "torch.optim:RMSprop",
}
#: ``policy_kwargs`` entries that name a class: (registry kind, short names)
_CLASS_KWARGS: dict[str, tuple[str | None, dict[str, str]]] = {
    "features_extractor_class": ("extractors", {}),
    "optimizer_class": (None, _OPTIMIZERS),
    "activation_fn": (None, _ACTIVATIONS),
}
#: arguments the launcher (not the entry) gives: never reported as missing or unknown
_GIVEN = {
    "self",
    "env",
    "_init_setup_model",
    "observation_space",
    "action_space",
    "lr_schedule",
    "buffer_size",
    "device",
    "n_envs",
}
#: keyword arguments of ``gym.make`` itself (rl_zoo3 builds envs with ``spec.make(**env_kwargs)``)
_GYM_MAKE_KWARGS = {"max_episode_steps", "disable_env_checker"}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _type_ok(value: Any, annotation: Any) -> bool:
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
        return _is_int(value)
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


def init_params(target: Any) -> tuple[dict[str, inspect.Parameter], bool]:
    """The parameters of a class's constructor (a subclass that passes ``**kwargs`` on gets its bases' too)
    or of a function, and whether it still takes any keyword (``**kwargs`` that nothing explains)."""
    if not isinstance(target, type):
        params = inspect.signature(target).parameters
        return (
            {k: p for k, p in params.items() if p.kind is not p.VAR_KEYWORD},
            any(p.kind is p.VAR_KEYWORD for p in params.values()),
        )
    out: dict[str, inspect.Parameter] = {}
    for cls in target.__mro__:
        if "__init__" not in vars(cls) or cls is object:
            continue
        params = inspect.signature(cls.__init__).parameters  # type: ignore[misc]
        out.update({k: p for k, p in params.items() if p.kind is not p.VAR_KEYWORD and k not in out})
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return out, False
    return out, True


def _hints(target: Any, names: set[str]) -> dict[str, Any]:
    """Annotations of ``names`` among ``target``'s parameters, resolved one by one (one that does not resolve
    is left unchecked)."""
    owners = [target] if not isinstance(target, type) else [c for c in target.__mro__ if "__init__" in vars(c)]
    out: dict[str, Any] = {}
    for owner in owners:
        func = owner if not isinstance(owner, type) else owner.__init__  # type: ignore[misc]
        try:
            params = inspect.signature(func).parameters
        except (TypeError, ValueError):
            continue
        module = inspect.getmodule(owner)
        for name in names & set(params) - set(out):

            def one() -> None: ...

            one.__annotations__ = {name: params[name].annotation}
            try:
                out.update(typing.get_type_hints(one, globalns=vars(module) if module else {}))
            except Exception:
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


class _Checker:
    """The checks of one entry; each method checks and takes one group of keys out of ``config``."""

    def __init__(self, algo: type[BaseAlgorithm], env_id: str, entry: dict[str, Any], source: str) -> None:
        self.algo, self.env_id, self.entry, self.source = algo, env_id, entry, source
        self.where = f"{source} [{env_id}]"
        self.params, _ = init_params(algo)
        self.config = dict(entry)

    def fail(self, key: str, expected: str) -> typing.NoReturn:
        value = self.entry.get(key)
        raise TypeError(f"{self.where}: {key!r} must be {expected}, got {value!r} ({type(value).__name__})")

    def need(self, key: str, ok: bool, expected: str) -> None:
        if not ok:
            self.fail(key, expected)

    def resolve(self, key: str, value: str, kind: str | None, what: str) -> Any:
        try:
            return resolve_name(value, kind, what)
        except (ValueError, ImportError) as e:
            raise ValueError(f"{self.where}: {key!r}: {e}") from e

    def arguments(self, key: str, kwargs: dict[str, Any], target: Any, name: str, skip: set[str] = _GIVEN) -> None:
        """Every key of ``kwargs`` is an argument of ``target`` (a class or a function) of a fitting type."""
        params, open_ended = init_params(target)
        known = set(params) - skip
        unknown = sorted(set(kwargs) - known - skip)
        if unknown and not open_ended:
            close = [m for k in unknown for m in difflib.get_close_matches(k, known, n=1)]
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ValueError(
                f"{self.where}: {key!r}: unknown argument(s) {', '.join(map(repr, unknown))} for "
                f"{name}{hint}; it takes {', '.join(sorted(known))}"
            )
        for arg, hint in _hints(target, set(kwargs) & known).items():
            if not _type_ok(kwargs[arg], hint):
                raise TypeError(
                    f"{self.where}: '{key}.{arg}' must be of type "
                    f"{getattr(hint, '__name__', None) or hint}, got {kwargs[arg]!r}"
                )

    def default_of(self, target: Any, name: str) -> Any:
        param = init_params(target)[0].get(name)
        return None if param is None or param.default is inspect.Parameter.empty else param.default

    # --- the groups of keys -----------------------------------------------------------------

    def top_level(self) -> None:
        allowed = set(self.params) - {"self", "env", "_init_setup_model"}
        unknown = sorted(set(self.entry) - ZOO_KEYS - OWN_KEYS - allowed)
        if unknown:
            close = [m for k in unknown for m in difflib.get_close_matches(k, allowed | ZOO_KEYS | OWN_KEYS, n=1)]
            hint = f" (did you mean {', '.join(map(repr, close))}?)" if close else ""
            raise ValueError(
                f"{self.source}: unknown key(s) {', '.join(map(repr, unknown))} for {self.algo.__name__} "
                f"under {self.env_id!r}{hint}; expected rl-zoo keys {sorted(ZOO_KEYS)}, ours "
                f"{sorted(OWN_KEYS)} or arguments of {self.algo.__name__}"
            )
        for key in MAPPING_KEYS:
            if self.entry.get(key) is not None:
                self.need(key, isinstance(self.entry[key], dict), "a mapping (strings are never evaluated)")
        hints = _hints(self.algo, set(self.entry) & allowed - ZOO_KEYS - {"replay_buffer_class", "policy_kwargs"})
        for key, hint in sorted(hints.items()):
            self.need(key, _type_ok(self.entry[key], hint), f"of type {getattr(hint, '__name__', None) or hint}")

    def env_settings(self, out: ZooEntry) -> None:
        """``n_timesteps``, ``n_envs``, ``frame_stack``, ``normalize``, ``env_kwargs``, wrappers, callbacks."""
        c = self.config
        for key in ("n_envs", "frame_stack"):
            if key in c:
                self.need(key, _is_int(c[key]) and c[key] >= 1, "an integer >= 1")
        v = c.get("n_timesteps", 0)
        self.need(
            "n_timesteps",
            isinstance(v, int | float) and not isinstance(v, bool) and v >= 0 and float(v) == int(v),
            "a non-negative whole number",
        )
        out.n_timesteps, out.n_envs = int(c.pop("n_timesteps", 0)), int(c.pop("n_envs", 1))
        out.frame_stack = c.pop("frame_stack", None)
        norm = c.pop("normalize", None)
        self.need(
            "normalize",
            isinstance(norm, bool | dict | None),
            "true/false or a mapping of VecNormalize arguments (strings are never evaluated)",
        )
        out.normalize = (dict(norm) if isinstance(norm, dict) else {}) if norm else None
        if "noise_std" in c:
            self.need("noise_std", isinstance(c["noise_std"], int | float), "a number")
        if "noise_type" in c:
            self.need(
                "noise_type", c["noise_type"] in ("normal", "ornstein-uhlenbeck"), "'normal' or 'ornstein-uhlenbeck'"
            )
        for key in ("noise_type", "noise_std", "monitor_kwargs"):
            c.pop(key, None)
        for key in ("env_wrapper", "callback"):
            if key in c:
                self.dotted_spec(key, c[key])
                setattr(out, key, c.pop(key))
        out.env_kwargs = dict(c.pop("env_kwargs", None) or {})
        self.env_kwargs(out.env_kwargs)

    def env_kwargs(self, kwargs: dict[str, Any]) -> None:
        if not kwargs:
            return
        if self.env_id not in gym.registry:
            import sb3_latent.envs  # noqa: F401  (registers our ids)
        if self.env_id not in gym.registry:
            return  # another package's env (--gym-packages); gymnasium checks its own kwargs
        spec = gym.spec(self.env_id)
        if spec.entry_point is None:
            return
        creator = spec.entry_point if callable(spec.entry_point) else import_object(spec.entry_point, "env")
        fixed = set(spec.kwargs)  # what the id sets (a DMC id's domain and task)
        self.arguments(
            "env_kwargs",
            {k: v for k, v in kwargs.items() if k not in _GYM_MAKE_KWARGS},
            creator,
            f"the env {self.env_id!r}",
            skip=fixed | {"self"},
        )

    def dotted_spec(self, key: str, value: Any) -> None:
        """rl-zoo's ``env_wrapper``/``callback`` forms: a dotted name, a ``{name: kwargs}`` mapping, or a
        list of those; every name must import."""
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                name = item
            elif isinstance(item, dict) and len(item) == 1 and isinstance(next(iter(item.values())), dict | None):
                name = next(iter(item))
            else:
                raise TypeError(
                    f"{self.where}: {key!r} must be a dotted class name, a {{name: kwargs}} mapping "
                    f"or a list of them, got {item!r}"
                )
            try:
                import_object(name.replace(":", "."), key)
            except ValueError as e:
                raise ValueError(f"{self.where}: {key!r}: {e}") from e

    def policy(self) -> Any:
        policy = self.config.pop("policy", "CnnPolicy")
        self.need("policy", isinstance(policy, str), "a policy name ('CnnPolicy') or a dotted path")
        aliases = getattr(self.algo, "policy_aliases", {})
        if "." in policy or ":" in policy:
            return self.resolve("policy", policy, None, "policy class")
        if policy not in aliases:
            raise ValueError(
                f"{self.where}: 'policy': {self.algo.__name__} has no policy {policy!r}; it has "
                f"{sorted(aliases)} (or give a dotted path to a policy class)"
            )
        return aliases[policy]

    def policy_kwargs(self, policy_class: Any) -> dict[str, Any]:
        """``policy_kwargs`` with its class names resolved, ``extractor``/``extractor_kwargs`` folded in, each
        key checked against the policy and the extractor."""
        kwargs = dict(self.config.pop("policy_kwargs", None) or {})
        for key, (kind, table) in _CLASS_KWARGS.items():
            name = kwargs.get(key)
            if isinstance(name, str):
                kwargs[key] = self.resolve(f"policy_kwargs.{key}", table.get(name.lower(), name), kind, key)
        extractor = self.config.pop("extractor", None)
        if extractor is not None:
            self.need("extractor", isinstance(extractor, str), "a registry name or a dotted path")
            kwargs["features_extractor_class"] = self.resolve("extractor", extractor, "extractors", "extractor")
        extractor_kwargs = self.config.pop("extractor_kwargs", None)
        if extractor_kwargs is not None:
            kwargs["features_extractor_kwargs"] = dict(extractor_kwargs)
        if isinstance(policy_class, type):
            self.arguments("policy_kwargs", kwargs, policy_class, policy_class.__name__)
            cls = kwargs.get("features_extractor_class") or self.default_of(policy_class, "features_extractor_class")
            if isinstance(cls, type) and kwargs.get("features_extractor_kwargs"):
                key = "extractor_kwargs" if extractor_kwargs is not None else "policy_kwargs.features_extractor_kwargs"
                self.arguments(key, kwargs["features_extractor_kwargs"], cls, cls.__name__)
        return kwargs

    def augment(self) -> None:
        for key in ("augment", "augment_kwargs"):
            if key in self.config and key not in self.params:
                raise ValueError(
                    f"{self.where}: {key!r}: {self.algo.__name__} does not augment its batches; use an "
                    "algorithm that does (rad, drqv2, or a plugin's)"
                )
        name = self.config.get("augment", self.default_of(self.algo, "augment"))
        if isinstance(name, str):
            cls = self.resolve("augment", name, "augmentations", "augmentation")
            self.arguments("augment_kwargs", self.config.get("augment_kwargs") or {}, cls, cls.__name__)

    def buffer(self, hyper: dict[str, Any], out: ZooEntry) -> None:
        """``replay_buffer_class``/``replay_buffer_kwargs`` and ``lever`` (the buffer on our algorithms,
        :func:`~sb3_latent.attach_lever` on stock ones)."""
        from sb3_latent.lever import LeVERReplayBuffer

        name = self.config.pop("replay_buffer_class", None)
        if name is not None:
            self.need("replay_buffer_class", isinstance(name, str), "a registry name or a dotted path")
            hyper["replay_buffer_class"] = self.resolve("replay_buffer_class", name, "buffers", "replay buffer")
        if "replay_buffer_kwargs" in self.config:
            hyper["replay_buffer_kwargs"] = dict(self.config.pop("replay_buffer_kwargs") or {})
        lever = self.config.pop("lever", None)
        if lever is not None and lever is not False:
            self.need(
                "lever", lever is True or isinstance(lever, dict), "true or a mapping of LeVERReplayBuffer arguments"
            )
            lever = {} if lever is True else dict(lever)
            if "replay_buffer_class" not in self.params:
                raise ValueError(f"{self.where}: 'lever': {self.algo.__name__} has no replay buffer")
            bad = sorted(set(lever) - set(init_params(LeVERReplayBuffer)[0]))
            if bad:
                raise ValueError(f"{self.where}: 'lever': unknown LeVER setting(s) {', '.join(map(repr, bad))}")
            if hyper.get("replay_buffer_class") not in (None, LeVERReplayBuffer):
                raise ValueError(f"{self.where}: 'lever' and 'replay_buffer_class' {name!r} exclude each other")
            if getattr(self.algo, "binds_replay_buffer", False):  # binds a LeVER buffer itself (RAD, DrQ-v2)
                hyper["replay_buffer_class"] = LeVERReplayBuffer
                hyper["replay_buffer_kwargs"] = {**hyper.get("replay_buffer_kwargs", {}), **lever}
            else:
                out.lever = lever
        cls = hyper.get("replay_buffer_class") or self.default_of(self.algo, "replay_buffer_class")
        if isinstance(cls, type) and hyper.get("replay_buffer_kwargs"):
            self.arguments("replay_buffer_kwargs", hyper["replay_buffer_kwargs"], cls, cls.__name__)

    def schedules(self, hyper: dict[str, Any]) -> None:
        if isinstance(hyper.get("train_freq"), list):
            hyper["train_freq"] = tuple(hyper["train_freq"])
        v = hyper.get("learning_rate")  # rl-zoo schedules: 'lin_0.001'
        if isinstance(v, str):
            kind, _, init = v.partition("_")
            try:
                ok = kind == "lin" and math.isfinite(float(init))
            except ValueError:
                ok = False
            if not ok:
                raise ValueError(f"{self.where}: 'learning_rate' must be a number or 'lin_<initial value>', got {v!r}")


def check_entry(algo: type[BaseAlgorithm], env_id: str, entry: dict[str, Any], source: str = "<config>") -> ZooEntry:
    """Check a zoo entry against ``algo`` and resolve every name in it, before anything is built.

    :param algo: algorithm class (ours, a plugin's, SB3's or sb3-contrib's)
    :param env_id: gymnasium id (for messages, and the env's own arguments)
    :param entry: the entry (see :func:`sb3_latent.zoo.load_zoo_config`)
    :param source: file name, for error messages
    :raises ValueError: unknown keys, unknown or unimportable names
    :raises TypeError: values of the wrong type
    """
    check = _Checker(algo, env_id, entry, source)
    check.top_level()
    out = ZooEntry(algo=algo, env_id=env_id, source=source, raw=dict(entry))
    check.env_settings(out)
    policy = check.policy()
    hyper: dict[str, Any] = {"policy": policy}
    policy_kwargs = check.policy_kwargs(policy)
    if policy_kwargs:
        hyper["policy_kwargs"] = policy_kwargs
    check.augment()
    check.buffer(hyper, out)
    hyper.update(check.config)
    check.schedules(hyper)
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
    env = make_vec_env(
        entry.env_id,
        n_envs=n_envs or entry.n_envs,
        seed=seed,
        env_kwargs=entry.env_kwargs,
        wrapper_class=wrapper,
        **make_kwargs,
    )
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
    :param config: the entry (see :func:`sb3_latent.zoo.load_zoo_config`)
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
