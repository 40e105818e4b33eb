"""Replay buffers for RL from pixels."""

from sb3_latent.buffers.frame_store import FrameStoreReplayBuffer, infer_n_frames

__all__ = ["FrameStoreReplayBuffer", "infer_n_frames"]
