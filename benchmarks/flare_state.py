"""The Flare paper's state-based motivation experiment (Figures 2 and 3) at the scale of this machine.

SAC on DMC tasks where velocities matter, four ways:

- ``full state``: positions and velocities (the upper reference);
- ``positions only``: the current positions, no velocities;
- ``stacked positions``: the last 4 position vectors concatenated ("stack SAC");
- ``state Flare``: the last 4 position vectors through :class:`sb3_latent.StateFlareExtractor`
  (current positions and their 3 finite differences).

Several seeds per (task, variant), run two at a time (one torch thread each); the evaluation return
of the deterministic policy is logged during training. The paper uses 1024x2 MLPs, batch 1024 and
millions of steps; we use SB3's SAC with a 256x2 MLP, batch 256 and a budget that fits about an
hour on two CPU cores, so only the ordering of the variants can be compared with the paper.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

import multiprocessing as mp
import tempfile
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, md_table, parser, write

VARIANTS = ("full state", "positions only", "stacked positions", "state Flare")
#: task → (action repeat, agent steps in the full run)
TASKS: dict[str, tuple[int, int]] = {
    "cartpole-swingup": (8, 12_000),
    "pendulum-swingup": (4, 12_000),
    "walker-walk": (2, 12_000),
}


def run_one(job: tuple[str, str, int, int, int, int]) -> dict[str, Any]:
    """Train one (task, variant, seed); return its evaluation curve."""
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import EvalCallback

    from sb3_latent import make_dmc_env, state_flare_kwargs

    task, variant, seed, steps, repeat, eval_freq = job
    torch.set_num_threads(1)
    domain, name = task.split("-", 1)
    kw: dict[str, Any] = {"pixels": False, "action_repeat": repeat}
    if variant == "full state":
        kw.update(frame_stack=1)
    else:
        kw.update(position_only=True, frame_stack=1 if variant == "positions only" else 4)
    policy_kwargs: dict[str, Any] = {"net_arch": [256, 256]}
    if variant == "state Flare":
        policy_kwargs = state_flare_kwargs(n_frames=4, net_arch=[256, 256])
    env = make_dmc_env(domain, name, seed=seed, **kw)
    eval_env = make_dmc_env(domain, name, seed=seed + 10_000, **kw)
    model = SAC(
        "MlpPolicy",
        env,
        policy_kwargs=policy_kwargs,
        learning_rate=1e-3,
        batch_size=256,
        tau=0.01,
        learning_starts=min(1000, steps // 4),
        seed=seed,
        device="cpu",
    )
    with tempfile.TemporaryDirectory() as log_dir:  # EvalCallback keeps its curve only with a log_path
        cb = EvalCallback(eval_env, eval_freq=eval_freq, n_eval_episodes=5, log_path=log_dir, verbose=0)
        model.learn(steps, callback=cb)
    return {
        "task": task,
        "variant": variant,
        "seed": seed,
        "steps": cb.evaluations_timesteps,
        "returns": [float(np.mean(r)) for r in cb.evaluations_results],
    }


def plot(runs: list[dict[str, Any]], tasks: list[str], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 3.8), squeeze=False)
    for ax, task in zip(axes[0], tasks, strict=True):
        for variant in VARIANTS:
            curves = [r for r in runs if r["task"] == task and r["variant"] == variant]
            if not curves:
                continue
            steps = np.array(curves[0]["steps"]) * TASKS[task][0]
            ret = np.array([c["returns"] for c in curves])
            ax.plot(steps, ret.mean(0), label=variant)
            ax.fill_between(steps, ret.mean(0) - ret.std(0), ret.mean(0) + ret.std(0), alpha=0.2)
        ax.set_title(task)
        ax.set_xlabel("environment steps (agent steps x action repeat)")
        ax.set_ylabel("evaluation return")
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    tasks = ["cartpole-swingup"] if args.quick else list(TASKS)
    seeds = 1 if args.quick else args.seeds
    jobs = []
    for task in tasks:
        repeat, steps = TASKS[task]
        steps = 400 if args.quick else steps
        eval_freq = steps // (2 if args.quick else 12)
        jobs += [(task, v, s, steps, repeat, eval_freq) for v in VARIANTS for s in range(seeds)]
    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            runs = pool.map(run_one, jobs, chunksize=1)
    else:
        runs = [run_one(j) for j in jobs]
    table_rows, summary = [], {}
    for task in tasks:
        row: list[Any] = [task]
        for variant in VARIANTS:
            finals = [r["returns"][-1] for r in runs if r["task"] == task and r["variant"] == variant]
            summary[f"{task}/{variant}"] = {
                "mean": float(np.mean(finals)),
                "std": float(np.std(finals)),
                "finals": finals,
            }
            row.append(f"{np.mean(finals):.0f} ± {np.std(finals):.0f}")
        table_rows.append(row)
    stem = "flare_state.quick" if args.quick else "flare_state"
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, tasks, str(args.out / f"{stem}.png"))
    budget = ", ".join(f"{t}: {TASKS[t][1] if not args.quick else 400} agent steps x{TASKS[t][0]}" for t in tasks)
    table = md_table(["task", *VARIANTS], table_rows)
    table += (
        f"\nFinal evaluation return (5 episodes, deterministic), mean ± std over {seeds} seeds. "
        f"Budget: {budget}. SAC 256x256, batch 256, lr 1e-3. Curves: `{stem}.png`.\n"
    )
    return write("flare_state", args, {"tasks": tasks, "seeds": seeds, "summary": summary, "runs": runs}, table)


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    main()
