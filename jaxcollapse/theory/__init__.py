"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import discrete, gaussian, kde, regression

__all__ = ["discrete", "gaussian", "kde", "regression"]
