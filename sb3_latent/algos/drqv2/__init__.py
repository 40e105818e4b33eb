from sb3_latent.algos.drqv2.drqv2 import PRESETS, DrQv2, StddevSchedule, parse_stddev_schedule
from sb3_latent.algos.drqv2.policies import DrQv2MlpPolicy, DrQv2Policy

CnnPolicy = DrQv2Policy
MlpPolicy = DrQv2MlpPolicy

__all__ = [
    "PRESETS",
    "CnnPolicy",
    "DrQv2",
    "DrQv2MlpPolicy",
    "DrQv2Policy",
    "MlpPolicy",
    "StddevSchedule",
    "parse_stddev_schedule",
]
