"""Gradient updates per second of DrQ-v2 and RAD (stacked, Flare) in float32 and bfloat16 (amp), side by side.

Same image size (84x84), stack (3 RGB frames) and the papers' batches (DrQ-v2 256, RAD 128) for every row; replay
buffers filled with random frames whose stacks overlap as frame stacking makes them; warm-up excluded, median of
repeats; ``train()`` as ``learn`` calls it (sampling included). ``amp`` rows only where bfloat16 is native.

Goals: DrQ-v2 with ``amp=True`` >= 1.7x DrQ-v2 float32; RAD + Flare with ``amp=True`` >= 0.6x RAD on
stacked frames in float32. Not measured here yet: whole-run frames/s on cartpole swingup next to a textbook loop
(goal >= 2x), and ``compile=True`` (not implemented).
"""

from __future__ import annotations

from typing import Any

from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from benchmarks.common import fill, goal, md_table, median_rate, parser, write
from sb3_latent import RAD, DrQv2, flare_kwargs, make_moving_dot_env
from sb3_latent.common.amp import bf16_supported


def rate(model: OffPolicyAlgorithm, batch: int, n_updates: int, repeats: int) -> dict[str, Any]:
    fill(model.replay_buffer)  # type: ignore[arg-type]
    model._setup_learn(total_timesteps=1)
    return median_rate(
        lambda: (model.train(gradient_steps=n_updates, batch_size=batch), n_updates)[1],
        repeats,
        warmup=lambda: model.train(gradient_steps=2, batch_size=batch),
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    size, drq_batch, rad_batch, n_updates = (40, 16, 16, 2) if args.quick else (84, 256, 128, 8)
    repeats = args.repeats or (1 if args.quick else 3)
    env = make_moving_dot_env(frame_stack=3, size=size, seed=0)
    precisions = [False, True] if bf16_supported("cpu") else [False]
    results: dict[str, Any] = {}
    for amp in precisions:
        tag = "bf16" if amp else "float32"
        for name, make, batch in (
            ("DrQ-v2", lambda amp, b: DrQv2("CnnPolicy", env, buffer_size=4 * b, batch_size=b, amp=amp), drq_batch),
            (
                "RAD (stacked)",
                lambda amp, b: RAD("CnnPolicy", env, buffer_size=4 * b, batch_size=b, amp=amp),
                rad_batch,
            ),
            (
                "RAD + Flare",
                lambda amp, b: RAD(
                    "CnnPolicy", env, buffer_size=4 * b, batch_size=b, amp=amp, policy_kwargs=flare_kwargs(n_frames=3)
                ),
                rad_batch,
            ),
        ):
            r = rate(make(amp, batch), batch, n_updates, repeats)
            results[f"{name} {tag}"] = {**r, "batch_size": batch}
            print(f"{name} {tag}: {r['median_per_s']:.3f} updates/s", flush=True)
    f32 = {k: v["median_per_s"] for k, v in results.items()}
    ratios: dict[str, float] = {}
    goals: dict[str, dict[str, Any]] = {}
    if "DrQ-v2 bf16" in f32:
        ratios["drqv2_amp_vs_float32"] = f32["DrQ-v2 bf16"] / f32["DrQ-v2 float32"]
        ratios["flare_amp_vs_rad_float32"] = f32["RAD + Flare bf16"] / f32["RAD (stacked) float32"]
        goals["drqv2_amp_vs_float32"] = goal(ratios["drqv2_amp_vs_float32"], 1.7)
        goals["flare_amp_vs_rad_float32"] = goal(ratios["flare_amp_vs_rad_float32"], 0.6)
    ratios["flare_vs_rad_float32"] = f32["RAD + Flare float32"] / f32["RAD (stacked) float32"]
    rows = [[k, v["batch_size"], v["median_per_s"]] for k, v in results.items()]
    table = md_table(["update", "batch", "gradient updates/s"], rows)
    table += (
        f"\n{size}x{size}, 3 stacked RGB frames, MLP 1024x2, {n_updates} updates per repeat, median of {repeats}.\n"
        + "".join(f"- {k}: {v:.2f}x\n" for k, v in ratios.items())
    )
    out = {"size": size, "n_frames": 3, "updates_per_repeat": n_updates, "results": results, "ratios": ratios}
    return write("train_speed", args, out, table, goals)


if __name__ == "__main__":
    main()
