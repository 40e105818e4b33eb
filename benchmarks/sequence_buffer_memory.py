"""Sequence replay: bytes per env step and sequences sampled per second of SequenceReplayBuffer, 64x64x3 frames.

Memory: ``SequenceReplayBuffer`` filled past capacity through SB3's ``add`` (1 env, episodes of 250 steps as
in DMC at action repeat 4, so 251 observations per episode): its allocated bytes (``nbytes``) per slot (one
observation each) times 251/250 observations per env step, and the growth of the process RSS while filling
it, per stored observation. Against it, per env step: the straightforward sequence array (each sequence's
``L`` frames, ``L - 1`` actions and rewards and ``L`` flags in a row of its own, one sequence per env step)
at SLAC's ``L = 9`` and Dreamer's ``L = 64``, and SB3's ``ReplayBuffer`` (``obs`` and ``next_obs``; and with
``optimize_memory_usage=True``), computed from the arrays each would allocate. Sampling: ``sample(B)``
sequences per second, median of repeats after a warm-up, at SLAC's shape (B=32, L=9, sequences inside
episodes) and Dreamer's (B=16, L=64, windows with ``is_first``), each in both modes, and the straightforward
layout's sampling at SLAC's shape (one contiguous row per sequence) for reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from benchmarks.common import md_table, median_rate, parser, write
from benchmarks.replay_memory import rss
from sb3_latent.buffers import SequenceReplayBuffer

FRAME, EPISODE, ACTION_DIM = (3, 64, 64), 250, 6  # 6: cheetah/walker actions
SHAPES = {"SLAC": (32, 9, "episode"), "Dreamer": (16, 64, "window")}
OBS = spaces.Box(0, 255, FRAME, np.uint8)
ACT = spaces.Box(-1, 1, (ACTION_DIM,), np.float32)


class NaiveSequenceBuffer:
    """The straightforward layout: each sequence's frames, actions, rewards and flags in a row of its own.

    :param capacity: sequences
    :param length: observations per sequence
    """

    def __init__(self, capacity: int, length: int) -> None:
        self.obs = np.zeros((capacity, length, *FRAME), np.uint8)
        self.actions = np.zeros((capacity, length - 1, ACTION_DIM), np.float32)
        self.rewards = np.zeros((capacity, length - 1), np.float32)
        self.flags = np.zeros((capacity, 3, length), bool)  # is_first, terminated, truncated

    def nbytes(self) -> int:
        return sum(a.nbytes for a in vars(self).values())

    def sample(self, batch: int) -> list[torch.Tensor]:
        i = np.random.randint(0, len(self.obs), size=batch)
        return [torch.as_tensor(a[i]) for a in (self.obs, self.actions, self.rewards, self.flags)]


def naive_bytes_per_step(length: int) -> float:
    """Bytes per env step of :class:`NaiveSequenceBuffer` (one sequence per env step), from its array shapes."""
    return length * int(np.prod(FRAME)) + (length - 1) * (4 * ACTION_DIM + 4) + 3 * length


def sb3_bytes_per_step(optimize_memory_usage: bool) -> float:
    """Bytes per transition of SB3's ReplayBuffer for 64x64x3 frames (its arrays, allocated lazily)."""
    buf = ReplayBuffer(
        1000,
        OBS,
        ACT,
        "cpu",
        optimize_memory_usage=optimize_memory_usage,
        handle_timeout_termination=not optimize_memory_usage,
    )
    arrays = [
        buf.observations,
        getattr(buf, "next_observations", None),
        buf.actions,
        buf.rewards,
        buf.dones,
        buf.timeouts,
    ]
    return sum(a.nbytes for a in arrays if a is not None) / 1000


def fill(buf: SequenceReplayBuffer, n_steps: int, seed: int = 0) -> None:
    """``n_steps`` env steps of random frames through SB3's ``add`` (episodes of :data:`EPISODE` steps, truncated)."""
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, 256, (64, *FRAME), dtype=np.uint8)
    obs = bank[0]
    for t in range(n_steps):
        nxt = bank[rng.integers(64)]
        done = (t + 1) % EPISODE == 0
        buf.add(
            obs[None],
            nxt[None],
            rng.uniform(-1, 1, (1, ACTION_DIM)).astype(np.float32),
            rng.normal(size=1).astype(np.float32),
            np.array([done]),
            [{"TimeLimit.truncated": done}],
        )
        obs = bank[rng.integers(64)] if done else nxt


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    torch.set_num_threads(1)
    capacity = 2_000 if args.quick else 100_000  # SLAC's replay: 100k env steps
    n_batches, repeats = (5, args.repeats or 3) if args.quick else (50, args.repeats or 7)
    frame = int(np.prod(FRAME))

    before = rss()
    buf = SequenceReplayBuffer(capacity, OBS, ACT, "cpu", sequence_length=9)
    fill(buf, capacity + capacity // 2)  # past capacity: eviction has run
    grown = rss() - before
    n_episodes = len(buf._runs(2, "episode")[0])
    steps = buf.size() - n_episodes  # each episode holds one observation more than its steps
    # per slot of capacity (one observation each), times the observations per env step of an episode
    ours = buf.nbytes() / capacity * (EPISODE + 1) / EPISODE
    memory = {
        "SequenceReplayBuffer (ours)": ours,
        "sequence rows, L=9 (SLAC)": naive_bytes_per_step(9),
        "sequence rows, L=64 (Dreamer)": naive_bytes_per_step(64),
        "SB3 ReplayBuffer (default)": sb3_bytes_per_step(False),
        "SB3 ReplayBuffer(optimize_memory_usage=True)": sb3_bytes_per_step(True),
    }

    sampling: dict[str, Any] = {}
    np.random.seed(0)
    for name, (batch, length, own_mode) in SHAPES.items():
        for mode in (own_mode, *(m for m in ("episode", "window") if m != own_mode)):

            def run(b: int = batch, n: int = length, m: str = mode) -> int:
                for _ in range(n_batches):
                    buf.sample(b, sequence_length=n, mode=m)
                return n_batches * b

            r = median_rate(
                run, repeats, warmup=lambda b=batch, n=length, m=mode: buf.sample(b, sequence_length=n, mode=m)
            )
            sampling[f"ours, {name} (B={batch}, L={length}), mode={mode}"] = {
                **r,
                "batch": batch,
                "length": length,
                "mode": mode,
                "frames_per_s": r["median_per_s"] * length,
            }
    naive = NaiveSequenceBuffer(min(capacity, 5_000), 9)
    naive.obs[:] = np.random.default_rng(1).integers(0, 256, naive.obs.shape, dtype=np.uint8)

    def run_naive() -> int:
        for _ in range(n_batches):
            naive.sample(32)
        return n_batches * 32

    r = median_rate(run_naive, repeats, warmup=lambda: naive.sample(32))
    sampling["sequence rows, SLAC (B=32, L=9)"] = {
        **r,
        "batch": 32,
        "length": 9,
        "mode": "episode",
        "frames_per_s": r["median_per_s"] * 9,
        "capacity": len(naive.obs),
    }

    rows = [[k, round(v), f"{v / frame:.3f}", f"{v / ours:.2f}x"] for k, v in memory.items()]
    table = md_table(["layout", "bytes per env step", "frames per env step", "vs ours"], rows)
    table += "\n" + md_table(
        ["sampler", "sequences/s (median)", "min-max", "frames/s"],
        [
            [k, f"{v['median_per_s']:.0f}", f"{v['min_per_s']:.0f}-{v['max_per_s']:.0f}", f"{v['frames_per_s']:.0f}"]
            for k, v in sampling.items()
        ],
    )
    slac, dreamer = (sampling[f"ours, {n} (B={b}, L={n_}), mode={m}"] for n, (b, n_, m) in SHAPES.items())
    stored, rss_per_obs = buf.size(), grown / buf.size()
    rows_l9, rows_l64, sb3 = (memory[k] / ours for k in list(memory)[1:4])
    table += (
        f"\nFrames 64x64x3 uint8 ({frame} bytes), {ACTION_DIM}-D float32 actions, 1 env, episodes of "
        f"{EPISODE} steps (251 observations), capacity {capacity:,} observations, filled through SB3's `add` "
        f"with {capacity + capacity // 2:,} steps (eviction ran). Ours: {ours:.0f} bytes per env step of a "
        f"full buffer ({ours / frame:.3f} frames: one frame per observation, the extra first observation of "
        f"each episode, actions, rewards, flags and indices); RSS growth while filling: {rss_per_obs:.0f} "
        f"bytes per stored observation. At the end the buffer held {stored:,} observations ({steps:,} steps, "
        f"{n_episodes} episodes): evicting whole episodes leaves up to one episode's slots free. Sequence "
        f"rows: one row of L frames per sequence, one sequence per env step. SB3: per transition, computed "
        f"from its arrays. Sampling: median of {repeats} x {n_batches} batches after a warm-up, 1 torch "
        f"thread, CPU tensors (uint8 frames); the sequence-row layout sampled from {len(naive.obs):,} rows."
        f"\n\nOurs samples {slac['median_per_s']:.0f} SLAC sequences/s (B=32, L=9) and "
        f"{dreamer['median_per_s']:.0f} Dreamer windows/s (B=16, L=64) while storing {rows_l9:.1f}x / "
        f"{rows_l64:.0f}x less than sequence rows (L=9 / L=64) and {sb3:.2f}x less than SB3's default "
        f"buffer.\n"
    )
    out = {
        "frame_shape": list(FRAME),
        "episode_length": EPISODE,
        "capacity": capacity,
        "stored_observations": stored,
        "stored_steps": steps,
        "stored_episodes": n_episodes,
        "bytes_per_env_step": memory,
        "rss_growth_per_observation": rss_per_obs,
        "sampling": sampling,
        "ratios": {
            "sequence_rows_L9_vs_ours": rows_l9,
            "sequence_rows_L64_vs_ours": rows_l64,
            "sb3_default_vs_ours": sb3,
        },
    }
    return write("sequence_buffer_memory", args, out, table)


if __name__ == "__main__":
    main()
