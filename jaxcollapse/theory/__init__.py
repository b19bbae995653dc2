"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import gaussian
from jaxcollapse.theory import kde  # noqa: F401

__all__ = ["gaussian"]
