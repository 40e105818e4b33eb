"""Helpers every layer may use (it imports no other part of sb3-latent): argument checks and torch utilities."""

from sb3_latent.common.checks import check_int
from sb3_latent.common.torch_utils import channels_last, ema_

__all__ = ["channels_last", "check_int", "ema_"]
