"""The weighted (relaxed) mix regime: exact moment recursions, differentiable in alpha.

``mix(alpha, source, weighting="relaxed")`` (:class:`jaxcollapse.regimes.Mix`) fits
each generation, by weighted maximum likelihood with total weight M, on M synthetic
draws of weight ``1 - alpha`` each and on ``h = min(N, M)`` human rows (a uniformly
random subset of a pool of ``N`` rows with mean ``m`` and covariance ``S``, ddof 0)
sharing the weight ``alpha M``. With ``b = alpha``, ``c = 1 - alpha``, the subset's
mean ``a`` (``A = E a a^T``, ``E q`` its expected scatter, as in
:mod:`jaxcollapse.theory.mixing`) and the moments ``e = E mu_t``, ``P = E mu_t mu_t^T``,
``V = E Sigma_t``, ``C = E a mu_t^T``::

    e' = b m + c e
    P' = b^2 A + b c (C + C^T) + c^2 (P + V/M)
    V' = [(b M/h) E q + c (M - 1) V + b c M (A - C - C^T + P + V/M)] / (M - ddof)
    C' = b A + c C            (source "fixed": the same subset every generation)
    C  = m e^T                (source "fresh": a new subset, independent of the past)

exact for every t (the weighted pooled scatter is ``(bM/h) q + c Q + b c M (a - xbar)
(a - xbar)^T`` with Q the draws' scatter, ``E Q = (M - 1) Sigma``). At alpha = 0 it is
replace; at alpha = 1 every fit is the human subset's. The map is affine in the
moments and smooth in alpha, so the derivative of any moment with respect to alpha
(or to a schedule alpha_1..alpha_n) exists; :func:`relaxed_moments` takes either.

References:
    Shumailov et al., Nature 631 (2024) (mix with human data); Chan, Golub, LeVeque,
    Updating formulae and a pairwise algorithm for computing sample variances (1979).
    THEORY.md section 11.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxcollapse.theory._mix_common import _check_int
from jaxcollapse.theory.mixing import MixMoments, _fixed_point, _mix_setup, _pool_terms

__all__ = ["relaxed_moments", "relaxed_stationary"]


def _step(state, b, M, D, h, m, A, Eq, fixed):
    e, P, V, C = state
    c = 1.0 - b
    if not fixed:
        C = np.outer(m, e)
    CT = C.T
    e_new = b * m + c * e
    P_new = b * b * A + b * c * (C + CT) + c * c * (P + V / M)
    V_new = ((b * M / h) * Eq + c * (M - 1.0) * V
             + b * c * M * (A - C - CT + P + V / M)) / D
    C_new = b * A + c * C if fixed else C
    return e_new, P_new, V_new, C_new


def _setup(n_samples, source, human_mean, human_cov, mean0, cov0, n_pool, ddof):
    M, _, m, S, mu0, S0, n_pool, D = _mix_setup(n_samples, 0.0, source, human_mean,
                                                human_cov, mean0, cov0, n_pool, ddof)
    h = float(M if n_pool is None else min(n_pool, M))
    A, Eq = _pool_terms(np.array([h]), m, S, n_pool)
    return M, h, m, mu0, S0, n_pool, A[0], Eq[0], D


def _check_fractions(alpha, n):
    a = np.asarray(alpha, float)
    if a.ndim > 1 or (a.ndim == 1 and a.shape[0] != n):
        raise ValueError(f"alpha must be a fraction or a schedule of shape "
                         f"(n_generations,) = ({n},); got shape {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"alpha must lie in [0, 1]; got {a.tolist()}")
    return np.broadcast_to(a, (n,))


def relaxed_moments(n_generations: int, n_samples: int, alpha: Any, *,
                    source: str = "fresh", human_mean: Any = 0.0, human_cov: Any = 1.0,
                    mean0: Any = None, cov0: Any = None, n_pool: int | None = None,
                    ddof: int = 1) -> MixMoments:
    """E mu_t, E mu_t mu_t^T, E Sigma_t and E|mu_t - mu_0|^2 under the relaxed mix.

    Args:
        n_generations: n >= 0.
        n_samples: M (synthetic draws a generation; the human rows weigh alpha M).
        alpha: the human weight in [0, 1], or a schedule alpha_1..alpha_n (shape
            ``(n,)``).
        source, human_mean, human_cov, mean0, cov0, n_pool, ddof: as
            :func:`jaxcollapse.theory.mixing.mix_moments`; the subset has
            ``min(n_pool, M)`` rows (all of a pool smaller than M).

    Returns:
        :class:`~jaxcollapse.theory.mixing.MixMoments`, fields ``(n + 1, ...)``.

    References:
        THEORY.md section 11 (the relaxed estimator of jaxcollapse.regimes.Mix).

    Example:
        >>> r = relaxed_moments(2, 10, 0.0)  # alpha = 0 is replace: t/M
        >>> [round(float(x), 6) for x in r.mean_shift]
        [0.0, 0.1, 0.2]
        >>> float(relaxed_moments(1, 10, 1.0, n_pool=10).mean_shift[1])  # the pool itself
        0.0
    """
    n = _check_int(n_generations, "n_generations", 0)
    M, h, m, mu0, S0, n_pool, A, Eq, D = _setup(n_samples, source, human_mean, human_cov,
                                                mean0, cov0, n_pool, ddof)
    a = _check_fractions(alpha, n)
    state = (mu0, np.outer(mu0, mu0), S0, np.outer(m, mu0))
    out = [state[:3]]
    for t in range(n):
        state = _step(state, a[t], M, D, h, m, A, Eq, source == "fixed")
        out.append(state[:3])
    e, P, V = (np.stack(x) for x in zip(*out, strict=True))
    shift = np.trace(P, axis1=-2, axis2=-1) - 2 * e @ mu0 + mu0 @ mu0
    return MixMoments(e, P, V, shift)


def relaxed_stationary(n_samples: int, alpha: float, *, source: str = "fresh",
                       human_mean: Any = 0.0, human_cov: Any = 1.0, mean0: Any = None,
                       n_pool: int | None = None, ddof: int = 1) -> MixMoments:
    """The fixed point (t -> infinity) of :func:`relaxed_moments` for alpha in (0, 1].

    Returns a :class:`~jaxcollapse.theory.mixing.MixMoments` without the generation
    axis (``mean0`` only sets the reference of ``mean_shift``).

    References:
        THEORY.md section 11.

    Example:
        >>> r = relaxed_stationary(100, 0.1)
        >>> round(float(r.mean_shift), 5)
        0.04573
    """
    M, h, m, mu0, S0, n_pool, A, Eq, D = _setup(n_samples, source, human_mean, human_cov,
                                                mean0, None, n_pool, ddof)
    a = float(_check_fractions(alpha, 1)[0])
    if a <= 0:
        raise ValueError(f"alpha must be > 0 for a fixed point (alpha = 0 is replace, "
                         f"whose E|mu_t - mu_0|^2 grows without bound); got {alpha}")
    return _fixed_point(lambda e, P, V, C: _step((e, P, V, C), a, M, D, h, m, A, Eq,
                                                source == "fixed"), m.shape[0], mu0)
