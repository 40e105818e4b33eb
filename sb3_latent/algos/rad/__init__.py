from sb3_latent.algos.rad.policies import RADMlpPolicy, RADPolicy
from sb3_latent.algos.rad.rad import RAD

CnnPolicy = RADPolicy
MlpPolicy = RADMlpPolicy

__all__ = ["RAD", "CnnPolicy", "MlpPolicy", "RADMlpPolicy", "RADPolicy"]
