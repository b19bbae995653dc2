"""jaxcollapse: model collapse under recursive training, in JAX."""

from jaxcollapse import regimes
from jaxcollapse.families import GMM, KDE, GMMParams, KDEParams  # noqa: F401
from jaxcollapse.families.base import successive, with_key
from jaxcollapse.regimes import accumulate, accumulate_subsample, mix, replace, schedule

__version__ = "0.1.0"

__all__ = [
    "accumulate",
    "accumulate_subsample",
    "mix",
    "regimes",
    "replace",
    "schedule",
    "successive",
    "with_key",
]
