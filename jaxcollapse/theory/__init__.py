"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import gaussian, kde

__all__ = ["gaussian", "kde"]
