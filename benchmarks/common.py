"""What every benchmark shares: the command line, timing, machine facts and result files."""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer

RESULTS = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.set_defaults(question=description)  # what write() records as the benchmark's question
    p.add_argument("--quick", action="store_true", help="tiny sizes, about a minute; writes <name>.quick.*")
    p.add_argument("--out", type=Path, default=RESULTS, help=f"results folder (default {RESULTS})")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats (median reported)")
    return p


def machine() -> dict[str, Any]:
    """The facts a reader needs to compare numbers across machines."""
    import stable_baselines3
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "stable_baselines3": stable_baselines3.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def command() -> str:
    """This process's command line, as a reader would type it."""
    return " ".join(["python", *sys.orig_argv[1:]])


def goal(value: float, target: float, at_least: bool = True) -> dict[str, Any]:
    """One entry of a result's ``goals``: ``met`` is ``value >= target`` (``value <= target`` when not
    ``at_least``, e.g. a memory ratio), ``direction`` says which."""
    return {
        "target": target,
        "value": value,
        "met": bool(value >= target if at_least else value <= target),
        "direction": ">=" if at_least else "<=",
    }


def median_rate(fn: Callable[[], int], repeats: int, warmup: Callable[[], Any] | None = None) -> dict[str, float]:
    """Run ``fn`` (which returns how many items it processed) ``repeats`` times after ``warmup``;
    return the median items per second and the spread."""
    if warmup is not None:
        warmup()
    rates = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        n = fn()
        rates.append(n / (time.perf_counter() - t0))
    return {
        "median_per_s": statistics.median(rates),
        "min_per_s": min(rates),
        "max_per_s": max(rates),
        "repeats": repeats,
    }


def fill(buffer: ReplayBuffer, n_frames: int = 3, seed: int = 0) -> None:
    """Random frames, stacked as frame stacking does, so obs and next_obs share n_frames - 1 frames."""
    rng = np.random.default_rng(seed)
    c, h, w = buffer.obs_shape
    per = c // n_frames
    frames = [rng.integers(0, 256, (per, h, w), dtype=np.uint8) for _ in range(n_frames)]
    for _ in range(buffer.buffer_size):
        obs = np.concatenate(frames)[None]
        frames = [*frames[1:], rng.integers(0, 256, (per, h, w), dtype=np.uint8)]
        action = rng.uniform(-1, 1, (1, buffer.action_dim)).astype(np.float32)
        buffer.add(obs, np.concatenate(frames)[None], action, rng.random(1), np.zeros(1), [{}])


def write(
    name: str,
    args: argparse.Namespace,
    results: dict[str, Any],
    table: str,
    goals: dict[str, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """Write ``<name>.json`` and ``<name>.md`` (a table for people); return what the JSON holds.

    Every benchmark's JSON has the same top-level keys: ``name`` (the script's), ``question`` (the
    description given to :func:`parser`: the first line of the script's docstring), ``command``, ``quick``,
    ``machine`` (:func:`machine`), ``results`` (the numbers) and ``goals``
    (``{goal: {target, value, met, direction}}``, see :func:`goal`; ``{}`` where the benchmark has none)."""
    question = args.question
    stem = f"{name}.quick" if args.quick else name
    args.out.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "question": question,
        "command": command(),
        "quick": args.quick,
        "machine": machine(),
        "results": results,
        "goals": goals or {},
    }
    (args.out / f"{stem}.json").write_text(json.dumps(payload, indent=2) + "\n")
    m = payload["machine"]
    header = (
        f"# {name}{' (quick mode)' if args.quick else ''}\n\n{question}\n\n"
        f"`{payload['command']}` on {m['cpu_count']} CPU cores, GPU: {m['gpu'] or 'none'}, "
        f"torch {m['torch']}, SB3 {m['stable_baselines3']}, {m['date']}\n\n"
    )
    lines = [
        f"- {k}: {g['value']:.3g} (goal {g['direction']} {g['target']:g}: {'met' if g['met'] else 'NOT met'})"
        for k, g in payload["goals"].items()
    ]
    footer = "\nGoals:\n\n" + "\n".join(lines) + "\n" if lines else ""
    (args.out / f"{stem}.md").write_text(header + table.rstrip() + "\n" + footer)
    print(header + table + footer)
    return payload


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def random_returns(env: Any, n_episodes: int, steps: int) -> list[float]:
    """Returns of uniform random actions on a 1-env VecEnv, ``steps`` agent steps per episode."""
    env.reset()
    return [
        sum(float(env.step(np.array([env.action_space.sample()]))[1][0]) for _ in range(steps))
        for _ in range(n_episodes)
    ]


def learn_on_budget(
    model: Any, eval_env: Any, frames: int, repeat: int, minutes: float, eval_every: int, n_eval: int
) -> list[tuple[int, float, float]]:
    """``model.learn`` until ``frames`` (agent steps x ``repeat``) or ``minutes`` of wall clock, evaluating the
    stochastic policy on ``n_eval`` episodes every ``eval_every`` frames and at the end. Returns the curve
    ``(frames, mean return, seconds)``."""
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.evaluation import evaluate_policy

    curve: list[tuple[int, float, float]] = []
    start = time.perf_counter()

    def evaluate() -> None:
        mean, _ = evaluate_policy(model, eval_env, n_eval_episodes=n_eval, deterministic=False)
        curve.append((model.num_timesteps * repeat, float(mean), time.perf_counter() - start))
        print(
            f"{curve[-1][0]:>8} frames  return {mean:7.1f}  updates {model._n_updates:>6}  "
            f"{curve[-1][2] / 60:5.1f} min",
            flush=True,
        )

    class Budget(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps * repeat % eval_every < repeat * model.n_envs:
                evaluate()
            return time.perf_counter() - start < 60 * minutes

    model.learn(frames // repeat, callback=Budget())
    if not curve or curve[-1][0] != model.num_timesteps * repeat:
        evaluate()
    return curve


def plot_curve(
    curve: list[tuple[int, float, float]], random: list[float], path: Path, label: str, title: str, repeat: int
) -> None:
    """Evaluation return over frames, with the random policy's mean as a dotted line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    c = np.array(curve)
    ax.plot(c[:, 0], c[:, 1], marker="o", label=label)
    ax.axhline(float(np.mean(random)), color="gray", ls=":", label="random policy")
    ax.set_xlabel(f"frames (agent steps x action repeat {repeat})")
    ax.set_ylabel("evaluation return")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
