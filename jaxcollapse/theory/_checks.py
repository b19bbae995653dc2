"""Host-side validation shared by the theory modules."""

from __future__ import annotations

import jax
import numpy as np


def check_lam(lam, name: str = "lam"):
    """Validates a sampling bias on the host: finite and in (0, 1]; tracers pass through.

    ``lam > 1`` (sampling wider than the model) is refused: the MAD paper's bias
    shrinks the sampling law, and the formulas here assume it.

    Example:
        >>> check_lam(1.5)
        Traceback (most recent call last):
        ...
        ValueError: lam must be in (0, 1] (lam > 1 is refused: sampling bias only shrinks); got 1.5
    """
    if isinstance(lam, jax.core.Tracer):
        return lam
    a = np.asarray(lam, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0) or np.any(a > 1):
        raise ValueError(f"{name} must be in (0, 1] (lam > 1 is refused: sampling bias only "
                         f"shrinks); got {lam!r}")
    return lam
