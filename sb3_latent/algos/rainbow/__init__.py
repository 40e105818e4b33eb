"""Rainbow and data-efficient Rainbow (``Rainbow``, presets ``"der"``, ``"lever"``, ``"rainbow"``)."""

from sb3_latent.algos.rainbow.policies import CnnPolicy, MlpPolicy, NoisyLinear, RainbowCNN, RainbowPolicy
from sb3_latent.algos.rainbow.rainbow import PRESETS, Rainbow, project_distribution

__all__ = [
    "PRESETS",
    "CnnPolicy",
    "MlpPolicy",
    "NoisyLinear",
    "Rainbow",
    "RainbowCNN",
    "RainbowPolicy",
    "project_distribution",
]
