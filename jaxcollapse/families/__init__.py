"""Model families. Adding a family is one file here and one line in ``FAMILIES``."""

from jaxcollapse.families.base import ExactFamily, Family, successive, with_key
from jaxcollapse.families.gaussian import Gaussian, GaussianParams
from jaxcollapse.families.gmm import GMM, GMMParams  # noqa: F401
from jaxcollapse.families.kde import KDE, KDEParams  # noqa: F401

FAMILIES: dict[str, type] = {
    "gaussian": Gaussian,
    "gmm": GMM,
    "kde": KDE,
}

__all__ = ["FAMILIES", "ExactFamily", "Family", "Gaussian", "GaussianParams", "successive",
           "with_key"]
