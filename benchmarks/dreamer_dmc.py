"""Dreamer on DMC cartpole swingup from 64x64 pixels within a CPU budget, and its open-loop predictions after it.

The run is built from ``zoo_configs/dreamer.yml`` (DreamerV3's hyperparameters, dreamerv3-torch's dmc_vision
settings) and stops at ``--minutes`` (45) or ``--frames``. On two CPU cores the paper's compute per env step
(size S, batch 16 x 64, train_ratio 512: one 0.15 s update per 2 env steps) would see ~1k updates in 45 min and
few frames, so the CPU run shrinks what costs time and says so: ``--size`` (xs), ``--batch-size`` x
``--batch-length`` and ``--train-ratio``, ``--learning-starts`` random steps, ``--action-repeat``
(default 8: the PlaNet / DreamerV1 convention for cartpole, as the SLAC run; the torch port uses 2 for every DMC
task), and, because DreamerV3's learning rates are set for ~10^5 updates and a CPU gets ~10^3 in 45 min,
``--model-lr`` and ``--ac-lr``. Evaluation: the policy's samples (as DreamerV3 acts), 5 episodes, every
``--eval-every`` frames; the random policy's return is measured for reference. ``--paper`` keeps the zoo entry
as it is (a GPU run).
Writes ``dreamer_dmc.{json,md,png}`` and ``dreamer_dmc.openloop.{png,gif}`` (truth / model / difference).
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, learn_on_budget, md_table, parser, plot_curve, random_returns, write

CONFIGS = Path(__file__).resolve().parent.parent / "zoo_configs" / "dreamer.yml"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_latent import Dreamer
    from sb3_latent.algos.dreamer import write_open_loop
    from sb3_latent.zoo import build_from_config, load_zoo_config

    p = parser(__doc__.splitlines()[0])
    p.add_argument("--task", default="cartpole-swingup")
    p.add_argument("--minutes", type=float, default=45)
    p.add_argument("--frames", type=int, default=1_000_000)
    p.add_argument("--size", default="xs", help="model size preset (zoo entry: s)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--batch-length", type=int, default=64)
    p.add_argument("--train-ratio", type=float, default=64, help="replayed steps per env step (zoo entry: 512)")
    p.add_argument("--learning-starts", type=int, default=1_000, help="random agent steps (zoo entry: 2500)")
    p.add_argument("--action-repeat", type=int, default=8, help="zoo entry: 2")
    p.add_argument("--eval-every", type=int, default=10_000, help="frames")
    p.add_argument("--model-lr", type=float, default=None, help="world-model lr (zoo entry: 1e-4)")
    p.add_argument("--ac-lr", type=float, default=None, help="actor and critic lr (zoo entry: 3e-5)")
    p.add_argument("--amp", action="store_true", help="bfloat16 compute (the official code's; needs native bf16)")
    p.add_argument("--paper", action="store_true", help="the zoo entry unchanged (size s, ratio 512, 4 envs): a GPU")
    p.add_argument("--device", default="auto")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    env_id = f"sb3_latent/{args.task}-pixels-v0"
    cfg = load_zoo_config(CONFIGS, env_id)
    env_kwargs = dict(cfg["env_kwargs"])
    overrides: dict[str, Any] = dict(device=args.device, amp=args.amp)
    if args.quick:  # tiny model, frames and budget: the path end to end, numbers meaningless
        args.minutes, args.frames, args.eval_every, args.learning_starts = 5, 1_600, 800, 50
        args.size, args.batch_size, args.batch_length, args.train_ratio = "xs", 2, 8, 16
        env_kwargs["size"] = 32
    if not args.paper:
        env_kwargs["action_repeat"] = args.action_repeat
        policy_kwargs = {**cfg["policy_kwargs"], "size": args.size}
        if args.ac_lr is not None:
            policy_kwargs.update(actor_lr=args.ac_lr, critic_lr=args.ac_lr)
        overrides.update(
            n_envs=1,
            learning_starts=args.learning_starts,
            batch_size=args.batch_size,
            batch_length=args.batch_length,
            train_ratio=args.train_ratio,
            policy_kwargs=policy_kwargs,
        )
        if args.model_lr is not None:
            overrides["learning_rate"] = args.model_lr
    overrides["env_kwargs"] = env_kwargs
    repeat = int(env_kwargs["action_repeat"])
    model, _ = build_from_config(Dreamer, env_id, cfg, source=str(CONFIGS), seed=args.seed, **overrides)
    assert isinstance(model, Dreamer)
    eval_env = make_vec_env(env_id, seed=args.seed + 10_000, env_kwargs=env_kwargs)
    n_eval = 1 if args.quick else 5
    random = random_returns(eval_env, n_eval, 1000 // repeat)
    curve = learn_on_budget(model, eval_env, args.frames, repeat, args.minutes, args.eval_every, n_eval)
    stem = "dreamer_dmc.quick" if args.quick else "dreamer_dmc"
    args.out.mkdir(parents=True, exist_ok=True)
    write_open_loop(model, args.out / f"{stem}.openloop.png", context=5, horizon=15 if not args.quick else 5)
    plot_curve(
        curve,
        random,
        args.out / f"{stem}.png",
        f"Dreamer (ours, size {args.size}), policy samples",
        f"Dreamer, {args.task} from pixels, CPU budget",
        repeat,
    )
    rows = [
        [
            args.task,
            f"{curve[-1][0]:,}",
            f"{curve[-1][1]:.0f}",
            f"{max(v for _, v, _ in curve):.0f}",
            f"{np.mean(random):.0f}",
            model._n_updates,
            f"{model.policy.n_parameters() / 1e6:.1f}M",
            f"{curve[-1][2] / 60:.1f}",
        ]
    ]
    table = md_table(
        ["task", "frames", "final return", "best return", "random policy", "updates", "parameters", "minutes"], rows
    )
    table += (
        "\nQUICK MODE: 32x32 frames, tiny batch and budget; the numbers only show the pipeline runs.\n"
        if args.quick
        else ""
    )
    schedule = (
        "the zoo entry as it is"
        if args.paper
        else f"size {args.size}, batch {args.batch_size} x {args.batch_length}, train_ratio {args.train_ratio:g}, "
        f"{args.learning_starts:,} random steps, action repeat {repeat} (zoo entry: s, 16 x 64, 512, 2,500, 2)"
    )
    if not args.paper and (args.model_lr is not None or args.ac_lr is not None):
        schedule += (
            f", learning rates: world model {model.learning_rate:g}, actor and critic "
            f"{model.policy.actor_lr:g} (zoo entry: 1e-4, 3e-5)"
        )
    schedule += ", bfloat16 compute (amp)" if args.amp else ", float32"
    table += (
        f"\nOne seed; 64x64 frames; {schedule}. Curve: `{stem}.png`; open-loop predictions: "
        f"`{stem}.openloop.png` / `.gif` (rows: truth, model, difference; a red edge marks imagined frames).\n"
    )
    out = {"task": args.task, "curve": curve, "random_returns": random, "schedule": vars(args) | {"out": str(args.out)}}
    del out["schedule"]["question"]
    return write("dreamer_dmc", args, out, table)


if __name__ == "__main__":
    RESULTS.mkdir(exist_ok=True)
    main()
