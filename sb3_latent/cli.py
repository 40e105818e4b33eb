"""The ``sb3-latent`` command: ``train``, ``enjoy``, ``plot``, ``list``, ``tune``, ``bench``.

::

    sb3-latent train --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 -c zoo_configs/rad_flare.yml -P
    sb3-latent enjoy --algo rad --env sb3_latent/pendulum-swingup-pixels-v0 --video run.gif
    sb3-latent plot logs/rad -o curves.png
    sb3-latent list
    sb3-latent tune --algo rad --env sb3_latent/MovingDot-v0 --storage postgresql://... --study-name s --n-trials 20

Runs land in rl-zoo's layout, ``logs/ALGO/ENV_N/``: the model (``ENV.zip``, ``best_model.zip``), the
config used (``ENV/config.yml``, ``ENV/zoo_config.yml``, ``ENV/args.yml``, ``ENV/command.txt``), eval
logs (``evaluations.npz``), monitor files and TensorBoard logs (``tb/``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import os
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml


class UsageError(Exception):
    """Bad input, reported as one line before any work (exit status 2)."""


def _kv(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``key:value`` pairs (values parsed as YAML, never evaluated; dotted keys reach into mappings)."""
    from sb3_latent.tuning import set_nested

    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition(":")
        if not sep or not key:
            raise UsageError(f"{what}: expected key:value, got {item!r}")
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError as e:
            raise UsageError(f"{what}: cannot parse the value of {key!r} ({value!r}): {e}") from e
        set_nested(out, key, parsed)
    return out


def _import_packages(names: Sequence[str]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as e:
            raise UsageError(f"--gym-packages: cannot import {name!r}: {e}") from e


def _check_env(env_id: str) -> None:
    import gymnasium as gym

    import sb3_latent.envs  # noqa: F401  (registers our ids)

    if env_id not in gym.registry:
        close = difflib.get_close_matches(env_id, list(gym.registry), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UsageError(f"--env {env_id!r} is not a registered gymnasium id{hint} (other packages' envs: "
                         "--gym-packages PKG)")


def _env_name(env_id: str) -> str:
    return env_id.replace("/", "-")


# --- train ---------------------------------------------------------------------------------------


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--algo", required=True, help="rad, drqv2, a plugin's (sb3-latent list), sac, td3, ...")
    p.add_argument("--env", required=True, help="gymnasium id, e.g. sb3_latent/cartpole-swingup-pixels-v0")
    p.add_argument("-c", "--conf", default=None, help="zoo YAML (default: zoo_configs/ALGO.yml when it exists)")
    p.add_argument("--hyperparams", "-params", nargs="+", metavar="KEY:VALUE",
                   help="replace entries, e.g. learning_rate:0.001 policy_kwargs.net_arch:[64,64]")
    p.add_argument("--env-kwargs", nargs="+", metavar="KEY:VALUE", help="replace env_kwargs entries")
    p.add_argument("--device", default="auto", help="torch device (auto: a GPU when there is one)")
    p.add_argument("--num-threads", type=int, default=-1, help="torch threads (-1: torch's default)")
    p.add_argument("--gym-packages", nargs="+", default=[], help="modules to import that register envs")


def cmd_train(args: argparse.Namespace) -> Path:
    """Train one run; return its folder."""
    from sb3_latent.experiment import make_experiment, read_entry

    _import_packages(args.gym_packages)
    _check_env(args.env)
    overrides = _kv(args.hyperparams, "--hyperparams")
    if args.env_kwargs:
        overrides["env_kwargs"] = _kv(args.env_kwargs, "--env-kwargs")
    try:
        entry = read_entry(args.algo, args.env, args.conf, overrides, args.n_timesteps)
    except (ValueError, TypeError, ImportError) as e:
        raise UsageError(str(e)) from e
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    seed = args.seed if args.seed >= 0 else int(np.random.randint(2**31 - 1))
    manager = make_experiment(
        entry, args.algo, args=args, log_folder=args.log_folder, tensorboard_log="" if args.no_tensorboard else "auto",
        eval_freq=args.eval_freq, n_eval_episodes=args.eval_episodes, save_freq=args.save_freq, seed=seed,
        device=args.device, verbose=args.verbose, show_progress=args.progress, vec_env_type=args.vec_env,
        save_replay_buffer=args.save_replay_buffer,
    )
    result = manager.setup_experiment()
    assert result is not None
    manager.learn(result[0])
    manager.save_trained_model(result[0])
    print(f"run folder: {manager.save_path}")
    return Path(manager.save_path)


# --- enjoy ---------------------------------------------------------------------------------------


def find_run(log_folder: str | Path, algo: str, env_id: str, exp_id: int = 0) -> Path:
    """``log_folder/algo/ENV_N`` for ``exp_id = N`` (0: the latest run).

    :raises UsageError: when there is no such run
    """
    root = Path(log_folder) / algo
    name = _env_name(env_id)
    pattern = re.escape(name) + r"_(\d+)"
    runs = {int(m.group(1)): p for p in root.glob(f"{name}_*") if (m := re.fullmatch(pattern, p.name))}
    if not runs:
        raise UsageError(f"no run of {algo} on {env_id} in {root} (train one with `sb3-latent train`)")
    n = max(runs) if exp_id == 0 else exp_id
    if n not in runs:
        raise UsageError(f"no run {name}_{n} in {root}; there are {sorted(runs)}")
    return runs[n]


def cmd_enjoy(args: argparse.Namespace) -> dict[str, Any]:
    """Load a run's model, play episodes, print mean ± std return (optionally record a video)."""
    from stable_baselines3.common.vec_env import VecNormalize

    from sb3_latent.experiment import resolve_algo
    from sb3_latent.zoo import check_entry, load_zoo_config, make_env

    _import_packages(args.gym_packages)
    _check_env(args.env)
    run = Path(args.folder) if args.folder else find_run(args.log_folder, args.algo, args.env, args.exp_id)
    name = _env_name(args.env)
    model_path = run / ("best_model.zip" if args.best else f"{name}.zip")
    if not model_path.is_file():
        raise UsageError(f"{model_path} does not exist" + (" (no evaluation saved a best model)" if args.best else ""))
    conf = run / name / "zoo_config.yml"
    if not conf.is_file():
        raise UsageError(f"{conf} does not exist: not a run of `sb3-latent train`")
    try:
        cls = resolve_algo(args.algo)
        entry = check_entry(cls, args.env, load_zoo_config(conf, args.env), str(conf))
    except (ValueError, TypeError, ImportError) as e:
        raise UsageError(str(e)) from e
    env = make_env(entry, n_envs=1, seed=args.seed)
    stats = run / name / "vecnormalize.pkl"
    if stats.is_file():
        env = VecNormalize.load(str(stats), env)
        env.training, env.norm_reward = False, False
    model = cls.load(str(model_path), env=env, device=args.device)
    frames: list[Any] = []
    returns: list[float] = []
    obs: Any = env.reset()
    ret, state, start = 0.0, None, np.ones((1,), dtype=bool)
    while len(returns) < args.n_episodes:
        action, state = model.predict(obs, state=state, episode_start=start, deterministic=not args.stochastic)
        if args.video:
            frames.append(env.get_images()[0])
        obs, reward, done, infos = env.step(action)
        ret += float(reward[0])
        start = done
        if done[0]:
            returns.append(float(infos[0].get("episode", {}).get("r", ret)))
            ret = 0.0
    env.close()
    mean, std = float(np.mean(returns)), float(np.std(returns))
    print(f"{args.algo} on {args.env} ({model_path}): {len(returns)} episodes, return {mean:.2f} ± {std:.2f}")
    if args.video:
        import imageio.v2 as imageio

        Path(args.video).parent.mkdir(parents=True, exist_ok=True)
        if args.video.endswith(".gif"):
            imageio.mimsave(args.video, frames, duration=1000 / 30, loop=0)
        else:
            imageio.mimsave(args.video, frames, fps=30)
        print(f"video: {args.video} ({len(frames)} frames)")
    return {"mean": mean, "std": std, "returns": returns, "model": str(model_path)}


# --- plot ----------------------------------------------------------------------------------------


def _run_label(npz: Path) -> str:
    run = npz.parent
    env = re.sub(r"_\d+$", "", run.name)
    return f"{run.parent.name}/{env}"


def cmd_plot(args: argparse.Namespace) -> dict[str, Any]:
    """Learning curves (evaluation return against env steps), mean ± std over the runs of each
    algorithm/env pair (seeds), into one PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    files: list[Path] = []
    for p in map(Path, args.runs):
        if p.is_file() and p.name == "evaluations.npz":
            files.append(p)
        elif p.is_dir():
            files += sorted(p.rglob("evaluations.npz"))
        else:
            raise UsageError(f"{p} is neither a run folder nor an evaluations.npz")
    files = [f for f in files if "trials" not in f.parts]
    if not files:
        raise UsageError(f"no evaluations.npz under {', '.join(args.runs)} (runs need --eval-freq > 0)")
    groups: dict[str, list[tuple[np.ndarray, np.ndarray]]] = defaultdict(list)
    for f in files:
        data = np.load(f)
        if len(data["timesteps"]):
            groups[_run_label(f)].append((data["timesteps"], data["results"].mean(axis=1)))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    summary: dict[str, Any] = {}
    for label, curves in sorted(groups.items()):
        n = min(len(t) for t, _ in curves)
        steps = curves[0][0][:n]
        values = np.stack([r[:n] for _, r in curves])
        mean, std = values.mean(0), values.std(0)
        ax.plot(steps, mean, label=f"{label} ({len(curves)} run{'s' * (len(curves) > 1)})")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
        summary[label] = {"runs": len(curves), "final_mean": float(mean[-1]), "final_std": float(std[-1]),
                          "steps": int(steps[-1])}
        print(f"{label}: {len(curves)} run(s), return at {int(steps[-1])} steps {mean[-1]:.2f} ± {std[-1]:.2f}")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("evaluation return (mean ± std over runs)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    plt.close(fig)
    print(f"plot: {args.output}")
    return summary


# --- list ----------------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> list[dict[str, str]]:
    """Every algorithm, extractor, buffer and augmentation found (built-in and plugins), where it
    comes from and whether it loads; then rl_zoo3's stock algorithms."""
    from sb3_latent import registry

    rows = []
    for e, error in registry.check(args.kind):
        status = "ok" if error is None else f"BROKEN: {error}"
        rows.append({"kind": e.kind, "name": e.name, "target": e.target, "from": e.distribution, "status": status})
    width = {k: max([len(k)] + [len(r[k]) for r in rows]) for k in ("kind", "name", "from", "target")}
    print("  ".join(k.ljust(width[k]) for k in ("kind", "name", "from", "target")) + "  status")
    for r in rows:
        print("  ".join(r[k].ljust(width[k]) for k in ("kind", "name", "from", "target")) + "  " + r["status"])
    plugins = sorted({r["from"] for r in rows if r["from"] != "sb3-latent"})
    print(f"\nplugins: {', '.join(plugins) if plugins else '(none installed)'}")
    if args.kind in (None, "algorithms"):
        from sb3_latent.experiment import stock_algorithms

        print("stock algorithms (stable-baselines3 / sb3-contrib, through rl_zoo3): "
              + ", ".join(sorted(stock_algorithms())))
    return rows


# --- tune ----------------------------------------------------------------------------------------


def cmd_tune(args: argparse.Namespace) -> Any:
    """One tuning worker (run the same command on as many processes/machines as you like)."""
    from sb3_latent.tuning import StudySpec, run_worker

    _import_packages(args.gym_packages)
    _check_env(args.env)
    spec_path = args.spec or f"tuning/{args.algo}.yml"
    try:
        spec = StudySpec.load(spec_path)
        from sb3_latent.experiment import resolve_algo

        resolve_algo(args.algo)
    except (ValueError, TypeError, ImportError) as e:
        raise UsageError(str(e)) from e
    if args.n_trials is None and args.max_total_trials is None:
        raise UsageError("give --n-trials (per worker) or --max-total-trials (whole study), or both")
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    study_name = args.study_name or f"{args.algo}-{_env_name(args.env)}"
    out = Path(args.log_folder) / "tune" / study_name if args.out is None else Path(args.out)
    overrides = _kv(args.hyperparams, "--hyperparams")
    if args.env_kwargs:
        overrides["env_kwargs"] = _kv(args.env_kwargs, "--env-kwargs")
    if args.n_timesteps:
        spec.budget["n_timesteps"] = args.n_timesteps
    try:
        study = run_worker(spec, args.algo, args.env, storage=args.storage, study_name=study_name,
                           n_trials=args.n_trials, max_total_trials=args.max_total_trials, out=out, config=args.conf,
                           overrides=overrides, pruning=not args.no_pruning, seed=args.seed, device=args.device,
                           heartbeat_interval=args.heartbeat, grace_period=args.grace_period, verbose=args.verbose)
    except (ValueError, TypeError, ImportError) as e:  # raised before the first trial (trials' own are recorded)
        raise UsageError(str(e)) from e
    print((out / "report.md").read_text())
    return study


# --- bench ---------------------------------------------------------------------------------------


def cmd_bench(args: argparse.Namespace) -> int:
    """``python -m benchmarks.NAME ARGS`` from the repository root."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.name):
        raise UsageError(f"benchmark name {args.name!r} is not a module name")
    if not Path("benchmarks", f"{args.name}.py").is_file():
        known = sorted(p.stem for p in Path("benchmarks").glob("*.py") if p.stem not in ("__init__", "common"))
        raise UsageError(f"no benchmarks/{args.name}.py here (run from the repository root); known: {', '.join(known)}")
    return subprocess.call([sys.executable, "-m", f"benchmarks.{args.name}", *args.args])


def make_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sb3-latent``."""
    parser = argparse.ArgumentParser(prog="sb3-latent", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("train", help="train one run from a zoo config")
    _add_common(p)
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="replace the entry's n_timesteps")
    p.add_argument("--seed", type=int, default=-1, help="seed (-1: a random one, printed)")
    p.add_argument("-f", "--log-folder", default="logs", help="runs go to LOG_FOLDER/ALGO/ENV_N")
    p.add_argument("--eval-freq", type=int, default=10_000, help="evaluate every N steps (<= 0: never)")
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--save-freq", type=int, default=-1, help="checkpoint every N steps (<= 0: never)")
    p.add_argument("--save-replay-buffer", action="store_true")
    p.add_argument("--vec-env", choices=["dummy", "subproc"], default="dummy")
    p.add_argument("--no-tensorboard", action="store_true", help="no TensorBoard logs in RUN/tb")
    p.add_argument("-P", "--progress", action="store_true", help="progress bar")
    p.add_argument("-v", "--verbose", type=int, default=1)
    p.set_defaults(func=cmd_train)

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
    p.add_argument("--spec", default=None, help="study spec (default: tuning/ALGO.yml)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage: postgresql://user@host:port/db, sqlite:///file.db, a journal file *.log "
                        "(default: sqlite in the run folder)")
    p.add_argument("--study-name", default=None, help="the same for every worker (default ALGO-ENV)")
    p.add_argument("--n-trials", type=int, default=None, help="trials for this worker")
    p.add_argument("--max-total-trials", type=int, default=None, help="finished trials for the whole study")
    p.add_argument("-n", "--n-timesteps", type=int, default=None, help="replace the spec's budget per trial")
    p.add_argument("-f", "--log-folder", default="logs", help="run folder: LOG_FOLDER/tune/STUDY (or --out)")
    p.add_argument("--out", default=None, help="run folder (default LOG_FOLDER/tune/STUDY)")
    p.add_argument("--no-pruning", action="store_true", help="run every trial to the end")
    p.add_argument("--seed", type=int, default=None, help="sampler seed (give each worker its own)")
    p.add_argument("--heartbeat", type=int, default=30, help="seconds between heartbeats of a running trial")
    p.add_argument("--grace-period", type=int, default=None,
                   help="seconds without heartbeat before a running trial is failed (default 2 heartbeats)")
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
    if argv is None:  # the console script: `sys.exit(main())` must see an exit status, not a result
        raise SystemExit(result if isinstance(result, int) else 0)
    return result


if __name__ == "__main__":
    main()
