"""jaxcollapse: model collapse under recursive training, in JAX."""

from jaxcollapse import design, distributed, export, random, regimes, steps, store, theory
from jaxcollapse.decomposition import decompose
from jaxcollapse.families import (
    FAMILIES,
    GMM,
    KDE,
    Categorical,
    CategoricalParams,
    Gaussian,
    GaussianParams,
    GMMParams,
    KDEParams,
    LinearRegression,
    Poisson,
    RegressionParams,
)
from jaxcollapse.families.base import successive, with_key
from jaxcollapse.regimes import (
    REGIMES,
    accumulate,
    accumulate_subsample,
    mix,
    replace,
    schedule,
    weighted_fresh,
)
from jaxcollapse.simulation import SimulationResult, simulate, simulate_grid
from jaxcollapse.store import StoredResult, load_run

__version__ = "0.1.0"

__all__ = [
    "FAMILIES",
    "REGIMES",
    "GMM",
    "KDE",
    "Categorical",
    "CategoricalParams",
    "GMMParams",
    "Gaussian",
    "GaussianParams",
    "KDEParams",
    "LinearRegression",
    "Poisson",
    "RegressionParams",
    "SimulationResult",
    "StoredResult",
    "accumulate",
    "accumulate_subsample",
    "decompose",
    "design",
    "distributed",
    "export",
    "load_run",
    "mix",
    "random",
    "regimes",
    "replace",
    "schedule",
    "simulate",
    "simulate_grid",
    "steps",
    "store",
    "successive",
    "theory",
    "weighted_fresh",
    "with_key",
]
