"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import discrete, gaussian, regression

__all__ = ["discrete", "gaussian", "regression"]
