"""LeVER on Rainbow: prioritized replay that keeps its priorities through LeVER's freeze and re-encoding.

Rainbow binds any buffer that binds to a model (``bind(model)``, as LeVER's do: its encoder is laid out as SB3's
``NatureCNN``, so LeVER's split applies unchanged)::

    model = Rainbow("CnnPolicy", make_atari_env("Qbert"), preset="der",
                    replay_buffer_class=PrioritizedLeVERReplayBuffer, replay_buffer_kwargs=dict(T_f=50_000))
    model = Rainbow("CnnPolicy", env, preset="lever", replay_buffer_class=LeVERReplayBuffer,
                    replay_buffer_kwargs=dict(T_f=50_000, T_f_unit="steps"))  # the paper's code: no PER

Rainbow's defaults for a LeVER buffer are the paper's Atari choices (Appendix E, H): ``freeze="conv"`` (the
last conv layer's output is the latent: 64x3x3 = 576 floats at 84x84), ``K=1`` copy, no augmentation, ``N=1``
encoder; target networks read the online latents (§4.2).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sb3_latent.buffers import PrioritizedFrameStoreReplayBuffer, SumTree
from sb3_latent.buffers.frame_store import check_n_step
from sb3_latent.lever.buffer import LeVERReplayBuffer


class PrioritizedLeVERReplayBuffer(LeVERReplayBuffer, PrioritizedFrameStoreReplayBuffer):  # type: ignore[misc]
    """:class:`~sb3_latent.LeVERReplayBuffer` with proportional prioritized sampling (as
    :class:`~sb3_latent.PrioritizedFrameStoreReplayBuffer`): images until ``T_f``, latents after, and every
    stored transition keeps its priority when the freeze re-lays the buffer at its grown capacity.

    :param alpha: priority exponent
    :param beta: initial importance-sampling exponent
    :param eps: added to reported priorities
    Other parameters as :class:`~sb3_latent.LeVERReplayBuffer` (``n_steps``, ``gamma`` included).
    """

    def __init__(self, *args: Any, alpha: float = 0.5, beta: float = 0.4, eps: float = 1e-6, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # the prioritized base's constructor ran with its defaults: set n-step and priorities from ours
        self.n_steps, self.gamma = check_n_step(kwargs.get("n_steps", 1), kwargs.get("gamma", 0.99))
        self.init_priorities(alpha, beta, eps)

    def add(self, *args: Any, **kwargs: Any) -> None:
        """As SB3's ``add``; the new transitions (images or, after the freeze, latents) get the largest priority."""
        super().add(*args, **kwargs)
        row = (self.pos - 1) % self.buffer_size  # the newest row, in whichever layout the add left
        self.tree.update(self._leaves(row), np.full(self.n_envs, self.max_priority))

    def freeze(self) -> None:
        """LeVER's freeze (re-encode, grow), then the priorities re-laid with their transitions, oldest first."""
        if self.frozen:
            return
        n_live = self.buffer_size if self.full else self.pos
        rows = (np.arange(n_live) + (self.pos if self.full else 0)) % self.buffer_size  # as LeVER re-lays them
        old = self.tree[(rows[:, None] * self.n_envs + np.arange(self.n_envs)).ravel()]
        super().freeze()
        self.tree = SumTree(self.buffer_size * self.n_envs)
        self.tree.update(np.arange(n_live * self.n_envs), old)
