"""The computations behind the Gaussian KDE family (:mod:`jaxcollapse.families.kde`):
the weighted covariance and bandwidth-rule factors, the tiled log-sum-exp density
evaluation (exact in the tails, shardable over queries) and the leave-one-out
likelihood of the ``"cv"`` rule.

References:
    Scott (1992); Silverman (1986); scipy.stats.gaussian_kde. THEORY.md section 6.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular
from jax.sharding import PartitionSpec as P

from jaxcollapse._mesh import DATA_AXIS, mesh_size, on_mesh

if TYPE_CHECKING:
    from jaxcollapse.families.kde import KDEParams

__all__ = ["weighted_cov"]

# Tile of the log-sum-exp evaluation: queries x points (2^19 elements = 4 MiB in f64).
Q_TILE = 128
P_TILE = 4096


def _normalise(w):
    return w / jnp.maximum(jnp.sum(w), jnp.finfo(w.dtype).tiny)


def weighted_cov(x: jax.Array, weights: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Weighted unbiased covariance as ``numpy.cov(aweights=w)``, and ``neff``.

    Returns ``(cov (d, d), neff)`` with ``neff = 1 / sum(w^2)`` for normalised
    weights.

    Example:
        >>> import jax.numpy as jnp
        >>> c, neff = weighted_cov(jnp.array([[0.0], [1.0], [2.0]]), jnp.ones(3))
        >>> c.tolist(), round(float(neff), 6)
        ([[1.0]], 3.0)

    References:
        numpy.cov; scipy.stats.gaussian_kde.
    """
    w = _normalise(jnp.asarray(weights, x.dtype))
    mean = w @ x
    xc = x - mean
    sw2 = jnp.sum(w * w)
    cov = (xc * w[:, None]).T @ xc / jnp.maximum(1.0 - sw2, jnp.finfo(x.dtype).eps)
    return 0.5 * (cov + cov.T), 1.0 / sw2


def _floor(h):
    """A tiny ridge so that a collapsed data set still gives a finite density."""
    d = h.shape[-1]
    scale = jnp.maximum(jnp.trace(h) / d, 1.0)
    return h + (jnp.finfo(h.dtype).eps * scale) * jnp.eye(d, dtype=h.dtype)


def _rule_factor(rule, neff, d):
    if rule == "scott":
        return neff ** (-1.0 / (d + 4))
    return (neff * (d + 2.0) / 4.0) ** (-1.0 / (d + 4))


def _logpdf_tiled(points, logw, bandwidth, x, q_tile=Q_TILE, p_tile=P_TILE):
    """log sum_i exp(logw_i) N(x_q; p_i, H), one (q_tile x p_tile) tile at a time."""
    d = points.shape[-1]
    chol = jnp.linalg.cholesky(_floor(bandwidth))
    center = jnp.mean(points, axis=0)
    zp = solve_triangular(chol, (points - center).T, lower=True).T
    zx = solve_triangular(chol, (x - center).T, lower=True).T
    log_norm = jnp.sum(jnp.log(jnp.diagonal(chol))) + 0.5 * d * math.log(2 * math.pi)
    nq, npts = zx.shape[0], zp.shape[0]
    qt, pt = min(q_tile, nq), min(p_tile, npts)
    nqb, npb = -(-nq // qt), -(-npts // pt)
    zx = jnp.pad(zx, ((0, nqb * qt - nq), (0, 0))).reshape(nqb, qt, d)
    zp = jnp.pad(zp, ((0, npb * pt - npts), (0, 0)))
    logw = jnp.pad(logw, (0, npb * pt - npts), constant_values=-jnp.inf).reshape(npb, pt)
    pp = (-0.5 * jnp.sum(zp * zp, -1)).reshape(npb, pt)
    zp = zp.reshape(npb, pt, d)
    low = jnp.finfo(zx.dtype).min

    def tile_exponent(zq, qq, zpi, ppi, lwi):
        cross = jnp.matmul(zq, zpi.T, precision=lax.Precision.HIGHEST)
        # -|zq - zp|^2 / 2 by the matrix-product form, clamped at 0 against round-off
        return jnp.minimum(qq[:, None] + cross + ppi[None, :], 0.0) + lwi[None, :]

    def stable_block(zq, qq):
        """Online log-sum-exp (running maximum): exact even far in the tails."""
        def body(carry, inp):
            m, s = carry
            a = tile_exponent(zq, qq, *inp)
            new_m = jnp.maximum(m, jnp.max(a, axis=1))
            s = s * jnp.exp(m - new_m) + jnp.sum(jnp.exp(a - new_m[:, None]), axis=1)
            return (new_m, s), None

        init = (jnp.full((qt,), low, zq.dtype), jnp.zeros((qt,), zq.dtype))
        (m, s), _ = lax.scan(body, init, (zp, pp, logw))
        return m + jnp.log(s)

    # sums of exponents <= 0 are safe from overflow; below this the sum may have lost
    # precision to underflow and the block is redone by the stable path
    safe = jnp.sqrt(jnp.finfo(zx.dtype).tiny)

    def per_query_block(zq):
        qq = -0.5 * jnp.sum(zq * zq, -1)

        def body(s, inp):
            return s + jnp.sum(jnp.exp(tile_exponent(zq, qq, *inp)), axis=1), None

        s, _ = lax.scan(body, jnp.zeros((qt,), zq.dtype), (zp, pp, logw))
        return lax.cond(jnp.all(s > safe), lambda: jnp.log(s), lambda: stable_block(zq, qq))

    out = lax.map(per_query_block, zx).reshape(-1)[:nq]
    return out - log_norm


def _logpdf(params: KDEParams, x, q_tile=Q_TILE, p_tile=P_TILE):
    w = _normalise(params.weights.astype(params.points.dtype))
    logw = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)
    return _logpdf_tiled(params.points, logw, params.bandwidth, x, q_tile, p_tile)


@functools.partial(jax.jit, static_argnames=("q_tile", "p_tile", "mesh"))
def _logpdf_jit(params, x, q_tile, p_tile, mesh=None):
    nq = x.shape[0]
    k = mesh_size(mesh)
    per = -(-nq // k)
    # queries are dealt out in equal slices, the last one padded with copies of the
    # last query (a real point: no spurious underflow) and cut off afterwards
    xp = jnp.pad(x, ((0, per * k - nq), (0, 0)), mode="edge")
    f = on_mesh(lambda p, xl: _logpdf(p, xl, q_tile, p_tile), mesh,
                (P(), P(DATA_AXIS)), P(DATA_AXIS))
    return f(params, xp)[:nq]


def _loo_loglik(x, w, h):
    """Weighted leave-one-out log-likelihood of the KDE with kernel covariance ``h``."""
    n, d = x.shape
    chol = jnp.linalg.cholesky(_floor(h))
    z = solve_triangular(chol, (x - jnp.mean(x, 0)).T, lower=True).T
    zz = jnp.sum(z * z, -1)
    d2 = jnp.maximum(zz[:, None] + zz[None, :] - 2.0 * z @ z.T, 0.0)
    logw = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)
    a = jnp.where(jnp.eye(n, dtype=bool), -jnp.inf, logw[None, :] - 0.5 * d2)
    log_norm = jnp.sum(jnp.log(jnp.diagonal(chol))) + 0.5 * d * math.log(2 * math.pi)
    lse = jax.nn.logsumexp(a, axis=1) - jnp.log(jnp.maximum(1.0 - w, jnp.finfo(w.dtype).eps))
    ll = lse - log_norm
    return jnp.sum(jnp.where(w > 0, w * ll, 0.0))


