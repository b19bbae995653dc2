"""How much real data: exact moment recursions of loops that mix in human data.

Gaussian under ``mix(alpha, source)`` (THEORY.md section 11): each generation fits
(unbiased, ``ddof=1`` as :class:`jaxcollapse.Gaussian` does by default) on the pooled
``h = round(alpha M)`` human rows, a uniformly random subset of a pool of ``N`` rows
with mean ``m`` and covariance ``S`` (``ddof=0``; ``N=None`` for an infinite pool),
and ``s = M - h`` draws from the previous fit. With ``a`` the subset's mean,
``A = E a a^T = m m^T + S (N - h)/(h (N - 1))`` and ``E q = (h - 1) N S/(N - 1)`` the
subset's expected scatter, the moments ``e = E mu_t``, ``P = E mu_t mu_t^T``,
``V = E Sigma_t`` and ``C = E a mu_t^T`` follow the affine map (``D = M - ddof``)::

    e' = (h m + s e)/M
    P' = (h^2 A + h s (C + C^T) + s^2 P + s V)/M^2
    V' = (E q + (s - 1) V + (h s/M)(A - C - C^T + P) + (h/M) V)/D
    C' = (h A + s C)/M        (source "fixed": the same subset every generation)
    C  = m e^T                (source "fresh": a new subset, independent of the past)

which is exact for every t (pooled-scatter identity of Chan et al.; Wishart moments)
and has an explicit fixed point when ``h >= 1``. ``E sigma_t`` (hence ``E W2^2``) does
not close on these moments: :func:`w2sq_mix` gives a Jensen lower bound and a
moment-matched approximation.

Categorical under ``mix(alpha, "fresh"|"fixed")`` is Wright–Fisher with migration
from the human pool: :func:`wf_mix_moments` (E p_t, E sum p_i^2) and
:func:`wf_mix_survivors` (the exact law of each category's count, a Markov chain on
0..M). Weighted fresh data (He, Xu, Cheng 2025) is :func:`weighted_fresh_moments`.

Everything here runs on the host in NumPy float64.

References:
    Shumailov et al., Nature 631 (2024) (mix with 10% human data); He, Xu, Cheng,
    Recursive Learning Without Collapse, arXiv 2502.18049 (2025); Ewens, Mathematical
    Population Genetics (2004) (Wright–Fisher with migration). THEORY.md section 11.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import special

from jaxcollapse.theory._mix_common import (
    _as_mean_cov,
    _check_int,
    _check_source,
    _check_unit,
    _n_human,
)
from jaxcollapse.theory._mixing_wf import (
    WFMixMoments,
    wf_mix_moments,
    wf_mix_stationary,
    wf_mix_survivors,
)
from jaxcollapse.theory._weighted_fresh import (
    WeightedMoments,
    optimal_weight,
    weighted_fresh_moments,
    weighted_mean_variance,
)

__all__ = ["MixMoments", "W2Approx", "WFMixMoments", "WeightedMoments", "mix_moments",
           "mix_stationary", "optimal_weight", "smallest_alpha", "w2sq_mix",
           "weighted_fresh_moments", "weighted_mean_variance", "wf_mix_moments",
           "wf_mix_stationary", "wf_mix_survivors"]


# ------------------------------------------------------------------- Gaussian, mix


class MixMoments(NamedTuple):
    """Exact moments of the Gaussian loop under mix, generations 0..n.

    Attributes:
        mean: E mu_t, shape ``(n + 1, d)``.
        second: E mu_t mu_t^T, shape ``(n + 1, d, d)``.
        cov: E Sigma_t, shape ``(n + 1, d, d)``.
        mean_shift: E |mu_t - mu_0|^2, shape ``(n + 1,)``.

    Example:
        >>> mix_moments(3, 10, 0.5).cov.shape
        (4, 1, 1)
    """

    mean: np.ndarray
    second: np.ndarray
    cov: np.ndarray
    mean_shift: np.ndarray


def _pool_terms(h, m, S, n_pool):
    """E a a^T and E q (subset mean's second moment, subset scatter) for h rows."""
    h = np.asarray(h, float)[..., None, None]
    hs = np.maximum(h, 1.0)
    fpc = 1.0 if n_pool is None else (n_pool - h) / (n_pool - 1.0)
    inflate = 1.0 if n_pool is None else n_pool / (n_pool - 1.0)
    A = np.outer(m, m) + S * fpc / hs
    Eq = np.maximum(h - 1.0, 0.0) * inflate * S
    return A, Eq


def _mix_step(state, h, M, D, m, A, Eq, fixed):
    e, P, V, C = state
    s = M - h
    hv, sv = h[..., None], s[..., None]
    h2, s2 = h[..., None, None], s[..., None, None]
    if not fixed:
        C = m[None, :, None] * e[..., None, :]
    CT = np.swapaxes(C, -1, -2)
    e_new = (hv * m + sv * e) / M
    P_new = (h2**2 * A + h2 * s2 * (C + CT) + s2**2 * P + s2 * V) / M**2
    V_new = (Eq + np.maximum(s2 - 1.0, 0.0) * V + (h2 * s2 / M) * (A - C - CT + P)
             + np.where(s2 > 0, h2 / M, 0.0) * V) / D
    C_new = (h2 * A + s2 * C) / M if fixed else C
    return e_new, P_new, V_new, C_new


def _mix_setup(n_samples, alpha, source, human_mean, human_cov, mean0, cov0, n_pool, ddof):
    M = _check_int(n_samples, "n_samples", 2)
    _check_source(source)
    if ddof not in (0, 1):
        raise ValueError(f"ddof must be 0 or 1; got {ddof!r}")
    m, S = _as_mean_cov(human_mean, human_cov, "human")
    mu0, S0 = _as_mean_cov(m if mean0 is None else mean0, S if cov0 is None else cov0,
                           "generation-0")
    if mu0.shape != m.shape:
        raise ValueError(f"mean0 must have shape {m.shape}; got {mu0.shape}")
    h = np.atleast_1d(np.asarray(alpha))
    if h.dtype.kind != "i":  # alpha given as fractions
        h = np.array([_n_human(a, M) for a in np.atleast_1d(_check_unit(alpha, "alpha"))])
    if n_pool is not None:
        n_pool = _check_int(n_pool, "n_pool", 2)
        if h.max() > n_pool:
            raise ValueError(f"n_pool={n_pool} is smaller than the {h.max()} human rows "
                             f"round(alpha * n_samples) needs")
    return M, h.astype(float), m, S, mu0, S0, n_pool, float(M - ddof)


def _mix_run(n, M, h, m, S, mu0, S0, n_pool, D, fixed):
    A, Eq = _pool_terms(h, m, S, n_pool)
    B = h.shape[0]
    e = np.broadcast_to(mu0, (B,) + mu0.shape).copy()
    P = np.broadcast_to(np.outer(mu0, mu0), (B,) + S0.shape).copy()
    V = np.broadcast_to(S0, (B,) + S0.shape).copy()
    C = np.broadcast_to(np.outer(m, mu0), (B,) + S0.shape).copy()
    out = [(e, P, V)]
    state = (e, P, V, C)
    for _ in range(n):
        state = _mix_step(state, h, M, D, m, A, Eq, fixed)
        out.append(state[:3])
    e, P, V = (np.stack(x, axis=1) for x in zip(*out, strict=True))
    shift = np.trace(P, axis1=-2, axis2=-1) - 2 * e @ mu0 + mu0 @ mu0
    return MixMoments(e, P, V, shift)


def mix_moments(n_generations: int, n_samples: int, alpha: Any, *, source: str = "fresh",
                human_mean: Any = 0.0, human_cov: Any = 1.0, mean0: Any = None,
                cov0: Any = None, n_pool: int | None = None, ddof: int = 1) -> MixMoments:
    """E mu_t, E mu_t mu_t^T, E Sigma_t and E|mu_t - mu_0|^2 under mix(alpha, source).

    Args:
        n_generations: n >= 0.
        n_samples: M, the training-set size (human plus synthetic rows).
        alpha: human fraction in [0, 1] (``round(alpha M)`` human rows, as the
            simulator); a scalar, or an array for a batch (leading axis of the output).
        source: ``"fresh"`` (a new random human subset every generation) or ``"fixed"``
            (one random subset, reused).
        human_mean, human_cov: the human pool's mean ``(d,)`` and covariance ``(d, d)``
            with ``ddof=0`` (scalars in one dimension).
        mean0, cov0: generation 0 (default: the pool's).
        n_pool: the pool's size N (subsets without replacement), or None (infinite).
        ddof: the fit's ``ddof`` (the Gaussian family's default is 1).

    Returns:
        :class:`MixMoments`; fields have shape ``(n + 1, ...)``, or ``(B, n + 1, ...)``
        for an array ``alpha`` of length B.

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md section 11.

    Example:
        >>> r = mix_moments(2, 10, 0.0)  # replace: E|mu_t - mu_0|^2 = t/M
        >>> [round(float(x), 6) for x in r.mean_shift]
        [0.0, 0.1, 0.2]
        >>> mix_moments(2, 10, 1.5)
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in [0, 1]; got 1.5
    """
    n = _check_int(n_generations, "n_generations", 0)
    M, h, m, S, mu0, S0, n_pool, D = _mix_setup(n_samples, alpha, source, human_mean,
                                                human_cov, mean0, cov0, n_pool, ddof)
    res = _mix_run(n, M, h, m, S, mu0, S0, n_pool, D, source == "fixed")
    if np.ndim(alpha) == 0:
        res = MixMoments(*(x[0] for x in res))
    return res


def mix_stationary(n_samples: int, alpha: float, *, source: str = "fresh",
                   human_mean: Any = 0.0, human_cov: Any = 1.0, mean0: Any = None,
                   cov0: Any = None, n_pool: int | None = None, ddof: int = 1) -> MixMoments:
    """The fixed point (t -> infinity) of :func:`mix_moments`; needs round(alpha M) >= 1.

    Returns a :class:`MixMoments` without the generation axis.

    References:
        THEORY.md section 11.

    Example:
        >>> r = mix_stationary(100, 0.1)
        >>> round(float(r.mean_shift), 5)  # replace would grow as t/M without bound
        0.055
    """
    M, h, m, S, mu0, S0, n_pool, D = _mix_setup(n_samples, alpha, source, human_mean,
                                                human_cov, mean0, cov0, n_pool, ddof)
    if h[0] < 1:
        raise ValueError(f"alpha={alpha} gives round(alpha * n_samples) = 0 human rows: no "
                         "fixed point (E|mu_t - mu_0|^2 grows without bound)")
    A, Eq = _pool_terms(h, m, S, n_pool)
    fixed = source == "fixed"

    def step(e, P, V, C):
        out = _mix_step((e[None], P[None], V[None], C[None]), h, M, D, m, A, Eq, fixed)
        return tuple(y[0] for y in out)

    return _fixed_point(step, m.shape[0], mu0)


def _fixed_point(step, d, mu0) -> MixMoments:
    """The fixed point of an affine moment map ``step(e, P, V, C) -> (e', P', V', C')``
    (``e (d,)``, the rest ``(d, d)``), by one linear solve."""
    sizes = (d, d * d, d * d, d * d)

    def f(x):
        parts = np.split(x, np.cumsum(sizes)[:-1])
        st = (parts[0], *(p.reshape(d, d) for p in parts[1:]))
        return np.concatenate([np.reshape(y, -1) for y in step(*st)])

    n_x = sum(sizes)
    b = f(np.zeros(n_x))
    lin = np.stack([f(col) - b for col in np.eye(n_x)], axis=1)
    x = np.linalg.lstsq(np.eye(n_x) - lin, b, rcond=None)[0]
    e = x[:d]
    P = x[d: d + d * d].reshape(d, d)
    V = x[d + d * d: d + 2 * d * d].reshape(d, d)
    shift = np.trace(P) - 2 * e @ mu0 + mu0 @ mu0
    return MixMoments(e, P, V, np.asarray(shift))


class W2Approx(NamedTuple):
    """E W2^2 of the 1-D loop: a Jensen lower bound and an approximation, ``(n + 1,)``.

    Attributes:
        lower: E(mu_t - mu_0)^2 + (sqrt(E s_t^2) - s_0)^2 (E s_t <= sqrt(E s_t^2)).
        approx: E s_t approximated as the mean of a scaled chi with the first two
            moments of s_t^2 (the second from a linearised recursion).

    Example:
        >>> r = w2sq_mix(5, 50, 0.1)
        >>> bool(r.lower[5] <= r.approx[5])
        True
    """

    lower: np.ndarray
    approx: np.ndarray


def w2sq_mix(n_generations: int, n_samples: int, alpha: float, *, source: str = "fresh",
             human_mean: float = 0.0, human_var: float = 1.0, mean0: float | None = None,
             var0: float | None = None, n_pool: int | None = None, ddof: int = 1
             ) -> W2Approx:
    """E W2^2(N(mu_t, s_t^2), N(mu_0, s_0^2)) in one dimension under mix: bound and
    approximation (E s_t does not close on the exact moments of :func:`mix_moments`).

    The approximation tracks Var s_t^2 through the linearised recursion
    W' = [2(s-1)(W + V^2) + (s-1)^2 W + 2(h-1)S^2 + 2((hs/M) Q)^2]/D^2 (Q the expected
    squared gap between human and synthetic means), then takes E s_t of a scaled chi
    with E s_t^2 = V and Var s_t^2 = W (W is exact at alpha = 0, where the
    approximation is within 1% of the exact E W2^2). Its error against Monte Carlo is
    measured in tests/test_theory_mixing.py.

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md sections 2 and 11.

    Example:
        >>> r = w2sq_mix(3, 100, 0.0)
        >>> round(float(r.approx[3]), 4)  # exact (THEORY.md section 2): 0.0451
        0.0454
    """
    n = _check_int(n_generations, "n_generations", 0)
    mom = mix_moments(n, n_samples, alpha, source=source, human_mean=human_mean,
                      human_cov=human_var, mean0=mean0, cov0=var0, n_pool=n_pool, ddof=ddof)
    M = int(n_samples)
    h = float(_n_human(alpha, M))
    s = M - h
    D = float(M - ddof)
    S = float(human_var)
    s0sq = float(mom.cov[0, 0, 0])
    s0 = np.sqrt(s0sq)
    V = mom.cov[:, 0, 0]
    e, P = mom.mean[:, 0], mom.second[:, 0, 0]
    m = float(human_mean)
    W = np.zeros(n + 1)
    for t in range(n):
        Q = S / max(h, 1.0) + m * m - 2 * m * e[t] + P[t] + V[t] / max(s, 1.0)
        W[t + 1] = (2 * max(s - 1, 0) * (W[t] + V[t] ** 2) + max(s - 1, 0) ** 2 * W[t]
                    + 2 * max(h - 1, 0) * S * S + 2 * (h * s / M * Q) ** 2) / D**2
    lower = mom.mean_shift + (np.sqrt(V) - s0) ** 2
    with np.errstate(divide="ignore", invalid="ignore"):
        nu = np.where(W > 0, 2 * V**2 / np.where(W > 0, W, 1.0), np.inf)
        # E sqrt(V chi2_nu / nu) = sqrt(V) sqrt(2/nu) Gamma((nu+1)/2)/Gamma(nu/2)
        big = nu > 1e8
        nus = np.where(big, 1.0, nu)
        ratio = np.exp(0.5 * np.log(2 / nus) + special.gammaln((nus + 1) / 2)
                       - special.gammaln(nus / 2))
        ratio = np.where(big, 1.0, ratio)
    e_sigma = np.sqrt(V) * ratio
    approx = mom.mean_shift + V - 2 * s0 * e_sigma + s0sq
    return W2Approx(lower, approx)


def smallest_alpha(target: float, n_generations: int, n_samples: int, *,
                   metric: str = "mean_shift", **kwargs: Any) -> float:
    """The smallest human fraction alpha = h/M whose error at generation n is <= target.

    Args:
        target: the error to stay below (> 0).
        n_generations: the generation n at which the error is measured.
        n_samples: M.
        metric: ``"mean_shift"`` (E|mu_n - mu_0|^2, exact) or ``"w2sq"`` (1-D
            E W2^2, by the approximation of :func:`w2sq_mix`).
        **kwargs: passed to :func:`mix_moments` (source, human_mean, human_cov, ...).

    Returns:
        h/M for the smallest number of human rows h that reaches the target.

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md section 11.

    Example:
        >>> smallest_alpha(0.05, 100, 100)
        0.12
        >>> smallest_alpha(0.0, 100, 100)
        Traceback (most recent call last):
        ...
        ValueError: target must be a finite number > 0; got 0.0
    """
    if not np.isfinite(target) or target <= 0:
        raise ValueError(f"target must be a finite number > 0; got {target!r}")
    if metric not in ("mean_shift", "w2sq"):
        raise ValueError(f"metric must be 'mean_shift' or 'w2sq'; got {metric!r}")
    M = _check_int(n_samples, "n_samples", 2)
    n = _check_int(n_generations, "n_generations", 0)
    hs = np.arange(M + 1)
    if metric == "mean_shift":
        err = mix_moments(n, M, hs, **kwargs).mean_shift[:, n]
    else:
        kw = dict(kwargs)
        if "human_cov" in kw:
            kw["human_var"] = kw.pop("human_cov")
        if "cov0" in kw:
            kw["var0"] = kw.pop("cov0")
        err = np.array([w2sq_mix(n, M, h / M, **kw).approx[n] for h in hs])
    ok = np.nonzero(err <= target)[0]
    if ok.size == 0:
        raise ValueError(f"target={target} is unreachable: no alpha in [0, 1] keeps the "
                         f"{metric} at generation {n} below it (the smallest is "
                         f"{err.min():.4g}, at alpha={hs[np.argmin(err)] / M})")
    return float(hs[ok[0]] / M)
