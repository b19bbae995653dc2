"""Closed forms for loops whose sampling is biased (THEORY.md section 9).

Gaussian (1-D and d-D): generation t draws M points from N(mu_t, lam Sigma_t),
``lam`` in (0, 1], and refits (``ddof=1`` unbiased, ``ddof=0`` MLE; ``k = M - 1``,
``D = k`` or ``M``, ``r = (M - 1)/D``). The one-step law is that of
:mod:`jaxcollapse.theory.gaussian` with the extra factor ``lam``:
``mu' ~ N(mu, lam s^2/M)``, ``D s'^2/(lam s^2) ~ chi^2_k``, so
``s_n^2 = s_0^2 lam^n prod_i chi^2_{k,i}/D`` and every moment picks up its power of lam.

Fresh data with bias: every generation fits (unbiased, pooled) ``n_real`` fresh human
draws from N(mu_0, s_0^2) and ``n_synth`` draws from N(mu_t, lam s_t^2). The moments
``x = (E mu, E mu^2, E s^2)`` follow an affine map ``x' = A x + b`` (exact).

Categorical decoding maps (temperature, top-k, top-p) are in
:mod:`jaxcollapse.theory.decoding`; KDE with a shrunk kernel at the end of this module.

References:
    Alemohammad et al., Self-Consuming Generative Models Go MAD, ICLR 2024 (MAD);
    Shumailov et al., Nature 631 (2024). THEORY.md sections 2, 3, 6 and 9.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import polygamma

from jaxcollapse.theory import gaussian as tg
from jaxcollapse.theory import kde as tk
from jaxcollapse.theory._checks import check_lam
from jaxcollapse.theory.bias_fresh import (
    admissible_synthetic_sizes,
    fresh_fixed_point,
    fresh_moment_map,
    fresh_moments,
    fresh_std_fixed_point,
    fresh_w2sq_fixed_point,
)

__all__ = [
    "admissible_synthetic_sizes",
    "cov_mean_factor",
    "fresh_fixed_point",
    "fresh_moment_map",
    "fresh_moments",
    "fresh_std_fixed_point",
    "fresh_w2sq_fixed_point",
    "kde_critical_lam",
    "kde_fixed_point_var",
    "kde_growth_factor",
    "kde_one_step_var",
    "kde_var_fixed",
    "kde_var_rule",
    "log_variance_mean",
    "log_variance_var",
    "logdet_drift",
    "logdet_mean",
    "logdet_var",
    "mean_shift",
    "mean_shift_mv",
    "prob_variance_below",
    "std_mean",
    "variance_mean",
    "variance_quantile",
    "w2sq_mean",
    "w2sq_mean_mv",
]

_float = tg._float


def _log_lam(lam):
    return jnp.log(_float(check_lam(lam)))


# --- Gaussian, 1-D and d-D -----------------------------------------------------------


def cov_mean_factor(n, M, lam, ddof: int = 1):
    """E[Sigma_n] = factor * Sigma_0 with factor ``(lam r)^n`` (``lam^n`` for ddof=1).

    Example:
        >>> round(float(cov_mean_factor(3, 10, 0.9)), 6)
        0.729

    References:
        Alemohammad et al. (2024); THEORY.md section 9.
    """
    return jnp.exp(_float(n) * (_log_lam(lam) + tg.log_variance_factor(M, ddof)))


def variance_mean(n, M, lam, sigma0_sq=1.0, ddof: int = 1):
    """E[s_n^2] = s_0^2 (lam r)^n.

    Example:
        >>> round(float(variance_mean(2, 100, 0.5, sigma0_sq=4.0)), 6)
        1.0

    References:
        Alemohammad et al. (2024); THEORY.md section 9.
    """
    return _float(sigma0_sq) * cov_mean_factor(n, M, lam, ddof)


def std_mean(n, M, lam, sigma0=1.0, ddof: int = 1):
    """E[s_n] = s_0 (sqrt(lam) c)^n, ``c = sqrt(2/D) Gamma(M/2)/Gamma(k/2)`` (c4 for ddof=1).

    Example:
        >>> round(float(std_mean(1, 2, 0.25)), 6)  # 0.5 * sqrt(2/pi)
        0.398942

    References:
        Alemohammad et al. (2024); THEORY.md sections 2 and 9.
    """
    return _float(sigma0) * jnp.exp(_float(n) * (0.5 * _log_lam(lam)
                                                 + tg.log_std_factor(M, ddof)))


def log_variance_mean(n, M, lam, ddof: int = 1):
    """E[log s_n^2/s_0^2] = n (log lam + psi(k/2) + log(2/D)) ~ n (log lam - 1/k).

    Example:
        >>> from jaxcollapse.theory import gaussian as tg
        >>> round(float(log_variance_mean(10, 101, 0.5) - tg.log_variance_mean(10, 101)), 4)
        -6.9315

    References:
        Alemohammad et al. (2024); THEORY.md section 9.
    """
    return _float(n) * _log_lam(lam) + tg.log_variance_mean(n, M, ddof)


def log_variance_var(n, M, lam=1.0):
    """Var[log s_n^2/s_0^2] = n psi'(k/2) ~ 2n/k: the bias only shifts log s_n^2.

    Example:
        >>> float(log_variance_var(100, 101, 0.5)) == float(log_variance_var(100, 101))
        True

    References:
        THEORY.md sections 2 and 9.
    """
    check_lam(lam)
    return tg.log_variance_var(n, M)


def mean_shift(n, M, lam, sigma0_sq=1.0, ddof: int = 1):
    """E[(mu_n - mu_0)^2] = (lam s_0^2/M) sum_{i<n} (lam r)^i (ddof=1: sum_{i=1..n} lam^i).

    Example:
        >>> round(float(mean_shift(2, 10, 0.5)), 6)  # (0.5 + 0.25)/10
        0.075

    References:
        Alemohammad et al. (2024); THEORY.md section 9.
    """
    lr = _log_lam(lam) + tg.log_variance_factor(M, ddof)
    n = _float(n)
    safe = jnp.where(lr == 0, -1.0, lr)
    geo = jnp.where(lr == 0, n, jnp.expm1(n * safe) / jnp.expm1(safe))
    return _float(lam) * _float(sigma0_sq) / _float(M) * geo


def mean_shift_mv(n, M, lam, trace_cov0, ddof: int = 1):
    """E|mu_n - mu_0|^2 = tr(Sigma_0) * mean_shift(n, M, lam, 1) in d dimensions.

    Example:
        >>> round(float(mean_shift_mv(2, 10, 0.5, 3.0)), 6)
        0.225

    References:
        THEORY.md section 9.
    """
    return _float(trace_cov0) * mean_shift(n, M, lam, 1.0, ddof)


def w2sq_mean(n, M, lam, sigma0_sq=1.0, ddof: int = 1):
    """E[W2^2(N(mu_n, s_n^2), N(mu_0, s_0^2))] in 1-D, exactly:
    E(mu_n - mu_0)^2 + s_0^2 [(lam r)^n + 1 - 2 (sqrt(lam) c)^n].

    Tends to ``s_0^2 (1 + lam/(M (1 - lam r)))`` for lam r < 1 (the law shrinks to a
    point near mu_0).

    Example:
        >>> float(w2sq_mean(3, 100, 1.0)) == float(tg.w2sq_mean(3, 100))
        True
        >>> round(float(w2sq_mean(200, 100, 0.9)), 4)  # about 1 + 0.9/(100 * 0.1)
        1.09

    References:
        Alemohammad et al. (2024); THEORY.md sections 2 and 9.
    """
    s2 = _float(sigma0_sq)
    n = _float(n)
    ll = _log_lam(lam)
    spread = jnp.expm1(n * (ll + tg.log_variance_factor(M, ddof))) - 2.0 * jnp.expm1(
        n * (0.5 * ll + tg.log_std_factor(M, ddof)))
    return mean_shift(n, M, lam, s2, ddof) + s2 * spread


def w2sq_mean_mv(n, M, lam, cov0, ddof: int = 1):
    """E[W2^2] between N(mu_n, Sigma_n) and N(mu_0, Sigma_0) in d dimensions.

    The mean term and E tr Sigma_n are exact; the cross term uses
    ``E tr(Sigma_0^1/2 Sigma_n Sigma_0^1/2)^1/2 ~ lam^(n/2) r^(n/2) (c/sqrt r)^(n S/tr Sigma_0)
    tr Sigma_0`` with ``S = sum_ij a_i a_j (1 + delta_ij)/(a_i + a_j)`` over the
    eigenvalues a of Sigma_0: the second-order expansion in the Wishart fluctuations
    (error O((n/M)^2)), written so that it is exact in one dimension (S = tr Sigma_0)
    and, for lam = 1, agrees with :func:`jaxcollapse.theory.gaussian.w2sq_mean_mv_approx`
    to first order in n/M. Host-side eigenvalues of ``cov0 (d, d)``.

    Example:
        >>> import jax.numpy as jnp
        >>> a = float(w2sq_mean_mv(5, 50, 0.9, jnp.eye(1)))
        >>> abs(a - float(w2sq_mean(5, 50, 0.9))) < 1e-12
        True

    References:
        Alemohammad et al. (2024); THEORY.md sections 3 and 9.
    """
    c0 = np.asarray(cov0, dtype=float)
    a = np.linalg.eigvalsh(0.5 * (c0 + c0.T))
    tr0 = float(a.sum())
    s = float(np.sum(np.outer(a, a) * (1.0 + np.eye(a.size)) / (a[:, None] + a[None, :])))
    n = _float(n)
    ll = _log_lam(lam)
    lr = tg.log_variance_factor(M, ddof)
    lc = tg.log_std_factor(M, ddof)
    log_cross = n * (0.5 * ll + 0.5 * lr + (lc - 0.5 * lr) * (s / tr0))
    spread = jnp.expm1(n * (ll + lr)) - 2.0 * jnp.expm1(log_cross)
    return mean_shift_mv(n, M, lam, tr0, ddof) + tr0 * spread


def logdet_drift(M, d, lam, ddof: int = 1):
    """E[log det Sigma_{n+1} - log det Sigma_n] = d log lam + sum_j psi((M-j)/2) + d log(2/D).

    Example:
        >>> import math
        >>> a, b = float(logdet_drift(50, 3, 0.8)), float(logdet_drift(50, 3, 1.0))
        >>> math.isclose(a - b, 3 * math.log(0.8), rel_tol=1e-5)
        True

    References:
        Alemohammad et al. (2024); Muirhead (1982); THEORY.md sections 3 and 9.
    """
    return int(d) * _log_lam(lam) + tg.logdet_drift(M, d, ddof)


def logdet_mean(n, M, d, lam, logdet0=0.0, ddof: int = 1):
    """E[log det Sigma_n] = log det Sigma_0 + n * logdet_drift(M, d, lam).

    Example:
        >>> float(logdet_mean(0, 10, 3, 0.5, logdet0=1.5))
        1.5

    References:
        THEORY.md sections 3 and 9.
    """
    return _float(logdet0) + _float(n) * logdet_drift(M, d, lam, ddof)


def logdet_var(n, M, d, lam=1.0):
    """Var[log det Sigma_n] = n sum_{j=1..d} psi'((M - j)/2) (Bartlett: a sum of
    independent log chi-squares); the bias does not enter.

    Example:
        >>> float(logdet_var(7, 30, 1)) == float(log_variance_var(7, 30))
        True

    References:
        Bartlett (1933); THEORY.md sections 3 and 9.
    """
    check_lam(lam)
    M = _float(M)
    j = jnp.arange(1, int(d) + 1, dtype=M.dtype)
    return _float(n) * jnp.sum(polygamma(1, (M[..., None] - j) / 2.0), axis=-1)


def _biased_scale(lam, sigma0_sq, n) -> float:
    # the exact law under bias is the unbiased one with sigma0^2 lam^n
    check_lam(lam)
    return float(sigma0_sq) * float(lam) ** int(n)


def prob_variance_below(eps, n, M, lam, sigma0_sq=1.0, ddof: int = 1) -> np.ndarray:
    """P(s_n^2 < eps) from the exact law: log s_n^2/s_0^2 = n log lam + a sum of n
    log(chi^2_k/D) (host, float64, FFT convolution as in theory.gaussian).

    Example:
        >>> p = prob_variance_below(0.5, 10, 1000, 0.9)  # median ~ 0.9^10 = 0.35
        >>> bool(p > 0.9)
        True

    References:
        Alemohammad et al. (2024); THEORY.md sections 2 and 9.
    """
    return tg.prob_variance_below(eps, n, M, _biased_scale(lam, sigma0_sq, n), ddof)


def variance_quantile(q, n, M, lam, sigma0_sq=1.0, ddof: int = 1) -> np.ndarray:
    """Quantile(s) ``q`` of s_n^2 from the exact law (host, float64).

    Example:
        >>> import math
        >>> med = variance_quantile(0.5, 100, 101, 0.99)
        >>> bool(abs(med / (0.99**100 * math.exp(-100 / 100)) - 1) < 0.05)
        True

    References:
        Alemohammad et al. (2024); THEORY.md sections 2 and 9.
    """
    return tg.variance_quantile(q, n, M, _biased_scale(lam, sigma0_sq, n), ddof)


# --- KDE with a shrunk kernel (THEORY.md sections 6 and 9) --------------------------


def kde_one_step_var(s_sq, M: int, h_sq, lam):
    """E[s_{n+1}^2 | D_n] = (1 - 1/M)(s_n^2 + lam h^2) when the kernel is sampled with
    covariance lam H (per coordinate; MLE variance of the M points).

    Example:
        >>> float(kde_one_step_var(1.0, 10, 1.0, 0.5))
        1.35

    References:
        Shumailov et al. (2024); THEORY.md sections 6 and 9.
    """
    check_lam(lam)
    return tk.one_step_var(s_sq, M, np.asarray(lam, float) * np.asarray(h_sq, float))


def kde_var_fixed(n, M: int, h, s0sq, lam) -> np.ndarray:
    """Fixed bandwidth h: E s_n^2 = a^n s_0^2 + lam h^2 a (1 - a^n)/(1 - a), a = 1 - 1/M.

    Example:
        >>> kde_var_fixed([0, 1], 10, 1.0, 1.0, 0.5).round(3).tolist()
        [1.0, 1.35]

    References:
        THEORY.md sections 6 and 9.
    """
    check_lam(lam)
    return tk.expected_var_fixed(n, M, np.sqrt(float(lam)) * np.asarray(h, float), s0sq)


def kde_fixed_point_var(M: int, h, lam) -> np.ndarray:
    """The limit (M - 1) lam h^2 of E s_n^2 with a fixed bandwidth: still no collapse.

    Example:
        >>> float(kde_fixed_point_var(10, 1.0, 0.5))
        4.5

    References:
        THEORY.md sections 6 and 9.
    """
    check_lam(lam)
    return float(lam) * tk.fixed_point_var(M, h)


def kde_growth_factor(M: int, lam, dim: int = 1, rule: str = "scott") -> float:
    """Under Scott's/Silverman's rule (H = f^2 C_n): E S_{n+1} = g S_n exactly with
    ``g = (M - 1)/M + lam f^2``. The mean recursion is multiplicative: its only fixed
    point is 0, reached geometrically when g < 1 (lam below :func:`kde_critical_lam`),
    and E S_n grows when g > 1.

    Example:
        >>> round(kde_growth_factor(100, 1.0), 3), round(kde_growth_factor(100, 0.05), 4)
        (1.148, 0.9979)

    References:
        Scott (1992); Silverman (1986); THEORY.md sections 6 and 9.
    """
    check_lam(lam)
    return (M - 1) / M + float(lam) * tk.rule_factor_sq(M, dim, rule)


def kde_var_rule(n, M: int, s0sq, lam, dim: int = 1, rule: str = "scott") -> np.ndarray:
    """E s_n^2 = g^n s_0^2 with g = :func:`kde_growth_factor`.

    Example:
        >>> kde_var_rule([0, 1], 100, 1.0, 1.0).round(3).tolist()
        [1.0, 1.148]

    References:
        THEORY.md sections 6 and 9.
    """
    g = kde_growth_factor(M, lam, dim, rule)
    return g ** np.asarray(n, float) * np.asarray(s0sq, float)


def kde_critical_lam(M: int, dim: int = 1, rule: str = "scott") -> float:
    """The bias ``1/(M f^2)`` at which g = 1 under the rule: a smaller lam collapses the
    KDE loop in mean; Scott's gives ``M^(-(d+2)/(d+4))``, far below 1 for moderate M.

    Example:
        >>> round(kde_critical_lam(100), 4)  # 100^(-3/5)
        0.0631

    References:
        Scott (1992); Silverman (1986); THEORY.md sections 6 and 9.
    """
    return 1.0 / (M * tk.rule_factor_sq(M, dim, rule))
