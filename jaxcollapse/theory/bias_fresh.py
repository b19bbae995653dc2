"""The fresh-data loop with sampling bias (THEORY.md sections 9 and 11).

Every generation fits (unbiased, pooled) ``n_real`` fresh human draws from
N(mu_0, s_0^2) and ``n_synth`` draws from the current model with its variance shrunk,
N(mu_t, lam s_t^2). The moments ``x = (E mu, E mu^2, E s^2)`` follow an exact affine
map ``x' = A x + b``; E s (hence W2) does not close on them and is approximated.
Re-exported by :mod:`jaxcollapse.theory.bias`.

References:
    Alemohammad et al., Self-Consuming Generative Models Go MAD, ICLR 2024 (the fresh
    data loop); Satterthwaite, Biometrics Bulletin 2 (1946). THEORY.md sections 9, 11.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse.theory import gaussian as tg
from jaxcollapse.theory._checks import check_lam

__all__ = [
    "admissible_synthetic_sizes",
    "fresh_fixed_point",
    "fresh_moment_map",
    "fresh_moments",
    "fresh_std_fixed_point",
    "fresh_w2sq_fixed_point",
]

_float = tg._float


def _check_sizes(n_real, n_synth):
    nr, ns = np.asarray(n_real), np.asarray(n_synth)
    for name, v, a, lo in (("n_real", n_real, nr, 1), ("n_synth", n_synth, ns, 0)):
        if a.dtype == bool or np.any(np.round(a) != a) or np.any(a < lo):
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")
    if np.any(nr + ns < 2):
        raise ValueError(f"n_real + n_synth must be >= 2 for an unbiased variance; got "
                         f"{n_real} + {n_synth}")
    return _float(nr), _float(ns)


def fresh_moment_map(n_real, n_synth, lam, mu0=0.0, sigma0_sq=1.0):
    """The affine map ``x' = A x + b`` of ``x = (E mu, E mu^2, E s^2)`` (exact).

    One generation fits the pooled unbiased mean and variance of ``n_real`` fresh draws
    from N(mu0, sigma0_sq) and ``n_synth`` draws from N(mu_t, lam s_t^2). With
    ``N = n_r + n_s``, ``a = n_r/N``, ``b = n_s/N``, ``c = n_r n_s/N``:

    * ``E mu' = a mu0 + b E mu``;
    * ``E mu'^2 = a^2 (s0^2/n_r + mu0^2) + 2ab mu0 E mu + b^2 (E mu^2 + lam E s^2/n_s)``;
    * ``(N - 1) E s'^2 = (n_r - 1) s0^2 + (n_s - 1) lam E s^2
      + c (s0^2/n_r + lam E s^2/n_s + mu0^2 - 2 mu0 E mu + E mu^2)`` (Chan's pooled
      scatter: within-group scatter plus c (m_r - m_s)^2).

    Sizes and parameters broadcast (e.g. an array of n_synth).

    Returns:
        ``(A (..., 3, 3), b (..., 3))``.

    Example:
        >>> A, b = fresh_moment_map(10, 0, 1.0)  # fresh data only: x' = b
        >>> [round(float(v), 6) for v in b], float(abs(A).max())
        ([0.0, 0.1, 1.0], 0.0)

    References:
        Alemohammad et al. (2024), the fresh data loop; THEORY.md sections 9 and 11.
    """
    nr, ns = _check_sizes(n_real, n_synth)
    lam = _float(check_lam(lam))
    mu0, s0 = _float(mu0), _float(sigma0_sq)
    N = nr + ns
    a, b, c = nr / N, ns / N, nr * ns / N
    zero = jnp.zeros(jnp.broadcast_shapes(N.shape, lam.shape, mu0.shape, s0.shape), N.dtype)
    A = jnp.stack([
        jnp.stack([zero + b, zero, zero], -1),
        jnp.stack([zero + 2 * a * b * mu0, zero + b * b, zero + lam * ns / N**2], -1),
        jnp.stack([zero - 2 * c * mu0 / (N - 1), zero + c / (N - 1),
                   zero + lam * (ns - 1 + nr / N) / (N - 1)], -1),
    ], -2)
    bvec = jnp.stack([zero + a * mu0, zero + a * a * (s0 / nr + mu0**2),
                      zero + ((nr - 1) * s0 + (ns / N) * s0 + c * mu0**2) / (N - 1)], -1)
    return A, bvec


def fresh_moments(n_generations: int, n_real: int, n_synth: int, lam, mu0=0.0,
                  sigma0_sq=1.0, start=None):
    """``(E mu_t, E mu_t^2, E s_t^2)`` for t = 0..n, shape ``(n + 1, 3)``, by the exact
    affine map; ``start`` = (mu, s^2) of generation 0 (default: the human law).

    Example:
        >>> x = fresh_moments(200, 10, 10, 1.0)
        >>> [round(float(v), 4) for v in x[-1]] == [
        ...     round(float(v), 4) for v in fresh_fixed_point(10, 10, 1.0)]
        True

    References:
        Alemohammad et al. (2024); THEORY.md sections 9 and 11.
    """
    A, b = fresh_moment_map(n_real, n_synth, lam, mu0, sigma0_sq)
    mu_s, v_s = (mu0, sigma0_sq) if start is None else start
    x0 = jnp.stack([_float(mu_s), _float(mu_s) ** 2, _float(v_s)])
    return _iterate(A, b, x0, n=int(n_generations))


@functools.partial(jax.jit, static_argnames="n")
def _iterate(A, b, x0, *, n):
    def step(x, _):
        y = A @ x + b
        return y, y

    _, xs = jax.lax.scan(step, x0, None, length=n)
    return jnp.concatenate([x0[None], xs])


def fresh_fixed_point(n_real, n_synth, lam, mu0=0.0, sigma0_sq=1.0):
    """The fixed point ``(I - A)^{-1} b`` of :func:`fresh_moment_map`, shape ``(3,)``.

    It exists and attracts for every ``n_real >= 1``: the spectral radius of A is
    below 1 (mean weight n_s/N < 1, variance weight below 1).

    Example:
        >>> [round(float(v), 6) for v in fresh_fixed_point(10, 0, 1.0, mu0=1.0)]
        [1.0, 1.1, 1.0]

    References:
        Alemohammad et al. (2024); THEORY.md sections 9 and 11.
    """
    A, b = fresh_moment_map(n_real, n_synth, lam, mu0, sigma0_sq)
    return jnp.linalg.solve(jnp.eye(3, dtype=A.dtype) - A, b[..., None])[..., 0]


def fresh_std_fixed_point(n_real, n_synth, lam, mu0=0.0, sigma0_sq=1.0):
    """E[s] at the fixed point (approximation): ``sqrt(v*) c4(nu + 1)`` with
    ``nu = 2 v*^2 / V``, treating s^2 as a scaled chi-square (Satterthwaite) with the
    fixed point's mean v* and an approximate stationary variance

        ``V = E Var((N - 1) s'^2 | state) / ((N - 1)^2 (1 - g^2))``,

    ``g = lam (n_s - 1 + n_r/N)/(N - 1)`` the weight of s^2 in E s'^2, and the
    conditional variance ``2(n_r - 1) s0^4 + 2(n_s - 1) lam^2 s^4 + c^2 (2 tau^4 + 4 tau^2
    delta^2)`` (``tau^2 = s0^2/n_r + lam s^2/n_s``) taken at s^2 = v*, delta^2 = u*. Exact
    for ``n_synth = 0`` (then ``s0 c4(n_r)``); the error comes from the third and
    higher cumulants of s^2 and from neglected mean-variance couplings, O(1/nu^2).

    Example:
        >>> import math
        >>> from jaxcollapse.theory import gaussian as tg
        >>> math.isclose(float(fresh_std_fixed_point(10, 0, 0.5)), float(tg.std_factor(10)))
        True

    References:
        Alemohammad et al. (2024); Satterthwaite, Biometrics Bulletin 2 (1946).
    """
    v, nu = _fresh_sigma_law(n_real, n_synth, lam, mu0, sigma0_sq)
    return jnp.sqrt(v) * tg.std_factor(nu + 1.0)


def _fresh_sigma_law(n_real, n_synth, lam, mu0, sigma0_sq):
    x = fresh_fixed_point(n_real, n_synth, lam, mu0, sigma0_sq)
    e1, e2, v = x[..., 0], x[..., 1], x[..., 2]
    nr, ns = _check_sizes(n_real, n_synth)
    lam, s0 = _float(lam), _float(sigma0_sq)
    N = nr + ns
    c = nr * ns / N
    u = jnp.maximum(e2 - 2 * _float(mu0) * e1 + _float(mu0) ** 2, 0.0)
    tau2 = s0 / nr + lam * v / jnp.maximum(ns, 1.0)  # its c^2 factor is 0 when n_s = 0
    var_q = (2 * (nr - 1) * s0**2 + 2 * jnp.maximum(ns - 1, 0.0) * lam**2 * v**2
             + c**2 * (2 * tau2**2 + 4 * tau2 * u))
    g = lam * (ns - 1 + nr / N) / (N - 1)
    V = var_q / ((N - 1) ** 2 * (1 - g**2))
    return v, 2 * v**2 / V


def fresh_w2sq_fixed_point(n_real, n_synth, lam, mu0=0.0, sigma0_sq=1.0):
    """E[W2^2] to N(mu0, sigma0_sq) at the fixed point: ``u* + v* + s0^2 - 2 s0 E s*``,
    ``u* = E(mu - mu0)^2`` (exact) and ``E s*`` from :func:`fresh_std_fixed_point`.

    With ``n_synth = 0`` it is exactly the one-generation value on n_real human draws,
    ``s0^2/n_r + 2 s0^2 (1 - c4(n_r))``.

    Example:
        >>> from jaxcollapse.theory import gaussian as tg
        >>> a, b = fresh_w2sq_fixed_point(20, 0, 1.0), tg.w2sq_mean(1, 20)
        >>> bool(abs(float(a) - float(b)) < 1e-6)
        True

    References:
        Alemohammad et al. (2024); THEORY.md sections 2 and 9.
    """
    x = fresh_fixed_point(n_real, n_synth, lam, mu0, sigma0_sq)
    e1, e2, v = x[..., 0], x[..., 1], x[..., 2]
    mu0, s0 = _float(mu0), _float(sigma0_sq)
    u = e2 - 2 * mu0 * e1 + mu0**2
    es = fresh_std_fixed_point(n_real, n_synth, lam, mu0, sigma0_sq)
    return u + v + s0 - 2 * jnp.sqrt(s0) * es


def admissible_synthetic_sizes(n_real: int, lam, n_synth_max: int) -> np.ndarray:
    """The synthetic sizes ``n_s`` in 0..n_synth_max at which the biased fresh-data loop
    does no worse than n_real human samples alone (host, float64).

    "No worse" means: E W2^2 to the human law at the loop's fixed point
    (:func:`fresh_w2sq_fixed_point`) is at most E W2^2 of one unbiased fit to n_real
    fresh human draws, ``s0^2/n_r + 2 s0^2 (1 - c4(n_r))`` (the loop with n_s = 0;
    both scale with s0^2, so the answer does not depend on the human law). Moderate
    synthetic data helps (the mean carries information from earlier human draws);
    lam < 1 shrinks the fitted variance, and the admissible set shrinks with lam.

    Returns:
        sorted int array of the admissible n_s (always contains 0).

    Example:
        >>> int(admissible_synthetic_sizes(100, 0.95, 1000).max()) < int(
        ...     admissible_synthetic_sizes(100, 0.99, 1000).max())
        True

    References:
        Alemohammad et al., Self-Consuming Generative Models Go MAD (2024), fresh data loop.
    """
    check_lam(lam)
    if isinstance(n_synth_max, bool) or int(n_synth_max) != n_synth_max or n_synth_max < 0:
        raise ValueError(f"n_synth_max must be an integer >= 0; got {n_synth_max!r}")
    if isinstance(n_real, bool) or int(n_real) != n_real or n_real < 2:
        raise ValueError(f"n_real must be an integer >= 2; got {n_real!r}")
    nr = int(n_real)
    ref = float(tg.w2sq_mean(1, nr))
    sizes = np.arange(int(n_synth_max) + 1)
    w = np.asarray(fresh_w2sq_fixed_point(nr, sizes, float(lam)), dtype=float)
    return sizes[w <= ref * (1 + 1e-12)]
