"""Distributed tuning: trials per hour of 1 and 2 workers on one PostgreSQL study; env steps saved by pruning.

Trials per hour with 1 and 2 worker processes on one study, and the env steps that pruning saves against no
pruning for the same number of trials.

Workers are `sb3-latent tune` processes (one torch thread each) sharing a study in a local PostgreSQL
server (`.ci/postgres.sh`, or `$SB3_LATENT_POSTGRES_URL`). Every trial is RAD + Flare on the moving-dot
env with the same budget and only the learning rate searched, so trials cost the same; throughput is
counted from the first trial's start to the last trial's end (process start-up excluded).

    python -m benchmarks.tuning_speed [--quick]
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.trial import TrialState

from benchmarks.common import goal, md_table, parser, write

ROOT = Path(__file__).resolve().parent.parent
ENV = "sb3_latent/MovingDot-v0"


def spec(n_timesteps: int, n_evaluations: int, n_eval_episodes: int = 2) -> dict[str, Any]:
    return {
        "algo": "rad",
        "fixed": {
            "policy": "CnnPolicy",
            "frame_stack": 3,
            "extractor": "flare",
            "extractor_kwargs": {"n_frames": 3, "features_dim": 16},
            "policy_kwargs": {"net_arch": [32, 32]},
            "buffer_size": 5000,
            "learning_starts": 50,
            "batch_size": 32,
        },
        "budget": {"n_timesteps": n_timesteps, "n_evaluations": n_evaluations, "n_eval_episodes": n_eval_episodes},
        "sampler": {"name": "random"},
        "pruner": {"name": "median", "n_startup_trials": 2, "n_warmup_steps": 1},
        "search_space": {"learning_rate": {"type": "float", "low": 1e-5, "high": 3e-2, "log": True}},
    }


def start_postgres() -> tuple[str, Path | None]:
    """``$SB3_LATENT_POSTGRES_URL``, or a server started by ``.ci/postgres.sh`` in a folder of its own
    (outside root-private temporary folders: the server runs as ``postgres``)."""
    url = os.environ.get("SB3_LATENT_POSTGRES_URL")
    if url:
        return url, None
    folder = Path(tempfile.mkdtemp(prefix="sb3-latent-pg-"))
    proc = subprocess.run(
        ["bash", str(ROOT / ".ci" / "postgres.sh"), "start", str(folder)], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        raise RuntimeError(f"PostgreSQL did not start: {proc.stderr[-1000:]}")
    return proc.stdout.strip().splitlines()[-1], folder


def run_workers(url: str, study: str, spec_path: Path, n_workers: int, total: int, out: Path, *extra: str) -> list[str]:
    env = {
        **os.environ,
        "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sb3_latent.zoo.cli",
                "tune",
                "--algo",
                "rad",
                "--env",
                ENV,
                "--spec",
                str(spec_path),
                "--storage",
                url,
                "--study-name",
                study,
                "--max-total-trials",
                str(total),
                "--num-threads",
                "1",
                "--out",
                str(out / f"{study}-{i}"),
                "--seed",
                str(i),
                *extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=ROOT,
        )
        for i in range(n_workers)
    ]
    outputs = [p.communicate()[0] for p in procs]
    for p, o in zip(procs, outputs, strict=True):
        if p.returncode != 0:
            raise RuntimeError(f"worker failed:\n{o[-3000:]}")
    return outputs


def throughput(url: str, study: str) -> dict[str, Any]:
    trials = optuna.load_study(study_name=study, storage=url).get_trials(states=[TrialState.COMPLETE])
    start = min(t.datetime_start for t in trials)
    end = max(t.datetime_complete for t in trials)
    seconds = (end - start).total_seconds()
    durations = sorted((t.datetime_complete - t.datetime_start).total_seconds() for t in trials)
    return {
        "trials": len(trials),
        "seconds": seconds,
        "trials_per_hour": 3600 * len(trials) / seconds,
        "median_trial_seconds": durations[len(durations) // 2],
        "workers": sorted({t.user_attrs["worker"] for t in trials}),
    }


def steps(url: str, study: str) -> dict[str, Any]:
    trials = optuna.load_study(study_name=study, storage=url).get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    best = max((t.value for t in done if t.state == TrialState.COMPLETE and t.value is not None), default=None)
    return {
        "trials": len(done),
        "pruned": sum(t.state == TrialState.PRUNED for t in done),
        "env_steps": sum(int(t.user_attrs.get("env_steps", 0)) for t in done),
        "best_value": best,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.split("\n")[0])
    args = p.parse_args(argv)
    n_timesteps, n_evals, n_throughput, n_pruning = (100, 2, 2, 4) if args.quick else (500, 4, 10, 12)
    tag = f"{int(time.time())}-{os.getpid()}"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url, pg = start_postgres()
        try:
            spec_path = folder / "spec.yml"
            spec_path.write_text(yaml.safe_dump(spec(n_timesteps, n_evals, 1 if args.quick else 2)))
            rates = {}
            for n in (1, 2):
                name = f"throughput-{n}w-{tag}"
                run_workers(url, name, spec_path, n, n_throughput, folder, "--no-pruning")
                rates[n] = throughput(url, name)
                # > n: something besides the workers used the cores (the ratio is then no measure of scaling)
                rates[n]["load_average_1min_at_end"] = os.getloadavg()[0]
            pruning = {}
            for label, extra in (("median pruner", ()), ("no pruning", ("--no-pruning",))):
                name = f"pruning-{label.split()[0]}-{tag}"
                run_workers(url, name, spec_path, 1, n_pruning, folder, *extra)
                pruning[label] = steps(url, name)
        finally:
            if pg is not None:
                subprocess.run(
                    ["bash", str(ROOT / ".ci" / "postgres.sh"), "stop", str(pg)], capture_output=True, timeout=120
                )
                shutil.rmtree(pg, ignore_errors=True)
    speedup = rates[2]["trials_per_hour"] / rates[1]["trials_per_hour"]
    saved = 1 - pruning["median pruner"]["env_steps"] / pruning["no pruning"]["env_steps"]
    results = {
        "setup": {
            "env": ENV,
            "algo": "rad + flare",
            "n_timesteps_per_trial": n_timesteps,
            "n_evaluations": n_evals,
            "throughput_trials": n_throughput,
            "pruning_trials": n_pruning,
            "storage": "postgresql (local)",
            "torch_threads_per_worker": 1,
        },
        "throughput": {f"{n} worker{'s' * (n > 1)}": r for n, r in rates.items()},
        "speedup_2_workers": speedup,
        "pruning": pruning,
        "env_steps_saved_by_pruning": saved,
    }
    rows = [
        [k, r["trials"], r["seconds"], r["trials_per_hour"], r["median_trial_seconds"], r["load_average_1min_at_end"]]
        for k, r in results["throughput"].items()
    ]
    table = md_table(["workers", "trials", "seconds", "trials/hour", "median trial s", "load avg (1 min) at end"], rows)
    table += f"\n2 workers / 1 worker: **{speedup:.2f}x** (goal 1.7x: {'met' if speedup >= 1.7 else 'not met'})\n\n"
    table += md_table(
        ["pruning", "finished trials", "pruned", "env steps", "best value"],
        [[k, r["trials"], r["pruned"], r["env_steps"], r["best_value"]] for k, r in pruning.items()],
    )
    table += f"\nenv steps saved by pruning for the same number of trials: **{100 * saved:.0f}%**\n"
    return write("tuning_speed", args, results, table, {"two_workers_vs_one": goal(speedup, 1.7)})


if __name__ == "__main__":
    main()
