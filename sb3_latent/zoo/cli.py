"""The ``sb3-latent`` command: ``train``, ``enjoy``, ``plot``, ``list``, ``tune``, ``bench``.

::

    sb3-latent train --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -c rad_flare -P
    sb3-latent train --resume logs/rad/sb3_latent-pendulum-swingup-pixels-v0_1
    sb3-latent enjoy --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 --video run.gif
    sb3-latent plot logs/rad -o curves.png
    sb3-latent list
    sb3-latent tune --algo rad --env sb3_latent/MovingDot-v0 --storage postgresql://... --study-name s --n-trials 20

Bad input is reported as one line (``sb3-latent CMD: error: ...``, exit status 2) before any work.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from sb3_latent.zoo.commands import UsageError, cmd_bench, cmd_enjoy, cmd_list, cmd_plot, cmd_train, cmd_tune

#: optional dependencies, by the extra of sb3-latent that installs them
EXTRAS = {
    "rl_zoo3": "zoo",
    "yaml": "zoo",
    "pandas": "zoo",
    "optuna": "tune",
    "optuna_dashboard": "tune",
    "psycopg": "tune",
    "psycopg2": "tune",
    "sqlalchemy": "tune",
    "dm_control": "dmc",
    "shimmy": "dmc",
    "mujoco": "dmc",
}


def _add_common(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--algo", required=required, help="rad, drqv2, a plugin's (sb3-latent list), sac, td3, ...")
    p.add_argument("--env", required=required, help="gymnasium id, e.g. sb3_latent/cartpole-swingup-pixels-v0")
    p.add_argument(
        "-c",
        "--conf",
        default=None,
        help="zoo YAML file, or the name of a shipped one (rad_flare); default: the shipped ALGO.yml",
    )
    p.add_argument(
        "--hyperparams",
        "-params",
        nargs="+",
        metavar="KEY:VALUE",
        help="set entries, e.g. learning_rate:0.001 policy_kwargs.net_arch:[64,64] (dots reach into mappings)",
    )
    p.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE", help="set env_kwargs entries, e.g. size:64")
    p.add_argument("--device", default="auto", help="torch device (auto: a GPU when there is one)")
    p.add_argument("--num-threads", type=int, default=-1, help="torch threads (-1: torch's default)")
    p.add_argument("--gym-packages", nargs="+", default=[], help="modules to import that register envs")


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sb3-latent``."""
    parser = argparse.ArgumentParser(
        prog="sb3-latent", description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run from a zoo config (or resume one)")
    _add_common(p, required=False)
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_FOLDER",
        help="continue a run in its folder: its newest model, replay buffer (when saved), step count, "
        "evaluations and TensorBoard run; -n sets a new total budget",
    )
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="replace the entry's n_timesteps")
    p.add_argument("--seed", type=int, default=-1, help="seed (-1: a random one, saved in args.yml)")
    p.add_argument("-f", "--log-folder", default="logs", help="runs go to LOG_FOLDER/ALGO/ENV_N")
    p.add_argument("--eval-freq", type=int, default=10_000, help="evaluate every N steps (<= 0: never)")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--save-freq", type=int, default=-1, help="checkpoint every N steps (<= 0: never)")
    p.add_argument("--save-replay-buffer", action="store_true", help="save the replay buffer with the model")
    p.add_argument("--vec-env", choices=["dummy", "subproc"], default="dummy")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard logs in RUN/tb")
    p.add_argument("-P", "--progress", action="store_true", help="progress bar")
    p.add_argument("-v", "--verbose", type=int, default=1)
    p.set_defaults(func=cmd_train, defaults={a.dest: a.default for a in p._actions})

    p = sub.add_parser("enjoy", help="play a trained run: mean ± std return, optional video")
    p.add_argument("--algo", required=True)
    p.add_argument("--env", required=True)
    p.add_argument("-f", "--log-folder", default="logs")
    p.add_argument("--exp-id", type=int, default=0, help="run number N of ENV_N (0: the latest)")
    p.add_argument("--folder", default=None, help="a run folder (instead of --log-folder/--exp-id)")
    p.add_argument("--best", action="store_true", help="best_model.zip instead of the final model")
    p.add_argument("-n", "--n-episodes", type=int, default=5)
    p.add_argument("--stochastic", action="store_true", help="sample actions (default: deterministic)")
    p.add_argument("--video", default=None, help="record the episodes to this .gif or .mp4")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--gym-packages", nargs="+", default=[])
    p.set_defaults(func=cmd_enjoy)

    p = sub.add_parser("plot", help="learning curves of runs, mean ± std over seeds (PNG)")
    p.add_argument("runs", nargs="+", help="run folders or folders holding runs (e.g. logs/rad)")
    p.add_argument("-o", "--output", default="learning_curves.png")
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("list", help="algorithms, extractors, buffers, augmentations and plugins found")
    p.add_argument("--kind", choices=["algorithms", "extractors", "buffers", "augmentations"], default=None)
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("tune", help="one Optuna worker of a (shared) study")
    _add_common(p)
    p.add_argument("--spec", default=None, help="study spec file, or the name of a shipped one (default: ALGO)")
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage: postgresql://user@host:port/db, sqlite:///file.db, a journal file *.log "
        "(default: sqlite in the run folder)",
    )
    p.add_argument("--study-name", default=None, help="the same for every worker (default ALGO-ENV)")
    p.add_argument("--n-trials", type=int, default=None, help="trials for this worker")
    p.add_argument("--max-total-trials", type=int, default=None, help="finished trials for the whole study")
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="replace the spec's budget per trial")
    p.add_argument("-f", "--log-folder", default="logs", help="run folder: LOG_FOLDER/tune/STUDY (or --out)")
    p.add_argument("--out", default=None, help="run folder (default LOG_FOLDER/tune/STUDY)")
    p.add_argument("--no-pruning", action="store_true", help="run every trial to the end")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (give each worker its own)")
    p.add_argument("--heartbeat", type=int, default=30, help="seconds between heartbeats of a running trial")
    p.add_argument(
        "--grace-period",
        type=int,
        default=None,
        help="seconds without heartbeat before a running trial is failed (default 2 heartbeats)",
    )
    p.add_argument("-v", "--verbose", type=int, default=0)
    p.set_defaults(func=cmd_tune)

    p = sub.add_parser("bench", help="run benchmarks/NAME.py (python -m benchmarks.NAME ARGS)")
    p.add_argument("name")
    p.add_argument("args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> Any:
    """Entry point of the ``sb3-latent`` console script.

    :param argv: arguments; None reads ``sys.argv[1:]`` and exits with the command's status (the
        console script), a list returns the command's result (programmatic use and tests)
    """
    os.environ.setdefault("MUJOCO_GL", "egl")
    args = make_parser().parse_args(argv)
    try:
        result = args.func(args)
    except UsageError as e:
        print(f"sb3-latent {args.command}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    except ModuleNotFoundError as e:
        extra = EXTRAS.get((e.name or "").split(".")[0])
        if extra is None:
            raise
        print(
            f"sb3-latent {args.command}: error: this needs {e.name!r}, an optional dependency: "
            f"pip install 'sb3-latent[{extra}]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    if argv is None:  # the console script: `sys.exit(main())` must see an exit status, not a result
        raise SystemExit(result if isinstance(result, int) else 0)
    return result


if __name__ == "__main__":
    main()
