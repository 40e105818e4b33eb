from sb3_latent.algos.slac.policies import LatentModel, SLACPolicy
from sb3_latent.algos.slac.slac import SLAC, SLACBatch, write_rollouts

CnnPolicy = SLACPolicy

__all__ = ["SLAC", "CnnPolicy", "LatentModel", "SLACBatch", "SLACPolicy", "write_rollouts"]
