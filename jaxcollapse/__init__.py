"""jaxcollapse: model collapse under recursive training, in JAX."""

from jaxcollapse import random, regimes, theory
from jaxcollapse.families import FAMILIES, Gaussian, GaussianParams
from jaxcollapse.families.base import successive, with_key
from jaxcollapse.regimes import accumulate, accumulate_subsample, mix, replace, schedule
from jaxcollapse.simulate import SimulationResult, simulate, simulate_grid

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "Gaussian",
    "GaussianParams",
    "SimulationResult",
    "accumulate",
    "accumulate_subsample",
    "mix",
    "random",
    "regimes",
    "replace",
    "schedule",
    "simulate",
    "simulate_grid",
    "successive",
    "theory",
    "with_key",
]
