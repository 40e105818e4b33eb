"""sb3-latent: reinforcement learning from pixels for Stable-Baselines3.

Public names live here; everything else is internal.
"""

from sb3_latent import registry
from sb3_latent.algos import RAD, SLAC, Dreamer, DrQv2, Rainbow
from sb3_latent.augment import Augmentation, RandomCrop, RandomShift, RandomTranslate, make_augmentation
from sb3_latent.buffers import (
    FrameStoreReplayBuffer,
    NStepFrameStoreReplayBuffer,
    PrioritizedFrameStoreReplayBuffer,
    SequenceReplayBuffer,
    SequenceSamples,
)
from sb3_latent.envs import (
    MovingDotEnv,
    atari_env_id,
    dmc_env_id,
    make_atari_env,
    make_atari_gym_env,
    make_dmc_env,
    make_dmc_gym_env,
    make_moving_dot_env,
)
from sb3_latent.extractors import (
    FlareExtractor,
    LatentStackExtractor,
    NatureEncoder,
    PixelFlowExtractor,
    RadEncoder,
    StateFlareExtractor,
    flare_kwargs,
    latent_stack_kwargs,
    pixel_flow_kwargs,
    state_flare_kwargs,
)
from sb3_latent.lever import LeVERExtractor, LeVERReplayBuffer, attach_lever, load_encoder

__version__ = "0.1.0"

__all__ = [
    "RAD",
    "SLAC",
    "Augmentation",
    "DrQv2",
    "Dreamer",
    "FlareExtractor",
    "FrameStoreReplayBuffer",
    "LatentStackExtractor",
    "LeVERExtractor",
    "LeVERReplayBuffer",
    "MovingDotEnv",
    "NStepFrameStoreReplayBuffer",
    "NatureEncoder",
    "PixelFlowExtractor",
    "PrioritizedFrameStoreReplayBuffer",
    "RadEncoder",
    "Rainbow",
    "RandomCrop",
    "RandomShift",
    "RandomTranslate",
    "SequenceReplayBuffer",
    "SequenceSamples",
    "StateFlareExtractor",
    "atari_env_id",
    "attach_lever",
    "dmc_env_id",
    "flare_kwargs",
    "latent_stack_kwargs",
    "load_encoder",
    "make_atari_env",
    "make_atari_gym_env",
    "make_augmentation",
    "make_dmc_env",
    "make_dmc_gym_env",
    "make_moving_dot_env",
    "pixel_flow_kwargs",
    "registry",
    "state_flare_kwargs",
]
