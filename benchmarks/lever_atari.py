"""LeVER on Atari: Rainbow vs Rainbow + LeVER at equal FLOPs, the LeVER paper's Table 1 "scores at 45T FLOPs".

FLOPs are counted as the paper does (Appendix B): one multiply-add per weight use is one FLOP, a backward pass costs
twice a forward pass. Per update (batch ``b``, ``F`` forward and ``B`` backward passes) before the freeze
``b F (E + M) + 2 b B (E + M)``; after it ``b F M + 2 b B M + E K N`` (the new observation is encoded once); at the
freeze a one-time ``E K N min(T_f, C)`` for re-encoding the buffer. ``E`` (encoder) and ``M`` (the dueling heads) are
measured on our layers with ``torch.utils.flop_counter.FlopCounterMode`` (which counts 2 per multiply-add: halved).
Rainbow's update makes ``F = 3`` passes (online on s_t, online on s_{t+n} for the double-Q action, target on
s_{t+n}) and ``B = 1``.

Each run trains until its FLOP budget (paper: 4.5e13), evaluating 10 whole games (unclipped) every 10K steps, as
the paper does. Agent: Rainbow preset ``lever`` by default (data-efficient Rainbow without prioritized replay, as
the paper's code ran it; ``--preset der`` adds it); LeVER freezes the conv layers at Table 5's T_f (env steps, as the
code counts), K = 1, no augmentation. A full run is about an hour of CPU per game and seed at ~40 steps/s: this script
does not start long runs by itself beyond what its arguments ask for; ``--quick`` runs a few hundred steps.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.evaluation import evaluate_policy
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import md_table, parser, write
from sb3_latent import LeVERReplayBuffer, Rainbow, make_atari_env
from sb3_latent.lever import PrioritizedLeVERReplayBuffer

#: Table 1 of the LeVER paper: (Rainbow, Rainbow + LeVER) mean and std at 45T FLOPs, five runs
PAPER_45T: dict[str, tuple[tuple[float, float], tuple[float, float]]] = {
    "Alien": ((992.0, 152.7), (1172.6, 239.0)),
    "Amidar": ((144.0, 27.4), (250.5, 47.4)),
    "BankHeist": ((145.8, 61.2), (276.6, 98.1)),
    "CrazyClimber": ((21580.0, 3514.6), (28066.0, 4108.5)),
    "Krull": ((2799.5, 468.1), (3277.5, 440.5)),
    "PrivateEye": ((81.5, 37.0), (100.0, 0.0)),
    "Qbert": ((2325.5, 1152.7), (4123.5, 1385.5)),
    "Seaquest": ((402.8, 48.4), (561.2, 100.5)),
}
#: Table 5, Figure 3 row: freezing time T_f (env steps) per game
T_F: dict[str, int] = {
    "Alien": 50_000,
    "Amidar": 50_000,
    "BankHeist": 50_000,
    "Krull": 50_000,
    "Seaquest": 50_000,
    "CrazyClimber": 100_000,
    "PrivateEye": 100_000,
    "Qbert": 100_000,
}


def layer_flops(model: Rainbow) -> dict[str, float]:
    """``E`` and ``M`` per sample in the paper's accounting (multiply-adds), measured on ``model``'s online network."""
    net = model.q_net
    fe = getattr(net.features_extractor, "inner", net.features_extractor)  # under LeVER: the wrapped extractor
    x = torch.zeros(1, *model.observation_space.shape)  # type: ignore[misc]
    with torch.no_grad():
        with FlopCounterMode(display=False) as enc:
            h = fe(x)
        with FlopCounterMode(display=False) as heads:
            net.advantage(h)
            if net.value is not None:
                net.value(h)
    return {"E": enc.get_total_flops() / 2, "M": heads.get_total_flops() / 2, "latent": float(h.shape[1])}


def update_flops(E: float, M: float, b: int, frozen: bool, F: int = 3, B: int = 1, K: int = 1, N: int = 1) -> float:
    """FLOPs of one update (Appendix B)."""
    return b * F * M + 2 * b * B * M + E * K * N if frozen else b * F * (E + M) + 2 * b * B * (E + M)


class FlopBudget(BaseCallback):
    """Counts FLOPs per update (one update per env step after ``learning_starts``), adds the one-time re-encoding
    cost at the freeze, evaluates every ``eval_every`` steps and stops at ``budget``."""

    def __init__(self, budget: float, eval_env: Any, eval_every: int, n_eval: int) -> None:
        super().__init__()
        self.budget, self.eval_env, self.eval_every, self.n_eval = budget, eval_env, eval_every, n_eval
        self.flops, self.curve, self.frozen_at, self.start = 0.0, [], None, 0.0
        self.times: dict[str, list[float]] = {"before": [], "after": []}

    def _on_training_start(self) -> None:
        m = self.model
        self.sizes = layer_flops(m)  # type: ignore[arg-type]
        self.start, self.last = time.perf_counter(), time.perf_counter()

    def evaluate(self) -> None:
        mean, std = evaluate_policy(self.model, self.eval_env, n_eval_episodes=self.n_eval, deterministic=True)
        self.curve.append((self.num_timesteps, self.flops, float(mean), float(std)))

    def _on_step(self) -> bool:
        m, buffer = self.model, self.model.replay_buffer  # type: ignore[union-attr]
        frozen = bool(getattr(buffer, "frozen", False))
        if frozen and self.frozen_at is None:
            self.frozen_at = self.num_timesteps
            self.flops += self.sizes["E"] * min(self.num_timesteps, buffer.capacity_before)  # type: ignore[union-attr]
        if self.num_timesteps > m.learning_starts:  # type: ignore[union-attr]
            self.flops += update_flops(self.sizes["E"], self.sizes["M"], m.batch_size, frozen)  # type: ignore[union-attr]
        now = time.perf_counter()
        self.times["after" if frozen else "before"].append(now - self.last)
        self.last = now
        if self.num_timesteps % self.eval_every == 0:
            self.evaluate()
        return self.flops < self.budget


def run(game: str, seed: int, lever: bool, args: Any) -> dict[str, Any]:
    kw: dict[str, Any] = dict(preset=args.preset, buffer_size=args.buffer_size, seed=seed)
    if args.learning_starts is not None:
        kw["learning_starts"] = args.learning_starts
    if lever:
        cls = PrioritizedLeVERReplayBuffer if args.preset == "der" else LeVERReplayBuffer
        kw.update(
            replay_buffer_class=cls, replay_buffer_kwargs=dict(T_f=args.T_f or T_F.get(game, 50_000), T_f_unit="steps")
        )
    model = Rainbow("CnnPolicy", make_atari_env(game, seed=seed), **kw)
    eval_env = make_atari_env(
        game,
        training=False,
        seed=10_000 + seed,
        **({"max_frames": args.eval_max_frames} if args.eval_max_frames else {}),
    )
    cb = FlopBudget(args.budget, eval_env, args.eval_every, args.eval_episodes)
    model.learn(args.max_steps, callback=cb)
    if not cb.curve or cb.curve[-1][0] != model.num_timesteps:
        cb.evaluate()
    buffer = model.replay_buffer
    per_transition = (
        buffer.bytes_per_transition()
        if isinstance(buffer, LeVERReplayBuffer)  # type: ignore[union-attr]
        else buffer.nbytes() / (buffer.buffer_size * buffer.n_envs)
    )  # type: ignore[union-attr]
    rate = {k: (len(v) / sum(v) if v else None) for k, v in cb.times.items()}
    return {
        "game": game,
        "seed": seed,
        "lever": lever,
        "steps": model.num_timesteps,
        "flops": cb.flops,
        "frozen_at": cb.frozen_at,
        "curve": cb.curve,
        "final": cb.curve[-1][2],
        "steps_per_s": rate,
        "bytes_per_transition": per_transition,
        "sizes": cb.sizes,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--games", nargs="+", default=["CrazyClimber", "Krull", "Qbert"])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--budget", type=float, default=4.5e13, help="FLOPs per run (paper: 4.5e13)")
    p.add_argument("--preset", default="lever", choices=["lever", "der"])
    p.add_argument("--buffer-size", type=int, default=500_000)
    p.add_argument("--learning-starts", type=int, default=None)
    p.add_argument("--T-f", type=int, default=None, help="freeze time in env steps (default: Table 5's per game)")
    p.add_argument("--eval-every", type=int, default=10_000)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--eval-max-frames", type=int, default=None)
    p.add_argument("--max-steps", type=int, default=2_000_000, help="a safety stop in env steps")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    if args.quick:
        args.games, args.seeds, args.budget, args.buffer_size = ["BankHeist"], 1, 6e10, 2000
        args.learning_starts, args.T_f, args.eval_every, args.eval_episodes = 50, 120, 100, 1
        args.eval_max_frames, args.max_steps = 400, 1000
    torch.set_num_threads(args.threads)
    runs = [run(g, s, lever, args) for g in args.games for s in range(args.seeds) for lever in (False, True)]
    rows = []
    for g in args.games:
        paper = PAPER_45T.get(g)
        cells: list[Any] = [g]
        for lever in (False, True):
            finals = [r["final"] for r in runs if r["game"] == g and r["lever"] == lever]
            cells.append(f"{np.mean(finals):.1f} ± {np.std(finals):.1f} (n={len(finals)})")
            cells.append(f"{paper[int(lever)][0]} ± {paper[int(lever)][1]}" if paper else "")
        rows.append(cells)
    table = md_table(
        ["game", "Rainbow (ours)", "Rainbow (paper)", "Rainbow + LeVER (ours)", "Rainbow + LeVER (paper)"], rows
    )
    speed = md_table(
        ["game", "seed", "LeVER", "steps", "frozen at", "steps/s before", "steps/s after", "bytes/transition"],
        [
            [
                r["game"],
                r["seed"],
                r["lever"],
                r["steps"],
                r["frozen_at"],
                r["steps_per_s"]["before"] or "",
                r["steps_per_s"]["after"] or "",
                r["bytes_per_transition"],
            ]
            for r in runs
        ],
    )
    sizes = runs[0]["sizes"]
    table += (
        f"\nScores of whole games (unclipped, deterministic policy) at {args.budget:.3g} FLOPs in the paper's "
        f"accounting; E = {sizes['E']:.3g}, M = {sizes['M']:.3g} multiply-adds per sample (first game), preset "
        f"{args.preset}, {args.seeds} seed(s), evaluation {args.eval_episodes} episodes every {args.eval_every} "
        f"steps{'; quick mode: a tiny budget, not a reproduction' if args.quick else ''}.\n\n" + speed
    )
    out = {"args": {k: v for k, v in vars(args).items() if k != "out"}, "runs": runs}
    payload = write("lever_atari", args, out, table)
    _plot(runs, args)
    return payload


def _plot(runs: list[dict[str, Any]], args: Any) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    games = sorted({r["game"] for r in runs})
    fig, axes = plt.subplots(1, len(games), figsize=(4 * len(games), 3), squeeze=False)
    for ax, g in zip(axes[0], games, strict=True):
        for r in (r for r in runs if r["game"] == g):
            c = np.array(r["curve"])
            ax.plot(
                c[:, 1],
                c[:, 2],
                color="C1" if r["lever"] else "C0",
                alpha=0.8,
                label=("Rainbow + LeVER" if r["lever"] else "Rainbow") if r["seed"] == 0 else None,
            )
        ax.set(title=g, xlabel="FLOPs (paper's accounting)", ylabel="score")
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.out / f"lever_atari{'.quick' if args.quick else ''}.png", dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
