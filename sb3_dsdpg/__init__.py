"""sb3_dsdpg: Distributional Sobolev Deterministic Policy Gradient (DSDPG) for Stable-Baselines3.

Importing the package exposes :class:`DSDPG` and its policies and registers the benchmark environments
(``sb3_dsdpg/<Base>-ObsNoise-v<k>``, ``sb3_dsdpg/<Base>-DynNoise-v<k>``, ``sb3_dsdpg/PointMassBonus-v0``).
"""

from sb3_dsdpg import envs  # noqa: F401  (registers the environments)
from sb3_dsdpg.dsdpg import DSDPG
from sb3_dsdpg.policies import DSDPGPolicy, MlpPolicy, MultiInputPolicy
from sb3_dsdpg.world_models import CVAEWorldModel, RealNVPWorldModel, WorldModel

__version__ = "0.1.0"

__all__ = [
    "DSDPG",
    "CVAEWorldModel",
    "DSDPGPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "RealNVPWorldModel",
    "WorldModel",
    "__version__",
]
