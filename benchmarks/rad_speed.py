"""Gradient updates per second of RAD, side by side in one run.

Same batch (128), image size (84x84) and stack (3 RGB frames) for every row; replay buffers filled
with random frames whose stacks overlap as frame stacking makes them (next_obs = obs shifted by one
frame), translate augmentation 84 -> 92 for the RAD rows, warm-up excluded, median of repeats.

Rows:
- ``textbook RAD``: the RAD-SAC update written straight from the papers (CURL/RAD code structure):
  the actor and the actor's critic pass re-run the encoder on obs; same encoder and heads as ours.
- ``RAD (stacked frames)``: :class:`sb3_latent.RAD` with its default encoder.
- ``RAD + Flare``: :class:`sb3_latent.RAD` with ``flare_kwargs(n_frames=3)``.
- ``SB3 SAC CnnPolicy``: stock SAC with NatureCNN (a much cheaper encoder), for orientation.

Goals: RAD (stacked) >= textbook RAD; RAD + Flare >= 0.5x RAD (stacked).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from torch import nn

from benchmarks.common import fill, goal, md_table, median_rate, parser, write
from sb3_latent import RAD, RandomTranslate, flare_kwargs, make_moving_dot_env
from sb3_latent.extractors import RadEncoder, weight_init


class TextbookRAD:
    """RAD-SAC's update as the papers describe it, for comparison: one conv encoder trained by the
    critic, the actor's copy tied to it and detached, a target critic with its own encoder."""

    def __init__(
        self, obs_shape: tuple[int, ...], action_dim: int, feature_dim: int = 64, hidden: int = 1024, aug_size: int = 92
    ) -> None:
        self.aug = RandomTranslate(aug_size)
        c = obs_shape[0]
        self.conv = RadEncoder(c)
        n = int(np.prod(self.conv(torch.zeros(1, c, aug_size, aug_size)).shape[1:]))

        def head() -> nn.Module:
            return nn.Sequential(nn.Linear(n, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())

        def mlp(inp: int, out: int) -> nn.Module:
            return nn.Sequential(
                nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out)
            )

        self.critic_head, self.actor_head = head(), head()
        self.q1, self.q2 = mlp(feature_dim + action_dim, 1), mlp(feature_dim + action_dim, 1)
        self.pi = mlp(feature_dim, 2 * action_dim)
        for m in (self.conv, self.critic_head, self.actor_head, self.q1, self.q2, self.pi):
            m.apply(weight_init)
        self.target = copy.deepcopy(nn.ModuleList([self.conv, self.critic_head, self.q1, self.q2]))
        self.log_alpha = torch.tensor(np.log(0.1), requires_grad=True)
        self.critic_opt = torch.optim.Adam(
            [*self.conv.parameters(), *self.critic_head.parameters(), *self.q1.parameters(), *self.q2.parameters()],
            lr=2e-4,
        )
        self.actor_opt = torch.optim.Adam([*self.actor_head.parameters(), *self.pi.parameters()], lr=2e-4)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=1e-4, betas=(0.5, 0.999))
        self.step = 0

    def policy(self, feat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mu, log_std = self.pi(feat).chunk(2, dim=-1)
        std = log_std.clamp(-10, 2).exp()
        u = mu + std * torch.randn_like(mu)
        a = torch.tanh(u)
        logp = (-0.5 * ((u - mu) / std) ** 2 - log_std.clamp(-10, 2) - 0.5 * np.log(2 * np.pi)).sum(-1, keepdim=True)
        return a, logp - torch.log(1 - a.pow(2) + 1e-6).sum(-1, keepdim=True)

    def update(
        self,
        obs: torch.Tensor,
        action: torch.Tensor,
        reward: torch.Tensor,
        next_obs: torch.Tensor,
        not_done: torch.Tensor,
    ) -> None:
        p = self.aug.sample_params(obs)
        obs, next_obs = self.aug.apply(obs, p).float() / 255, self.aug.apply(next_obs, p).float() / 255
        alpha = self.log_alpha.exp().detach()
        with torch.no_grad():
            next_a, next_logp = self.policy(self.actor_head(self.conv(next_obs).flatten(1)))
            t_conv, t_head, t_q1, t_q2 = self.target
            tf = torch.cat([t_head(t_conv(next_obs).flatten(1)), next_a], 1)
            y = reward + not_done * 0.99 * (torch.min(t_q1(tf), t_q2(tf)) - alpha * next_logp)
        f = torch.cat([self.critic_head(self.conv(obs).flatten(1)), action], 1)
        loss = F.mse_loss(self.q1(f), y) + F.mse_loss(self.q2(f), y)
        self.critic_opt.zero_grad()
        loss.backward()
        self.critic_opt.step()
        self.step += 1
        if self.step % 2 == 0:
            h = self.conv(obs).flatten(1).detach()  # the actor re-encodes obs (detached)
            a, logp = self.policy(self.actor_head(h))
            fa = torch.cat([self.critic_head(self.conv(obs).flatten(1).detach()), a], 1)
            actor_loss = (alpha * logp - torch.min(self.q1(fa), self.q2(fa))).mean()
            self.actor_opt.zero_grad()
            actor_loss.backward()
            self.actor_opt.step()
            alpha_loss = -(self.log_alpha * (logp + (-action.shape[1])).detach()).mean()
            self.alpha_opt.zero_grad()
            alpha_loss.backward()
            self.alpha_opt.step()
            with torch.no_grad():
                online = [self.conv, self.critic_head, self.q1, self.q2]
                for i, (src, dst) in enumerate(zip(online, self.target, strict=True)):
                    tau = 0.05 if i == 0 else 0.01
                    for ps, pt in zip(src.parameters(), dst.parameters(), strict=True):
                        pt.lerp_(ps, tau)


def sb3_rate(model: OffPolicyAlgorithm, batch: int, n_updates: int, repeats: int) -> dict[str, Any]:
    fill(model.replay_buffer)  # type: ignore[arg-type]
    model._setup_learn(total_timesteps=1)
    return median_rate(
        lambda: (model.train(gradient_steps=n_updates, batch_size=batch), n_updates)[1],
        repeats,
        warmup=lambda: model.train(gradient_steps=2, batch_size=batch),
    )


def textbook_rate(obs_shape: tuple[int, ...], batch: int, n_updates: int, repeats: int) -> dict[str, Any]:
    agent = TextbookRAD(obs_shape, action_dim=2, aug_size=obs_shape[-1] + 8)
    env = make_moving_dot_env(frame_stack=3, size=obs_shape[-1])
    buffer = ReplayBuffer(4 * batch, env.observation_space, env.action_space)
    fill(buffer)

    def run() -> int:
        for _ in range(n_updates):
            d = buffer.sample(batch)
            agent.update(d.observations, d.actions, d.rewards, d.next_observations, 1 - d.dones)
        return n_updates

    return median_rate(
        run,
        repeats,
        warmup=lambda: [
            agent.update(
                *(lambda d: (d.observations, d.actions, d.rewards, d.next_observations, 1 - d.dones))(
                    buffer.sample(batch)
                )
            )
            for _ in range(2)
        ],
    )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    size, batch, n_updates = (40, 16, 2) if args.quick else (84, 128, 10)
    repeats = args.repeats or (1 if args.quick else 3)
    env = make_moving_dot_env(frame_stack=3, size=size, seed=0)
    common = dict(buffer_size=4 * batch, batch_size=batch, learning_starts=0, seed=0, device="auto")
    results: dict[str, Any] = {}
    results["textbook RAD"] = textbook_rate(env.observation_space.shape, batch, n_updates, repeats)  # type: ignore[arg-type]
    results["RAD (stacked frames)"] = sb3_rate(RAD("CnnPolicy", env, **common), batch, n_updates, repeats)
    results["RAD + Flare"] = sb3_rate(
        RAD("CnnPolicy", env, policy_kwargs=flare_kwargs(n_frames=3), **common), batch, n_updates, repeats
    )
    results["SB3 SAC CnnPolicy (NatureCNN)"] = sb3_rate(SAC("CnnPolicy", env, **common), batch, n_updates, repeats)
    for name, r in results.items():
        print(f"{name}: {r['median_per_s']:.2f} updates/s", flush=True)
    rad = results["RAD (stacked frames)"]["median_per_s"]
    ratios = {
        "rad_vs_textbook": rad / results["textbook RAD"]["median_per_s"],
        "flare_vs_rad": results["RAD + Flare"]["median_per_s"] / rad,
    }
    goals = {"rad_vs_textbook": goal(ratios["rad_vs_textbook"], 1.0), "flare_vs_rad": goal(ratios["flare_vs_rad"], 0.5)}
    rows = [[name, r["median_per_s"], f"{r['median_per_s'] / rad:.2f}x"] for name, r in results.items()]
    table = md_table(["update", "gradient updates/s", "vs RAD (stacked)"], rows)
    table += (
        f"\n{size}x{size}, 3 stacked RGB frames, batch {batch}, MLP 1024x2 for the RAD rows (SB3 default "
        f"256x2 for stock SAC), {n_updates} updates per repeat, median of {repeats}.\n"
        f"RAD / textbook: {ratios['rad_vs_textbook']:.2f}x (goal >= 1: "
        f"{'met' if goals['rad_vs_textbook']['met'] else 'NOT met'}); RAD + Flare / RAD: "
        f"{ratios['flare_vs_rad']:.2f}x (goal >= 0.5: {'met' if goals['flare_vs_rad']['met'] else 'NOT met'}).\n"
    )
    out = {
        "size": size,
        "batch_size": batch,
        "n_frames": 3,
        "updates_per_repeat": n_updates,
        "results": results,
        "ratios": ratios,
    }
    return write("rad_speed", args, out, table, goals)


if __name__ == "__main__":
    main()
