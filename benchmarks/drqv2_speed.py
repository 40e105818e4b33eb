"""Gradient updates per second of DrQ-v2, side by side in one run.

84x84 images, 3 stacked RGB frames, batch 256 (the paper's) and 128; every DrQ-v2 row samples from the
same kind of buffer (:class:`~sb3_latent.NStepFrameStoreReplayBuffer`, n = 3) filled with random frames
stacked as frame stacking makes them; warm-up excluded, median of repeats.

Rows:
- ``textbook DrQ-v2``: the update written straight from the paper (Yarats et al. 2021, §3): the same
  encoder, trunks, MLPs, random shift (pad 4) and n-step clipped double Q target, in plain PyTorch with
  separate encoder passes (critic: obs with gradient; target: next_obs without; actor: obs again, without
  gradient, before the critic's step as in the official code), NCHW tensors, one Adam per module group and a
  per-parameter EMA loop.
- ``textbook DrQ-v2, channels-last``: the same code with the encoder and its input channels-last, to show
  how much of the gap the memory format alone explains.
- ``DrQv2 (ours)``: :class:`sb3_latent.DrQv2`: one encoder pass per batch for obs and one for next_obs,
  reused by the actor (detached) and the target critic; channels-last encoder; fused EMA.
- ``SB3 SAC CnnPolicy (NatureCNN)``: stock SAC with its much cheaper encoder, for orientation.

The maths is the same: one update of the textbook and of ours from the same weights, batch and random
draws gives the same losses and parameters (``same_maths_max_abs_diff``, float rounding only).
Goal: DrQv2 >= 1.2x the textbook update at batch 256.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from stable_baselines3 import SAC
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch import nn

from benchmarks.common import fill, goal, md_table, median_rate, parser, write
from benchmarks.rad_speed import sb3_rate
from sb3_latent import DrQv2, NStepFrameStoreReplayBuffer, RandomShift, make_moving_dot_env
from sb3_latent.extractors import RadEncoder, weight_init


def _mlp(inp: int, out: int, hidden: int, tanh: bool = False) -> nn.Sequential:
    layers = [nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out)]
    return nn.Sequential(*layers, *([nn.Tanh()] if tanh else []))


class TextbookDrQv2:
    """DrQ-v2's update as the paper describes it, written plainly (see the module docstring).

    :param obs_shape: ``(3 * frames, H, W)``
    :param action_dim: action size
    :param feature_dim: trunk output (paper: 50)
    :param hidden: MLP width (paper: 1024)
    :param channels_last: run the encoder channels-last
    """

    def __init__(
        self,
        obs_shape: tuple[int, ...],
        action_dim: int,
        feature_dim: int = 50,
        hidden: int = 1024,
        lr: float = 1e-4,
        tau: float = 0.01,
        stddev: float = 1.0,
        stddev_clip: float = 0.3,
        channels_last: bool = False,
    ) -> None:
        c, h, w = obs_shape
        self.aug, self.tau, self.stddev, self.clip = RandomShift(pad=4), tau, stddev, stddev_clip
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        self.encoder = RadEncoder(c).to(memory_format=self.memory_format)  # type: ignore[call-overload]
        repr_dim = int(np.prod(self.encoder(torch.zeros(1, c, h, w)).shape[1:]))

        def trunk() -> nn.Sequential:
            return nn.Sequential(nn.Linear(repr_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())

        self.actor_trunk, self.actor_mlp = trunk(), _mlp(feature_dim, action_dim, hidden, tanh=True)
        self.critic_trunk = trunk()
        self.q1, self.q2 = _mlp(feature_dim + action_dim, 1, hidden), _mlp(feature_dim + action_dim, 1, hidden)
        for m in (self.encoder, self.actor_trunk, self.actor_mlp, self.critic_trunk, self.q1, self.q2):
            m.apply(weight_init)
        self.critic = nn.ModuleList([self.critic_trunk, self.q1, self.q2])
        self.target = copy.deepcopy(self.critic)
        self.encoder_opt = torch.optim.Adam(self.encoder.parameters(), lr=lr)
        self.actor_opt = torch.optim.Adam([*self.actor_trunk.parameters(), *self.actor_mlp.parameters()], lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)

    def encode(self, obs: torch.Tensor) -> torch.Tensor:
        return self.encoder(obs.contiguous(memory_format=self.memory_format)).flatten(1)

    def act(self, h: torch.Tensor) -> torch.Tensor:
        """Clipped-noise action from encoder output ``h``: clamp(mean + clip(ε σ, -c, c)), straight-through."""
        mu = self.actor_mlp(self.actor_trunk(h))
        x = mu + (torch.randn_like(mu) * self.stddev).clamp(-self.clip, self.clip)
        return x - x.detach() + x.detach().clamp(-1.0, 1.0)

    @staticmethod
    def q(trunk: nn.Module, q1: nn.Module, q2: nn.Module, h: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x = torch.cat([trunk(h), a], dim=1)
        return torch.min(q1(x), q2(x))

    def update(self, d: ReplayBufferSamples) -> tuple[float, float]:
        obs = self.aug(d.observations) / 255.0  # augment obs and next_obs independently
        next_obs = self.aug(d.next_observations) / 255.0
        h = self.encode(obs)  # for the critic, with gradient
        with torch.no_grad():
            h_actor = self.encode(obs)  # for the actor: a pass of its own, without gradient, same (pre-step) encoder
            h_next = self.encode(next_obs)  # for the target
            # critic: y = r_n + γ^n (1 - done) min Q̄(h', a'); loss = MSE(Q1, y) + MSE(Q2, y)
            y = d.rewards + d.discounts * (1 - d.dones) * self.q(*self.target, h_next, self.act(h_next))
        x = torch.cat([self.critic_trunk(h), d.actions], dim=1)
        critic_loss = F.mse_loss(self.q1(x), y) + F.mse_loss(self.q2(x), y)
        self.encoder_opt.zero_grad()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        self.encoder_opt.step()
        # actor: -min Q(h, a) on the actor's encoding of the same augmented obs
        actor_loss = -self.q(self.critic_trunk, self.q1, self.q2, h_actor, self.act(h_actor)).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():  # EMA of the target critic
            for p, t in zip(self.critic.parameters(), self.target.parameters(), strict=True):
                t.mul_(1 - self.tau).add_(p, alpha=self.tau)
        return critic_loss.item(), actor_loss.item()

    def copy_from(self, model: DrQv2) -> None:
        """Take the weights of an :class:`sb3_latent.DrQv2` with the default encoder (for the maths check)."""
        fe, afe, tfe = (
            model.critic.features_extractor,
            model.actor.features_extractor,
            model.critic_target.features_extractor,
        )
        self.encoder.load_state_dict(fe.encoder.state_dict())
        for trunk, src in ((self.critic_trunk, fe), (self.actor_trunk, afe), (self.target[0], tfe)):
            trunk[0].load_state_dict(src.fc.state_dict())
            trunk[1].load_state_dict(src.ln.state_dict())
        self.actor_mlp.load_state_dict(model.actor.mu.state_dict())
        pairs = (
            (self.q1, model.critic.qf0),
            (self.q2, model.critic.qf1),
            (self.target[1], model.critic_target.qf0),
            (self.target[2], model.critic_target.qf1),
        )
        for dst, src in pairs:
            dst.load_state_dict(src.state_dict())


def same_maths_max_abs_diff(env: Any, batch: int) -> float:
    """One update of ours and of the textbook from the same weights, batch and seed: the largest absolute
    difference of the two losses and of every updated parameter."""
    model = DrQv2("CnnPolicy", env, buffer_size=2 * batch, learning_starts=0, seed=0)
    fill(model.replay_buffer)  # type: ignore[arg-type]
    model._setup_learn(total_timesteps=1)
    book = TextbookDrQv2(env.observation_space.shape, env.action_space.shape[0], stddev=model.stddev())
    book.copy_from(model)
    data = model.replay_buffer.sample(batch)  # type: ignore[union-attr]
    torch.manual_seed(1)
    logs = model.update(data)
    torch.manual_seed(1)
    critic_loss, actor_loss = book.update(data)
    diffs = [abs(critic_loss - logs["critic_loss"].item()), abs(actor_loss - logs["actor_loss"].item())]
    pairs = [
        (book.encoder, model.critic.features_extractor.encoder),
        (book.q1, model.critic.qf0),
        (book.actor_mlp, model.actor.mu),
        (book.target[1], model.critic_target.qf0),
    ]
    for a, b in pairs:
        diffs += [(p - q).abs().max().item() for p, q in zip(a.parameters(), b.parameters(), strict=True)]
    return max(diffs)


def textbook_rate(env: Any, batch: int, n_updates: int, repeats: int, channels_last: bool) -> dict[str, Any]:
    book = TextbookDrQv2(env.observation_space.shape, env.action_space.shape[0], channels_last=channels_last)
    buffer = NStepFrameStoreReplayBuffer(4 * batch, env.observation_space, env.action_space, n_steps=3, gamma=0.99)
    fill(buffer)

    def run() -> int:
        for _ in range(n_updates):
            book.update(buffer.sample(batch))
        return n_updates

    return median_rate(run, repeats, warmup=lambda: [book.update(buffer.sample(batch)) for _ in range(2)])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    size, batches, n_updates = (40, [16, 8], 2) if args.quick else (84, [256, 128], 5)
    repeats = args.repeats or (1 if args.quick else 3)
    env = make_moving_dot_env(frame_stack=3, size=size, seed=0)
    results: dict[str, dict[str, Any]] = {}
    for batch in batches:
        common = dict(buffer_size=4 * batch, batch_size=batch, learning_starts=0, seed=0, device="auto")
        rows = {
            "textbook DrQ-v2": textbook_rate(env, batch, n_updates, repeats, channels_last=False),
            "textbook DrQ-v2, channels-last": textbook_rate(env, batch, n_updates, repeats, channels_last=True),
            "DrQv2 (ours)": sb3_rate(DrQv2("CnnPolicy", env, **common), batch, n_updates, repeats),  # type: ignore[arg-type]
            "SB3 SAC CnnPolicy (NatureCNN)": sb3_rate(SAC("CnnPolicy", env, **common), batch, n_updates, repeats),  # type: ignore[arg-type]
        }
        for name, r in rows.items():
            print(f"batch {batch}, {name}: {r['median_per_s']:.3f} updates/s", flush=True)
        results[str(batch)] = rows
    ratios = {b: r["DrQv2 (ours)"]["median_per_s"] / r["textbook DrQ-v2"]["median_per_s"] for b, r in results.items()}
    first = str(batches[0])
    diff = same_maths_max_abs_diff(env, batches[-1])
    goals = {f"ours_vs_textbook_batch{first}": goal(ratios[first], 1.2)}
    table_rows = [
        [b, name, r["median_per_s"], f"{r['median_per_s'] / rows_b['textbook DrQ-v2']['median_per_s']:.2f}x"]
        for b, rows_b in results.items()
        for name, r in rows_b.items()
    ]
    table = md_table(["batch", "update", "gradient updates/s", "vs textbook"], table_rows)
    table += (
        f"\n{size}x{size}, 3 stacked RGB frames, MLPs 1024x2 and feature dim 50 for the DrQ-v2 rows (SB3 default "
        f"256x2 for stock SAC), {n_updates} updates per repeat, median of {repeats}.\n"
        f"DrQv2 / textbook at batch {first}: {ratios[first]:.2f}x (goal >= 1.2: "
        f"{'met' if ratios[first] >= 1.2 else 'NOT met'}"
        f"{'; quick mode: tiny images and batches, not a measure of the goal' if args.quick else ''}). "
        f"Same maths: one update from the same weights, batch and seed differs by at most {diff:.1e} "
        f"(losses and parameters).\n"
    )
    out = {
        "size": size,
        "batch_sizes": batches,
        "n_frames": 3,
        "updates_per_repeat": n_updates,
        "results": results,
        "ratios_vs_textbook": ratios,
        "same_maths_max_abs_diff": diff,
    }
    return write("drqv2_speed", args, out, table, goals)


if __name__ == "__main__":
    main()
