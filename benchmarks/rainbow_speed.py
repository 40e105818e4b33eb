"""Rainbow updates per second against a textbook data-efficient Rainbow update, and Atari env steps per second.

Both updates run on the same prioritized frame-store buffer (84x84, 4 stacked grayscale frames, n-step 20) filled
with random frames, at batch 32 (data-efficient Rainbow's); warm-up excluded, median of repeats.

Rows:
- ``textbook DER``: the update written straight from the papers (van Hasselt et al. 2019 for the sizes; Hessel et
  al. 2018 for the update): two conv layers, dueling noisy streams whose noisy weights are materialised as
  ``mu + sigma * outer(f(eps_out), f(eps_in))``, three network passes (online on s_t, online on s_{t+n} for the
  double-Q action, target on s_{t+n}), the C51 projection with the usual floor/ceil index trick, Adam (eps 1.5e-4),
  gradient clipping at 10, new priorities from the per-sample loss.
- ``Rainbow (ours)``: :class:`sb3_latent.Rainbow` (preset ``der``): ``model.train`` (sampling included, as above).

The maths is the same: from the same weights, batch and noise one update of each gives the same loss and
parameters (``same_maths_max_abs_diff``, float rounding only). Env rows: ``make_atari_env("Pong")`` with random
actions, and the whole training loop of ``Rainbow.learn`` (act, store, one update per step).
Goal: ours >= 1.3x the textbook update at batch 32.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import goal, md_table, median_rate, parser, write
from sb3_latent import Rainbow, make_atari_env
from sb3_latent.algos.rainbow import NoisyLinear


class TextbookNoisy(nn.Module):
    """Factorised noisy linear layer with its noisy weight materialised (Fortunato et al. 2018, Eq. 10-11)."""

    def __init__(self, layer: NoisyLinear) -> None:
        super().__init__()
        self.mu_w, self.sigma_w = (
            nn.Parameter(layer.weight.detach().clone()),
            nn.Parameter(layer.weight_sigma.detach().clone()),
        )
        self.mu_b, self.sigma_b = (
            nn.Parameter(layer.bias.detach().clone()),
            nn.Parameter(layer.bias_sigma.detach().clone()),
        )
        self.eps_in, self.eps_out = torch.zeros(layer.in_features), torch.zeros(layer.out_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.mu_w + self.sigma_w * torch.outer(self.eps_out, self.eps_in)
        return F.linear(x, w, self.mu_b + self.sigma_b * self.eps_out)


class TextbookNet(nn.Module):
    """Data-efficient Rainbow's network: conv 32x5x5 s5, conv 64x5x5 s5, dueling noisy streams, softmax over atoms."""

    def __init__(self, net: Any) -> None:
        super().__init__()
        convs = [m for m in net.features_extractor.cnn if isinstance(m, nn.Conv2d)]
        self.conv1, self.conv2 = (nn.Conv2d(c.in_channels, c.out_channels, c.kernel_size, c.stride) for c in convs)
        for mine, theirs in zip((self.conv1, self.conv2), convs, strict=True):
            mine.load_state_dict(theirs.state_dict())
        self.v1, self.v2 = TextbookNoisy(net.value[0]), TextbookNoisy(net.value[2])
        self.a1, self.a2 = TextbookNoisy(net.advantage[0]), TextbookNoisy(net.advantage[2])
        self.n_actions, self.n_atoms = net.n_actions, net.n_atoms

    def set_noise(self, net: Any) -> None:
        for mine, theirs in (
            (self.v1, net.value[0]),
            (self.v2, net.value[2]),
            (self.a1, net.advantage[0]),
            (self.a2, net.advantage[2]),
        ):
            mine.eps_in, mine.eps_out = theirs.eps_in.clone(), theirs.eps_out.clone()

    def forward(self, x: torch.Tensor, log: bool = False) -> torch.Tensor:
        h = F.relu(self.conv2(F.relu(self.conv1(x)))).flatten(1)
        v = self.v2(F.relu(self.v1(h))).view(-1, 1, self.n_atoms)
        a = self.a2(F.relu(self.a1(h))).view(-1, self.n_actions, self.n_atoms)
        q = v + a - a.mean(1, keepdim=True)
        return F.log_softmax(q, 2) if log else F.softmax(q, 2)


class TextbookDER:
    """One data-efficient Rainbow update, plainly (module docstring), from a :class:`Rainbow`'s weights."""

    def __init__(self, model: Rainbow) -> None:
        self.online, self.target = TextbookNet(model.q_net), TextbookNet(model.q_net_target)
        self.support = model.policy.support.clone()
        self.v_min, self.v_max, self.n_atoms = float(self.support[0]), float(self.support[-1]), len(self.support)
        self.optimizer = torch.optim.Adam(self.online.parameters(), lr=model.learning_rate, eps=model.adam_eps)

    def update(self, d: Any) -> torch.Tensor:
        batch = torch.arange(len(d.actions))
        log_p = self.online(d.observations.float() / 255.0, log=True)[batch, d.actions.long().view(-1)]
        with torch.no_grad():
            nxt = d.next_observations.float() / 255.0
            a_star = (self.online(nxt) * self.support).sum(2).argmax(1)  # double Q: online picks
            p = self.target(nxt)[batch, a_star]  # target evaluates
            tz = (d.rewards + (1 - d.dones) * d.discounts * self.support).clamp(self.v_min, self.v_max)
            b = (tz - self.v_min) / ((self.v_max - self.v_min) / (self.n_atoms - 1))
            lo, up = b.floor().long(), b.ceil().long()
            lo[(up > 0) & (lo == up)] -= 1  # an atom landing exactly on a support point keeps its mass
            up[(lo < self.n_atoms - 1) & (lo == up)] += 1
            m = torch.zeros_like(p)
            offset = (batch * self.n_atoms).unsqueeze(1)
            m.view(-1).index_add_(0, (lo + offset).view(-1), (p * (up.float() - b)).view(-1))
            m.view(-1).index_add_(0, (up + offset).view(-1), (p * (b - lo.float())).view(-1))
        loss = -(m * log_p).sum(1)
        self.optimizer.zero_grad()
        (d.weights.view(-1) * loss).mean().backward()
        nn.utils.clip_grad_norm_(self.online.parameters(), 10.0)
        self.optimizer.step()
        return loss.detach()


def make_model(batch: int, buffer_size: int, seed: int = 0) -> Rainbow:
    env = make_atari_env("Pong", seed=seed)
    model = Rainbow(
        "CnnPolicy", env, preset="der", buffer_size=buffer_size, batch_size=batch, learning_starts=0, seed=seed
    )
    rng = np.random.default_rng(seed)
    frames = [rng.integers(0, 256, (1, 84, 84), dtype=np.uint8) for _ in range(4)]
    for t in range(buffer_size):  # random frames stacked as frame stacking makes them; an episode end now and then
        obs = np.concatenate(frames)[None]
        frames = [*frames[1:], rng.integers(0, 256, (1, 84, 84), dtype=np.uint8)]
        done = np.array([t % 97 == 96])
        model.replay_buffer.add(
            obs,
            np.concatenate(frames)[None],
            rng.integers(0, 6, (1, 1)),  # type: ignore[union-attr]
            rng.normal(size=1).clip(-1, 1),
            done,
            [{}],
        )
    model._setup_learn(total_timesteps=10**6)
    return model


def same_maths_max_abs_diff(batch: int) -> float:
    model = make_model(batch, 4 * batch)
    torch.manual_seed(1)
    model.policy.reset_noise()
    book = TextbookDER(model)
    book.online.set_noise(model.q_net)
    book.target.set_noise(model.q_net_target)
    np.random.seed(0)
    data = model.replay_buffer.sample(batch)  # type: ignore[union-attr]
    loss_book = book.update(data)
    np.random.seed(0)
    torch.manual_seed(1)  # ours draws the same noise inside train
    model.train(gradient_steps=1, batch_size=batch)
    ours = model.replay_buffer.tree[data.leaves]  # type: ignore[union-attr]
    expected = (loss_book.numpy().astype(np.float64) + model.replay_buffer.eps) ** model.alpha  # type: ignore[union-attr]
    diffs = [float(np.abs(ours - expected).max())]
    pairs = [
        (book.online.conv1.weight, model.q_net.features_extractor.cnn[0].weight),
        (book.online.v1.mu_w, model.q_net.value[0].weight),
        (book.online.a2.sigma_w, model.q_net.advantage[2].weight_sigma),
    ]
    diffs += [(a - b).abs().max().item() for a, b in pairs]
    return max(diffs)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: steadier on a shared machine)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    batch, n_updates, env_steps, learn_steps = (32, 3, 200, 40) if args.quick else (32, 50, 3000, 600)
    repeats = args.repeats or (1 if args.quick else 5)
    model = make_model(batch, 8 * batch if args.quick else 2000)
    book = TextbookDER(make_model(batch, 8 * batch if args.quick else 2000))
    buffer = model.replay_buffer

    def book_run() -> int:
        for _ in range(n_updates):
            d = buffer.sample(batch)  # type: ignore[union-attr]
            buffer.update_priorities(d.leaves, book.update(d))  # type: ignore[union-attr]
        return n_updates

    rows = {
        "textbook DER": median_rate(book_run, repeats, warmup=book_run),
        "Rainbow (ours)": median_rate(
            lambda: (model.train(gradient_steps=n_updates, batch_size=batch), n_updates)[1],
            repeats,
            warmup=lambda: model.train(gradient_steps=2, batch_size=batch),
        ),
    }
    env = make_atari_env("Pong", seed=0)
    env.reset()

    def env_run() -> int:
        for _ in range(env_steps):
            env.step(np.array([env.action_space.sample()]))
        return env_steps

    rows["make_atari_env('Pong'), random actions (env steps/s)"] = median_rate(env_run, repeats)
    learner = Rainbow(
        "CnnPolicy", make_atari_env("Pong", seed=0), preset="der", learning_starts=100, buffer_size=10_000, seed=0
    )
    learner.learn(110)
    start = time.perf_counter()
    learner.learn(learn_steps, reset_num_timesteps=False)
    rows["Rainbow.learn on Pong, 1 update per step (env steps/s)"] = {
        "median_per_s": learn_steps / (time.perf_counter() - start),
        "repeats": 1,
    }
    for name, r in rows.items():
        print(f"{name}: {r['median_per_s']:.2f}/s", flush=True)
    ratio = rows["Rainbow (ours)"]["median_per_s"] / rows["textbook DER"]["median_per_s"]
    diff = same_maths_max_abs_diff(8 if args.quick else batch)
    goals = {"ours_vs_textbook": goal(ratio, 1.3)}
    table = md_table(
        ["what", "per second", "vs textbook"],
        [
            [
                name,
                r["median_per_s"],
                f"{r['median_per_s'] / rows['textbook DER']['median_per_s']:.2f}x"
                if ("update" not in name and "env" not in name) or name in ("textbook DER", "Rainbow (ours)")
                else "",
            ]
            for name, r in rows.items()
        ],
    )
    table += (
        f"\n84x84, 4 stacked grayscale frames, data-efficient Rainbow's network (576 conv features, hidden 256, "
        f"51 atoms, dueling, noisy), n-step 20, prioritized replay, batch {batch}; {n_updates} updates per "
        f"repeat, median of {repeats}; torch threads: {torch.get_num_threads()}.\n"
        f"Rainbow / textbook: {ratio:.2f}x (goal >= 1.3: {'met' if ratio >= 1.3 else 'NOT met'}"
        f"{'; quick mode: few updates, not a measure of the goal' if args.quick else ''}). Same maths: one "
        f"update from the same weights, batch and noise differs by at most {diff:.1e} (new priorities and "
        f"parameters).\n"
    )
    out = {
        "batch": batch,
        "updates_per_repeat": n_updates,
        "rates": rows,
        "ratio_vs_textbook": ratio,
        "same_maths_max_abs_diff": diff,
    }
    return write("rainbow_speed", args, out, table, goals)


if __name__ == "__main__":
    main()
