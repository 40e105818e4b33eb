"""LeVER (Chen, Lee, Srinivas, Abbeel, Laskin 2021, "Compute- and Memory-Efficient Reinforcement
Learning with Latent Experience Replay"; published later as SEER): after ``T_f`` updates freeze the
conv encoder (and the first fully connected layer), replay latent vectors instead of images, and
grow the buffer into the memory the images freed.

Two ways in::

    # our algorithms wire the buffer themselves
    model = RAD("CnnPolicy", env, replay_buffer_class=LeVERReplayBuffer, replay_buffer_kwargs=dict(T_f=10_000, K=4))
    # stock SB3 / sb3-contrib: SAC, TD3, DQN, QRDQN
    model = attach_lever(SAC("CnnPolicy", env), T_f=10_000, K=4)

What is frozen (``freeze``): ``"fc"`` (default; the paper's choice for DMC, Appendix E) freezes the
conv encoder and the first Linear layer after it; the latent is that layer's output (``features_dim``
floats, before LayerNorm/ReLU), and what follows it (LayerNorm, with DrQ-v2's trunk tanh; or ReLU) keeps
training.
``"conv"`` freezes the conv layers only and stores the flattened conv output, which for an 84x84
image is larger than the image itself, so it saves compute but no memory.

Flare and the other frame-wise extractors: the frozen part is the per-frame encoder *and* the Linear
that fuses the frames' latents and flows, so the buffer stores one fused latent per observation. A
per-frame latent would have to be the conv map (32x35x35 floats for an 84x84 frame, 7x the frame's
bytes): the memory gain exists only after the fusing Linear.

Latents of one observation: ``N`` (one per distinct frozen encoder: 2 for SAC/TD3/RAD/DrQ-v2 whose
actor and critic have their own first Linear, 1 for DQN or a fully shared extractor) x ``K``
augmented copies (paper §4.2; K = 4) x ``L`` floats. Target networks read the online latents (§4.2).
The capacity after the freeze is ``floor(C * P / (4 * N * K * L))`` (§4.2; ``P`` bytes of one frame, not of the
whole stack, as SEER's ``train.py``) or
what ``memory_budget`` bytes hold.

Layout: like :class:`~sb3_latent.FrameStoreReplayBuffer` (whose behaviour it has before the
freeze), each transition keeps the latents of its ``next_obs`` only; ``obs`` is the previous
transition's ``next_obs`` except at an episode's first step, whose ``obs`` latents are kept apart.
A sample draws one copy ``k`` per transition and returns ``observations`` / ``next_observations``
as float tensors ``(B, N, L)``.

Frozen parameters get ``requires_grad=False`` and lose their optimizer state; they stay in their
optimizer's param group (so checkpoints keep their layout and load into a fresh model), where a
parameter without gradient is skipped by every PyTorch optimizer.

The one seam: every network LeVER binds to (stock SB3 models, RAD, DrQ-v2 alike) gets a
:class:`LeVERExtractor` that reads images or latents; nothing outside this package knows about latents.
Modules: ``extractor`` (the cut and the adapter), ``binding`` (what the buffer needs from its model),
``buffer`` (:class:`LeVERReplayBuffer`), ``attach`` (:func:`attach_lever`, :func:`load_encoder`).
"""

from sb3_latent.lever.attach import attach_lever, load_encoder
from sb3_latent.lever.buffer import FREEZE_MODES, T_F_UNITS, LeVERReplayBuffer
from sb3_latent.lever.extractor import LeVERExtractor, Split, split_extractor
from sb3_latent.lever.prioritized import PrioritizedLeVERReplayBuffer

__all__ = [
    "FREEZE_MODES",
    "T_F_UNITS",
    "LeVERExtractor",
    "LeVERReplayBuffer",
    "PrioritizedLeVERReplayBuffer",
    "Split",
    "attach_lever",
    "load_encoder",
    "split_extractor",
]
