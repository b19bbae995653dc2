"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import curation, discrete, gaussian, kde, regression, verification

__all__ = ["curation", "discrete", "gaussian", "kde", "regression", "verification"]
