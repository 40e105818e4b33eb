"""SAC gradient updates per second with each Flare-family extractor against SB3's NatureCNN.

Stock SB3 ``SAC("CnnPolicy")`` (separate actor and critic extractors, as SB3 does by default) on
stacked frames (3 RGB frames), same batch size, image size and MLP for every extractor; the replay
buffer is filled with random frames first, warm-up updates are excluded, the median of several
timed repeats is reported. No goal yet: this is the baseline later work improves on.
"""

from __future__ import annotations

from typing import Any

import torch
from stable_baselines3 import SAC

from benchmarks.common import fill, md_table, median_rate, parser, write
from sb3_latent import flare_kwargs, latent_stack_kwargs, make_moving_dot_env, pixel_flow_kwargs

VARIANTS = {
    "NatureCNN (SB3 default)": dict,
    "Flare": flare_kwargs,
    "LatentStack": latent_stack_kwargs,
    "PixelFlow": pixel_flow_kwargs,
}


def updates_per_s(policy_kwargs: dict[str, Any], size: int, batch: int, n_updates: int, repeats: int) -> dict:
    env = make_moving_dot_env(frame_stack=3, size=size, seed=0)
    model = SAC(
        "CnnPolicy",
        env,
        policy_kwargs=policy_kwargs,
        batch_size=batch,
        buffer_size=max(4 * batch, 1000),
        learning_starts=0,
        seed=0,
        device="auto",
    )
    fill(model.replay_buffer)  # type: ignore[arg-type]
    model._setup_learn(total_timesteps=1)

    def train() -> int:
        model.train(gradient_steps=n_updates, batch_size=batch)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return n_updates

    params = {
        name: sum(p.numel() for p in m.parameters()) for name, m in [("actor", model.actor), ("critic", model.critic)]
    }
    return {
        **median_rate(train, repeats, warmup=lambda: model.train(gradient_steps=2, batch_size=batch)),
        "parameters": params,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    size, batch, n_updates = (40, 16, 2) if args.quick else (84, 128, 10)
    repeats = args.repeats or (1 if args.quick else 3)
    results: dict[str, Any] = {}
    for name, make_kwargs in VARIANTS.items():
        results[name] = updates_per_s(make_kwargs(), size, batch, n_updates, repeats)
        print(f"{name}: {results[name]['median_per_s']:.2f} updates/s", flush=True)
    base = results["NatureCNN (SB3 default)"]["median_per_s"]
    rows = [
        [
            name,
            r["median_per_s"],
            f"{r['median_per_s'] / base:.2f}x",
            r["parameters"]["critic"],
            r["parameters"]["actor"],
        ]
        for name, r in results.items()
    ]
    table = md_table(["extractor", "SAC updates/s", "vs NatureCNN", "critic params", "actor params"], rows)
    table += (
        f"\n{size}x{size} frames, 3 stacked, batch {batch}, SB3 SAC defaults otherwise (MLP 256x256, "
        f"features: NatureCNN 512, Flare family 64); {n_updates} updates per repeat, median of {repeats}.\n"
    )
    out = {"size": size, "batch_size": batch, "n_frames": 3, "updates_per_repeat": n_updates, "results": results}
    return write("extractors_speed", args, out, table)


if __name__ == "__main__":
    main()
