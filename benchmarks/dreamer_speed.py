"""Dreamer training steps per second on CPU for each size preset, next to the dreamerv3-torch anchors.

One training step is what :meth:`sb3_latent.algos.dreamer.Dreamer.update` does: the world-model update on a batch of
``B`` sequences of ``T`` steps (64x64x3 images, 6 continuous actions) and the actor-critic update on trajectories
imagined for 15 steps from each of the ``B * T`` posterior states, then the slow critic's EMA. The batch is fixed
random data (speed does not depend on the pixel values); warm-up excluded; median of repeats.

Anchors (the PyTorch port dreamerv3-torch measured on this machine's CPU): 19.1M parameters (its default
configuration, the paper's S layer sizes; 17.9M here without the slow critic) 0.137 steps/s at 16x64 and 0.62 at
8x32; a 7.0M configuration 0.25 and 1.17. Goal: >= 1.5x at equal parameter count and batch; the ``vs anchor``
column divides our rate by the anchor nearest in parameter count (S vs 19.1M; the paper's XS, 8.3M, vs 7.0M: ours
is larger, so that ratio understates). Each configuration is measured in float32 (the anchors' precision) and, where
the CPU computes bfloat16 natively, with ``amp=True`` (bfloat16 autocast, the official DreamerV3 code's default
``compute_dtype``).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

from benchmarks.common import goal, md_table, median_rate, parser, write
from sb3_latent.algos.dreamer import PAPER_XS, SIZES, Dreamer
from sb3_latent.buffers.sequence import SequenceSamples
from sb3_latent.common.amp import bf16_supported

#: (parameters, batch) -> dreamerv3-torch steps/s on this CPU
ANCHORS = {("19.1M", "16x64"): 0.137, ("19.1M", "8x32"): 0.62, ("7.0M", "16x64"): 0.25, ("7.0M", "8x32"): 1.17}
#: our size compared with each anchor
ANCHOR_OF = {"s": "19.1M", "paper_xs": "7.0M"}


class _Spaces(gym.Env):
    """Only spaces: 64x64x3 images and 6 continuous actions (DMC vision)."""

    observation_space = spaces.Box(0, 255, (3, 64, 64), np.uint8)
    action_space = spaces.Box(-1, 1, (6,), np.float32)


def random_batch(b: int, t: int, seed: int = 0) -> SequenceSamples:
    """``b`` random sequences of ``t + 1`` observations (what ``Dreamer`` samples), with an episode start inside."""
    g = torch.Generator().manual_seed(seed)
    first = torch.zeros(b, t + 1)
    first[:, t // 2] = 1.0
    return SequenceSamples(
        torch.randint(0, 256, (b, t + 1, 3, 64, 64), dtype=torch.uint8, generator=g),
        torch.rand(b, t, 6, generator=g) * 2 - 1,
        torch.rand(b, t, generator=g),
        first,
        torch.zeros(b, t + 1),
        torch.zeros(b, t + 1),
    )


def rate(size: str, b: int, t: int, repeats: int, amp: bool = False) -> dict[str, Any]:
    torch.manual_seed(0)
    model = Dreamer(
        "CnnPolicy",
        _Spaces(),
        policy_kwargs={"size": PAPER_XS if size == "paper_xs" else size},
        buffer_size=b * (t + 1),
        batch_size=b,
        batch_length=t,
        device="cpu",
        seed=0,
        amp=amp,
    )
    batch = random_batch(b, t)
    out = median_rate(lambda: (model.update(batch), 1)[1], repeats, warmup=lambda: model.update(batch))
    return {**out, "parameters": model.policy.n_parameters()}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--sizes", nargs="+", default=None, help="size presets (default: xs paper_xs s m)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--no-amp", action="store_true", help="float32 only (default: also bfloat16, where native)")
    args = p.parse_args(argv)
    precisions = [False] + ([] if args.no_amp or not bf16_supported(torch.device("cpu")) else [True])
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = args.sizes or (["xs"] if args.quick else ["xs", "paper_xs", "s", "m"])
    batches = [(2, 8)] if args.quick else [(16, 64), (8, 32)]
    repeats = args.repeats or (1 if args.quick else 3)
    results: dict[str, dict[str, Any]] = {}
    rows = []
    for size in sizes:
        for b, t in batches:
            key = f"{b}x{t}"
            anchor = ANCHORS.get((ANCHOR_OF.get(size, ""), key))
            row: list[Any] = [size, "", key, f"{ANCHOR_OF[size]}: {anchor}" if anchor else "-"]
            for amp in precisions:
                r = rate(size, b, t, repeats, amp)
                r["anchor"] = {
                    "parameters": ANCHOR_OF.get(size),
                    "steps_per_s": anchor,
                    "ratio": r["median_per_s"] / anchor if anchor else None,
                }
                results[f"{size}/{key}{'/bf16' if amp else ''}"] = r
                row[1] = f"{r['parameters'] / 1e6:.1f}M"
                row += [r["median_per_s"], f"{r['anchor']['ratio']:.2f}x" if anchor else "-"]
            rows.append(row)
            print(rows[-1], flush=True)
    head = [
        "size",
        "parameters",
        "batch (B x T)",
        "dreamerv3-torch anchor (float32)",
        "ours float32 steps/s",
        "vs anchor",
    ]
    if True in precisions:
        head += ["ours bfloat16 (amp) steps/s", "vs anchor"]
    table = md_table(head, rows)
    table += (
        "\nOne train step: world-model update + 15-step imagination actor-critic update from every posterior "
        f"state, 64x64x3 images, 6 actions, torch threads: {torch.get_num_threads()}. Anchors "
        "(dreamerv3-torch on this CPU, float32, its default precision); the anchor for the paper's XS (8.3M "
        "here) is a 7.0M configuration. bfloat16: `Dreamer(..., amp=True)`, autocast compute as the official "
        "code's `compute_dtype: bfloat16` (parameters, optimizer and losses in float32).\n"
    )
    goals = {
        f"{k} vs dreamerv3-torch": goal(r["anchor"]["ratio"], 1.5)
        for k, r in results.items()
        if r["anchor"]["ratio"] is not None
    }
    return write(
        "dreamer_speed", args, {"results": results, "sizes": {k: SIZES.get(k, PAPER_XS) for k in sizes}}, table, goals
    )


if __name__ == "__main__":
    main()
