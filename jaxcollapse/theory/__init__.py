"""Closed-form theory, one module per model class (see ``../shared/THEORY.md``)."""

from jaxcollapse.theory import (
    bias,
    bias_fresh,
    curation,
    decoding,
    discrete,
    gaussian,
    kde,
    mixing,
    rates,
    regression,
    regression_mix,
    verification,
)

__all__ = ["bias", "bias_fresh", "curation", "decoding", "discrete", "gaussian", "kde",
           "mixing", "rates", "regression", "regression_mix", "verification"]
