"""Replay memory per transition and sampling speed: FrameStoreReplayBuffer against SB3's ReplayBuffer.

84x84 RGB frames, 3 stacked (obs ``(9, 84, 84)`` uint8, our FrameStack's padding), one env, episodes of
500 steps, buffers of 100k transitions: SB3's default ``ReplayBuffer``, SB3's
``ReplayBuffer(optimize_memory_usage=True)`` and ``FrameStoreReplayBuffer``. Memory: the bytes of the arrays
each buffer allocates (``nbytes``, per transition of capacity) and the growth of the process RSS while
filling it; each buffer runs in a fresh subprocess. SB3's default buffer would need ~12.7 GB full, so every
buffer is filled with 20k transitions and the RSS growth is divided by 20k (``np.zeros`` pages count only
once written); ours is also filled completely. Sampling: ``sample(128)`` transitions per second, median of
repeats after a warm-up, on the buffer as filled, twice: with glibc's default malloc settings (each batch's
multi-MB arrays are fresh ``mmap`` pages, so page faults weigh in) and with malloc tuned to reuse its heap
(``mallopt``: mmap threshold 32 MB, trim threshold 1 GB), as a long training process may be. Goals:
<= 1/5 of SB3's default memory, sampling >= 0.5x as fast.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from benchmarks.common import goal, md_table, median_rate, parser, write
from sb3_latent.buffers import FrameStoreReplayBuffer

BUFFERS = {
    "sb3": "SB3 ReplayBuffer (default)",
    "sb3_optimize_memory": "SB3 ReplayBuffer(optimize_memory_usage=True)",
    "frame_store": "FrameStoreReplayBuffer (ours)",
}
FRAME, N_FRAMES, EPISODE, BATCH = (3, 84, 84), 3, 500, 128
ROOT = Path(__file__).resolve().parent.parent


def make_buffer(kind: str, size: int) -> ReplayBuffer:
    """One of :data:`BUFFERS` for ``(9, 84, 84)`` uint8 observations and 2-D actions, on the CPU."""
    obs = spaces.Box(0, 255, (N_FRAMES * FRAME[0], *FRAME[1:]), np.uint8)
    act = spaces.Box(-1, 1, (2,), np.float32)
    if kind == "frame_store":
        return FrameStoreReplayBuffer(size, obs, act, "cpu", n_frames=N_FRAMES)
    if kind == "sb3_optimize_memory":
        return ReplayBuffer(size, obs, act, "cpu", optimize_memory_usage=True, handle_timeout_termination=False)
    return ReplayBuffer(size, obs, act, "cpu")


def nbytes(buf: ReplayBuffer) -> int:
    """Bytes of the arrays a buffer holds."""
    if isinstance(buf, FrameStoreReplayBuffer):
        return buf.nbytes()
    return sum(a.nbytes for a in vars(buf).values() if isinstance(a, np.ndarray))


def rss() -> int:
    """Resident memory of this process in bytes (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def fill(buf: ReplayBuffer, n: int, seed: int = 0) -> None:
    """Add ``n`` transitions of stacked random frames (episodes of :data:`EPISODE` steps, truncated)."""
    rng = np.random.default_rng(seed)
    bank = rng.integers(0, 256, (64, *FRAME), dtype=np.uint8)
    stack: list[np.ndarray] = []
    for t in range(n):
        if t % EPISODE == 0:
            stack = [bank[rng.integers(64)]] * N_FRAMES
        obs = np.concatenate(stack)[None]
        stack = [*stack[1:], bank[rng.integers(64)]]
        done = (t + 1) % EPISODE == 0
        buf.add(
            obs,
            np.concatenate(stack)[None],
            rng.uniform(-1, 1, (1, 2)).astype(np.float32),
            rng.normal(size=1).astype(np.float32),
            np.array([done]),
            [{"TimeLimit.truncated": done}],
        )


def tune_malloc() -> bool:
    """Make glibc's malloc keep freed memory (mmap threshold 32 MB, trim threshold 1 GB); False where not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, 32 << 20)) and bool(libc.mallopt(-1, 1 << 30))  # M_MMAP_/M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def worker(kind: str, size: int, n_fill: int, n_batches: int, repeats: int) -> dict[str, Any]:
    """Build, fill and sample one buffer in this (fresh) process."""
    before = rss()
    buf = make_buffer(kind, size)
    fill(buf, n_fill)
    grown = rss() - before
    np.random.seed(0)

    def sample() -> int:
        for _ in range(n_batches):
            buf.sample(BATCH)
        return n_batches * BATCH

    def warmup() -> None:
        for _ in range(3):
            buf.sample(BATCH)

    out = {
        "buffer_size": size,
        "filled": n_fill,
        "nbytes": nbytes(buf),
        "nbytes_per_transition": nbytes(buf) / size,
        "rss_growth": grown,
        "rss_per_transition": grown / n_fill,
        "sample": median_rate(sample, repeats, warmup=warmup),
    }
    if tune_malloc():
        out["sample_malloc_tuned"] = median_rate(sample, repeats, warmup=warmup)
    return out


def run_worker(kind: str, size: int, n_fill: int, n_batches: int, repeats: int) -> dict[str, Any]:
    """:func:`worker` in a fresh Python process, so that its RSS is its own."""
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.replay_memory",
        "--worker",
        kind,
        "--size",
        str(size),
        "--fill",
        str(n_fill),
        "--batches",
        str(n_batches),
        "--repeats",
        str(repeats),
    ]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"worker {kind} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--worker", choices=list(BUFFERS), help=argparse.SUPPRESS)
    p.add_argument("--size", type=int, help=argparse.SUPPRESS)
    p.add_argument("--fill", type=int, help=argparse.SUPPRESS)
    p.add_argument("--batches", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        import torch

        torch.set_num_threads(1)
        print(json.dumps(worker(args.worker, args.size, args.fill, args.batches, args.repeats)))
        return {}
    size, n_fill = (2_000, 1_000) if args.quick else (100_000, 20_000)
    n_batches, repeats = (10, args.repeats or 3) if args.quick else (50, args.repeats or 7)
    runs = {kind: run_worker(kind, size, n_fill, n_batches, repeats) for kind in BUFFERS}
    runs["frame_store_full"] = run_worker("frame_store", size, size, n_batches, repeats)
    base = runs["sb3"]

    def speed(r: dict[str, Any], key: str) -> float | None:
        return r[key]["median_per_s"] / base[key]["median_per_s"] if key in r and key in base else None

    def rate(r: dict[str, Any], key: str) -> str:
        return f"{r[key]['median_per_s']:.0f} ({speed(r, key):.2f}x)" if key in r and key in base else "n/a"

    rows = []
    for kind, r in runs.items():
        name = BUFFERS[kind.removesuffix("_full")] + (", filled" if kind.endswith("_full") else "")
        per = r["rss_per_transition"] / base["rss_per_transition"]
        rows.append(
            [
                name,
                r["filled"],
                round(r["nbytes_per_transition"]),
                round(r["rss_per_transition"]),
                f"{r['nbytes'] / base['nbytes']:.3f}",
                f"{per:.3f}",
                rate(r, "sample"),
                rate(r, "sample_malloc_tuned"),
            ]
        )
    ours = runs["frame_store"]
    memory = ours["nbytes"] / base["nbytes"]
    rss_ratio = runs["frame_store_full"]["rss_per_transition"] / base["rss_per_transition"]
    speeds = [x for x in (speed(ours, "sample"), speed(ours, "sample_malloc_tuned")) if x is not None]
    table = md_table(
        [
            "buffer",
            "transitions added",
            "allocated bytes / transition (nbytes)",
            "RSS growth / transition",
            "allocated vs SB3 default (goal <= 0.2)",
            "RSS vs SB3 default",
            f"sample({BATCH}) transitions/s (vs SB3 default; goal >= 0.5x)",
            "same, malloc tuned",
        ],
        rows,
    )
    table += (
        f"\nObservations (9, 84, 84) uint8 (3 stacked RGB frames), 1 env, episodes of {EPISODE} steps, "
        f"buffer size {size:,}. Allocated bytes: all arrays of the buffer over its capacity. RSS growth: "
        f"resident memory gained while adding the transitions, over their number (SB3's default buffer would "
        f"take ~12.7 GB filled, so every buffer is measured at {n_fill:,} transitions and scaled per "
        f"transition; ours also filled); each buffer in a fresh process. Sampling: median of {repeats} x "
        f"{n_batches} batches of {BATCH} after warm-up, 1 torch/OMP thread; with glibc's default malloc "
        f"settings and with malloc tuned to reuse freed memory (no page faults per batch).\n\n"
        f"Ours: {memory:.3f} of SB3's default allocated memory (goal <= 0.2: "
        f"{'met' if memory <= 0.2 else 'NOT met'}), {rss_ratio:.3f} of its RSS per transition when filled; "
        f"sampling {' and '.join(f'{x:.2f}x' for x in speeds)} as fast (goal >= 0.5x: "
        f"{'met' if min(speeds) >= 0.5 else 'NOT met'}).\n"
    )
    out = {
        "obs_shape": [N_FRAMES * FRAME[0], *FRAME[1:]],
        "episode_length": EPISODE,
        "buffer_size": size,
        "batch_size": BATCH,
        "runs": runs,
        "ratios": {"memory_vs_sb3": memory, "rss_vs_sb3_filled": rss_ratio, "sample_speed_vs_sb3": speeds},
    }
    goals = {"memory_vs_sb3": goal(memory, 0.2, at_least=False), "sample_speed_vs_sb3": goal(min(speeds), 0.5)}
    return write("replay_memory", args, out, table, goals)


if __name__ == "__main__":
    main()
