"""Does freezing hurt? DrQ-v2 with and without LeVER on a small pixel task, with an ample and a small buffer.

The LeVER paper's claims (§5.1-5.2): freezing the encoder at ``T_f`` does not degrade returns, and
in a memory-constrained setting the larger latent buffer LeVER affords improves them. Four variants
of :class:`sb3_latent.DrQv2`, several seeds each, on MovingDot from pixels (36x36, 3 stacked frames:
only the motion between frames says where to push, so the encoder must learn to see it):

- ``DrQ-v2``: images, a buffer that holds the whole run;
- ``DrQ-v2 + LeVER``: the same, frozen at ``T_f`` updates, K = 4 latent copies;
- ``DrQ-v2, small buffer``: ``--small`` transitions of images (the paper's Figure 5 setting);
- ``DrQ-v2 + LeVER, small buffer``: the same memory; at ``T_f`` the buffer grows to
  ``floor(C P / (4 N K L))`` transitions of latents.

Evaluation: deterministic actor, 10 episodes, every ``--eval-every`` agent steps. Runs go two at a
time (one torch thread each). The CPU budget is about 30 minutes.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, md_table, parser, write

VARIANTS = ("DrQ-v2", "DrQ-v2 + LeVER", "DrQ-v2, small buffer", "DrQ-v2 + LeVER, small buffer")


def run_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one (variant, seed); return its evaluation curve and buffer facts."""
    import torch
    from stable_baselines3.common.callbacks import EvalCallback

    from sb3_latent import DrQv2, LeVERReplayBuffer, make_moving_dot_env

    torch.set_num_threads(1)
    variant, seed, steps, size = job["variant"], job["seed"], job["steps"], job["size"]
    buffer_size = job["small"] if "small" in variant else steps
    kwargs: dict[str, Any] = {}
    if "LeVER" in variant:
        kwargs = dict(replay_buffer_class=LeVERReplayBuffer, replay_buffer_kwargs=dict(T_f=job["T_f"], K=4))
    env = make_moving_dot_env(frame_stack=3, seed=seed, size=size)
    eval_env = make_moving_dot_env(frame_stack=3, seed=seed + 10_000, size=size)
    model = DrQv2(
        "CnnPolicy",
        env,
        buffer_size=buffer_size,
        batch_size=job["batch"],
        learning_starts=job["starts"],
        learning_rate=1e-3,
        train_freq=1,
        gamma=0.9,
        stddev_schedule=f"linear(1.0, 0.1, {steps})",
        seed=seed,
        policy_kwargs={"net_arch": [256, 256]},
        device="cpu",
        **kwargs,
    )
    start = time.perf_counter()
    curve: list[tuple[int, float]] = []

    class Record(EvalCallback):
        def _on_step(self) -> bool:
            ok = super()._on_step()
            if self.n_calls % self.eval_freq == 0:
                curve.append((self.num_timesteps, float(self.last_mean_reward)))
            return ok

    cb = Record(eval_env, eval_freq=job["eval_every"], n_eval_episodes=10, verbose=0)
    model.learn(steps, callback=cb)
    rb = model.replay_buffer
    out = {
        "variant": variant,
        "seed": seed,
        "steps": [c[0] for c in curve],
        "returns": [c[1] for c in curve],
        "seconds": time.perf_counter() - start,
        "capacity_end": int(rb.buffer_size * rb.n_envs),  # type: ignore[union-attr]
        "stored_end": int(rb.size() * rb.n_envs),
    }  # type: ignore[union-attr]
    if isinstance(rb, LeVERReplayBuffer):
        out.update(frozen=rb.frozen, reencode_seconds=rb.reencode_seconds)
    print(f"{variant} seed {seed}: final {curve[-1][1]:.1f} in {out['seconds'] / 60:.1f} min", flush=True)
    return out


def plot(runs: list[dict[str, Any]], path: str, t_f: int, starts: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for variant in VARIANTS:
        curves = [r for r in runs if r["variant"] == variant]
        if not curves:
            continue
        steps = np.array(curves[0]["steps"])
        ret = np.array([c["returns"] for c in curves])
        ax.plot(steps, ret.mean(0), label=variant, ls="--" if "small" in variant else "-")
        ax.fill_between(steps, ret.mean(0) - ret.std(0), ret.mean(0) + ret.std(0), alpha=0.15)
    ax.axvline(starts + t_f, color="gray", ls=":", label="T_f (LeVER freezes)")
    ax.set_xlabel("agent steps")
    ax.set_ylabel("evaluation return (10 episodes)")
    ax.set_title("MovingDot from pixels: DrQ-v2 with and without LeVER")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--steps", type=int, default=6_000, help="agent steps per run")
    p.add_argument("--small", type=int, default=300, help="capacity of the small buffer (transitions)")
    p.add_argument("--T-f", dest="T_f", type=int, default=1_500, help="LeVER freezing time (updates)")
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    job = dict(steps=args.steps, size=36, small=args.small, T_f=args.T_f, batch=64, starts=500, eval_every=500)
    if args.quick:
        job.update(
            steps=300, size=28, small=100, T_f=50, batch=16, starts=100, eval_every=100
        )  # 28: a frame > a latent
    seeds = 1 if args.quick else args.seeds
    jobs = [{**job, "variant": v, "seed": s} for s in range(seeds) for v in VARIANTS]
    if args.workers > 1:
        with mp.get_context("spawn").Pool(args.workers) as pool:
            runs = pool.map(run_one, jobs, chunksize=1)
    else:
        runs = [run_one(j) for j in jobs]
    rows, summary = [], {}
    for variant in VARIANTS:
        mine = [r for r in runs if r["variant"] == variant]
        finals = [r["returns"][-1] for r in mine]
        best = [max(r["returns"]) for r in mine]
        summary[variant] = {"final_mean": float(np.mean(finals)), "final_std": float(np.std(finals)), "finals": finals}
        rows.append(
            [
                variant,
                f"{np.mean(finals):.1f} ± {np.std(finals):.1f}",
                f"{np.mean(best):.1f}",
                f"{np.mean([r['capacity_end'] for r in mine]):,.0f}",
                f"{np.mean([r['seconds'] for r in mine]) / 60:.1f}",
            ]
        )
    stem = "lever_learning.quick" if args.quick else "lever_learning"
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, str(args.out / f"{stem}.png"), job["T_f"], job["starts"])
    table = md_table(
        ["variant", "final return", "best evaluation", "buffer capacity at the end", "minutes per run"], rows
    )
    table += (
        f"\nMovingDot pixels {job['size']}x{job['size']}, 3 stacked frames, {job['steps']:,} agent steps, "
        f"DrQ-v2 (default encoder, MLP 256x2, batch {job['batch']}, lr 1e-3, an update per step from step "
        f"{job['starts']}), LeVER T_f = {job['T_f']:,} updates, K = 4; small buffer: {job['small']:,} "
        f"transitions. Mean ± std over {seeds} seed(s); curves: `{stem}.png`.\n"
    )
    out = {"job": job, "seeds": seeds, "summary": summary, "runs": runs}
    return write("lever_learning", args, out, table)


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    main()
