"""Feasible sets of loop designs, as Euclidean projections (projected gradient steps).

A projection maps a design ``theta`` (a float or a 1-D array) to the nearest feasible
one; :func:`box` keeps every entry in ``[lo, hi]`` (a human fraction or a weight in
[0, 1], a bandwidth > 0), :func:`budget` keeps a per-generation human-data schedule
``alpha_1..alpha_n`` in [0, 1] with a fixed total ``sum_t alpha_t = B / M`` (``B``
human rows in all at ``M`` rows a generation). Each also gives the directions in
which a design may move without leaving the set (:meth:`Box.tangent`), which the
optimiser's standard errors use.

References:
    Duchi, Shalev-Shwartz, Singer, Chandra, Efficient projections onto the l1-ball
    for learning in high dimensions, ICML 2008 (projection onto a capped simplex by
    a threshold). THEORY.md section 11.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np


def _float(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a number; got {value!r}"[:200])
    v = float(value)
    if np.isnan(v):
        raise ValueError(f"{name} must not be NaN")
    return v


class Box(NamedTuple):
    """Every entry in ``[lo, hi]`` (either may be infinite).

    Example:
        >>> box(0.0, 1.0)(np.array([-0.5, 0.3, 2.0])).tolist()
        [0.0, 0.3, 1.0]
    """

    lo: float
    hi: float

    def __call__(self, theta):
        return np.clip(np.asarray(theta, np.float64), self.lo, self.hi)

    def free(self, theta) -> np.ndarray:
        """Entries strictly inside the box (their distance to it, 0 on a bound)."""
        t = np.asarray(theta, np.float64).reshape(-1)
        return np.minimum(t - self.lo, self.hi - t)

    def tangent(self, theta) -> np.ndarray:
        """An orthonormal basis ``(p, r)`` of the directions that stay feasible both ways."""
        return np.eye(np.size(theta))[:, self.free(theta) > 0]


class Budget(NamedTuple):
    """A schedule ``(size,)`` in ``[lo, hi]`` whose entries sum to ``total``.

    Example:
        >>> b = budget(1.0, 4)
        >>> b(np.array([1.0, 0.0, 0.0, 0.0])).tolist()
        [1.0, 0.0, 0.0, 0.0]
        >>> [round(x, 6) for x in b(np.array([0.9, 0.7, 0.0, 0.0])).tolist()]
        [0.6, 0.4, 0.0, 0.0]
    """

    total: float
    size: int
    lo: float = 0.0
    hi: float = 1.0

    def __call__(self, theta):
        v = np.asarray(theta, np.float64)
        if v.shape != (self.size,):
            raise ValueError(f"a budget schedule has shape ({self.size},); got {v.shape}")
        # sum(clip(v - tau)) decreases in tau: bisect for the threshold tau
        a, b = v.min() - self.hi, v.max() - self.lo
        for _ in range(200):
            tau = 0.5 * (a + b)
            if np.clip(v - tau, self.lo, self.hi).sum() > self.total:
                a = tau
            else:
                b = tau
        return np.clip(v - 0.5 * (a + b), self.lo, self.hi)

    def free(self, theta) -> np.ndarray:
        t = np.asarray(theta, np.float64)
        return np.minimum(t - self.lo, self.hi - t)

    def tangent(self, theta) -> np.ndarray:
        """Orthonormal directions among the free entries that keep the total."""
        free = np.flatnonzero(self.free(theta) > 1e-12)
        if free.size < 2:
            return np.zeros((self.size, 0))
        basis = np.zeros((self.size, free.size))
        basis[free, np.arange(free.size)] = 1.0
        basis[free] -= 1.0 / free.size  # centre: the sum of a move is 0
        q, _ = np.linalg.qr(basis)
        return q[:, : free.size - 1]

    def direction(self, theta, grad) -> np.ndarray:
        """The gradient with its mean removed: the part that changes the objective
        without changing the total (an optimiser that rescales each entry, like Adam,
        would otherwise move every entry alike and the projection undo it)."""
        g = np.asarray(grad, np.float64)
        return g - g.mean()

    def constant(self) -> np.ndarray:
        """The constant schedule of the same budget, ``total / size`` every generation."""
        return np.full(self.size, self.total / self.size)


def box(lo: float = -np.inf, hi: float = np.inf) -> Box:
    """The projection onto ``[lo, hi]`` (entrywise clipping).

    Args:
        lo, hi: the bounds, ``lo < hi`` (either may be infinite).

    Example:
        >>> box(1.0, 0.0)
        Traceback (most recent call last):
        ...
        ValueError: box needs lo < hi; got lo=1.0, hi=0.0
        >>> box(0.0, 1.0)(1.5).item()
        1.0

    References:
        THEORY.md section 11.
    """
    lo, hi = _float(lo, "lo"), _float(hi, "hi")
    if not lo < hi:
        raise ValueError(f"box needs lo < hi; got lo={lo}, hi={hi}")
    return Box(lo, hi)


def budget(total: float, size: int, *, lo: float = 0.0, hi: float = 1.0) -> Budget:
    """The projection onto schedules ``(size,)`` in ``[lo, hi]`` with ``sum = total``.

    For a human-data schedule: ``size`` generations, ``alpha_t`` in [0, 1] and
    ``total = B / M`` for ``B`` human rows in all at ``M`` rows a generation.

    Raises:
        ValueError: no schedule meets the budget (``total`` outside
            ``[size lo, size hi]``).

    Example:
        >>> budget(3.0, 10).constant().tolist()[:2]
        [0.3, 0.3]
        >>> budget(12.0, 10)
        Traceback (most recent call last):
        ...
        ValueError: budget total=12.0 is infeasible: 10 generations with alpha in [0.0, 1.0] ...

    References:
        THEORY.md section 11.
    """
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be an integer >= 1 (generations); got {size!r}")
    total, lo, hi = _float(total, "total"), _float(lo, "lo"), _float(hi, "hi")
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"budget needs finite lo < hi; got lo={lo}, hi={hi}")
    if not size * lo <= total <= size * hi:
        raise ValueError(f"budget total={total} is infeasible: {size} generations with "
                         f"alpha in [{lo}, {hi}] spend between {size * lo} and {size * hi}")
    return Budget(total, int(size), lo, hi)
