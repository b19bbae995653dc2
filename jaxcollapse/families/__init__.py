"""Model families. Adding a family is one file here and one line in ``FAMILIES``."""

from jaxcollapse.families.base import ExactFamily, Family, successive, with_key
from jaxcollapse.families.gaussian import Gaussian, GaussianParams

FAMILIES: dict[str, type] = {
    "gaussian": Gaussian,
}

__all__ = ["FAMILIES", "ExactFamily", "Family", "Gaussian", "GaussianParams", "successive",
           "with_key"]
