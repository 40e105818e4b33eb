"""Proportional prioritized replay (Schaul et al. 2016) on the frame-store buffer, with n-step returns.

A transition ``i`` is drawn with probability ``P(i) = p_i^alpha / sum_k p_k^alpha`` (proportional variant,
stratified: one draw per equal slice of the total mass) and weighted by ``w_i = (N P(i))^-beta / max_j w_j``
(the importance-sampling correction, normalised by the batch's largest weight). New transitions get the
largest priority seen so far; the learner reports new priorities (Rainbow: its KL loss) through
:meth:`PrioritizedFrameStoreReplayBuffer.update_priorities`. ``beta`` is a plain attribute the algorithm
anneals (Rainbow: 0.4 → 1 over training).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecNormalize

from sb3_latent.buffers.frame_store import FrameStoreReplayBuffer, check_n_step


class PrioritizedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` plus the importance weights and the leaves to update."""

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor
    weights: th.Tensor
    leaves: np.ndarray


class SumTree:
    """A binary tree of sums over ``capacity`` non-negative leaves: ``O(log n)`` vectorised updates and
    prefix-sum search.

    :param capacity: number of leaves
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = int(capacity)
        self.size = 1 << max(int(np.ceil(np.log2(self.capacity))), 0)  # leaves in the tree (a power of 2)
        self.tree = np.zeros(2 * self.size, dtype=np.float64)  # node i has children 2i, 2i+1; leaves at size + j

    @property
    def total(self) -> float:
        return float(self.tree[1])

    def __getitem__(self, leaves: np.ndarray) -> np.ndarray:
        return self.tree[self.size + np.asarray(leaves)]

    def update(self, leaves: np.ndarray, values: np.ndarray) -> None:
        """Set ``leaves`` to ``values`` (the last value wins for repeated leaves) and refresh their ancestors."""
        leaves, values = np.asarray(leaves, dtype=np.int64).ravel(), np.asarray(values, dtype=np.float64).ravel()
        if len(leaves) == 0:
            return
        if leaves.min() < 0 or leaves.max() >= self.capacity:
            raise IndexError(f"leaves out of range [0, {self.capacity})")
        if not np.all(np.isfinite(values)) or values.min() < 0:
            raise ValueError("priorities must be finite and >= 0")
        nodes = self.size + leaves
        self.tree[nodes] = values
        nodes = np.unique(nodes // 2)
        while nodes[0] >= 1:
            self.tree[nodes] = self.tree[2 * nodes] + self.tree[2 * nodes + 1]
            if nodes[0] == 1:
                break
            nodes = np.unique(nodes // 2)

    def find(self, mass: np.ndarray) -> np.ndarray:
        """For each ``m`` in ``mass`` (in ``[0, total)``), the leaf ``j`` with ``sum(leaves[:j]) <= m <
        sum(leaves[:j+1])``; never a leaf of priority 0 (rounding is clamped into the subtree with mass)."""
        mass = np.asarray(mass, dtype=np.float64).copy()
        node = np.ones(len(mass), dtype=np.int64)
        for _ in range(self.size.bit_length() - 1):  # depth of the tree
            left = self.tree[2 * node]
            right = mass >= left
            right &= self.tree[2 * node + 1] > 0
            mass = np.where(right, mass - left, np.minimum(mass, left))
            node = 2 * node + right
        return node - self.size


class PrioritizedFrameStoreReplayBuffer(FrameStoreReplayBuffer):
    """:class:`~sb3_latent.FrameStoreReplayBuffer` with proportional prioritized sampling and n-step
    returns (module docstring). ``sample`` returns :class:`PrioritizedReplayBufferSamples` (``rewards`` are
    the n-step returns, ``discounts`` ``gamma ** steps taken``, ``dones`` whether the window ended in a
    termination); ``save_replay_buffer`` keeps the priorities.

    :param alpha: priority exponent (0: uniform)
    :param beta: initial importance-sampling exponent (the algorithm anneals ``buffer.beta``)
    :param eps: added to reported priorities so that none is 0
    :param n_steps: steps per return (>= 1)
    :param gamma: discount inside the return
    Other parameters as :class:`~sb3_latent.FrameStoreReplayBuffer`.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_frames: int | None = None,
        validate: bool = False,
        alpha: float = 0.5,
        beta: float = 0.4,
        eps: float = 1e-6,
        n_steps: int = 1,
        gamma: float = 0.99,
    ) -> None:
        super().__init__(
            buffer_size,
            observation_space,
            action_space,
            device,
            n_envs,
            optimize_memory_usage,
            handle_timeout_termination,
            n_frames,
            validate,
        )
        self.n_steps, self.gamma = check_n_step(n_steps, gamma)
        self.init_priorities(alpha, beta, eps)

    def init_priorities(self, alpha: float = 0.5, beta: float = 0.4, eps: float = 1e-6) -> None:
        """(Re)create the sum tree over ``buffer_size * n_envs`` leaves (leaf = row * n_envs + env)."""
        if alpha < 0.0 or not 0.0 <= beta <= 1.0 or not eps > 0:
            raise ValueError(f"need alpha >= 0, 0 <= beta <= 1 and eps > 0; got alpha={alpha}, beta={beta}, eps={eps}")
        self.alpha, self.beta, self.eps = float(alpha), float(beta), float(eps)
        self.tree = SumTree(self.buffer_size * self.n_envs)
        self.max_priority = 1.0  # p^alpha of new transitions

    def reset(self) -> None:
        super().reset()
        if hasattr(self, "tree"):
            self.tree = SumTree(self.buffer_size * self.n_envs)
            self.max_priority = 1.0

    def _leaves(self, row: int) -> np.ndarray:
        return row * self.n_envs + np.arange(self.n_envs)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """As SB3's ``ReplayBuffer.add``; the new transitions get the largest priority so far."""
        row = self.pos
        super().add(*args, **kwargs)
        self.tree.update(self._leaves(row), np.full(self.n_envs, self.max_priority))

    def update_priorities(self, leaves: np.ndarray, priorities: np.ndarray | th.Tensor) -> None:
        """Report new priorities (e.g. per-sample losses) of the sampled ``leaves``; stored as ``(p + eps)^alpha``."""
        p = priorities.detach().cpu().numpy() if isinstance(priorities, th.Tensor) else np.asarray(priorities)
        p = (np.abs(p.astype(np.float64).ravel()) + self.eps) ** self.alpha
        self.tree.update(leaves, p)
        self.max_priority = max(self.max_priority, float(p.max(initial=0.0)))

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> PrioritizedReplayBufferSamples:  # type: ignore[override]
        """``batch_size`` transitions drawn in proportion to their priorities (stratified), with IS weights."""
        total = self.tree.total
        if total <= 0:
            raise RuntimeError("cannot sample from an empty PrioritizedFrameStoreReplayBuffer")
        mass = (np.arange(batch_size) + np.random.uniform(size=batch_size)) * (total / batch_size)
        leaves = self.tree.find(np.minimum(mass, np.nextafter(total, 0)))
        probs = self.tree[leaves] / total
        n = (self.buffer_size if self.full else self.pos) * self.n_envs
        weights = (n * probs) ** (-self.beta)
        weights /= weights.max()
        rows, envs = leaves // self.n_envs, leaves % self.n_envs
        obs, actions, next_obs, dones, returns, discounts = self.n_step_samples(rows, envs, env)
        return PrioritizedReplayBufferSamples(
            obs,
            actions,
            next_obs,
            dones,
            returns,
            discounts,
            self.to_torch(weights.astype(np.float32).reshape(-1, 1)),
            leaves,
        )

    def n_step_samples(
        self, rows: np.ndarray, envs: np.ndarray, env: VecNormalize | None = None
    ) -> tuple[th.Tensor, ...]:
        """``(obs, actions, next_obs, dones, returns, discounts)`` of the transitions ``(rows, envs)``:
        ``R = sum_{j<=m} gamma^j r_{t+j}`` up to the first episode end (or the newest transition) ``m < n``,
        ``next_obs = o_{t+m+1}``, ``discounts = gamma^(m+1)``, ``dones`` = the window ended in a termination
        (not a truncation), exactly as SB3's ``NStepReplayBuffer``."""
        n, size = self.n_steps, self.buffer_size
        idx = (rows[:, None] + np.arange(n)) % size
        e = envs[:, None]
        rewards = self._normalize_reward(self.rewards[idx, e], env)
        stop = (self.dones[idx, e] > 0) | (self.timeouts[idx, e] > 0) | (idx == (self.pos - 1) % size)
        end = np.where(stop.any(axis=1), stop.argmax(axis=1), n - 1)
        mask = np.arange(n)[None, :] <= end[:, None]
        returns = (rewards * self.gamma ** np.arange(n, dtype=np.float32) * mask).sum(axis=1, keepdims=True)
        last = idx[np.arange(len(rows)), end]
        obs = self._rebuild(rows, envs)[0]
        next_obs = self._rebuild(last, envs)[1]
        dones = (self.dones[last, envs] * (1 - self.timeouts[last, envs])).reshape(-1, 1)
        discounts = (self.gamma ** (end + 1)).astype(np.float32).reshape(-1, 1)
        data = (
            self._normalize_obs(obs, env),
            self.actions[rows, envs],
            self._normalize_obs(next_obs, env),
            dones,
            returns.astype(np.float32),
            discounts,
        )
        return tuple(self.to_torch(np.asarray(x)) for x in data)
