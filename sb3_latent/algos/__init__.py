"""Algorithms, one folder each, laid out as sb3-contrib does (``<name>.py``, ``policies.py``)."""

from sb3_latent.algos.rad import RAD

__all__ = ["RAD"]
