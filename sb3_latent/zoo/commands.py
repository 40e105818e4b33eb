"""What the ``sb3-latent`` commands do: ``train``, ``enjoy``, ``plot``, ``list``, ``tune``, ``bench``
(:mod:`sb3_latent.zoo.cli` parses the command line and calls these).

Runs land in rl-zoo's layout, ``logs/ALGO/ENV_N/``: the model (``ENV.zip``, ``best_model.zip``), the
config used (``ENV/config.yml``, ``ENV/zoo_config.yml``, ``ENV/args.yml``, ``ENV/command.txt``), eval
logs (``evaluations.npz``), monitor files and TensorBoard logs (``tb/``).
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import re
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class UsageError(Exception):
    """Bad input, reported as one line before any work (exit status 2)."""


def overrides_of(args: argparse.Namespace) -> dict[str, Any]:
    """``--hyperparams`` and ``--env-kwargs`` as dotted keys (``env_kwargs.size``), values parsed as YAML."""
    from sb3_latent.zoo.config import parse_key_values

    try:
        return {
            **parse_key_values(args.hyperparams, "--hyperparams"),
            **parse_key_values(args.env_kwargs, "--env-kwargs", prefix="env_kwargs."),
        }
    except ValueError as e:
        raise UsageError(str(e)) from e


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
        raise UsageError(
            f"--env {env_id!r} is not a registered gymnasium id{hint} (other packages' envs: --gym-packages PKG)"
        )


def _env_name(env_id: str) -> str:
    return env_id.replace("/", "-")


# --- train ---------------------------------------------------------------------------------------


def _read_run_args(run: Path) -> dict[str, Any]:
    """The command line a run was started with (its ``ENV/args.yml``)."""
    found = sorted(run.glob("*/args.yml"))
    if not run.is_dir() or not found:
        raise UsageError(f"--resume {run}: not a run folder of `sb3-latent train` (no ENV/args.yml in it)")
    import yaml

    class Loader(yaml.SafeLoader):  # rl_zoo3 writes args.yml as an OrderedDict: its one non-plain tag
        pass

    def ordered_dict(loader: yaml.SafeLoader, node: Any) -> dict[str, Any]:
        return dict(loader.construct_sequence(node, deep=True)[0])

    Loader.add_constructor("tag:yaml.org,2002:python/object/apply:collections.OrderedDict", ordered_dict)
    data = yaml.load(found[0].read_text(), Loader=Loader) or {}
    return data if isinstance(data, dict) else {}


def _resume_args(args: argparse.Namespace) -> Path:
    """Fill ``args`` from the run being resumed (its command line, and the entry it used as its zoo
    config); what the user gives again wins. Returns the run folder."""
    run = Path(args.resume)
    saved = _read_run_args(run)
    for key in (
        "algo",
        "env",
        "seed",
        "eval_freq",
        "eval_episodes",
        "save_freq",
        "save_replay_buffer",
        "vec_env",
        "no_tensorboard",
        "gym_packages",
    ):
        if key in saved and getattr(args, key) == args.defaults.get(key):
            setattr(args, key, saved[key])
    if args.algo is None or args.env is None:
        raise UsageError(f"--resume {run}: its args.yml names no algorithm/env; give --algo and --env")
    if args.conf is None:
        args.conf = str(next(run.glob("*/zoo_config.yml")))
    return run


def cmd_train(args: argparse.Namespace) -> Path:
    """Train one run (or continue one with ``--resume RUN``); return its folder."""
    from sb3_latent.zoo.manager import make_experiment, read_entry

    run = _resume_args(args) if args.resume else None
    if args.algo is None or args.env is None:
        raise UsageError("--algo and --env are required (or --resume RUN_FOLDER)")
    _import_packages(args.gym_packages)
    _check_env(args.env)
    overrides = overrides_of(args)
    try:
        entry = read_entry(args.algo, args.env, args.conf, overrides, args.n_timesteps)
    except (ValueError, TypeError, ImportError) as e:
        raise UsageError(str(e)) from e
    print(f"zoo config: {entry.source}")
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    args.seed = args.seed if args.seed >= 0 else int(np.random.randint(2**31 - 1))
    saved = argparse.Namespace(**{k: v for k, v in vars(args).items() if k not in ("func", "defaults")})
    # args.yml as rl_zoo3's enjoy reads it: env_kwargs the env was built with, overrides parsed (never strings)
    saved.env_kwargs, saved.hyperparams = dict(entry.env_kwargs), overrides
    manager = make_experiment(
        entry,
        args.algo,
        args=saved,
        resume=run,
        log_folder=args.log_folder,
        tensorboard_log="" if args.no_tensorboard else "auto",
        eval_freq=args.eval_freq,
        n_eval_episodes=args.eval_episodes,
        save_freq=args.save_freq,
        seed=args.seed,
        device=args.device,
        verbose=args.verbose,
        show_progress=args.progress,
        vec_env_type=args.vec_env,
        save_replay_buffer=args.save_replay_buffer,
    )
    try:
        result = manager.setup_experiment()
    except (ValueError, TypeError) as e:  # the folder made for the run is gone again
        raise UsageError(f"{entry.source} [{entry.env_id}]: {e}") from e
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

    from sb3_latent.zoo.config import load_zoo_config
    from sb3_latent.zoo.entry import check_entry, make_env
    from sb3_latent.zoo.manager import resolve_algo

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
        summary[label] = {
            "runs": len(curves),
            "final_mean": float(mean[-1]),
            "final_std": float(std[-1]),
            "steps": int(steps[-1]),
        }
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
        status = "ok" if error is None else error
        rows.append({"kind": e.kind, "name": e.name, "target": e.target, "from": e.distribution, "status": status})
    width = {k: max([len(k)] + [len(r[k]) for r in rows]) for k in ("kind", "name", "from", "target")}
    print("  ".join(k.ljust(width[k]) for k in ("kind", "name", "from", "target")) + "  status")
    for r in rows:
        print("  ".join(r[k].ljust(width[k]) for k in ("kind", "name", "from", "target")) + "  " + r["status"])
    plugins = sorted({r["from"] for r in rows if r["from"] != "sb3-latent"})
    print(f"\nplugins: {', '.join(plugins) if plugins else '(none installed)'}")
    if args.kind in (None, "algorithms"):
        from sb3_latent.zoo.manager import stock_algorithms

        print(
            "stock algorithms (stable-baselines3 / sb3-contrib, through rl_zoo3): "
            + ", ".join(sorted(stock_algorithms()))
        )
    return rows


# --- tune ----------------------------------------------------------------------------------------


def cmd_tune(args: argparse.Namespace) -> Any:
    """One tuning worker (run the same command on as many processes/machines as you like)."""
    from sb3_latent.zoo.config import find_file
    from sb3_latent.zoo.manager import resolve_algo
    from sb3_latent.zoo.tune import StudySpec, TuningFailed, run_worker

    _import_packages(args.gym_packages)
    _check_env(args.env)
    if args.n_trials is None and args.max_total_trials is None:
        raise UsageError("give --n-trials (per worker) or --max-total-trials (whole study), or both")
    try:
        resolve_algo(args.algo)
        spec_path, _ = find_file(args.spec, "study spec", args.algo)
        spec = StudySpec.load(spec_path)
    except (ValueError, TypeError, ImportError) as e:
        raise UsageError(str(e)) from e
    print(f"study spec: {spec_path}")
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    study_name = args.study_name or f"{args.algo}-{_env_name(args.env)}"
    out = Path(args.log_folder) / "tune" / study_name if args.out is None else Path(args.out)
    if args.n_timesteps:
        spec.budget["n_timesteps"] = args.n_timesteps
    try:
        study = run_worker(
            spec,
            args.algo,
            args.env,
            storage=args.storage,
            study_name=study_name,
            n_trials=args.n_trials,
            max_total_trials=args.max_total_trials,
            out=out,
            config=args.conf,
            overrides=overrides_of(args),
            pruning=not args.no_pruning,
            seed=args.seed,
            device=args.device,
            heartbeat_interval=args.heartbeat,
            grace_period=args.grace_period,
            verbose=args.verbose,
        )
    except (ValueError, TypeError, ImportError) as e:  # raised before the first trial (trials' own are recorded)
        raise UsageError(str(e)) from e
    except TuningFailed as e:
        print((out / "report.md").read_text())
        print(f"sb3-latent tune: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
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
