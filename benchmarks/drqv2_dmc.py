"""DrQ-v2 on DMC from pixels, next to the published learning curves of the official code.

Each run is built from ``zoo_configs/drqv2.yml`` (the official per-task settings: 84x84, 3 frames,
action repeat 2, ...) and trained until its frame budget or its wall-clock budget runs out,
whichever comes first; the deterministic policy is evaluated every ``--eval-every`` frames.
Frames are environment steps (agent steps x action repeat 2), as the paper counts them.

Two scales:

- CPU (default): cartpole swingup and walker walk, one process per task side by side (one torch
  thread each), at most ``--minutes`` (45) each. Options ``--batch-size`` and ``--buffer-size``
  shrink the official settings to what two cores can afford; the table says what was used.
- ``--paper``: the medium tasks of the paper's Figure (cheetah run, walker run, quadruped walk),
  1M frames, on a GPU (``device="auto"``), several seeds.

The published numbers are the mean (std) over the 10 seeds of the official code's
``curves/dmc_<task>.csv`` (facebookresearch/drqv2), at the frame checkpoints listed in ``PUBLISHED``.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import argparse
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, md_table, parser, write

CONFIGS = Path(__file__).resolve().parent.parent / "zoo_configs" / "drqv2.yml"
REPEAT = 2  # every DrQ-v2 task uses action repeat 2
#: published DrQ-v2 evaluation return: task -> {frames: (mean, std over 10 seeds)}
PUBLISHED: dict[str, dict[int, tuple[float, float]]] = {
    "cartpole-swingup": {
        0: (17, 11),
        20_000: (102, 56),
        40_000: (203, 116),
        60_000: (326, 203),
        80_000: (484, 245),
        100_000: (626, 254),
        120_000: (714, 177),
        140_000: (751, 146),
        160_000: (780, 83),
        180_000: (796, 45),
        200_000: (807, 29),
    },
    "walker-walk": {
        0: (21, 3),
        20_000: (47, 38),
        40_000: (65, 52),
        60_000: (89, 73),
        80_000: (132, 112),
        100_000: (170, 152),
        120_000: (231, 170),
        140_000: (253, 169),
        160_000: (324, 232),
        180_000: (369, 260),
        200_000: (428, 266),
    },
    "cheetah-run": {
        0: (0, 0),
        200_000: (479, 47),
        400_000: (577, 52),
        600_000: (648, 25),
        800_000: (681, 23),
        1_000_000: (729, 41),
    },
    "walker-run": {
        0: (20, 2),
        200_000: (217, 87),
        400_000: (383, 123),
        600_000: (472, 127),
        800_000: (511, 112),
        1_000_000: (546, 108),
    },
    "quadruped-walk": {
        0: (158, 65),
        200_000: (190, 82),
        400_000: (296, 99),
        600_000: (424, 122),
        800_000: (639, 137),
        1_000_000: (750, 79),
    },
}
CPU_TASKS = ("cartpole-swingup", "walker-walk")
PAPER_TASKS = ("cheetah-run", "walker-run", "quadruped-walk")


def published_at(task: str, frames: float) -> tuple[float, float]:
    """The published mean and std at ``frames``, linearly interpolated between checkpoints."""
    points = sorted(PUBLISHED[task].items())
    xs = [f for f, _ in points]
    return (
        float(np.interp(frames, xs, [m for _, (m, _) in points])),
        float(np.interp(frames, xs, [s for _, (_, s) in points])),
    )


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (task, seed) until its frame or time budget; return its evaluation curve."""
    import torch
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.env_util import make_vec_env
    from stable_baselines3.common.evaluation import evaluate_policy

    from sb3_latent import DrQv2
    from sb3_latent.zoo import build_from_config, load_zoo_config

    if job["threads"]:
        torch.set_num_threads(job["threads"])
    env_id = f"sb3_latent/{job['task']}-pixels-v0"
    cfg = load_zoo_config(CONFIGS, env_id)
    overrides = {k: job[k] for k in ("batch_size", "buffer_size", "learning_starts") if job.get(k)}
    overrides.update(job.get("extra", {}))
    model, _ = build_from_config(
        DrQv2, env_id, cfg, source=str(CONFIGS), seed=job["seed"], device=job["device"], **overrides
    )
    eval_env = make_vec_env(
        env_id, seed=job["seed"] + 10_000, env_kwargs={**cfg["env_kwargs"], **job.get("env_kwargs", {})}
    )
    curve: list[tuple[int, float, float, float]] = []  # (frames, mean return, std, seconds)
    start = time.perf_counter()

    def evaluate() -> None:
        mean, std = evaluate_policy(model, eval_env, n_eval_episodes=job["eval_episodes"])
        curve.append((model.num_timesteps * REPEAT, float(mean), float(std), time.perf_counter() - start))
        print(
            f"[{job['task']} seed {job['seed']}] {curve[-1][0]:>8} frames  return {mean:7.1f}  "
            f"{curve[-1][3] / 60:5.1f} min",
            flush=True,
        )

    class Budget(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps * REPEAT % job["eval_every"] == 0:
                evaluate()
            return time.perf_counter() - start < job["seconds"]

    evaluate()
    model.learn(job["frames"] // REPEAT, callback=Budget())
    if curve[-1][0] != model.num_timesteps * REPEAT:
        evaluate()
    updates = int(model._n_updates)
    return {
        "task": job["task"],
        "seed": job["seed"],
        "curve": curve,
        "updates": updates,
        "frames": model.num_timesteps * REPEAT,
        "seconds": time.perf_counter() - start,
        "batch_size": model.batch_size,
        "buffer_size": model.buffer_size,
    }


def plot(runs: list[dict[str, Any]], tasks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        mine = [r for r in runs if r["task"] == task]
        top = max(r["frames"] for r in mine)
        xs = np.linspace(0, max(top, 20_000), 50)
        pub = np.array([published_at(task, x) for x in xs])
        ax.plot(xs, pub[:, 0], color="gray", label="DrQ-v2 published (10 seeds)")
        ax.fill_between(xs, pub[:, 0] - pub[:, 1], pub[:, 0] + pub[:, 1], color="gray", alpha=0.2)
        for r in mine:
            c = np.array(r["curve"])
            ax.plot(c[:, 0], c[:, 1], marker="o", ms=3, label=f"ours, seed {r['seed']}")
        ax.set_title(task)
        ax.set_xlabel("frames (agent steps x action repeat 2)")
        ax.set_ylabel("evaluation return")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(
    runs: list[dict[str, Any]], tasks: list[str], seeds: int, job: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Table, plot and result files from the runs (also used to redo the report from a saved JSON)."""
    quick = args.quick
    rows = []
    for task in tasks:
        mine = [r for r in runs if r["task"] == task]
        frames = min(r["frames"] for r in mine)
        finals = [r["curve"][-1][1] for r in mine]
        ours = f"{np.mean(finals):.0f} ± {np.std(finals):.0f}" if len(finals) > 1 else f"{finals[0]:.0f} (1 seed)"
        pub = published_at(task, frames)
        rows.append(
            [
                task,
                f"{frames:,}",
                ours,
                f"{pub[0]:.0f} ± {pub[1]:.0f}",
                f"{np.mean([r['updates'] for r in mine]):.0f}",
                f"{np.mean([r['seconds'] for r in mine]) / 60:.1f}",
                mine[0]["batch_size"],
                mine[0]["buffer_size"],
            ]
        )
    table = md_table(
        [
            "task",
            "frames reached",
            "ours (final eval)",
            "DrQ-v2 published at those frames",
            "updates",
            "minutes",
            "batch",
            "buffer",
        ],
        rows,
    )
    stem = "drqv2_dmc.quick" if quick else "drqv2_dmc"
    table += (
        f"\n{seeds} seed(s) per task, {job['eval_episodes']} evaluation episodes (deterministic actor) every "
        f"{job['eval_every']:,} frames; budget per run: {job['frames']:,} frames or "
        f"{job['seconds'] / 60:.0f} min, whichever first. Published: mean ± std over the official code's "
        f"10 seeds (curves/dmc_<task>.csv), interpolated. Curves: `{stem}.png`.\n"
    )
    if quick:
        table += "QUICK MODE: 36x36 frames, tiny networks and budget; the numbers only show the pipeline runs.\n"
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, tasks, args.out / f"{stem}.png")
    out = {"tasks": tasks, "seeds": seeds, "budget": job, "runs": runs}
    return write("drqv2_dmc", args, out, table)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--paper", action="store_true", help="the medium tasks at 1M frames (needs a GPU)")
    p.add_argument("--tasks", nargs="*", choices=list(PUBLISHED), default=None)
    p.add_argument("--seeds", type=int, default=None, help="seeds per task (CPU 1, --paper 3)")
    p.add_argument("--minutes", type=float, default=None, help="wall-clock budget per run (CPU 45)")
    p.add_argument("--frames", type=int, default=None, help="frame budget per run (CPU 200k, --paper 1M)")
    p.add_argument("--eval-every", type=int, default=None, help="frames between evaluations (CPU 10k)")
    p.add_argument("--eval-episodes", type=int, default=None, help="episodes per evaluation (CPU 5, paper 10)")
    p.add_argument("--batch-size", type=int, default=None, help="override the zoo config's batch size")
    p.add_argument("--buffer-size", type=int, default=None, help="override the zoo config's buffer size")
    p.add_argument("--workers", type=int, default=None, help="parallel runs (CPU: one per task)")
    p.add_argument("--device", default="auto")
    args = p.parse_args(argv)
    quick = args.quick
    tasks = args.tasks or (["cartpole-swingup"] if quick else list(PAPER_TASKS if args.paper else CPU_TASKS))
    seeds = args.seeds or (3 if args.paper else 1)
    job = {
        "device": args.device,
        "threads": 0 if args.paper else 1,
        "seconds": 60 * (args.minutes or (600 if args.paper else 45)),
        "frames": args.frames or (1_000 if quick else 1_000_000 if args.paper else 200_000),
        "eval_every": args.eval_every or (500 if quick else 100_000 if args.paper else 10_000),
        "eval_episodes": args.eval_episodes or (1 if quick else 10 if args.paper else 5),
        "batch_size": 16 if quick else args.batch_size,
        "buffer_size": 2_000 if quick else args.buffer_size,
    }
    if quick:  # the same path end to end on tiny frames and networks; the numbers mean nothing
        job.update(
            learning_starts=200,
            env_kwargs={"size": 36},
            extra={"env_kwargs": {"size": 36}, "policy_kwargs": {"net_arch": [32, 32]}},
        )
    jobs = [{**job, "task": t, "seed": s} for t in tasks for s in range(seeds)]
    workers = args.workers or (1 if args.paper or quick else len(jobs))
    if workers > 1:
        with mp.get_context("spawn").Pool(workers) as pool:
            runs = pool.map(run_one, jobs, chunksize=1)
    else:
        runs = [run_one(j) for j in jobs]
    return report(runs, tasks, seeds, job, args)


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    main()
