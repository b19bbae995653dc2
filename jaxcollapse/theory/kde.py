"""Closed forms for the KDE recursion (THEORY.md section 6).

Generation n holds a data set D_n of M points with MLE covariance S_n; the next
data set is M draws from the Gaussian KDE of D_n with kernel covariance H_n. A
draw picks a data point and adds N(0, H_n) noise, so (Law of total covariance)

    E[S_{n+1} | D_n] = (1 - 1/M) (S_n + H_n).

* Fixed bandwidth ``H = h^2 I``: ``E[s_n^2] = a^n s_0^2 + h^2 a (1 - a^n) / (1 - a)``
  with ``a = 1 - 1/M`` (per coordinate), whose fixed point is ``(M - 1) h^2``:
  the recursion diffuses rather than collapses.
* Scott's or Silverman's rule as scipy applies it (``H = factor^2 C_n``, ``C_n`` the
  unbiased covariance ``M S_n / (M - 1)``): ``E[S_{n+1}] = g S_n`` exactly with
  ``g = (M - 1)/M + factor^2``, ``factor^2 = M^(-2/(d+4))`` (Scott) or
  ``(M (d + 2)/4)^(-2/(d+4))`` (Silverman), so ``E[S_n] = g^n S_0``.

References:
    Shumailov et al., Nature 631 (2024); Scott (1992); Silverman (1986).
    THEORY.md section 6.
"""

from __future__ import annotations

import numpy as np

from jaxcollapse._validate import check_int, check_int_array, check_positive

RULES = ("scott", "silverman")


def _check_m(m):
    return check_int(m, "M", minimum=2)


def _checked_factor_sq(m, dim, rule):
    # the checked M and factor^2: the one place that validates the rule's arguments and
    # reads the rule, for rule_factor_sq and growth_factor alike
    m = _check_m(m)
    check_int(dim, "dim", minimum=1)
    if rule == "scott":
        return m, float(m ** (-2.0 / (dim + 4)))
    if rule == "silverman":
        return m, float((m * (dim + 2.0) / 4.0) ** (-2.0 / (dim + 4)))
    raise ValueError(f"rule must be one of {RULES}; got {rule!r}")


def rule_factor_sq(m: int, dim: int = 1, rule: str = "scott") -> float:
    """``factor^2`` of Scott's or Silverman's rule for M equally weighted points.

    Example:
        >>> round(rule_factor_sq(100, 1, "scott"), 6)
        0.158489

    References:
        Scott (1992); Silverman (1986); THEORY.md section 6.
    """
    return _checked_factor_sq(m, dim, rule)[1]


def growth_factor(m: int, dim: int = 1, rule: str = "scott") -> float:
    """``g = (M - 1)/M + factor^2``: ``E[S_{n+1}] = g S_n`` under the rule.

    Example:
        >>> round(growth_factor(100, 1, "scott"), 3)
        1.148

    References:
        THEORY.md section 6.
    """
    m, factor_sq = _checked_factor_sq(m, dim, rule)
    return (m - 1) / m + factor_sq


def expected_var_rule(n, m: int, s0sq, dim: int = 1, rule: str = "scott") -> np.ndarray:
    """``E[s_n^2] = g^n s_0^2`` (MLE variance, any coordinate) under Scott/Silverman.

    Args:
        n: generation(s), array-like of integers >= 0.
        m: points per generation M.
        s0sq: MLE variance of D_0 (or a covariance matrix entry).

    Example:
        >>> expected_var_rule([0, 1], 100, 1.0).round(3).tolist()
        [1.0, 1.148]

    References:
        THEORY.md section 6.
    """
    check_int_array(n, "n", minimum=0)
    check_positive(s0sq, "s0sq", allow_zero=True)
    n = np.asarray(n, dtype=float)
    return growth_factor(m, dim, rule) ** n * np.asarray(s0sq, dtype=float)


def expected_var_fixed(n, m: int, h, s0sq) -> np.ndarray:
    """``E[s_n^2]`` with fixed bandwidth ``h``: ``a^n s_0^2 + h^2 a (1 - a^n)/(1 - a)``.

    ``a = 1 - 1/M``; the limit is :func:`fixed_point_var`.

    Example:
        >>> expected_var_fixed([0, 1], 10, 1.0, 1.0).round(3).tolist()
        [1.0, 1.8]

    References:
        THEORY.md section 6.
    """
    m = _check_m(m)
    check_positive(h, "h")
    check_int_array(n, "n", minimum=0)
    check_positive(s0sq, "s0sq", allow_zero=True)
    n = np.asarray(n, dtype=float)
    a = 1.0 - 1.0 / m
    h2 = np.asarray(h, dtype=float) ** 2
    return a**n * np.asarray(s0sq, dtype=float) + h2 * a * (1.0 - a**n) / (1.0 - a)


def fixed_point_var(m: int, h) -> np.ndarray:
    """The limit ``(M - 1) h^2`` of ``E[s_n^2]`` with a fixed bandwidth.

    Example:
        >>> float(fixed_point_var(10, 1.0))
        9.0

    References:
        Scott (1992); Silverman (1986); THEORY.md section 6.
    """
    m = _check_m(m)
    check_positive(h, "h")
    return (m - 1) * np.asarray(h, dtype=float) ** 2


def one_step_var(s_sq, m: int, h_sq) -> np.ndarray:
    """``E[s_{n+1}^2 | D_n] = (1 - 1/M)(s_n^2 + h^2)``.

    Example:
        >>> float(one_step_var(1.0, 10, 1.0))
        1.8

    References:
        Scott (1992); Silverman (1986); THEORY.md section 6.
    """
    m = _check_m(m)
    check_positive(s_sq, "s_sq", allow_zero=True)
    check_positive(h_sq, "h_sq", allow_zero=True)
    return (1.0 - 1.0 / m) * (np.asarray(s_sq, dtype=float) + np.asarray(h_sq, dtype=float))
