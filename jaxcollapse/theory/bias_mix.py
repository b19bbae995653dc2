"""The Gaussian loop under ``mix(alpha, source)`` with sampling bias (THEORY.md 9 and 11).

Each generation fits (pooled, ``ddof`` as the family) ``h = round(alpha M)`` human rows
(a random subset of a pool with mean ``m`` and covariance ``S``, as in
:mod:`jaxcollapse.theory.mixing`) and ``s = M - h`` synthetic rows drawn from the
biased model ``N(mu_t, lam Sigma_t)`` (:func:`jaxcollapse.steps.sampling_bias`).

Derivation. Given the state, the synthetic rows' mean ``b`` has ``E b = mu_t`` and
covariance ``lam Sigma_t / s``, and their scatter has expectation
``(s - 1) lam Sigma_t``; the human subset's mean ``a`` and scatter ``q`` do not depend
on the model. The pooled fit is ``mu' = (h a + s b)/M`` and
``D Sigma' = q + Q_s + (h s/M)(a - b)(a - b)^T`` (Chan's pooled scatter, ``D = M -
ddof``), so with ``e = E mu_t``, ``P = E mu_t mu_t^T``, ``V = E Sigma_t``,
``C = E a mu_t^T`` and ``A = E a a^T``::

    e' = (h m + s e)/M
    P' = (h^2 A + h s (C + C^T) + s^2 P + s lam V)/M^2
    V' = (E q + (s - 1) lam V + (h s/M)(A - C - C^T + P) + (h/M) lam V)/D
    C' = (h A + s C)/M        (source "fixed");   C = m e^T   (source "fresh")

(``E (a - b)(a - b)^T = A - C - C^T + P + lam V/s`` gives the between-group term.)
``V`` enters only through the synthetic draws' law, so this is
:mod:`jaxcollapse.theory.mixing`'s recursion with ``V`` replaced by ``lam V`` where
it is read: at ``lam = 1`` it is :func:`~jaxcollapse.theory.mixing.mix_moments`
exactly. With ``h = 0`` it is the replace loop with bias
(:mod:`jaxcollapse.theory.bias`): ``E Sigma_t = (lam (M - 1)/D)^t Sigma_0``.

Everything here runs on the host in NumPy float64.

References:
    Alemohammad et al., Self-Consuming Generative Models Go MAD, ICLR 2024; Shumailov
    et al., Nature 631 (2024). THEORY.md sections 9 and 11.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxcollapse.theory._checks import check_lam
from jaxcollapse.theory._mix_common import _check_int
from jaxcollapse.theory.mixing import (
    MixMoments,
    _fixed_point,
    _mix_setup,
    _mix_step,
    _pool_terms,
)

__all__ = ["bias_mix_moments", "bias_mix_stationary"]


def _lam(lam: Any) -> float:
    check_lam(lam)
    if np.ndim(lam) != 0:
        raise ValueError(f"lam must be a scalar in (0, 1]; got shape {np.shape(lam)}")
    return float(lam)


def _biased_step(state, lam, *rest):
    e, P, V, C = state
    e2, P2, V2, C2 = _mix_step((e, P, lam * V, C), *rest)
    return e2, P2, V2, C2


def bias_mix_moments(n_generations: int, n_samples: int, alpha: Any, lam: Any, *,
                     source: str = "fresh", human_mean: Any = 0.0, human_cov: Any = 1.0,
                     mean0: Any = None, cov0: Any = None, n_pool: int | None = None,
                     ddof: int = 1) -> MixMoments:
    """E mu_t, E mu_t mu_t^T, E Sigma_t and E|mu_t - mu_0|^2 under mix with sampling bias.

    Args:
        n_generations: n >= 0.
        n_samples: M, the training-set size (human plus synthetic rows).
        alpha: human fraction in [0, 1] (``round(alpha M)`` human rows); a scalar, or an
            array for a batch (leading axis of the output).
        lam: the sampling bias in (0, 1]: synthetic rows come from N(mu_t, lam Sigma_t).
        source, human_mean, human_cov, mean0, cov0, n_pool, ddof: as
            :func:`jaxcollapse.theory.mixing.mix_moments`.

    Returns:
        :class:`~jaxcollapse.theory.mixing.MixMoments`; fields have shape
        ``(n + 1, ...)``, or ``(B, n + 1, ...)`` for an array ``alpha`` of length B.

    References:
        Alemohammad et al. (ICLR 2024); Shumailov et al. (2024); THEORY.md 9 and 11.

    Example:
        >>> r = bias_mix_moments(2, 10, 0.0, 0.5)  # replace with bias: E s_t^2 = lam^t
        >>> [round(float(v), 6) for v in r.cov[:, 0, 0]]
        [1.0, 0.5, 0.25]
        >>> bias_mix_moments(2, 10, 0.1, 1.5)
        Traceback (most recent call last):
        ...
        ValueError: lam must be in (0, 1] ...; got 1.5
    """
    n = _check_int(n_generations, "n_generations", 0)
    lam = _lam(lam)
    M, h, m, S, mu0, S0, n_pool, D = _mix_setup(n_samples, alpha, source, human_mean,
                                                human_cov, mean0, cov0, n_pool, ddof)
    A, Eq = _pool_terms(h, m, S, n_pool)
    fixed = source == "fixed"
    B = h.shape[0]
    state = (np.broadcast_to(mu0, (B,) + mu0.shape).copy(),
             np.broadcast_to(np.outer(mu0, mu0), (B,) + S0.shape).copy(),
             np.broadcast_to(S0, (B,) + S0.shape).copy(),
             np.broadcast_to(np.outer(m, mu0), (B,) + S0.shape).copy())
    out = [state[:3]]
    for _ in range(n):
        state = _biased_step(state, lam, h, M, D, m, A, Eq, fixed)
        out.append(state[:3])
    e, P, V = (np.stack(x, axis=1) for x in zip(*out, strict=True))
    shift = np.trace(P, axis1=-2, axis2=-1) - 2 * e @ mu0 + mu0 @ mu0
    res = MixMoments(e, P, V, shift)
    if np.ndim(alpha) == 0:
        res = MixMoments(*(x[0] for x in res))
    return res


def bias_mix_stationary(n_samples: int, alpha: float, lam: Any, *, source: str = "fresh",
                        human_mean: Any = 0.0, human_cov: Any = 1.0, mean0: Any = None,
                        cov0: Any = None, n_pool: int | None = None,
                        ddof: int = 1) -> MixMoments:
    """The limit t -> infinity of :func:`bias_mix_moments` (no generation axis).

    With ``h = round(alpha M) >= 1`` it is the recursion's unique fixed point, which
    does not depend on generation 0. With ``h = 0`` (replace) the limit exists when
    ``g = lam (M - 1)/D < 1`` and depends on generation 0: ``E mu = mu_0``,
    ``E Sigma = 0`` and ``E|mu - mu_0|^2 = (lam/M) tr Sigma_0 / (1 - g)`` (the series
    of :func:`jaxcollapse.theory.bias.mean_shift`); ``g = 1`` (unbiased fit, lam = 1)
    has no limit and raises.

    References:
        Alemohammad et al. (ICLR 2024); THEORY.md sections 9 and 11.

    Example:
        >>> r = bias_mix_stationary(100, 0.0, 0.9)  # replace: (lam/M)/(1 - lam)
        >>> round(float(r.mean_shift), 6)
        0.09
        >>> round(float(bias_mix_stationary(100, 0.1, 0.9).cov[0, 0]), 4) < 1.0
        True
    """
    lam = _lam(lam)
    if np.ndim(alpha) != 0:
        raise ValueError(f"alpha must be a scalar fraction; got shape {np.shape(alpha)}")
    M, h, m, S, mu0, S0, n_pool, D = _mix_setup(n_samples, alpha, source, human_mean,
                                                human_cov, mean0, cov0, n_pool, ddof)
    d = m.shape[0]
    if h[0] < 1:
        g = lam * (M - 1) / D
        if g >= 1:
            raise ValueError(f"alpha={alpha} gives no human rows and lam={lam} with "
                             f"ddof={ddof} keeps E Sigma_t constant: E|mu_t - mu_0|^2 grows "
                             "without bound (no limit)")
        shift = lam * np.trace(S0) / (M * (1.0 - g))
        P = np.outer(mu0, mu0) + lam * S0 / (M * (1.0 - g))
        return MixMoments(mu0.copy(), P, np.zeros_like(S0), np.asarray(shift))
    A, Eq = _pool_terms(h, m, S, n_pool)
    fixed = source == "fixed"

    def step(e, P, V, C):
        out = _biased_step((e[None], P[None], V[None], C[None]), lam, h, M, D, m, A, Eq,
                           fixed)
        return tuple(y[0] for y in out)

    return _fixed_point(step, d, mu0)
