"""LeVER's compute and memory savings, side by side in one run: before and after the freeze.

For stock SB3 SAC (``CnnPolicy``, NatureCNN, via :func:`sb3_latent.attach_lever`; with its default
512 features and with the paper's latent size 50) and our RAD (its default encoder, 64 features,
LeVER wired natively), on the same 84x84 images (3 stacked RGB frames), batch 128,
K = 4 augmented copies, ``freeze="fc"`` (conv + first Linear, the paper's DMC setting):

- gradient updates/s of ``model.train`` (sampling included) on a buffer of random frames, before the
  freeze and after it (goal: >= 10x);
- bytes per stored transition: SB3's ``ReplayBuffer`` (obs and next_obs whole), our frame-store buffer
  (what LeVER holds before the freeze), and LeVER's latents after it (goal: >= 10x fewer than the
  pixel buffer), with the capacity the freeze grows the buffer to at the same memory (§4.2 formula);
- the one-off re-encoding cost at ``T_f`` for ``--reencode`` (100k) stored transitions, in seconds.
"""

from __future__ import annotations

import time
from typing import Any

from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm

from benchmarks.common import fill, goal, md_table, median_rate, parser, write
from sb3_latent import RAD, LeVERReplayBuffer, attach_lever, make_moving_dot_env

K = 4


#: rows: model -> (algorithm, policy_kwargs)
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "SAC (NatureCNN, 512 features)": ("SAC", {}),
    "SAC (NatureCNN, 50 features)": ("SAC", {"features_extractor_kwargs": {"features_dim": 50}}),
    "RAD (default encoder)": ("RAD", {}),
}


def build(model: str, size: int, buffer_size: int, batch: int) -> OffPolicyAlgorithm:
    algo, policy_kwargs = MODELS[model]
    env = make_moving_dot_env(frame_stack=3, size=size, seed=0)
    common = dict(
        buffer_size=buffer_size,
        batch_size=batch,
        learning_starts=0,
        seed=0,
        device="auto",
        policy_kwargs=dict(policy_kwargs),
    )
    lever = dict(T_f=10**9, K=K)  # frozen by hand below, between the two measurements
    if algo == "SAC":
        return attach_lever(SAC("CnnPolicy", env, **common), **lever)  # type: ignore[return-value]
    return RAD("CnnPolicy", env, replay_buffer_class=LeVERReplayBuffer, replay_buffer_kwargs=lever, **common)


def measure(algo: str, size: int, batch: int, n_updates: int, repeats: int, stored: int) -> dict[str, Any]:
    model = build(algo, size, stored, batch)
    rb = model.replay_buffer
    assert isinstance(rb, LeVERReplayBuffer)
    fill(rb)
    model._setup_learn(total_timesteps=1)

    def rate(n: int) -> dict[str, Any]:
        return median_rate(
            lambda: (model.train(gradient_steps=n, batch_size=batch), n)[1],
            repeats,
            warmup=lambda: model.train(gradient_steps=2, batch_size=batch),
        )

    before = rate(n_updates)
    bytes_before, capacity_before = rb.bytes_per_transition(), rb.buffer_size
    start = time.perf_counter()
    rb.freeze()
    freeze_seconds = time.perf_counter() - start
    after = rate(n_updates * 20)
    b = rb._require_bound()
    return {
        "before": before,
        "after": after,
        "speedup": after["median_per_s"] / before["median_per_s"],
        "bytes_per_transition_frame_store": bytes_before,
        "bytes_per_transition_latent": rb.bytes_per_transition(),
        "capacity_before": capacity_before,
        "capacity_after": rb.buffer_size,
        "N": b.n_slots,
        "L": b.latent_dim,
        "freeze_seconds_small": freeze_seconds,
        "stored_small": stored,
    }


def reencode_seconds(algo: str, size: int, stored: int) -> float:
    """Seconds of the freeze for ``stored`` transitions (frame-store images → K latents each)."""
    model = build(algo, size, stored, 128)
    rb = model.replay_buffer
    assert isinstance(rb, LeVERReplayBuffer)
    fill(rb)
    start = time.perf_counter()
    rb.freeze()
    return time.perf_counter() - start


def sb3_bytes_per_transition(size: int) -> float:
    env = make_moving_dot_env(frame_stack=3, size=size)
    rb = ReplayBuffer(1000, env.observation_space, env.action_space)
    arrays = [rb.observations, rb.next_observations, rb.actions, rb.rewards, rb.dones, rb.timeouts]
    return sum(a.nbytes for a in arrays) / rb.buffer_size


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--reencode", type=int, default=100_000, help="stored transitions for the re-encoding cost")
    args = p.parse_args(argv)
    size, batch, n_updates, stored = (84, 16, 2, 200) if args.quick else (84, 128, 5, 2_000)
    repeats = args.repeats or (1 if args.quick else 3)
    n_reencode = 300 if args.quick else args.reencode
    sb3_bytes = sb3_bytes_per_transition(size)
    results: dict[str, Any] = {}
    for algo in MODELS:
        r = measure(algo, size, batch, n_updates, repeats, stored)
        r["reencode_seconds"] = reencode_seconds(algo, size, n_reencode)
        results[algo] = r
        print(
            f"{algo}: {r['before']['median_per_s']:.2f} -> {r['after']['median_per_s']:.1f} updates/s, "
            f"{r['bytes_per_transition_frame_store']:.0f} -> {r['bytes_per_transition_latent']:.0f} B/transition, "
            f"re-encoding {n_reencode} transitions {r['reencode_seconds']:.1f} s",
            flush=True,
        )
    rows, goals = [], {}
    for algo, r in results.items():
        mem = r["bytes_per_transition_frame_store"] / r["bytes_per_transition_latent"]
        mem_sb3 = sb3_bytes / r["bytes_per_transition_latent"]
        r["fewer_bytes_vs_frame_store"], r["fewer_bytes_vs_sb3"] = mem, mem_sb3
        goals[f"{algo}: speed-up"] = goal(r["speedup"], 10.0)
        goals[f"{algo}: fewer bytes vs frame store"] = goal(mem, 10.0)
        goals[f"{algo}: fewer bytes vs SB3 buffer"] = goal(mem_sb3, 10.0)
        rows.append(
            [
                algo,
                r["before"]["median_per_s"],
                r["after"]["median_per_s"],
                f"{r['speedup']:.0f}x",
                f"{sb3_bytes:,.0f}",
                f"{r['bytes_per_transition_frame_store']:,.0f}",
                f"{r['bytes_per_transition_latent']:,.0f}",
                f"{mem:.1f}x / {mem_sb3:.0f}x",
                f"{r['capacity_before']:,} -> {r['capacity_after']:,}",
                f"{r['reencode_seconds']:.1f}",
            ]
        )
    table = md_table(
        [
            "model",
            "updates/s before",
            "updates/s after",
            "speed-up",
            "B/transition SB3 buffer",
            "B/transition frame store",
            "B/transition LeVER",
            "fewer bytes (vs frame store / vs SB3)",
            "capacity (§4.2)",
            f"re-encode {n_reencode:,} transitions (s)",
        ],
        rows,
    )
    table += (
        f"\n{size}x{size}, 3 stacked RGB frames, batch {batch}, K={K}, freeze='fc'; N (encoders) and L (latent "
        f"floats): "
        + ", ".join(f"{a} N={r['N']} L={r['L']}" for a, r in results.items())
        + f". Updates/s: median of {repeats} repeats of model.train (sampling included) on a buffer of {stored:,} "
        f"random transitions. Capacity: the buffer's {stored:,} transitions of images become "
        "floor(C P / (4 N K L)) transitions of latents. Goals (>= 10x): "
        + ", ".join(
            f"{a} speed {'met' if goals[f'{a}: speed-up']['met'] else 'NOT met'}, memory vs frame store "
            f"{'met' if goals[f'{a}: fewer bytes vs frame store']['met'] else 'NOT met'}"
            for a in results
        )
        + ".\n"
    )
    out = {
        "size": size,
        "batch_size": batch,
        "K": K,
        "sb3_bytes_per_transition": sb3_bytes,
        "results": results,
        "reencode_transitions": n_reencode,
    }
    return write("lever_savings", args, out, table, goals)


if __name__ == "__main__":
    main()
