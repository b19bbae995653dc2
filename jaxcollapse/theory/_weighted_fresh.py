"""Weighted fresh data (He, Xu, Cheng 2025): each generation averages the fit on
the synthetic draws with weight ``1 - w`` and a fit on ``n_real`` fresh real rows
with weight ``w``; re-exported by :mod:`jaxcollapse.theory.mixing`. Host NumPy
float64.

References:
    He, Xu, Cheng, Recursive Learning Without Collapse, arXiv 2502.18049 (2025).
    THEORY.md section 11.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from jaxcollapse.theory._mix_common import _as_mean_cov, _check_int, _check_unit

# ------------------------------------------------------ weighted fresh (He et al.)


def optimal_weight(k: Any) -> np.ndarray:
    """w* = (sqrt(k^2 + 4k) - k)/2, the weight on fresh real data minimising the
    mean's stationary variance, k = n_real/M.

    References:
        He, Xu, Cheng, arXiv 2502.18049 (2025). THEORY.md section 11.

    Example:
        >>> round(float(optimal_weight(1.0)), 6)  # 1/phi
        0.618034
        >>> optimal_weight(0.0)
        Traceback (most recent call last):
        ...
        ValueError: k must be > 0; got 0.0
    """
    k = np.asarray(k, float)
    if not np.all(np.isfinite(k)) or np.any(k <= 0):
        raise ValueError(f"k must be > 0; got {k.tolist()!r}")
    return (np.sqrt(k * k + 4 * k) - k) / 2


def weighted_mean_variance(w: Any, n_real: int, n_samples: int, sigma0_sq: float = 1.0
                           ) -> np.ndarray:
    """Stationary E(mu_t - mu_0)^2 = (s^2/n)[k(1-w)^2 + w^2]/(1 - (1-w)^2), k = n/M.

    Exact for the unbiased variance (E s_t^2 = s_0^2 at every t); infinite at w = 0.

    References:
        He, Xu, Cheng, arXiv 2502.18049 (2025). THEORY.md section 11.

    Example:
        >>> round(float(weighted_mean_variance(1.0, 10, 10)), 6)  # only real data
        0.1
    """
    w = _check_unit(w, "w")
    n = _check_int(n_real, "n_real", 1)
    M = _check_int(n_samples, "n_samples", 2)
    k = n / M
    with np.errstate(divide="ignore"):
        return sigma0_sq / n * (k * (1 - w) ** 2 + w**2) / (1 - (1 - w) ** 2)


class WeightedMoments(NamedTuple):
    """Moments under weighted fresh data, generations 0..n.

    Attributes:
        mean_shift: E|mu_t - mu_0|^2, ``(n + 1,)``.
        cov: E Sigma_t, ``(n + 1, d, d)``.
        cov_error: E|Sigma_t - Sigma_0|_F^2 (the variance parameter's error),
            ``(n + 1,)``.

    Example:
        >>> weighted_fresh_moments(2, 0.5, 10, 10).cov.shape
        (3, 1, 1)
    """

    mean_shift: np.ndarray
    cov: np.ndarray
    cov_error: np.ndarray


def weighted_fresh_moments(n_generations: int, w: float, n_real: int, n_samples: int,
                           cov0: Any = 1.0, ddof: int = 1) -> WeightedMoments:
    """theta_t = (1 - w) thetahat(M synthetic draws) + w thetahat(n fresh real draws).

    Mean: u' = (1-w)^2 (u + tr E S_t / M) + w^2 tr S_0 / n. Covariance (Wishart
    moments, S_syn = W(S_t, M - 1)/D): E S' = (1-w) ((M-1)/D) E S_t + w ((n-1)/D_n) S_0,
    and a = E tr S_t^2, b = E (tr S_t)^2 follow the affine map of their Wishart second
    moments, giving E|S_t - S_0|_F^2 = a - 2 tr(E S_t S_0) + tr S_0^2.

    References:
        He, Xu, Cheng, arXiv 2502.18049 (2025). THEORY.md section 11.

    Example:
        >>> r = weighted_fresh_moments(400, 0.5, 10, 10)
        >>> round(float(r.mean_shift[-1]), 6)  # (1/10)(0.25 + 0.25)/0.75
        0.066667
    """
    n = _check_int(n_generations, "n_generations", 0)
    wt = float(_check_unit(w, "w"))
    nr = _check_int(n_real, "n_real", 2)
    M = _check_int(n_samples, "n_samples", 2)
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1; got {ddof!r}")
    _, S0 = _as_mean_cov(np.zeros(np.atleast_2d(cov0).shape[-1]), cov0, "cov0")
    nu_s, nu_r = M - 1.0, nr - 1.0
    fs, fr = nu_s / (M - ddof), nu_r / (nr - ddof)  # E of the fit / the true covariance
    trS0, trS02 = np.trace(S0), np.trace(S0 @ S0)
    u, E, a, b = 0.0, S0.copy(), trS02, trS0**2
    us, Es, errs = [u], [E], [0.0]
    for _ in range(n):
        trE = np.trace(E)
        u = (1 - wt) ** 2 * (u + trE / M) + wt**2 * trS0 / nr
        # second moments of W(S, nu)/nu scaled by f: tr X^2 and (tr X)^2
        a_syn = fs**2 * (a * (1 + 1 / nu_s) + b / nu_s)
        b_syn = fs**2 * (b + 2 * a / nu_s)
        a_r = fr**2 * (trS02 * (1 + 1 / nu_r) + trS0**2 / nu_r)
        b_r = fr**2 * (trS0**2 + 2 * trS02 / nu_r)
        cross_a = fs * fr * np.trace(E @ S0)
        cross_b = fs * fr * trE * trS0
        a = (1 - wt) ** 2 * a_syn + 2 * wt * (1 - wt) * cross_a + wt**2 * a_r
        b = (1 - wt) ** 2 * b_syn + 2 * wt * (1 - wt) * cross_b + wt**2 * b_r
        E = (1 - wt) * fs * E + wt * fr * S0
        us.append(u)
        Es.append(E)
        errs.append(a - 2 * np.trace(E @ S0) + trS02)
    return WeightedMoments(np.asarray(us), np.stack(Es), np.asarray(errs))


# Report the public home as the module (the documented home).
for _obj in (WeightedMoments, optimal_weight, weighted_mean_variance, weighted_fresh_moments):
    _obj.__module__ = "jaxcollapse.theory.mixing"
del _obj
