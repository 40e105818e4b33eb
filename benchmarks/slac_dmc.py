"""SLAC on DMC cartpole swingup from 64x64 pixels within a CPU budget, and the paper's Figure 9 after it.

The run is built from ``zoo_configs/slac.yml`` (paper networks and learning rates; action repeat 8) and
stops at ``--minutes`` (45) or ``--frames``. On two CPU cores the paper's schedule (10k random steps,
100k model-only updates, batches 256 / 32) would not reach its first SAC update in that time, so the CPU
run shrinks what costs time and says so: ``--learning-starts`` random steps, ``--pretrain`` model
updates, ``--batch-size`` and ``--model-batch-size``. Evaluation: the stochastic policy (as the paper),
5 episodes, every ``--eval-every`` frames; the random policy's return is measured for reference.
Writes ``slac_dmc.{json,md,png}`` and ``slac_dmc.rollouts.png`` (true / posterior / conditional prior / prior).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, learn_on_budget, md_table, parser, plot_curve, random_returns, write

CONFIGS = Path(__file__).resolve().parent.parent / "zoo_configs" / "slac.yml"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_latent import SLAC
    from sb3_latent.algos.slac import write_rollouts
    from sb3_latent.zoo import build_from_config, load_zoo_config

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--task", default="cartpole-swingup")
    p.add_argument("--minutes", type=float, default=45)
    p.add_argument("--frames", type=int, default=500_000)
    p.add_argument("--learning-starts", type=int, default=1_000)
    p.add_argument("--pretrain", type=int, default=1_000, help="model-only updates before SAC (paper: 100k)")
    p.add_argument("--batch-size", type=int, default=64, help="SAC batch (paper: 256)")
    p.add_argument("--model-batch-size", type=int, default=16, help="model batch (paper: 32)")
    p.add_argument("--eval-every", type=int, default=10_000, help="frames")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.quick:
        args.minutes, args.frames, args.learning_starts, args.pretrain = 5, 2_400, 100, 5
        args.batch_size, args.model_batch_size, args.eval_every = 8, 4, 1_200
    env_id = f"sb3_latent/{args.task}-pixels-v0"
    cfg = load_zoo_config(CONFIGS, env_id)
    repeat = int(cfg["env_kwargs"]["action_repeat"])
    overrides: dict[str, Any] = dict(
        learning_starts=args.learning_starts,
        initial_model_updates=args.pretrain,
        batch_size=args.batch_size,
        model_batch_size=args.model_batch_size,
        device=args.device,
    )
    env_kwargs = dict(cfg["env_kwargs"])
    if args.quick:  # tiny networks and frames: the path end to end, numbers meaningless
        env_kwargs["size"] = 32
        overrides.update(
            env_kwargs=env_kwargs,
            policy_kwargs=dict(conv_width=4, feature_dim=32, z1_dim=8, z2_dim=16, hidden=[32, 32]),
        )
    model, _ = build_from_config(SLAC, env_id, cfg, source=str(CONFIGS), seed=args.seed, **overrides)
    assert isinstance(model, SLAC)
    eval_env = make_vec_env(env_id, seed=args.seed + 10_000, env_kwargs=env_kwargs)
    n_eval = 1 if args.quick else 5
    random = random_returns(eval_env, n_eval, 1000 // repeat)
    curve = learn_on_budget(model, eval_env, args.frames, repeat, args.minutes, args.eval_every, n_eval)
    stem = "slac_dmc.quick" if args.quick else "slac_dmc"
    args.out.mkdir(parents=True, exist_ok=True)
    write_rollouts(model, args.out / f"{stem}.rollouts.png")
    plot_curve(
        curve,
        random,
        args.out / f"{stem}.png",
        "SLAC (ours), stochastic policy",
        f"SLAC, {args.task} from pixels, CPU budget",
        repeat,
    )
    rows = [
        [
            args.task,
            f"{curve[-1][0]:,}",
            f"{curve[-1][1]:.0f}",
            f"{max(v for _, v, _ in curve):.0f}",
            f"{np.mean(random):.0f}",
            model.model_updates_done,
            model._n_updates,
            f"{curve[-1][2] / 60:.1f}",
        ]
    ]
    table = md_table(
        ["task", "frames", "final return", "best return", "random policy", "model updates", "SAC updates", "minutes"],
        rows,
    )
    table += (
        "\nQUICK MODE: 32x32 frames, tiny networks and budget; the numbers only show the pipeline runs.\n"
        if args.quick
        else ""
    )
    table += (
        f"\nOne seed; 64x64 frames, action repeat {repeat}, paper networks; CPU schedule: "
        f"{args.learning_starts:,} random steps, {args.pretrain:,} model-only updates, "
        f"SAC batch {args.batch_size}, model batch {args.model_batch_size} (paper: 10k, 100k, 256, 32). "
        f"Curve: `{stem}.png`; model samples: `{stem}.rollouts.png`.\n"
    )
    out = {"task": args.task, "curve": curve, "random_returns": random, "schedule": vars(args) | {"out": str(args.out)}}
    del out["schedule"]["question"]
    return write("slac_dmc", args, out, table)


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    main()
