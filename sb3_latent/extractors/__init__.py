"""SB3 features extractors for pixel RL: Flare, its ablations, state Flare, and the conv encoders."""

from sb3_latent.extractors.base import PixelExtractor
from sb3_latent.extractors.encoders import ENCODERS, NatureEncoder, RadEncoder, make_encoder, weight_init
from sb3_latent.extractors.flare import (
    FlareExtractor,
    LatentStackExtractor,
    PixelFlowExtractor,
    StateFlareExtractor,
    flare_kwargs,
    latent_stack_kwargs,
    pixel_flow_kwargs,
    state_flare_kwargs,
)

__all__ = [
    "ENCODERS",
    "FlareExtractor",
    "LatentStackExtractor",
    "NatureEncoder",
    "PixelExtractor",
    "PixelFlowExtractor",
    "RadEncoder",
    "StateFlareExtractor",
    "flare_kwargs",
    "latent_stack_kwargs",
    "make_encoder",
    "pixel_flow_kwargs",
    "state_flare_kwargs",
    "weight_init",
]
