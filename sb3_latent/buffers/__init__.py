"""Replay buffers for RL from pixels."""

from sb3_latent.buffers.frame_store import FrameStoreReplayBuffer, NStepFrameStoreReplayBuffer, infer_n_frames

__all__ = ["FrameStoreReplayBuffer", "NStepFrameStoreReplayBuffer", "infer_n_frames"]
