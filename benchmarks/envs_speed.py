"""Agent steps per second of ``make_dmc_env`` pixels against the straightforward stack.

The straightforward stack is shimmy over ``dm_control.suite.wrappers.pixels`` with an action-repeat
wrapper outside it, so it renders on every control step; ours renders once per agent step, after
the repeat. Same task, 84x84 frames, action repeat 8, camera 0, random actions, one process.
Also: ``fast_render=True`` (no shadows, reflections, skybox) against default rendering.
Goals: ours >= 6x the straightforward stack; fast render >= 3x default.
"""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")

from typing import Any

import gymnasium as gym
import numpy as np

from benchmarks.common import goal, md_table, median_rate, parser, write
from sb3_latent.envs import ActionRepeat, make_dmc_gym_env


def straightforward_env(domain: str, task: str, size: int, repeat: int) -> gym.Env:
    """shimmy + dm_control's pixels wrapper (renders each control step) + a repeat outside it."""
    from dm_control import suite
    from dm_control.suite.wrappers import pixels
    from shimmy.dm_control_compatibility import DmControlCompatibilityV0

    dm_env = pixels.Wrapper(
        suite.load(domain, task, task_kwargs={"random": 0}),
        pixels_only=True,
        render_kwargs={"height": size, "width": size, "camera_id": 0},
    )
    return ActionRepeat(DmControlCompatibilityV0(dm_env), repeat)


def steps_per_s(env: gym.Env, n_steps: int, repeats: int) -> dict[str, float]:
    env.reset(seed=0)
    env.action_space.seed(0)

    def run() -> int:
        for _ in range(n_steps):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()
        return n_steps

    return median_rate(run, repeats, warmup=lambda: [env.step(env.action_space.sample()) for _ in range(5)])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    tasks = [("cartpole", "swingup")] if args.quick else [("cartpole", "swingup"), ("cheetah", "run")]
    size, repeat = (84, 8)
    n_steps = 10 if args.quick else 100
    repeats = args.repeats or (1 if args.quick else 3)
    rows, results = [], {}
    for domain, task in tasks:
        r: dict[str, Any] = {}
        r["straightforward"] = steps_per_s(straightforward_env(domain, task, size, repeat), n_steps, repeats)
        r["ours"] = steps_per_s(
            make_dmc_gym_env(domain, task, size=size, action_repeat=repeat, frame_stack=3), n_steps, repeats
        )
        r["ours_fast_render"] = steps_per_s(
            make_dmc_gym_env(domain, task, size=size, action_repeat=repeat, frame_stack=3, fast_render=True),
            n_steps,
            repeats,
        )
        s, o, f = (r[k]["median_per_s"] for k in ("straightforward", "ours", "ours_fast_render"))
        r["speedup_ours_vs_straightforward"] = o / s
        r["speedup_fast_vs_default_render"] = f / o
        r["speedup_ours_fast_vs_straightforward"] = f / s
        results[f"{domain}-{task}"] = r
        rows.append([f"{domain}-{task}", s, o, f, f"{o / s:.1f}x", f"{f / o:.1f}x", f"{f / s:.1f}x"])
    goal_repeat = min(r["speedup_ours_vs_straightforward"] for r in results.values())
    goal_fast = min(r["speedup_fast_vs_default_render"] for r in results.values())
    table = md_table(
        [
            "task",
            "straightforward (steps/s)",
            "ours (steps/s)",
            "ours + fast_render (steps/s)",
            "ours / straightforward (goal >= 6x)",
            "fast / default render (goal >= 3x)",
            "fast / straightforward",
        ],
        rows,
    )
    table += (
        f"\n84x84 frames, action repeat 8, {n_steps} agent steps per repeat, median of {repeats}. "
        f"Worst case: {goal_repeat:.1f}x at repeat 8 (goal 6x: {'met' if goal_repeat >= 6 else 'NOT met'}), "
        f"{goal_fast:.1f}x from fast render (goal 3x: {'met' if goal_fast >= 3 else 'NOT met'}).\n"
    )
    out = {"size": size, "action_repeat": repeat, "n_steps": n_steps, "tasks": results}
    goals = {"ours_vs_straightforward_repeat8": goal(goal_repeat, 6.0), "fast_vs_default_render": goal(goal_fast, 3.0)}
    return write("envs_speed", args, out, table, goals)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
