"""The main job of ``make demo``: state-based Flare with SB3's SAC on a position-only DMC task.

Cartpole swing-up where the agent sees only positions (cart position, cos/sin of the pole angle),
never velocities. Four stacked positions go through :class:`~sb3_latent.StateFlareExtractor`,
which hands SAC the current position and its finite differences (Flare, Section 3). In a few
minutes on two CPU cores it goes from a random policy to swinging the pole up.

Writes into ``--out``: the model (``model.zip``), the evaluation log (``evaluations.npz``),
``learning_curve.png``, ``rollout.gif``, ``summary.json``, TensorBoard logs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from stable_baselines3 import SAC
from stable_baselines3.common.callbacks import EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import VecEnv

from sb3_latent.envs import make_dmc_env
from sb3_latent.extractors import state_flare_kwargs

DOMAIN, TASK = "cartpole", "swingup"


def random_returns(env: VecEnv, n_episodes: int, seed: int) -> list[float]:
    """Episode returns of uniformly random actions."""
    env.action_space.seed(seed)
    env.seed(seed)
    env.reset()
    returns: list[float] = []
    total = 0.0
    while len(returns) < n_episodes:
        _, reward, done, _ = env.step(np.array([env.action_space.sample()]))
        total += float(reward[0])
        if done[0]:
            returns.append(total)
            total = 0.0
    return returns


def record_rollout(model: SAC, path: Path, seed: int, size: int = 128) -> float:
    """Run one episode of the trained policy, save the camera view as a GIF; return its return."""
    import imageio.v2 as imageio

    env = make_dmc_env(DOMAIN, TASK, pixels=False, position_only=True, size=size, seed=seed)
    obs = env.reset()
    frames, total, done = [], 0.0, False
    while not done:
        frames.append(env.env_method("render")[0])
        action, _ = model.predict(obs, deterministic=True)  # type: ignore[arg-type]
        obs, reward, dones, _ = env.step(action)
        total += float(reward[0])
        done = bool(dones[0])
    imageio.mimsave(path, frames[::2], duration=0.08, loop=0)
    env.close()
    return total


def plot_curve(log: Path, random_mean: float, path: Path) -> None:
    """Evaluation return against environment steps, with the random policy as a reference line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data = np.load(log)
    steps, results = data["timesteps"], data["results"]
    mean, std = results.mean(axis=1), results.std(axis=1)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(steps, mean, marker="o", label="SAC + state Flare (position-only)")
    ax.fill_between(steps, mean - std, mean + std, alpha=0.25)
    ax.axhline(random_mean, color="gray", linestyle="--", label="random policy")
    ax.set_xlabel("agent steps (x8 action repeat = env steps)")
    ax.set_ylabel("evaluation return")
    ax.set_title(f"{DOMAIN}-{TASK}, positions only")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--timesteps", type=int, default=15_000, help="agent steps to train")
    parser.add_argument("--eval-freq", type=int, default=2_000, help="agent steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress-bar", action="store_true")
    args = parser.parse_args(argv)
    if args.timesteps < 1 or args.eval_freq < 1 or args.eval_episodes < 1:
        parser.error("--timesteps, --eval-freq and --eval-episodes must be positive")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"sb3-latent demo: SAC + state Flare on {DOMAIN}-{TASK} (positions only, 4 stacked, action repeat 8)")
    print(f"writing to {out.resolve()}")
    start = time.time()
    env = make_dmc_env(DOMAIN, TASK, pixels=False, position_only=True, seed=args.seed)
    eval_env = make_dmc_env(DOMAIN, TASK, pixels=False, position_only=True, seed=args.seed + 1000)

    rand = random_returns(
        make_dmc_env(DOMAIN, TASK, pixels=False, position_only=True, seed=args.seed + 2000),
        args.eval_episodes,
        args.seed,
    )
    print(f"random policy: {np.mean(rand):.1f} +/- {np.std(rand):.1f} over {len(rand)} episodes")

    model = SAC(
        "MlpPolicy",
        env,
        policy_kwargs=state_flare_kwargs(n_frames=4, net_arch=[256, 256]),
        learning_rate=1e-3,
        buffer_size=100_000,
        batch_size=256,
        learning_starts=1_000,
        tau=0.01,
        gamma=0.99,
        seed=args.seed,
        device=args.device,
        tensorboard_log=str(out / "tb"),
        verbose=0,
    )
    eval_cb = EvalCallback(
        eval_env,
        eval_freq=args.eval_freq,
        n_eval_episodes=args.eval_episodes,
        log_path=str(out),
        best_model_save_path=None,
        deterministic=True,
        verbose=0,
    )
    model.learn(args.timesteps, callback=eval_cb, progress_bar=not args.no_progress_bar)
    model.save(out / "model.zip")

    loaded = SAC.load(out / "model.zip", device=args.device)
    trained, trained_std = evaluate_policy(loaded, eval_env, n_eval_episodes=args.eval_episodes, deterministic=True)
    assert isinstance(trained, float) and isinstance(trained_std, float)
    plot_curve(out / "evaluations.npz", float(np.mean(rand)), out / "learning_curve.png")
    video_return = record_rollout(loaded, out / "rollout.gif", seed=args.seed + 3000)

    summary = {
        "task": f"{DOMAIN}-{TASK} position-only",
        "timesteps": args.timesteps,
        "seed": args.seed,
        "random_return_mean": float(np.mean(rand)),
        "random_return_std": float(np.std(rand)),
        "trained_return_mean": float(trained),
        "trained_return_std": float(trained_std),
        "video_episode_return": video_return,
        "wall_clock_s": round(time.time() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print(f"random policy : {summary['random_return_mean']:7.1f} +/- {summary['random_return_std']:.1f}")
    print(
        f"trained policy: {trained:7.1f} +/- {trained_std:.1f}   (saved model reloaded, {args.eval_episodes} episodes)"
    )
    print(f"saved: {out / 'model.zip'}, {out / 'learning_curve.png'}, {out / 'rollout.gif'}, {out / 'summary.json'}")
    print(f"done in {summary['wall_clock_s']:.0f} s")
    return summary


if __name__ == "__main__":
    main()
