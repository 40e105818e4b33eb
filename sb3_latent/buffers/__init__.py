"""Replay buffers for RL from pixels."""

from sb3_latent.buffers.frame_store import FrameStoreReplayBuffer, NStepFrameStoreReplayBuffer, infer_n_frames
from sb3_latent.buffers.prioritized import PrioritizedFrameStoreReplayBuffer, PrioritizedReplayBufferSamples, SumTree
from sb3_latent.buffers.sequence import SequenceReplayBuffer, SequenceSamples

__all__ = [
    "FrameStoreReplayBuffer",
    "NStepFrameStoreReplayBuffer",
    "PrioritizedFrameStoreReplayBuffer",
    "PrioritizedReplayBufferSamples",
    "SequenceReplayBuffer",
    "SequenceSamples",
    "SumTree",
    "infer_n_frames",
]
