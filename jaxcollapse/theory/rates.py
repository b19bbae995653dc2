"""Rates of collapse: how fast a recursively refitted model forgets.

* Poisson, n draws a generation, Lambda_{t+1} = the mean of n Poisson(Lambda_t)
  draws: P(Lambda_k = 0) = exp(-n lambda_0 g_k), g_k the k-fold iterate of
  g(x) = 1 - e^{-x} from infinity (g_1 = 1, g_k ~ 2/k), because
  E[e^{-n g Lambda_{t+1}} | Lambda_t] = exp(-n Lambda_t (1 - e^{-g})).
* Bernoulli (a categorical with K = 2), n draws a generation: P(P_k not in {0, 1})
  exactly from the Markov chain on counts, and two-sided bounds from
  E[P_k (1 - P_k)] = (1 - 1/n)^k p_0 (1 - p_0) with (n - 1)/n^2 <= P(1 - P) <= 1/4 on
  the non-absorbed states.
* Gaussian: P(sigma_k > eps) <= (sigma_0/eps) e^{-k/(4n - 1)} (Markov's inequality on
  E sigma_k = sigma_0 c4(n)^k, log c4(n) <= -1/(4n - 1)), beside the exact law of
  log sigma_k^2 (a sum of log-chi-squares, :mod:`jaxcollapse.theory.gaussian`).
* Unique symbols: the exact expected number of symbols still present after k
  generations (count chains), the one-generation expectation sum 1 - (1 - p_i)^n, and
  the second-moment lower bound sum p_i/(p_i + (1 - p_i)(1 - (1 - 1/n)^k)).

References:
    Suresh, Thangaraj, Khandavally, Rate of Model Collapse in Recursive Training,
    AISTATS 2025 (arXiv 2412.17646). THEORY.md section 11.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxcollapse.theory import gaussian as _gauss
from jaxcollapse.theory import mixing as _mixing
from jaxcollapse.theory._mixing_wf import _count_laws

__all__ = ["bernoulli_active_bounds", "bernoulli_active_exact", "gaussian_std_tail_bound",
           "gaussian_std_tail_exact", "poisson_g", "poisson_zero_probability",
           "unique_symbols_exact", "unique_symbols_lower_bound", "unique_symbols_one_step"]


def _int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def _gens(k: Any) -> np.ndarray:
    a = np.asarray(k)
    if not np.issubdtype(a.dtype, np.integer) or np.any(a < 0):
        raise ValueError(f"k must be integers >= 0 (generations); got {k!r}")
    return a


def _probs(probs: Any) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    if p.ndim != 1 or np.any(~np.isfinite(p)) or np.any(p < 0) or abs(p.sum() - 1) > 1e-6:
        raise ValueError(f"probs must be a probability vector of shape (K,); got {probs!r}")
    return p


def poisson_g(k: Any) -> np.ndarray:
    """g_k = g^{(k)}(infinity), g(x) = 1 - e^{-x}: g_0 = inf, g_1 = 1, g_k ~ 2/k.

    References:
        Suresh et al., AISTATS 2025. THEORY.md section 11.

    Example:
        >>> [round(float(x), 6) for x in poisson_g([1, 2])]
        [1.0, 0.632121]
    """
    k = _gens(k)
    kmax = int(k.max(initial=0))
    table = np.empty(kmax + 1)
    table[0] = np.inf
    for i in range(1, kmax + 1):
        table[i] = -np.expm1(-table[i - 1])
    return table[k]


def poisson_zero_probability(k: Any, n: int, lambda0: Any) -> np.ndarray:
    """P(Lambda_k = 0) = exp(-n lambda_0 g_k) for the Poisson loop with n draws a
    generation (exact).

    Args:
        k: generations (integer or integer array).
        n: draws a generation.
        lambda0: the initial rate, >= 0.

    References:
        Suresh et al., AISTATS 2025. THEORY.md section 11.

    Example:
        >>> round(float(poisson_zero_probability(1, 10, 0.1)), 6)  # P(Poisson(1) = 0)
        0.367879
        >>> poisson_zero_probability(1, 10, -1.0)
        Traceback (most recent call last):
        ...
        ValueError: lambda0 must be a finite number >= 0; got -1.0
    """
    lam = np.asarray(lambda0, dtype=float)
    if not np.all(np.isfinite(lam)) or np.any(lam < 0):
        raise ValueError(f"lambda0 must be a finite number >= 0; got {lambda0!r}")
    n = _int(n, "n", 1)
    g = poisson_g(k)
    with np.errstate(invalid="ignore"):
        x = np.where(lam == 0, 0.0, n * lam * g)
    return np.exp(-x)


def _check_p(p0: Any) -> float:
    p = float(p0)
    if not np.isfinite(p) or p < 0 or p > 1:
        raise ValueError(f"p0 must lie in [0, 1]; got {p0!r}")
    return p


def bernoulli_active_exact(k: int, n: int, p0: float) -> np.ndarray:
    """P(P_t not in {0, 1}) for t = 0..k, exactly (the Markov chain on counts 0..n).

    References:
        Suresh et al., AISTATS 2025; THEORY.md section 4.

    Example:
        >>> [round(float(x), 6) for x in bernoulli_active_exact(1, 2, 0.5)]
        [1.0, 0.5]
    """
    k = _int(k, "k", 0)
    n = _int(n, "n", 1)
    p = _check_p(p0)
    out = np.empty(k + 1)
    out[0] = float(0 < p < 1)
    if k:
        laws = _count_laws(p, p, n, 0, None, k, False)
        out[1:] = 1.0 - laws[:, 0] - laws[:, n]
    return out


def bernoulli_active_bounds(k: Any, n: int, p0: float) -> tuple[np.ndarray, np.ndarray]:
    """Two-sided bounds (lower, upper) on P(P_k not in {0, 1}):
    4 H_k <= P <= min(1, n^2 H_k/(n - 1)), H_k = (1 - 1/n)^k p_0 (1 - p_0).

    References:
        Suresh et al., AISTATS 2025 (the rate (1 - 1/n)^k of Bernoulli collapse).
        THEORY.md sections 4 and 11.

    Example:
        >>> lo, hi = bernoulli_active_bounds(1, 2, 0.5)
        >>> float(lo), float(hi)
        (0.5, 0.5)
    """
    k = _gens(k)
    n = _int(n, "n", 2)
    p = _check_p(p0)
    het = (1.0 - 1.0 / n) ** k * p * (1 - p)
    return np.minimum(4.0 * het, 1.0), np.minimum(n * n * het / (n - 1.0), 1.0)


def gaussian_std_tail_bound(eps: Any, k: Any, n: int, sigma0: float = 1.0) -> np.ndarray:
    """(sigma_0/eps) e^{-k/(4n - 1)} >= P(sigma_k > eps) (unbiased fit, n draws a
    generation).

    References:
        Suresh et al., AISTATS 2025. THEORY.md section 11.

    Example:
        >>> round(float(gaussian_std_tail_bound(0.5, 39, 10)), 6)  # 2 / e
        0.735759
    """
    eps = np.asarray(eps, dtype=float)
    if np.any(~np.isfinite(eps)) or np.any(eps <= 0):
        raise ValueError(f"eps must be > 0; got {eps!r}")
    n = _int(n, "n", 2)
    return float(sigma0) / eps * np.exp(-_gens(k) / (4.0 * n - 1.0))


def gaussian_std_tail_exact(eps: float, k: int, n: int, sigma0: float = 1.0,
                            ddof: int = 1) -> float:
    """P(sigma_k > eps) from the exact log-chi-square law (host, about 1e-6 accurate).

    References:
        Shumailov et al. (2024); Suresh et al., AISTATS 2025. THEORY.md sections 2, 11.

    Example:
        >>> p = gaussian_std_tail_exact(0.5, 40, 10)
        >>> bool(p < gaussian_std_tail_bound(0.5, 40, 10))
        True
    """
    k = _int(k, "k", 1)
    n = _int(n, "n", 2)
    return float(1.0 - _gauss.prob_variance_below(float(eps) ** 2, k, n,
                                                  float(sigma0) ** 2, ddof))


def unique_symbols_one_step(probs: Any, n: int) -> float:
    """E(number of symbols seen in n draws) = sum_i 1 - (1 - p_i)^n (generation 1).

    References:
        Suresh et al., AISTATS 2025; THEORY.md section 4.

    Example:
        >>> unique_symbols_one_step([0.5, 0.5], 1)
        1.0
    """
    p = _probs(probs)
    n = _int(n, "n", 1)
    return float(np.sum(1.0 - (1.0 - p) ** n))


def unique_symbols_lower_bound(probs: Any, n: int, k: Any) -> np.ndarray:
    """E(symbols alive at generation k) >= sum_i p_i/(p_i + (1 - p_i)(1 - (1 - 1/n)^k)).

    The second-moment bound P(X > 0) >= (E X)^2/E X^2 for X = P_{k,i}, with
    E P_{k,i}^2 = p_i^2 + p_i (1 - p_i)(1 - (1 - 1/n)^k): a symbol seen c = n p_i times
    survives about c/(c + k) of the time, the linear forgetting time of Suresh et al.

    References:
        Suresh et al., AISTATS 2025. THEORY.md section 11.

    Example:
        >>> float(unique_symbols_lower_bound([0.5, 0.5], 10, 0))
        2.0
    """
    p = _probs(probs)
    n = _int(n, "n", 1)
    k = _gens(k)
    f = -np.expm1(k[..., None] * np.log1p(-1.0 / n)) if n > 1 else (k[..., None] > 0) * 1.0
    pp = p[p > 0]
    return np.sum(pp / (pp + (1 - pp) * f), axis=-1)


def unique_symbols_exact(probs: Any, n: int, k: int) -> np.ndarray:
    """E(symbols alive) at generations 0..k, exactly (each symbol's count chain on
    0..n; O(k K n^2) work, for moderate n).

    References:
        Suresh et al., AISTATS 2025; THEORY.md section 4.

    Example:
        >>> [round(float(x), 4) for x in unique_symbols_exact([0.5, 0.5], 5, 1)]
        [2.0, 1.9375]
    """
    return _mixing.wf_mix_survivors(k, n, 0.0, _probs(probs))
