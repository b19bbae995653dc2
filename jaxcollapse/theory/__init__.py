"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import gaussian

__all__ = ["gaussian"]
