"""Model families. Adding a family is one file here and one line in ``FAMILIES``."""

from jaxcollapse.families.base import ExactFamily, Family, successive, with_key
from jaxcollapse.families.categorical import Categorical, CategoricalParams
from jaxcollapse.families.gaussian import Gaussian, GaussianParams
from jaxcollapse.families.gmm import GMM, GMMParams
from jaxcollapse.families.kde import KDE, KDEParams
from jaxcollapse.families.poisson import Poisson, PoissonParams
from jaxcollapse.families.regression import LinearRegression, RegressionParams

FAMILIES: dict[str, type] = {
    "gaussian": Gaussian,
    "categorical": Categorical,
    "regression": LinearRegression,
    "gmm": GMM,
    "kde": KDE,
    "poisson": Poisson,
}

__all__ = ["FAMILIES", "GMM", "KDE", "Categorical", "CategoricalParams", "ExactFamily", "Family",
           "GMMParams", "Gaussian", "GaussianParams", "KDEParams", "LinearRegression",
           "Poisson", "PoissonParams", "RegressionParams", "successive", "with_key"]
