"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import discrete, gaussian, kde, mixing, rates, regression, regression_mix

__all__ = ["discrete", "gaussian", "kde", "mixing", "rates", "regression", "regression_mix"]
