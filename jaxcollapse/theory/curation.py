"""Closed forms for curated loops: Bradley–Terry choice among K candidates (THEORY.md 10).

Each kept draw is chosen among ``K`` independent draws ``X_1..X_K`` of the current law
``p`` with probability ``e^{r(X_i)} / Σ_j e^{r(X_j)}``. On a finite alphabet the kept
draw has law ``p(x) H_p(x)`` with

    H_p(x) = K e^{r(x)} ∫_0^∞ e^{-t e^{r(x)}} φ_p(t)^{K-1} dt,
    φ_p(t) = Σ_y p(y) e^{-t e^{r(y)}},

from ``1/(a + S) = ∫_0^∞ e^{-t(a + S)} dt`` and the independence of the candidates. With
a reference share, ``p_{t+1} = (1 - η) p_ref + η p_t H_{p_t}`` is exact in expectation
(the fit is the frequency of the kept draws). For ``K = 2``,
``H_p(x) = 2 Σ_y p(y) e^{r(x)} / (e^{r(x)} + e^{r(y)})``; as ``K -> ∞``,
``H_p(x) -> e^{r(x)} / E_p e^r``.

The quadrature (:func:`selection_factor`). Rewards are shifted so that their maximum is
0 (``H`` does not change), ``a = e^{r(x)} ∈ (0, 1]``, and ``t = e^u``, so that
``H(x) = K a ∫ g_a(u) du`` with ``g_a(u) = e^u exp(-a e^u) φ(e^u)^{K-1}``, analytic in the
strip ``|Im u| < π/2``, decaying like ``e^u`` on the left and double exponentially on
the right. The trapezoidal rule with ``n_nodes`` nodes on ``[u_lo, u_hi]``,
``u_lo = log(ε/K)``, ``u_hi = log log(K/ε) - log a_min`` (``ε = 1e-17`` in float64,
``1e-8`` in float32, ``a_min = e^{min r - max r}``) makes three absolute errors in each
``H(x)``: the left tail ``<= K a e^{u_lo} <= ε``, the right tail
``<= K exp(-a e^{u_hi}) <= ε``, and the discretisation ``<= 4 K e^{-2π²/(3h)}`` with
step ``h = (u_hi - u_lo)/(n_nodes - 1)`` (Trefethen & Weideman, Thm 5.1, on the strip
``|Im u| <= π/3`` where ``∫ |g_a| <= 2/a`` since ``|φ| <= 1``). The kept law ``p H``
therefore has total absolute error ``<= 2ε + 4K e^{-2π²/(3h)}``. The default
``n_nodes = 1024`` makes this below 1e-16 when the reward range ``max r - min r`` is at
most 60 nats and ``K <= 10^6`` (``h <= 0.12``); for a wider range raise ``n_nodes``
(the step grows linearly with the range). Results match enumeration to ~1e-14.

References:
    Ferbach, Bertrand, Bose, Gidel, Self-Consuming Generative Models with Curated Data
    Provably Optimize Human Preferences, NeurIPS 2024 (arXiv 2407.09499); Trefethen &
    Weideman, The exponentially convergent trapezoidal rule, SIAM Review 56 (2014).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = [
    "CurationPath",
    "curated_gaussian_moments",
    "curated_law",
    "curation_fixed_point",
    "curation_iterate",
    "expected_reward",
    "nodes_for",
    "selection_factor",
    "selection_factor_limit",
    "selection_factor_pair",
    "tilted_gaussian",
]

_SUM_TOL = 1e-4
N_NODES = 1024


def _check_probs(probs: Any, name: str = "probs") -> jax.Array:
    a = np.asarray(probs, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < 2:
        raise ValueError(f"{name} must have shape (n,) with n >= 2; got {a.shape}")
    if not np.all(np.isfinite(a)) or np.any(a < 0):
        raise ValueError(f"{name} must be finite and >= 0; got {a.tolist()[:8]}")
    if abs(a.sum() - 1.0) > _SUM_TOL:
        raise ValueError(f"{name} must sum to 1 (within {_SUM_TOL}); got {a.sum()}")
    p = jnp.asarray(probs)
    return p if jnp.issubdtype(p.dtype, jnp.floating) else p.astype(jnp.result_type(float))


def _check_probs_reward(probs: Any, reward: Any) -> tuple[jax.Array, jax.Array]:
    p = _check_probs(probs)
    return p, check_reward(reward, p.shape[0])


def check_reward(reward: Any, n: int, name: str = "reward") -> jax.Array:
    """Validates a reward array of shape ``(n,)`` with finite values (host side)."""
    if callable(reward):
        raise TypeError(f"{name} must be an array of one reward per category here; "
                        f"got the function {reward!r}")
    if np.shape(reward) != (n,):
        raise ValueError(f"{name} must have shape ({n},), one reward per category; "
                         f"got {np.shape(reward)}")
    if isinstance(reward, jax.core.Tracer):  # under jax.grad/jit: the shape only
        return reward
    a = np.asarray(reward, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; got {a.tolist()[:8]}")
    return jnp.asarray(reward)


def check_k(k: Any, allow_inf: bool = True) -> float:
    """Validates the number of candidates K: an integer >= 2 (or ``math.inf``)."""
    if allow_inf and isinstance(k, float) and math.isinf(k) and k > 0:
        return math.inf
    if isinstance(k, bool) or not isinstance(k, int | np.integer | float | np.floating) or (
            not math.isfinite(k)) or k != round(k):
        allowed = "an integer >= 2 or math.inf" if allow_inf else "an integer >= 2"
        raise TypeError(f"k must be {allowed}; got {k!r}")
    if k < 2:
        raise ValueError(f"k must be >= 2 (candidates per kept draw); got {k!r}")
    return float(k)


def check_eta(eta: Any) -> None:
    """Validates the synthetic share eta in [0, 1] (host side, when concrete)."""
    if isinstance(eta, jax.core.Tracer):
        return
    a = np.asarray(eta, dtype=np.float64)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        raise ValueError(f"eta must be in [0, 1] (share of synthetic data); got {eta!r}")


def selection_factor(probs: Any, reward: Any, k: Any, n_nodes: int = N_NODES) -> jax.Array:
    """``H_p(x)`` of Bradley–Terry choice among ``k`` candidates, by quadrature.

    Args:
        probs: the current law p, shape ``(n,)``.
        reward: one reward per category, shape ``(n,)``.
        k: candidates per kept draw, an integer >= 2 (``math.inf`` gives the limit).
        n_nodes: trapezoid nodes in ``u = log t`` (static); see the module docstring.

    Returns:
        ``H``, shape ``(n,)``; the kept draw has law ``p * H``.

    References:
        Ferbach et al. (NeurIPS 2024); THEORY.md section 10.

    Example:
        >>> h = selection_factor([0.5, 0.5], [0.0, 1.0], 2)
        >>> [round(float(x), 5) for x in h]  # 2 E[e^r(x)/(e^r(x)+e^r(Y))]
        [0.76894, 1.23106]
    """
    p, r = _check_probs_reward(probs, reward)
    kk = check_k(k)
    if math.isinf(kk):
        return selection_factor_limit(p, r)
    return _factor(p, r, kk, n_nodes)


def _eps(dtype) -> float:
    return 1e-17 if dtype == jnp.float64 else 1e-8


def nodes_for(reward_range: float, k: float, dtype=jnp.float64) -> int:
    """The fewest trapezoid nodes for which the quadrature of :func:`selection_factor`
    meets its error bound at ``ε`` (``1e-17`` in float64, ``1e-8`` in float32): the
    discretisation error ``4 K e^{-2π²/(3h)}`` is at most ``ε`` when
    ``h <= 2π² / (3 log(4K/ε))``, and the span ``u_hi - u_lo`` is
    ``log log(K/ε) + range + log(K/ε)``; so the kept law's total absolute error stays
    below ``3ε`` (module docstring). About 300 nodes in float64 for a range of 3 nats
    and K = 4, instead of the fixed 1024.

    Args:
        reward_range: ``max r - min r`` (nats), >= 0.
        k: candidates per kept draw (>= 2).
        dtype: the dtype the quadrature runs in.

    Example:
        >>> nodes_for(3.0, 4), nodes_for(3.0, 4, jnp.float32)
        (302, 85)
    """
    eps = _eps(jnp.dtype(dtype))
    span = math.log(math.log(k) - math.log(eps)) + float(reward_range) + (
        math.log(k) - math.log(eps))
    h = 2.0 * math.pi**2 / (3.0 * math.log(4.0 * k / eps))
    return max(16, math.ceil(span / h) + 1)


def _factor(p, r, k, n_nodes=N_NODES):
    dtype = jnp.result_type(p.dtype, jnp.asarray(r).dtype, float)
    p = p.astype(dtype)
    r = jnp.asarray(r, dtype)
    r = r - jnp.max(r)  # H is invariant to a shift; now a = e^r in (0, 1]
    a = jnp.exp(r)
    k = jnp.asarray(k, dtype)
    eps = _eps(dtype)
    log_amin = jnp.min(r)
    u_lo = jnp.log(eps) - jnp.log(k)
    u_hi = jnp.log(jnp.log(k) - jnp.log(eps)) - log_amin
    u = jnp.linspace(0.0, 1.0, n_nodes, dtype=dtype) * (u_hi - u_lo) + u_lo
    h = (u_hi - u_lo) / (n_nodes - 1)
    t = jnp.exp(u)
    # one table of exponentials serves φ and the integral: both are matrix-vector
    # products, so the step costs n_nodes x K exponentials per law
    e = jnp.exp(-t[:, None] * a[None, :])  # (nodes, K)
    phi = e @ p
    log_phi = jnp.log(jnp.maximum(phi, jnp.finfo(dtype).tiny))
    # trapezoid: end weights 1/2 (both ends are negligible by construction anyway)
    wts = jnp.ones((n_nodes,), dtype).at[0].set(0.5).at[-1].set(0.5) * h
    v = wts * jnp.exp(u + (k - 1) * log_phi)  # e^u φ^{K-1}: <= e^{u_hi}, no overflow
    return k * a * (v @ e)


def selection_factor_pair(probs: Any, reward: Any) -> jax.Array:
    """``H_p(x)`` for K = 2 in closed form: ``2 Σ_y p(y) e^{r(x)}/(e^{r(x)} + e^{r(y)})``.

    References:
        Ferbach et al. (NeurIPS 2024); THEORY.md section 10.

    Example:
        >>> [round(float(x), 6) for x in selection_factor_pair([0.5, 0.5], [0.0, 1.0])]
        [0.768941, 1.231059]
    """
    p, r = _check_probs_reward(probs, reward)
    # e^{r_x}/(e^{r_x} + e^{r_y}) = sigmoid(r_x - r_y), stable for any range
    return 2.0 * jnp.sum(jax.nn.sigmoid(r[:, None] - r[None, :]) * p[None, :], axis=1)


def selection_factor_limit(probs: Any, reward: Any) -> jax.Array:
    """``H_p(x)`` as K -> ∞: ``e^{r(x)} / E_p e^r`` (the exponential tilt).

    References:
        Ferbach et al. (NeurIPS 2024); THEORY.md section 10.

    Example:
        >>> [round(float(x), 6) for x in selection_factor_limit([0.5, 0.5], [0.0, 1.0])]
        [0.537883, 1.462117]
    """
    p, r = _check_probs_reward(probs, reward)
    r = r - jnp.max(r)
    w = jnp.exp(r)
    return w / jnp.sum(p * w)


def _next_law(p, r, k, eta, ref, n_nodes=N_NODES):
    if math.isinf(k):
        w = jnp.exp(r - jnp.max(r))
        kept = p * w / jnp.sum(p * w)
    else:
        kept = p * _factor(p, r, k, n_nodes)
        kept = kept / jnp.sum(kept)  # removes the quadrature's rounding from the total
    return (1.0 - eta) * ref + eta * kept


def _check_common(probs, reward, k, eta, reference):
    p, r = _check_probs_reward(probs, reward)
    kk = check_k(k)
    check_eta(eta)
    ref = p if reference is None else _check_probs(reference, "reference")
    if ref.shape != p.shape:
        raise ValueError(f"reference must have shape {p.shape}; got {ref.shape}")
    return p, r, kk, jnp.asarray(eta, p.dtype), ref.astype(p.dtype)


def curated_law(probs: Any, reward: Any, k: Any, eta: Any = 1.0,
                reference: Any = None) -> jax.Array:
    """``E[p_{t+1} | p_t] = (1 - η) p_ref + η p_t H_{p_t}``: exact for every sample size.

    Args:
        probs: p_t, shape ``(n,)``.
        reward: shape ``(n,)``.
        k: candidates per kept draw (integer >= 2, or ``math.inf``).
        eta: synthetic share in [0, 1].
        reference: p_ref, shape ``(n,)``; defaults to ``probs``.

    References:
        Ferbach et al. (NeurIPS 2024), eq. (4); THEORY.md section 10.

    Example:
        >>> [round(float(x), 6) for x in curated_law([0.5, 0.5], [0.0, 1.0], 2)]
        [0.384471, 0.615529]
    """
    p, r, kk, eta, ref = _check_common(probs, reward, k, eta, reference)
    return _next_law(p, r, kk, eta, ref)


def expected_reward(probs: Any, reward: Any) -> jax.Array:
    """``E_p r = Σ_x p(x) r(x)`` (probs may carry leading axes).

    Example:
        >>> float(expected_reward([0.25, 0.75], [0.0, 1.0]))
        0.75
    """
    return jnp.sum(jnp.asarray(probs) * jnp.asarray(reward), axis=-1)


def _entropy(p):
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0), axis=-1)


class CurationPath(NamedTuple):
    """The deterministic iteration of the exact map (leading axis: generations 0..n).

    Attributes:
        probs: ``(n + 1, K)`` laws.
        reward: ``(n + 1,)`` expected reward ``E_{p_t} r`` (rises every generation
            when eta = 1: Ferbach et al., Theorem 2.1).
        entropy: ``(n + 1,)`` Shannon entropy in nats.

    Example:
        >>> import jax.numpy as jnp
        >>> path = curation_iterate(jnp.array([0.5, 0.5]), jnp.array([0.0, 1.0]), 2, 3)
        >>> path.probs.shape, bool(path.reward[3] > path.reward[0])
        ((4, 2), True)
    """

    probs: jax.Array
    reward: jax.Array
    entropy: jax.Array


def curation_iterate(probs: Any, reward: Any, k: Any, n_generations: int, eta: Any = 1.0,
                     reference: Any = None) -> CurationPath:
    """Iterates ``p_{t+1} = (1 - η) p_ref + η p_t H_{p_t}`` for ``n_generations`` steps.

    This is the law of the next generation in expectation (exact for one step from a
    given p_t) and the M -> ∞ limit of the loop over many steps.

    References:
        Ferbach et al. (NeurIPS 2024); THEORY.md section 10.

    Example:
        >>> path = curation_iterate([0.5, 0.5], [0.0, 1.0], 2, 3)
        >>> [round(float(x), 4) for x in path.reward]
        [0.5, 0.6155, 0.7249, 0.817]
    """
    p, r, kk, eta, ref = _check_common(probs, reward, k, eta, reference)
    if not isinstance(n_generations, int | np.integer) or n_generations < 0:
        raise ValueError(f"n_generations must be an integer >= 0; got {n_generations!r}")

    def step(q, _):
        q1 = _next_law(q, r, kk, eta, ref)
        return q1, q1

    _, qs = lax.scan(step, p, None, length=int(n_generations))
    qs = jnp.concatenate([p[None], qs], axis=0)
    return CurationPath(qs, expected_reward(qs, r.astype(qs.dtype)), _entropy(qs))


def curation_fixed_point(probs: Any, reward: Any, k: Any, eta: Any,
                         reference: Any = None, max_iter: int = 10_000,
                         tol: float = 1e-13) -> jax.Array:
    """The fixed point of ``p = (1 - η) p_ref + η p H_p`` for ``η < 1``.

    For ``k = math.inf`` in closed form up to one scalar: ``p(x) = (1 - η) p_ref(x) /
    (1 - η e^{r(x)}/Z)``, with ``Z = E_p e^r`` the unique root above ``η max e^r`` of
    ``Σ_x p(x) = 1`` (the left side decreases from ∞ to 1 - η; bisection). For finite
    ``k`` by iterating the exact map from ``probs`` until the sup-norm change is below
    ``tol`` (the map is a contraction in practice at rate about η; ``max_iter`` caps it).

    Args:
        probs: starting law (finite k), shape ``(n,)``; also the default reference.
        reward, k, eta, reference: as in :func:`curated_law`; eta must be < 1.

    References:
        Ferbach et al. (NeurIPS 2024), Theorem 2.4 (stability with real data);
        THEORY.md section 10.

    Example:
        >>> p = curation_fixed_point([0.5, 0.5], [0.0, 1.0], math.inf, 0.5)
        >>> [round(float(x), 4) for x in p]
        [0.3253, 0.6747]
    """
    p, r, kk, eta_a, ref = _check_common(probs, reward, k, eta, reference)
    if not isinstance(eta, jax.core.Tracer) and not float(eta) < 1.0:
        raise ValueError(f"eta must be < 1 for a fixed point (eta = 1 concentrates on "
                         f"the maximisers of the reward); got {eta!r}")
    if math.isinf(kk):
        w = jnp.exp(r - jnp.max(jnp.where(ref > 0, r, -jnp.inf)))
        w = jnp.where(ref > 0, w, 0.0)

        def total(z):
            return jnp.sum((1.0 - eta_a) * ref / jnp.maximum(1.0 - eta_a * w / z, 1e-300))

        lo = eta_a * jnp.max(w)
        hi = jnp.maximum(lo, 1.0) * 2.0 + 1.0

        def bisect(_, c):
            lo, hi = c
            mid = 0.5 * (lo + hi)
            big = total(mid) > 1.0
            return jnp.where(big, mid, lo), jnp.where(big, hi, mid)

        lo, hi = lax.fori_loop(0, 200, bisect, (lo, hi))
        z = 0.5 * (lo + hi)
        q = (1.0 - eta_a) * ref / (1.0 - eta_a * w / z)
        return q / jnp.sum(q)

    def cond(c):
        i, _, delta = c
        return (i < max_iter) & (delta > tol)

    def body(c):
        i, q, _ = c
        q1 = _next_law(q, r, kk, eta_a, ref)
        return i + 1, q1, jnp.max(jnp.abs(q1 - q))

    _, q, _ = lax.while_loop(cond, body, (0, p, jnp.asarray(jnp.inf, p.dtype)))
    return q


# --------------------------------------------------------------------------------------
# Gaussian with a quadratic reward r(x) = -beta |x - c|^2
# --------------------------------------------------------------------------------------


def _check_beta(beta: Any) -> None:
    if isinstance(beta, jax.core.Tracer):
        return
    b = np.asarray(beta, dtype=np.float64)
    if not np.all(np.isfinite(b)) or np.any(b < 0):
        raise ValueError(f"beta must be finite and >= 0 (reward -beta |x - c|^2); "
                         f"got {beta!r}")


def tilted_gaussian(mean: Any, cov: Any, beta: Any, center: Any) -> tuple[jax.Array, jax.Array]:
    """K -> ∞ curation of N(mean, cov) with reward ``-beta |x - c|^2``: a Gaussian.

    The kept law ``∝ N(x; μ, Σ) e^{-β |x - c|²}`` has precision ``Σ^{-1} + 2β I`` and
    mean ``(Σ^{-1} + 2β I)^{-1} (Σ^{-1} μ + 2β c)``, i.e. covariance
    ``Σ (I + 2β Σ)^{-1}`` and mean ``μ + 2β Σ (I + 2β Σ)^{-1} (c - μ)``.

    Args:
        mean: ``(d,)``; cov: ``(d, d)`` (or scalars in 1-D); beta >= 0; center: ``(d,)``.

    Returns:
        ``(mean, cov)`` of the kept law, shapes ``(d,)`` and ``(d, d)``.

    References:
        Ferbach et al. (NeurIPS 2024), Lemma 2.2 (K -> ∞); THEORY.md section 10.

    Example:
        >>> m, c = tilted_gaussian([0.0], [[1.0]], 0.5, [2.0])
        >>> float(m[0]), float(c[0, 0])
        (1.0, 0.5)
    """
    _check_beta(beta)
    mu = jnp.atleast_1d(jnp.asarray(mean, jnp.result_type(float)))
    d = mu.shape[0]
    sigma = jnp.asarray(cov, mu.dtype).reshape(d, d)
    c = jnp.broadcast_to(jnp.asarray(center, mu.dtype), (d,))
    b2 = 2.0 * jnp.asarray(beta, mu.dtype)
    a = jnp.eye(d, dtype=mu.dtype) + b2 * sigma
    new_cov = jnp.linalg.solve(a, sigma)  # (I + 2βΣ)^{-1} Σ, symmetric
    new_cov = 0.5 * (new_cov + new_cov.T)
    new_mean = mu + b2 * new_cov @ (c - mu)
    return new_mean, new_cov


def curated_gaussian_moments(mean: Any, var: Any, beta: Any, center: Any, k: Any,
                             n_x: int = 4001, n_nodes: int = 4096,
                             width: float = 9.0) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of the kept draw, 1-D Gaussian, reward ``-beta (x - c)^2``.

    The kept draw has density ``p(x) H_p(x)``; ``φ_p(t) = E e^{-t e^{r(X)}}`` and the
    moments are trapezoid sums on ``n_x`` points of ``μ ± width·σ`` (the Gaussian mass
    beyond 9σ is 2e-19; ``H <= K``), and ``H`` on those points is the quadrature of
    :func:`selection_factor` with ``p`` the grid weights (``n_nodes = 4096`` covers a
    reward range ``β (9σ + |μ - c|)²`` up to about 400 nats). The x-integrands are
    analytic and the trapezoid sums converge geometrically; agreement with a K = 2
    double integral and with the K -> ∞ tilt is checked in the tests.

    Args:
        mean, var: the current N(mean, var) (scalars).
        beta: >= 0; center: c (scalar); k: integer >= 2 or ``math.inf``.

    Returns:
        ``(mean, var)`` of one kept draw (scalars).

    References:
        Ferbach et al. (NeurIPS 2024); THEORY.md section 10.

    Example:
        >>> m, v = curated_gaussian_moments(0.0, 1.0, 0.5, 2.0, 2, n_x=801, n_nodes=512)
        >>> round(float(m), 4), round(float(v), 4)
        (0.4597, 0.7007)
    """
    _check_beta(beta)
    kk = check_k(k)
    mu = jnp.asarray(mean, jnp.result_type(float))
    v = jnp.asarray(var, mu.dtype)
    if math.isinf(kk):
        m, c = tilted_gaussian(mu[None], v[None, None], beta, jnp.asarray(center)[None])
        return m[0], c[0, 0]
    s = jnp.sqrt(v)
    z = jnp.linspace(-width, width, n_x, dtype=mu.dtype)
    x = mu + s * z
    dens = jnp.exp(-0.5 * z * z)
    w = dens / jnp.sum(dens)  # trapezoid weights of N(0, 1) on the grid (ends ~ 0)
    r = -jnp.asarray(beta, mu.dtype) * (x - jnp.asarray(center, mu.dtype)) ** 2
    kept = w * _factor(w, r, kk, n_nodes)
    kept = kept / jnp.sum(kept)
    m = jnp.sum(kept * x)
    return m, jnp.sum(kept * (x - m) ** 2)
