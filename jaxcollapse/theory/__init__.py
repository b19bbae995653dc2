"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""
