"""Distances that see what moments miss: MMD in an RKHS and L2 between mixtures.

* :func:`mmd2` estimates the squared maximum mean discrepancy between two samples
  (biased V-statistic, unbiased U-statistic, linear-time), tile by tile.
* :func:`mmd2_gaussians` and :func:`mmd2_mixtures` give it in closed form under the
  RBF kernel; :func:`l2_mixtures` is the closed-form L2 distance between Gaussian
  mixtures (Shumailov's GMM metric); these live in ``_closed_forms``.
* :func:`median_heuristic`, :func:`permutation_test`, :func:`mean_embedding`.
* :func:`rkhs_distance` and :func:`successive_rkhs` measure the RKHS distance
  between weighted point sets, e.g. the data sets of successive generations.
* :func:`prdc` (k-NN precision, recall, density, coverage; in ``_knn``) and
  :func:`prdc_metric`, its per-generation ``simulate`` metric.

References:
    Gretton et al., A Kernel Two-Sample Test, JMLR 13 (2012);
    Shumailov et al., Nature 631 (2024). THEORY.md section 6.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import kernels as kn
from jaxcollapse._closed_forms import (  # noqa: F401 (_l2/_mmd2_mixtures: the GMM metrics)
    _l2_mixtures,
    _mmd2_mixtures,
    l2_mixtures,
    mmd2_gaussians,
    mmd2_mixtures,
    rbf_expectation,
)
from jaxcollapse._kernel_inputs import check_key
from jaxcollapse._knn import PRDC, prdc, prdc_metric
from jaxcollapse._mesh import DATA_AXIS, resolve_mesh

ESTIMATORS = ("unbiased", "biased", "linear")


# ------------------------------------------------------------------- sample estimators


def _mmd2_impl(x, y, kernel, lengthscale, estimator, tile, mesh):
    n, m = x.shape[0], y.shape[0]
    if estimator == "linear":
        h = n // 2
        x1, x2, y1, y2 = x[:h], x[h:2 * h], y[:h], y[h:2 * h]
        terms = (kernel(x1, x2, lengthscale) + kernel(y1, y2, lengthscale)
                 - kernel(x1, y2, lengthscale) - kernel(x2, y1, lengthscale))
        return jnp.mean(terms)
    # one scan over the tiles of all three Gram sums; XX and YY visit half their tiles
    side = kn._sum_side(max(n, m), tile)
    sxx, syy, sxy = kn._tiled_sums(kn._PROFILES[kernel], [x / lengthscale, y / lengthscale],
                                   [(0, 0), (1, 1), (0, 1)], side, mesh)
    if estimator == "biased":
        return sxx / n**2 + syy / m**2 - 2.0 * sxy / (n * m)
    # k(x, x) = 1 for every kernel here: drop the diagonal exactly
    return (sxx - n) / (n * (n - 1)) + (syy - m) / (m * (m - 1)) - 2.0 * sxy / (n * m)


_mmd2_jit = jax.jit(_mmd2_impl, static_argnames=("kernel", "estimator", "tile", "mesh"))


def _check_pair(x, y):
    x = kn.check_points(x, "x")
    y = kn.check_points(y, "y", dim=x.shape[1])
    return x, y


def mmd2(x: jax.Array, y: jax.Array, kernel: str | kn.Kernel = "rbf",
         lengthscale: jax.Array | float = 1.0, *, estimator: str = "unbiased",
         tile: int | None = None, devices: int | Sequence[jax.Device] | None = None,
         mesh: jax.sharding.Mesh | None = None) -> jax.Array:
    """Squared MMD between samples ``x ~ P`` and ``y ~ Q``.

    The three Gram sums (``XX``, ``YY``, ``XY``) are accumulated tile by tile in one
    scan (see :func:`jaxcollapse.kernels.kernel_sum`); the symmetric ``XX`` and ``YY``
    sums compute only the tiles on and above the diagonal. With several devices the
    tiles are dealt out in equal shares and the per-device sums added at the end:
    the result equals the one-device one up to floating-point reordering of the sums
    (held to rtol 1e-12 in float64 by the tests; the relative error grows as the
    estimate cancels towards 0, by at most a few ulps of the Gram sums).

    Args:
        x: ``(n, d)``; y: ``(m, d)`` (``(n,)`` is read as d = 1).
        kernel: a name or function from :data:`jaxcollapse.kernels.KERNELS`.
        lengthscale: ``l > 0`` (traced; e.g. from :func:`median_heuristic`).
        estimator: ``"unbiased"`` (U-statistic, n, m >= 2), ``"biased"``
            (V-statistic, >= 0) or ``"linear"`` (Gretton's linear-time statistic on
            disjoint pairs; needs n == m >= 2).
        tile: side of a square tile of the Gram sums (static); default
            :data:`jaxcollapse.kernels.SUM_TILE`.
        devices: split the tiles over this many devices (an int), these devices, or
            (``None``) all local devices, as in :func:`jaxcollapse.simulate`. The
            linear estimator (O(n) work) always runs on one device.
        mesh: alternatively, a ``jax.sharding.Mesh`` with an axis named ``"data"``.

    Returns:
        A scalar.

    Example:
        >>> import jax
        >>> kx, ky = jax.random.split(jax.random.key(0))
        >>> x = jax.random.normal(kx, (200, 2))
        >>> y = jax.random.normal(ky, (200, 2)) + 1.0
        >>> bool(mmd2(x, y) > 0.1)
        True

    References:
        Gretton et al., JMLR 13 (2012), eqs. 3, 5 and section 6.
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator must be one of {ESTIMATORS}; got {estimator!r}")
    x, y = _check_pair(x, y)
    kernel = kn.get_kernel(kernel)
    kn.check_lengthscale(lengthscale)
    n, m = x.shape[0], y.shape[0]
    if estimator == "unbiased" and min(n, m) < 2:
        raise ValueError(f"the unbiased estimator needs >= 2 points in x and y; got {n}, {m}")
    if estimator == "linear" and (n != m or n < 2):
        raise ValueError(f"the linear estimator needs len(x) == len(y) >= 2; got {n}, {m}")
    kn._check_tile(tile)
    mesh = resolve_mesh(devices, mesh, DATA_AXIS, "tiles")
    if estimator == "linear":
        mesh = None
    dtype = jnp.result_type(x, y)
    return _mmd2_jit(x.astype(dtype), y.astype(dtype), kernel,
                     jnp.asarray(lengthscale, dtype), estimator, tile, mesh)


# -------------------------------------------------------------------- lengthscale, test


@functools.partial(jax.jit, static_argnames=("max_points",))
def _median_jit(z, max_points):
    z = z[:max_points]
    n = z.shape[0]
    iu = np.triu_indices(n, 1)
    dist = jnp.sqrt(kn.sq_dist(z - jnp.mean(z, 0), z - jnp.mean(z, 0))[iu])
    med = jnp.median(dist)
    # at least half the pairs coincide: the mean of the non-zero distances instead of 0
    positive = dist > 0
    fallback = jnp.sum(jnp.where(positive, dist, 0.0)) / jnp.maximum(jnp.sum(positive), 1)
    return jnp.where(med > 0, med, fallback)


def median_heuristic(x: jax.Array, y: jax.Array | None = None, *,
                     max_points: int = 1000) -> jax.Array:
    """The median pairwise distance of the pooled sample: a standard RBF lengthscale.

    Args:
        x: ``(n, d)``; y: optional ``(m, d)`` pooled with ``x``.
        max_points: only the first ``max_points`` pooled points are used (the cost is
            quadratic in them).

    Returns:
        A positive scalar. When at least half the pairs coincide (a collapsed
        sample), the median would be 0; the mean of the non-zero pairwise distances
        is returned instead.

    Raises:
        ValueError: when all the (first ``max_points``) points are equal: no distance
            sets a scale.

    Example:
        >>> import jax.numpy as jnp
        >>> float(median_heuristic(jnp.array([[0.0], [1.0], [3.0]])))
        2.0

    References:
        Gretton et al., JMLR 13 (2012), section 8; Garreau et al., arXiv 1707.07269.
    """
    x = kn.check_points(x, "x")
    z = x if y is None else jnp.concatenate([x, kn.check_points(y, "y", x.shape[1])])
    if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 2:
        raise ValueError(f"max_points must be an integer >= 2; got {max_points!r}")
    if z.shape[0] < 2:
        raise ValueError(f"median_heuristic needs >= 2 points; got {z.shape[0]}")
    used = min(max_points, z.shape[0])
    head = np.asarray(z[:used])
    if np.all(head == head[0]):
        raise ValueError(f"median_heuristic needs two distinct points; all {used} points "
                         f"(x and y pooled, the first max_points={max_points}) are equal, so "
                         "no distance sets a lengthscale: pass one explicitly")
    return _median_jit(z, used)


class PermutationTest(NamedTuple):
    """Result of :func:`permutation_test`: the observed ``statistic`` (MMD^2), its
    ``p_value`` and the ``null`` statistics of the permutations.

    Example:
        >>> import jax
        >>> x = jax.random.normal(jax.random.key(0), (50, 1))
        >>> t = permutation_test(jax.random.key(1), x, x + 3.0, "rbf", 1.0, n_permutations=50)
        >>> t.null.shape, bool(t.p_value < 0.05)
        ((50,), True)
    """

    statistic: jax.Array
    p_value: jax.Array
    null: jax.Array


def _perm_stats(kmat, ind, n, m, estimator):
    """MMD^2 for group indicators: ``ind (P, n + m)`` is 1 where a point is in "x"."""
    ind = ind.astype(kmat.dtype)
    other = 1.0 - ind
    ka = ind @ kmat
    saa = jnp.sum(ka * ind, -1)
    sab = jnp.sum(ka * other, -1)
    sbb = jnp.sum((other @ kmat) * other, -1)
    if estimator == "biased":
        return saa / n**2 + sbb / m**2 - 2 * sab / (n * m)
    return (saa - n) / (n * (n - 1)) + (sbb - m) / (m * (m - 1)) - 2 * sab / (n * m)


@functools.partial(jax.jit, static_argnames=("kernel", "n_permutations", "estimator"))
def _perm_jit(key, x, y, kernel, lengthscale, n_permutations, estimator):
    n, m = x.shape[0], y.shape[0]
    z = jnp.concatenate([x, y])
    kmat = kn._gram(z, z, kernel, lengthscale)
    ident = (jnp.arange(n + m) < n)[None]
    keys = jax.random.split(key, n_permutations)
    # a random relabelling: the first n positions of a permutation form group "x"
    perms = jax.vmap(lambda k: jax.random.permutation(k, n + m))(keys)
    ind = jax.vmap(lambda p: jnp.zeros(n + m, bool).at[p[:n]].set(True))(perms)
    stat = _perm_stats(kmat, ident, n, m, estimator)[0]
    null = _perm_stats(kmat, ind, n, m, estimator)
    p = (1.0 + jnp.sum(null >= stat)) / (1.0 + n_permutations)
    return PermutationTest(stat, p, null)


def permutation_test(key: jax.Array, x: jax.Array, y: jax.Array,
                     kernel: str | kn.Kernel = "rbf", lengthscale: jax.Array | float = 1.0,
                     *, n_permutations: int = 199,
                     estimator: str = "unbiased") -> PermutationTest:
    """Kernel two-sample test of ``P = Q`` by permuting the pooled sample.

    The Gram matrix of the pooled ``n + m`` points is built once; every permutation's
    statistic is a quadratic form in it, so the permutations are one batched product.
    ``p = (1 + #{null >= observed}) / (1 + n_permutations)``, valid at any size.

    Args:
        key: PRNG key for the permutations (``jax.random.key(seed)``; a plain integer
            is refused).
        x: ``(n, d)``; y: ``(m, d)``.
        kernel, lengthscale: as for :func:`mmd2`.
        n_permutations: number of random permutations (static).
        estimator: ``"unbiased"`` or ``"biased"``.

    Returns:
        A :class:`PermutationTest`.

    Example:
        >>> import jax
        >>> kx, ky, kp = jax.random.split(jax.random.key(0), 3)
        >>> x = jax.random.normal(kx, (100, 1))
        >>> y = jax.random.normal(ky, (100, 1)) + 2.0
        >>> bool(permutation_test(kp, x, y).p_value < 0.01)
        True

    References:
        Gretton et al., JMLR 13 (2012), section 5.
    """
    if estimator not in ("unbiased", "biased"):
        raise ValueError(f"estimator must be 'unbiased' or 'biased'; got {estimator!r}")
    if isinstance(n_permutations, bool) or not isinstance(n_permutations, int) \
            or n_permutations < 1:
        raise ValueError(f"n_permutations must be an integer >= 1; got {n_permutations!r}")
    key = check_key(key)
    x, y = _check_pair(x, y)
    if min(x.shape[0], y.shape[0]) < 2:
        raise ValueError(f"x and y need >= 2 points each; got {x.shape[0]}, {y.shape[0]}")
    kn.check_lengthscale(lengthscale)
    dtype = jnp.result_type(x, y)
    return _perm_jit(key, x.astype(dtype), y.astype(dtype), kn.get_kernel(kernel),
                     jnp.asarray(lengthscale, dtype), n_permutations, estimator)


# ------------------------------------------------------------- embeddings, RKHS metric


def _weights_or_uniform(w, n, dtype):
    if w is None:
        return jnp.full((n,), 1.0 / n, dtype)
    w = jnp.asarray(w, dtype)
    return w / jnp.maximum(jnp.sum(w), jnp.finfo(dtype).tiny)


def mean_embedding(x: jax.Array, grid: jax.Array, kernel: str | kn.Kernel = "rbf",
                   lengthscale: jax.Array | float = 1.0,
                   weights: jax.Array | None = None) -> jax.Array:
    """The kernel mean embedding ``mu(t) = sum_i w_i k(t, x_i)`` evaluated on a grid.

    Args:
        x: ``(n, d)`` sample; grid: ``(g, d)`` evaluation points.
        weights: optional ``(n,)`` non-negative weights (normalised); default uniform.

    Returns:
        ``(g,)`` values.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0], [2.0]])
        >>> mean_embedding(x, jnp.array([[1.0]])).round(4).tolist()
        [0.6065]

    References:
        Smola et al., A Hilbert Space Embedding for Distributions, ALT (2007).
    """
    x = kn.check_points(x, "x")
    grid = kn.check_points(grid, "grid", x.shape[1])
    kernel = kn.get_kernel(kernel)
    kn.check_lengthscale(lengthscale)
    w = _weights_or_uniform(weights, x.shape[0], x.dtype)
    if weights is not None and (w.shape != (x.shape[0],) or bool(jnp.any(w < 0))):
        raise ValueError(f"weights must be non-negative with shape ({x.shape[0]},)")
    return _embed_jit(x, grid, kernel, jnp.asarray(lengthscale, x.dtype), w)


@functools.partial(jax.jit, static_argnames=("kernel",))
def _embed_jit(x, grid, kernel, lengthscale, w):
    return kn._gram(grid, x, kernel, lengthscale) @ w


def _rkhs_distance(x, wx, y, wy, kernel, lengthscale):
    wx = wx / jnp.maximum(jnp.sum(wx), jnp.finfo(x.dtype).tiny)
    wy = wy / jnp.maximum(jnp.sum(wy), jnp.finfo(y.dtype).tiny)

    def quad(a, wa, b, wb):
        return wa @ (kn._gram(a, b, kernel, lengthscale) @ wb)

    d2 = quad(x, wx, x, wx) + quad(y, wy, y, wy) - 2.0 * quad(x, wx, y, wy)
    return jnp.sqrt(jnp.maximum(d2, 0.0))


_rkhs_jit = jax.jit(_rkhs_distance, static_argnames=("kernel",))


def rkhs_distance(x: jax.Array, y: jax.Array, kernel: str | kn.Kernel = "rbf",
                  lengthscale: jax.Array | float = 1.0, wx: jax.Array | None = None,
                  wy: jax.Array | None = None) -> jax.Array:
    """``||mu_x - mu_y||_H``: RKHS distance between weighted empirical embeddings.

    Equals the square root of the biased MMD^2 for uniform weights.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0], [1.0]])
        >>> round(float(rkhs_distance(x, x + 1.0) ** 2), 6)
        0.432332

    References:
        Gretton et al., JMLR 13 (2012), lemma 6.
    """
    x, y = _check_pair(x, y)
    kernel = kn.get_kernel(kernel)
    kn.check_lengthscale(lengthscale)
    dtype = jnp.result_type(x, y)
    wx = _weights_or_uniform(wx, x.shape[0], dtype)
    wy = _weights_or_uniform(wy, y.shape[0], dtype)
    return _rkhs_jit(x.astype(dtype), wx, y.astype(dtype), wy, kernel,
                     jnp.asarray(lengthscale, dtype))


@functools.cache
def successive_rkhs(lengthscale: float = 1.0, kernel: str = "rbf"):
    """A ``simulate`` metric: RKHS distance between the data sets of generations n, n-1.

    Works with any parameters exposing ``points (M, d)`` and ``weights (M,)`` (such as
    :class:`jaxcollapse.families.kde.KDEParams`). Cached, so the same arguments give
    the same function and ``simulate`` does not recompile.

    Example:
        >>> m = successive_rkhs(1.0)
        >>> m.successive, m is successive_rkhs(1.0)
        (True, True)

    References:
        Gretton et al., JMLR 13 (2012); THEORY.md section 6.
    """
    kn.check_lengthscale(lengthscale)
    k = kn.get_kernel(kernel)

    def rkhs_successive(params, prev):
        return _rkhs_distance(params.points, params.weights, prev.points, prev.weights, k,
                              lengthscale)

    rkhs_successive.successive = True
    return rkhs_successive


__all__ = [
    "ESTIMATORS",
    "PRDC",
    "PermutationTest",
    "l2_mixtures",
    "mean_embedding",
    "median_heuristic",
    "mmd2",
    "mmd2_gaussians",
    "mmd2_mixtures",
    "permutation_test",
    "prdc",
    "prdc_metric",
    "rbf_expectation",
    "rkhs_distance",
    "successive_rkhs",
]
