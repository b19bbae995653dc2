"""Closed forms for recursive fitting of Gaussians (THEORY.md sections 2 and 3).

Notation: generation n fits (mean, variance) on M draws from generation n - 1;
``k = M - 1``. ``ddof=1`` is the unbiased variance, ``ddof=0`` the MLE. All
functions broadcast over their array arguments (``n``, ``M``, ``sigma0_sq``...).
Functions whose name ends in ``_schedule`` take a per-generation sample-size
schedule ``M[i]`` (i = 1..n) along the last axis and return values for generations
0..n along that axis.

The law of one step (exact): ``mu' ~ N(mu, s^2/M)`` and
``D s'^2 / s^2 ~ chi^2_k`` independently, with ``D = k`` (ddof=1) or ``D = M``
(ddof=0). Hence ``s_n^2 = s_0^2 prod_i chi^2_{k,i}/D``.

References:
    Shumailov et al., AI models collapse when trained on recursively generated
    data, Nature 631 (2024), arXiv 2305.17493 (section 2 and SI).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from jax.scipy.special import digamma, gammaln, polygamma

from jaxcollapse._validate import check_int, check_real
from jaxcollapse.theory._gaussian_distances import kl, w2sq  # noqa: F401 (the public API)


def _float(x):
    return jnp.asarray(x, dtype=jnp.result_type(float))


def _divisor(M, ddof):
    M = _float(M)
    return M - 1.0 if ddof == 1 else M


def _check_ddof(ddof):
    if isinstance(ddof, bool) or ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1; got {ddof!r}")


# Domain checks of the closed forms (host side; a traced argument passes). The
# formulas are analytic in n and M, so non-integer values are allowed (smooth
# theory curves); what is refused is outside the domain: n < 0, M <= 1 (k = M - 1
# degrees of freedom must be positive), a negative variance.
def _check_n(n, name="n"):
    check_real(n, name, minimum=0.0)


def _check_m(M, name="M", more_than=1):
    check_real(M, name, minimum=float(more_than), strict_min=True)


def _check_var(v, name="sigma0_sq"):
    check_real(v, name, minimum=0.0)


def _check_schedule(M):
    if np.ndim(M) < 1:
        raise ValueError(f"M must be a schedule with the generations along the last axis "
                         f"(shape (..., n)); got a scalar {M!r}")
    _check_m(M)


def variance_factor(M, ddof: int = 1):
    """E[s_{n+1}^2 / s_n^2]: 1 (ddof=1, a martingale) or (M - 1)/M (ddof=0).

    Example:
        >>> float(variance_factor(10, ddof=0))
        0.9
    """
    _check_ddof(ddof)
    _check_m(M)
    M = _float(M)
    return (M - 1.0) / _divisor(M, ddof)


def variance_mean(n, M, sigma0_sq=1.0, ddof: int = 1):
    """E[s_n^2] = s_0^2 ((M - 1)/D)^n.

    Example:
        >>> float(variance_mean(5, 10, ddof=0))  # 0.9 ** 5
        0.59049
    """
    _check_n(n)
    _check_var(sigma0_sq)
    return _float(sigma0_sq) * variance_factor(M, ddof) ** _float(n)


def _log_gamma_ratio_half(x):
    """log Gamma(x + 1/2) - log Gamma(x) - log(x)/2, accurate in float32 too.

    For x >= 10 the asymptotic series (absolute error < 1e-13) avoids the
    cancellation of two large log-gammas; below, the log-gammas themselves are small.
    """
    big = x >= 10.0
    xb = jnp.where(big, x, 10.0)
    series = (-1.0 / (8.0 * xb) + 1.0 / (192.0 * xb**3) - 1.0 / (640.0 * xb**5)
              + 17.0 / (14336.0 * xb**7) - 31.0 / (18432.0 * xb**9))
    xs = jnp.where(big, 1.0, x)
    direct = gammaln(xs + 0.5) - gammaln(xs) - 0.5 * jnp.log(xs)
    return jnp.where(big, series, direct)


def log_std_factor(M, ddof: int = 1):
    """log E[s_{n+1}/s_n], computed without cancellation (see :func:`std_factor`).

    Example:
        >>> round(float(log_std_factor(1001)) * 1e4, 3)  # about -1/(4 (M - 1))
        -2.5
    """
    _check_ddof(ddof)
    _check_m(M)
    M = _float(M)
    k = M - 1.0
    # log c = log G(M/2) - log G(k/2) + log(2/D)/2, and log(k/2)/2 + log(2/k)/2 = 0
    extra = 0.0 if ddof == 1 else 0.5 * jnp.log1p(-1.0 / M)
    return _log_gamma_ratio_half(k / 2.0) + extra


def log_variance_factor(M, ddof: int = 1):
    """log E[s_{n+1}^2 / s_n^2]: 0 (ddof=1) or log(1 - 1/M) (ddof=0).

    Example:
        >>> float(log_variance_factor(100)), round(float(log_variance_factor(2, ddof=0)), 6)
        (0.0, -0.693147)
    """
    _check_ddof(ddof)
    _check_m(M)
    M = _float(M)
    return jnp.zeros_like(M) if ddof == 1 else jnp.log1p(-1.0 / M)


def std_factor(M, ddof: int = 1):
    """E[s_{n+1} / s_n] = sqrt(2/D) Gamma(M/2)/Gamma(k/2); c4(M) for ddof=1.

    Example:
        >>> round(float(std_factor(2)), 6)  # c4(2) = sqrt(2/pi)
        0.797885
    """
    return jnp.exp(log_std_factor(M, ddof))


def std_mean(n, M, sigma0=1.0, ddof: int = 1):
    """E[s_n] = s_0 * std_factor(M)^n.

    Example:
        >>> round(float(std_mean(1, 2)), 6)
        0.797885
    """
    _check_n(n)
    _check_var(sigma0, "sigma0")
    return _float(sigma0) * std_factor(M, ddof) ** _float(n)


def log_variance_mean(n, M, ddof: int = 1):
    """E[log s_n^2 / s_0^2] = n (psi(k/2) + log(2/D)) ~ -n/k: the drift to collapse.

    Example:
        >>> round(float(log_variance_mean(100, 101)), 3)  # about -n/k = -1
        -1.003
    """
    _check_ddof(ddof)
    _check_n(n)
    _check_m(M)
    M = _float(M)
    return _float(n) * (digamma((M - 1) / 2) + jnp.log(2.0 / _divisor(M, ddof)))


def log_variance_var(n, M):
    """Var[log s_n^2 / s_0^2] = n psi'(k/2) ~ 2n/k (the same for both ddof).

    Example:
        >>> round(float(log_variance_var(100, 101)), 3)  # about 2n/k = 2
        2.02
    """
    _check_n(n)
    _check_m(M)
    M = _float(M)
    return _float(n) * polygamma(1, (M - 1) / 2)


def mean_shift(n, M, sigma0_sq=1.0, ddof: int = 1):
    """E[(mu_n - mu_0)^2] = (s_0^2/M) sum_{i<n} ((M-1)/D)^i  (= n s_0^2/M for ddof=1).

    Example:
        >>> round(float(mean_shift(10, 100)), 6)
        0.1
    """
    _check_n(n)
    _check_var(sigma0_sq)
    lr = log_variance_factor(M, ddof)
    n = _float(n)
    safe = jnp.where(lr == 0, -1.0, lr)
    geo = jnp.where(lr == 0, n, jnp.expm1(n * safe) / jnp.expm1(safe))
    return _float(sigma0_sq) / _float(M) * geo


def draw_variance(n, M, sigma0_sq=1.0, ddof: int = 1):
    """Var of one draw of generation n: E s_n^2 + E (mu_n - mu_0)^2 (= s_0^2 (1 + n/M)).

    Example:
        >>> float(draw_variance(10, 100))
        1.1

    References:
        Shumailov et al. (2024), supplementary information.
    """
    return variance_mean(n, M, sigma0_sq, ddof) + mean_shift(n, M, sigma0_sq, ddof)


def w2sq_mean(n, M, sigma0_sq=1.0, ddof: int = 1):
    """E[W2^2(N(mu_n, s_n^2), N(mu_0, s_0^2))] = E(mu_n-mu_0)^2 + E(s_n - s_0)^2.

    For ddof=1 this is n s_0^2/M + 2 s_0^2 (1 - c4(M)^n) ~ (3/2) n s_0^2/M.

    Example:
        >>> round(float(w2sq_mean(10, 1000)), 4)  # about 1.5 * 10/1000
        0.015
    """
    _check_n(n)
    _check_var(sigma0_sq)
    s2 = _float(sigma0_sq)
    n = _float(n)
    # E(s_n - s_0)^2 = s_0^2 [(r^n - 1) - 2 (c^n - 1)], with expm1 against cancellation
    spread = jnp.expm1(n * log_variance_factor(M, ddof)) - 2.0 * jnp.expm1(
        n * log_std_factor(M, ddof))
    return mean_shift(n, M, s2, ddof) + s2 * spread


def _schedule_products(M, factor):
    M = _float(M)
    f = factor(M)
    ones = jnp.ones(M.shape[:-1] + (1,), M.dtype)
    return jnp.concatenate([ones, jnp.cumprod(f, axis=-1)], axis=-1)


def variance_mean_schedule(M, sigma0_sq=1.0, ddof: int = 1):
    """E[s_n^2] for generations 0..n under a schedule ``M[..., i]`` of sizes M_1..M_n.

    Example:
        >>> [round(float(x), 4) for x in variance_mean_schedule([10, 10], ddof=0)]
        [1.0, 0.9, 0.81]
    """
    _check_ddof(ddof)
    _check_schedule(M)
    _check_var(sigma0_sq)
    return _float(sigma0_sq) * _schedule_products(M, lambda m: variance_factor(m, ddof))


def mean_shift_schedule(M, sigma0_sq=1.0, ddof: int = 1):
    """E[(mu_n - mu_0)^2] = sum_{i<=n} E[s_{i-1}^2]/M_i for generations 0..n.

    With ddof=1 this is s_0^2 sum_i 1/M_i: bounded only if M_i grows superlinearly.

    Example:
        >>> [round(float(x), 4) for x in mean_shift_schedule([10, 20])]
        [0.0, 0.1, 0.15]
    """
    _check_schedule(M)
    M = _float(M)
    ev = variance_mean_schedule(M, sigma0_sq, ddof)[..., :-1]
    terms = ev / M
    zero = jnp.zeros(M.shape[:-1] + (1,), M.dtype)
    return jnp.concatenate([zero, jnp.cumsum(terms, axis=-1)], axis=-1)


def w2sq_mean_schedule(M, sigma0_sq=1.0, ddof: int = 1):
    """E[W2^2] for generations 0..n under a sample-size schedule.

    Example:
        >>> [round(float(x), 5) for x in w2sq_mean_schedule([100, 100])]
        [0.0, 0.01504, 0.03008]
    """
    _check_schedule(M)
    _check_var(sigma0_sq)
    s2 = _float(sigma0_sq)
    M = _float(M)
    zero = jnp.zeros(M.shape[:-1] + (1,), M.dtype)
    lr = jnp.concatenate([zero, jnp.cumsum(log_variance_factor(M, ddof), axis=-1)], axis=-1)
    lc = jnp.concatenate([zero, jnp.cumsum(log_std_factor(M, ddof), axis=-1)], axis=-1)
    return mean_shift_schedule(M, s2, ddof) + s2 * (jnp.expm1(lr) - 2.0 * jnp.expm1(lc))


# --- the exact law of log s_n^2: n-fold convolution of log(chi^2_k / D) -------------


def _log_variance_density_grid(n, M, ddof, n_grid=1 << 16):
    """Density of L = log(s_n^2/s_0^2) on a uniform grid (NumPy, float64, via FFT)."""
    k = float(M) - 1.0
    D = k if ddof == 1 else float(M)
    n = int(n)
    from math import lgamma

    psi1 = float(polygamma(1, k / 2.0))
    mean = n * (float(digamma(k / 2.0)) + np.log(2.0 / D))
    sd = np.sqrt(n * psi1)
    sd1 = np.sqrt(psi1)
    # the one-step law is left-skewed (log of a chi-square): give the left tail room
    lo = mean - 14.0 * sd - 40.0 * sd1 - 5.0
    hi = mean + 14.0 * sd + 10.0 * sd1 + 5.0
    dx = (hi - lo) / n_grid
    shift = int(np.floor(lo / dx))
    x = (shift + np.arange(n_grid)) * dx  # grid aligned with the circular index
    # density of Y = log(X/D), X ~ chi^2_k, on a grid centred on 0 (circular)
    y = (np.arange(n_grid) - n_grid // 2) * dx
    t = D * np.exp(y)
    logf = ((k / 2 - 1) * np.log(t) - t / 2 - (k / 2) * np.log(2.0) - lgamma(k / 2)
            + np.log(t))
    f = np.exp(logf - logf.max())
    f /= f.sum()
    # characteristic function of one step, raised to the n-th power
    phi = np.fft.fft(np.fft.ifftshift(f))
    pdf = np.real(np.fft.ifft(phi**n))
    pdf = np.clip(pdf, 0.0, None)
    # position: the n-fold sum of a grid centred at 0 is centred at 0; shift to x
    pdf = np.roll(pdf, -shift)  # circular index j holds the value j dx (mod width)
    pdf /= pdf.sum()
    return x, pdf


def _check_grid_args(n, M, sigma0_sq):
    """The host-side exact law takes one (n, M): scalars, n an integer >= 0."""
    n = check_int(n, "n", minimum=0)
    if np.ndim(M) != 0:
        raise ValueError(f"M must be a scalar here (one exact law at a time); got shape "
                         f"{np.shape(M)}")
    _check_m(M)
    check_real(sigma0_sq, "sigma0_sq", minimum=0.0, strict_min=True)
    return n, float(M)


def prob_variance_below(eps, n, M, sigma0_sq=1.0, ddof: int = 1) -> np.ndarray:
    """P(s_n^2 < eps) from the exact law of a sum of n log-chi-square variables.

    Computed on the host (NumPy, float64) by numerical convolution (FFT) of the
    one-step density of log(chi^2_k / D); accurate to about 1e-6.

    Example:
        >>> p = prob_variance_below(1.0, 50, 100)  # median drifts below s_0^2
        >>> bool(0.5 < p < 1.0)
        True
    """
    _check_ddof(ddof)
    n, M = _check_grid_args(n, M, sigma0_sq)
    check_real(eps, "eps", minimum=0.0, finite=False)
    x, pdf = _log_variance_density_grid(n, M, ddof)
    cdf = np.cumsum(pdf)
    target = np.log(np.asarray(eps, float) / float(sigma0_sq))
    return np.clip(np.interp(target, x, cdf), 0.0, 1.0)


def variance_quantile(q, n, M, sigma0_sq=1.0, ddof: int = 1) -> np.ndarray:
    """Quantile(s) ``q`` of s_n^2 from the exact log-chi-square law (host, float64).

    Example:
        >>> med = variance_quantile(0.5, 100, 101)
        >>> bool(0.3 < med < 0.4)  # about exp(-n/k) = 0.37
        True
    """
    _check_ddof(ddof)
    n, M = _check_grid_args(n, M, sigma0_sq)
    check_real(q, "q", minimum=0.0, maximum=1.0)
    x, pdf = _log_variance_density_grid(n, M, ddof)
    cdf = np.cumsum(pdf) - 0.5 * pdf
    return float(sigma0_sq) * np.exp(np.interp(np.asarray(q, float), cdf, x))


# --- multivariate (THEORY.md section 3) ----------------------------------------------


def logdet_drift(M, d, ddof: int = 1):
    """E[log det S_{n+1} - log det S_n] = sum_j psi((M - j)/2) + d log 2 - d log D.

    Example:
        >>> round(float(logdet_drift(101, 1)), 5) == round(float(log_variance_mean(1, 101)), 5)
        True
    """
    _check_ddof(ddof)
    d = check_int(d, "d", minimum=1)
    _check_m(M, more_than=d)
    M = _float(M)
    j = jnp.arange(1, d + 1, dtype=M.dtype)
    s = jnp.sum(digamma((M[..., None] - j) / 2.0), axis=-1)
    return s + d * jnp.log(2.0) - d * jnp.log(_divisor(M, ddof))


def logdet_mean(n, M, d, logdet0=0.0, ddof: int = 1):
    """E[log det S_n] = log det S_0 + n * logdet_drift(M, d): a linear drift down.

    Example:
        >>> float(logdet_mean(0, 10, 3, logdet0=1.5))
        1.5
    """
    _check_n(n)
    check_real(logdet0, "logdet0")
    return _float(logdet0) + _float(n) * logdet_drift(M, d, ddof)


def cov_mean_factor(n, M, ddof: int = 1):
    """E[S_n] = factor * S_0: 1 (unbiased) or ((M-1)/M)^n (MLE).

    Example:
        >>> float(cov_mean_factor(2, 10, ddof=0))
        0.81
    """
    _check_n(n)
    return variance_factor(M, ddof) ** _float(n)


def mean_shift_mv(n, M, trace_cov0, ddof: int = 1):
    """E|mu_n - mu_0|^2 = tr(S_0) * mean_shift(n, M, 1, ddof) in d dimensions.

    Example:
        >>> float(mean_shift_mv(10, 100, 3.0))
        0.3
    """
    _check_var(trace_cov0, "trace_cov0")
    return _float(trace_cov0) * mean_shift(n, M, 1.0, ddof)


def w2sq_mean_mv_approx(n, M, d, sigma0_sq=1.0):
    """Small-(n/M) approximation of E[W2^2] for N(0, s_0^2 I_d), unbiased covariance:
    n d s_0^2 / M + n d (d + 1) s_0^2 / (4 (M - 1)).

    The mean term is exact; the covariance term uses W2^2 ~ |S_n - S_0|_F^2 / (4 s_0^2)
    for S_n near S_0 and E|S_n - S_0|_F^2 ~ n d (d + 1) s_0^4 / (M - 1). In one
    dimension it is the (3/2) n s_0^2 / M of THEORY.md section 2.

    Example:
        >>> round(float(w2sq_mean_mv_approx(10, 1000, 1)), 5)
        0.015
    """
    _check_n(n)
    d = check_int(d, "d", minimum=1)
    _check_m(M, more_than=1)
    _check_var(sigma0_sq)
    n, M = _float(n), _float(M)
    return _float(sigma0_sq) * (n * d / M + n * d * (d + 1) / (4.0 * (M - 1.0)))
