"""Algorithms, one folder each, laid out as sb3-contrib does (``<name>.py``, ``policies.py``);
what they share is in ``common.py``."""

from sb3_latent.algos.dreamer import Dreamer
from sb3_latent.algos.drqv2 import DrQv2
from sb3_latent.algos.rad import RAD
from sb3_latent.algos.rainbow import Rainbow
from sb3_latent.algos.slac import SLAC

__all__ = ["RAD", "SLAC", "DrQv2", "Dreamer", "Rainbow"]
