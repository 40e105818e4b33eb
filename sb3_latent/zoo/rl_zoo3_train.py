"""rl_zoo3's own train script, with sb3-latent's algorithms (and plugins') registered and our zoo files
readable (``python -m sb3_latent.zoo_train`` runs :func:`main`)::

    python -m sb3_latent.zoo_train --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -conf rad_flare \\
        [any other rl_zoo3.train option: -optimize, --storage, ...]

What it does, explicitly and only in this process: ``rl_zoo3.ALGOS[name] = cls`` for every registered
algorithm (rl_zoo3's documented way for third-party algorithms); for ``-optimize``, a sampler from the
algorithm's study spec (shipped ``tuning/<algo>.yml`` or ``--spec FILE``) whose every trial is checked like
a zoo entry and handed to rl_zoo3 as constructor arguments; the ``-conf`` YAML (a file or a shipped name)
checked and resolved by :func:`sb3_latent.zoo.check_entry`, then handed to rl_zoo3 as a Python module (this
one: its :data:`hyperparams`), which rl_zoo3's ``-conf`` accepts; and the entry's ``env_kwargs`` given to
the evaluation env too (``--eval-env-kwargs``), which rl_zoo3 would otherwise build with none. Then
``rl_zoo3.train.train()`` runs unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

#: ``{env id: rl_zoo3 hyperparameters}`` for rl_zoo3's ``-conf sb3_latent.zoo.rl_zoo3_train``, set by :func:`main`
hyperparams: dict[str, Any] = {}


def _value(argv: list[str], *flags: str) -> str | None:
    for flag in flags:
        if flag in argv and argv.index(flag) + 1 < len(argv):
            return argv[argv.index(flag) + 1]
    return None


def _pop(argv: list[str], flag: str) -> str | None:
    if flag not in argv:
        return None
    i = argv.index(flag)
    if i + 1 >= len(argv):
        raise SystemExit(f"{flag} needs a value")
    value = argv[i + 1]
    del argv[i : i + 2]
    return value


def _pop_values(argv: list[str], flag: str) -> list[str] | None:
    """Take ``flag`` and the values after it (up to the next option) out of ``argv``."""
    if flag not in argv:
        return None
    i = argv.index(flag)
    j = i + 1
    while j < len(argv) and not argv[j].startswith("-"):
        j += 1
    values = argv[i + 1 : j]
    del argv[i:j]
    return values


def spec_sampler(spec_path: Any, algo: str, env_id: str, base: dict[str, Any], source: str) -> Any:
    """An rl_zoo3 sampler ``(trial, n_actions, n_envs, additional_args) -> dict`` from a study spec: each
    trial's values are set on the base entry (dotted keys reach into mappings), the entry is checked, and
    the constructor arguments that differ from the base entry's go to rl_zoo3 (which replaces top-level keys
    only, so a sampled ``extractor_kwargs.features_dim`` arrives as the whole ``policy_kwargs``).

    :param spec_path: the study spec
    :param algo: algorithm name
    :param env_id: gymnasium id
    :param base: the zoo entry the trials start from
    :param source: where the base came from (messages)
    """
    from sb3_latent.zoo.config import with_values
    from sb3_latent.zoo.entry import check_entry
    from sb3_latent.zoo.manager import resolve_algo
    from sb3_latent.zoo.tune import StudySpec

    spec = StudySpec.load(spec_path)
    env_keys = sorted(k for k in spec.search_space if k.split(".")[0] in ("env_kwargs", "n_envs", "frame_stack"))
    if env_keys:
        raise SystemExit(
            f"{spec.path}: rl_zoo3's -optimize cannot tune env settings ({', '.join(env_keys)}); use `sb3-latent tune`"
        )
    cls = resolve_algo(algo)
    where = f"{spec.path} + {source}"
    base_args = check_entry(cls, env_id, base, source).hyperparams
    fixed = with_values(base, spec.fixed)
    check_entry(cls, env_id, with_values(fixed, spec.first_values()), where)

    def sample(trial: Any, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
        sampled = check_entry(cls, env_id, with_values(fixed, spec.suggest(trial)), where).hyperparams
        return {k: v for k, v in sampled.items() if k not in base_args or v != base_args[k]}

    return sample


def main(argv: Sequence[str] | None = None) -> None:
    """Register, convert ``-conf``, run ``rl_zoo3.train.train()``.

    :param argv: rl_zoo3.train arguments (default ``sys.argv[1:]``), plus ``--spec FILE`` (a study spec for
        ``-optimize``; default: the shipped one of the algorithm)
    """
    import sb3_latent.envs  # noqa: F401  (our env ids)
    import sb3_latent.zoo.rl_zoo3_train as module  # the same module under its own name, also when run as a script
    from sb3_latent.zoo.config import (
        find_file,
        load_zoo_config,
        parse_key_values,
        read_yaml_mapping,
        shipped,
        with_values,
    )
    from sb3_latent.zoo.entry import check_entry
    from sb3_latent.zoo.manager import register_with_rl_zoo3, resolve_algo

    args = list(sys.argv[1:] if argv is None else argv)
    spec = _pop(args, "--spec")
    algo, env_id = _value(args, "--algo"), _value(args, "--env")
    env_items = (
        _pop_values(args, "--env-kwargs")
        if "-conf" in args or "--conf-file" in args or (algo is not None and algo in shipped("zoo config"))
        else None
    )
    try:
        env_overrides = parse_key_values(env_items, "--env-kwargs", prefix="env_kwargs.")
        cls = resolve_algo(algo) if algo is not None else None
        samplers = {}
        base: dict[str, Any] = {}
        source = "<no zoo config>"
        conf_flag = next((f for f in ("-conf", "--conf-file") if f in args), None)
        if conf_flag is None and algo is not None and algo in shipped("zoo config"):
            args += ["-conf", algo]  # our algorithms' shipped file (rl_zoo3 has none for them)
            conf_flag = "-conf"
        if conf_flag is not None and cls is not None:
            i = args.index(conf_flag) + 1
            path, _ = find_file(args[i], "zoo config", algo or "")
            print(f"zoo config: {path}")
            data = read_yaml_mapping(path, "zoo config", "must map env ids to hyperparameters")
            converted = {}
            data = {
                key: with_values(entry, env_overrides) if isinstance(entry, dict) else entry
                for key, entry in data.items()
            }
            for key, entry in data.items():
                checked = check_entry(cls, key, entry, str(path))
                if checked.lever is not None:
                    raise SystemExit(
                        f"{path} [{key}]: 'lever' on {cls.__name__} needs attach_lever; use `sb3-latent train`"
                    )
                converted[key] = checked.zoo_hyperparams()
            module.hyperparams.clear()
            module.hyperparams.update(converted)
            args[i] = module.__name__
            if env_id is not None:
                base, source = with_values(load_zoo_config(path, env_id), env_overrides), str(path)
        if env_id is not None and base.get("env_kwargs") and not {"--env-kwargs", "--eval-env-kwargs"} & set(args):
            # rl_zoo3 evaluates on an env built without the entry's env_kwargs: give them explicitly (its
            # option evaluates each value, so each goes as a Python literal). --env-kwargs went into the entry
            # above (reaching into its env_kwargs, as `sb3-latent train` does, where rl_zoo3 would replace them)
            args += ["--eval-env-kwargs", *(f"{k}:{v!r}" for k, v in base["env_kwargs"].items())]
        if "-optimize" in args or "--optimize-hyperparameters" in args:
            if algo is None or env_id is None:
                raise SystemExit("-optimize needs --algo and --env")
            spec_path, _ = find_file(spec, "study spec", algo)
            samplers[algo] = spec_sampler(spec_path, algo, env_id, base, source)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"sb3_latent.zoo_train: error: {e}") from None
    register_with_rl_zoo3(samplers)
    from rl_zoo3.train import train

    sys.argv = [sys.argv[0], *args]
    train()
