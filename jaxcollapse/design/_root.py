"""Where a monotone Monte Carlo objective crosses a target: the smallest human fraction
keeping an error below a target, the bandwidth that keeps a variance stationary.

:func:`solve` finds the root of ``E f(theta) = target`` for a scalar design in a
bracket, on the chain mean of one fixed set of chains (common random numbers: a
smooth, deterministic function of ``theta``), by Newton steps with the pathwise
derivative, safeguarded by bisection. Its standard error is the delta method:
``se(theta) = se(f_bar(theta)) / |d E f / d theta|`` at the root.

References:
    Shapiro, Dentcheva, Ruszczynski, Lectures on Stochastic Programming (2009),
    ch. 5; Robbins and Monro, Ann. Math. Statist. 22 (1951). THEORY.md section 11.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import numpy as np

from jaxcollapse.design._estimate import Estimate, Estimator, Loss


class RootResult(NamedTuple):
    """A design meeting a target, with its Monte Carlo uncertainty.

    Attributes:
        theta: the design (a float).
        theta_se: its standard error (delta method; 0 when the bracket's end
            already meets the target, see :func:`smallest`).
        value: the chain-mean objective at ``theta`` (``target`` up to ``xtol``).
        value_se: its standard error.
        slope: d E f / d theta there (pathwise), and ``slope_se``.
        n_evals: objective evaluations used.
        estimate: the :class:`~jaxcollapse.design.Estimate` at ``theta``.

    Example:
        >>> import jax
        >>> loss = jax.jit(lambda key, th: th + jax.random.normal(key, (64,)))
        >>> r = solve(loss, jax.random.key(0), target=0.0, bracket=(-1.0, 1.0))
        >>> round(r.slope, 6), r.n_evals < 10
        (1.0, True)
    """

    theta: float
    theta_se: float
    value: float
    value_se: float
    slope: float
    slope_se: float
    n_evals: int
    estimate: Estimate


def _bracket(bracket):
    try:
        lo, hi = (float(b) for b in bracket)
    except (TypeError, ValueError):
        raise ValueError(f"bracket must be two numbers (lo, hi); got {bracket!r}") from None
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"bracket must be finite with lo < hi; got {bracket!r}")
    return lo, hi


def _fmt(e: Estimate) -> str:
    return f"{e.value:.4g} +- {e.value_se:.2g}"


def solve(loss: Loss, key: jax.Array, *, target: float, bracket: tuple[float, float],
          generation: int | str = -1, xtol: float = 1e-6, max_evals: int = 60
          ) -> RootResult:
    """The scalar design in ``bracket`` where the chain mean of ``loss`` equals ``target``.

    Args:
        loss: ``loss(key, theta)`` with a float ``theta``, returning per-chain values
            or a trajectory (see :func:`~jaxcollapse.design.value_and_grad`); its
            expectation should be monotone in ``theta`` over the bracket.
        key: a JAX PRNG key (the same chains at every evaluation).
        target: the value to meet.
        bracket: ``(lo, hi)``, where the objective lies on either side of ``target``.
        generation: as in :func:`~jaxcollapse.design.value_and_grad`.
        xtol: stop when the bracket is narrower than this.
        max_evals: at most this many evaluations.

    Raises:
        ValueError: ``target`` is not between the objective at the bracket's ends
            (no design in the bracket meets it); the message gives both values.

    Example:
        >>> import jax
        >>> from jaxcollapse import design
        >>> loss = jax.jit(lambda key, th: th * (1.0 + jax.random.normal(key, (400,)) ** 2))
        >>> r = design.solve(loss, jax.random.key(0), target=2.0, bracket=(0.0, 5.0))
        >>> bool(abs(r.theta - 1.0) < 5 * r.theta_se)  # E th (1 + z^2) = 2 th
        True

    References:
        Shapiro et al. (2009), ch. 5. THEORY.md section 11.
    """
    lo, hi = _bracket(bracket)
    target = _target(target)
    est = Estimator.build(loss, key, float(lo), generation)
    ev = [0]

    def f(x):
        ev[0] += 1
        return est(key, np.array([x], np.float64))

    e_lo, e_hi = f(lo), f(hi)
    r_lo, r_hi = e_lo.value - target, e_hi.value - target
    if r_lo == 0 or r_hi == 0:
        return _result(lo if r_lo == 0 else hi, e_lo if r_lo == 0 else e_hi, ev[0])
    if np.sign(r_lo) == np.sign(r_hi):
        raise ValueError(f"target={target} is not met by any design in bracket "
                         f"[{lo}, {hi}]: the objective is {_fmt(e_lo)} at {lo} and "
                         f"{_fmt(e_hi)} at {hi} (both on the same side)")
    a, b, r_a = lo, hi, r_lo
    x, e = (lo, e_lo) if abs(r_lo) < abs(r_hi) else (hi, e_hi)
    while b - a > xtol and ev[0] < max_evals:
        slope = float(e.grad_flat[0])
        step = x - (e.value - target) / slope if slope != 0 else np.nan
        x = step if a < step < b else 0.5 * (a + b)  # Newton inside, else bisect
        e = f(x)
        r = e.value - target
        if r == 0:
            break
        if np.sign(r) == np.sign(r_a):
            a, r_a = x, r
        else:
            b = x
        if abs(r) < 1e-12 * max(1.0, abs(target)):
            break
    return _result(x, e, ev[0])


def _target(target) -> float:
    if isinstance(target, bool) or not isinstance(target, int | float | np.integer |
                                                  np.floating) or not np.isfinite(target):
        raise ValueError(f"target must be a finite number; got {target!r}")
    return float(target)


def _result(x, e: Estimate, n_evals: int, exact: bool = False) -> RootResult:
    slope = float(e.grad_flat[0])
    slope_se = float(e.chain_grads[:, 0].std(ddof=1) / np.sqrt(e.n_chains))
    se = 0.0 if exact else (e.value_se / abs(slope) if slope != 0 else np.inf)
    return RootResult(float(x), float(se), e.value, e.value_se, slope, slope_se, n_evals, e)


def smallest(loss: Loss, key: jax.Array, *, target: float,
             bracket: tuple[float, float] = (0.0, 1.0), generation: int | str = -1,
             xtol: float = 1e-6) -> RootResult:
    """The smallest design in ``bracket`` whose expected objective is at most ``target``,
    for an objective that decreases with the design (e.g. an error against the human
    fraction alpha).

    Returns ``lo`` (with ``theta_se = 0``) when ``lo`` already meets the target.

    Raises:
        ValueError: even ``hi`` misses the target (no feasible design); the message
            gives the objective there.

    Example:
        >>> import jax
        >>> from jaxcollapse import design
        >>> loss = jax.jit(lambda key, a: (1.0 - a) * jax.random.exponential(key, (400,)))
        >>> design.smallest(loss, jax.random.key(0), target=-1.0)
        Traceback (most recent call last):
        ...
        ValueError: target=-1.0 is below what the largest design in the bracket achieves...

    References:
        THEORY.md section 11 (how much real data).
    """
    lo, hi = _bracket(bracket)
    target = _target(target)
    est = Estimator.build(loss, key, float(lo), generation)
    e_hi = est(key, np.array([hi]))
    if e_hi.value > target:
        raise ValueError(f"target={target} is below what the largest design in the bracket "
                         f"achieves: the objective at {hi} is {_fmt(e_hi)}; no design in "
                         f"[{lo}, {hi}] meets it (raise the target or widen the bracket)")
    e_lo = est(key, np.array([lo]))
    if e_lo.value <= target:
        return _result(lo, e_lo, 2, exact=True)
    return solve(loss, key, target=target, bracket=(lo, hi), generation=generation,
                 xtol=xtol)
