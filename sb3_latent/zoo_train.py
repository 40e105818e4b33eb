"""rl_zoo3's own train script, with sb3-latent's algorithms (and plugins') registered and our zoo files
readable::

    python -m sb3_latent.zoo_train --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 \\
        -conf zoo_configs/rad_flare.yml [any other rl_zoo3.train option: -optimize, --storage, ...]

What it does, explicitly and only in this process: ``rl_zoo3.ALGOS[name] = cls`` for every registered
algorithm (rl_zoo3's documented way for third-party algorithms), a sampler for ``-optimize`` from
``tuning/<algo>.yml`` when it exists, and the ``-conf`` YAML checked and resolved by
:func:`sb3_latent.zoo.check_entry`, then handed to rl_zoo3 as a Python module
(:mod:`sb3_latent.rl_zoo3_conf`), which rl_zoo3's ``-conf`` accepts. Then ``rl_zoo3.train.train()`` runs
unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml


def _conf_index(argv: list[str]) -> int | None:
    for flag in ("-conf", "--conf-file"):
        if flag in argv:
            return argv.index(flag) + 1
    return None


def _value(argv: list[str], *flags: str) -> str | None:
    for flag in flags:
        if flag in argv and argv.index(flag) + 1 < len(argv):
            return argv[argv.index(flag) + 1]
    return None


def spec_sampler(spec_path: str | Path) -> Any:
    """An rl_zoo3 sampler ``(trial, n_actions, n_envs, additional_args) -> dict`` from a study spec.
    Dotted keys become nested mappings that replace the base entry's whole mapping (rl_zoo3 updates
    the top level only)."""
    from sb3_latent.tuning import StudySpec, set_nested

    spec = StudySpec.load(spec_path)

    def sample(trial: Any, n_actions: int, n_envs: int, additional_args: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in spec.suggest(trial).items():
            set_nested(out, key, value)
        return out

    return sample


def main(argv: Sequence[str] | None = None) -> None:
    """Register, convert ``-conf``, run ``rl_zoo3.train.train()``.

    :param argv: rl_zoo3.train arguments (default ``sys.argv[1:]``)
    """
    import sb3_latent.envs  # noqa: F401  (our env ids)
    from sb3_latent import rl_zoo3_conf
    from sb3_latent.experiment import register_with_rl_zoo3, resolve_algo
    from sb3_latent.zoo import check_entry

    args = list(sys.argv[1:] if argv is None else argv)
    algo = _value(args, "--algo")
    samplers = {}
    if algo is not None and Path("tuning", f"{algo}.yml").is_file():
        samplers[algo] = spec_sampler(Path("tuning", f"{algo}.yml"))
    register_with_rl_zoo3(samplers)
    i = _conf_index(args)
    if i is not None and i < len(args) and args[i].endswith((".yml", ".yaml")) and algo is not None:
        path = Path(args[i])
        data = yaml.safe_load(path.read_text())
        if not isinstance(data, dict):
            raise SystemExit(f"{path}: must map env ids to hyperparameters")
        cls = resolve_algo(algo)
        converted = {}
        for env_id, entry in data.items():
            checked = check_entry(cls, env_id, dict(entry), str(path))
            if checked.lever is not None:
                raise SystemExit(f"{path} [{env_id}]: 'lever' on {cls.__name__} needs attach_lever; "
                                 "use `sb3-latent train`")
            converted[env_id] = checked.zoo_hyperparams()
        rl_zoo3_conf.hyperparams = converted
        args[i] = "sb3_latent.rl_zoo3_conf"
    from rl_zoo3.train import train

    sys.argv = [sys.argv[0], *args]
    train()


if __name__ == "__main__":
    main()
