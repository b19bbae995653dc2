"""Validation and the human-row rule shared by the mixing theories
(:mod:`jaxcollapse.theory.mixing` and its Wright–Fisher and weighted-fresh parts)."""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxcollapse.regimes import HUMAN_SOURCES


def _check_unit(value: Any, name: str) -> np.ndarray:
    a = np.asarray(value, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
    return a


def _check_int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def _check_source(source: str) -> None:
    if source not in HUMAN_SOURCES:
        raise ValueError(f"source must be one of {HUMAN_SOURCES}; got {source!r}")


def _n_human(alpha: float, M: int) -> int:
    # the simulator's rule, jnp.round(alpha * M): round half to even, as np.round
    return int(np.round(float(alpha) * M))


def _as_mean_cov(mean: Any, cov: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    m = np.atleast_1d(np.asarray(mean, dtype=float))
    c = np.asarray(cov, dtype=float)
    c = c.reshape(1, 1) if c.ndim < 2 else c
    d = m.shape[0]
    if m.ndim != 1 or c.shape != (d, d):
        raise ValueError(f"{name} mean and covariance must have shapes (d,) and (d, d); got "
                         f"{m.shape} and {c.shape}")
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
        raise ValueError(f"{name} mean and covariance must be finite")
    if np.linalg.eigvalsh(0.5 * (c + c.T)).min() < 0:
        raise ValueError(f"{name} covariance must be positive semi-definite")
    return m, c
