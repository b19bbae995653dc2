"""k-nearest-neighbour precision, recall, density and coverage, tile by tile.

For real points ``X`` (``n``) and generated points ``Y`` (``m``) with ``r_k(x)`` the
distance from a point to its ``k``-th nearest neighbour in its own set (the point
itself counted as the first, as the ``prdc`` package does: the ``(k+1)``-th smallest
of the distances to all points of the set, 0 to itself included):

* precision = ``(1/m) sum_j 1[exists i: |X_i - Y_j| < r_k(X_i)]``;
* recall = ``(1/n) sum_i 1[exists j: |X_i - Y_j| < r_k(Y_j)]``;
* density = ``(1/(k m)) sum_j sum_i 1[|X_i - Y_j| < r_k(X_i)]``;
* coverage = ``(1/n) sum_i 1[min_j |X_i - Y_j| < r_k(X_i)]``.

No pairwise matrix is held: rows are cut into blocks of ``tile`` points and columns
into blocks of ``8 tile``; a scan over the column blocks keeps, per row, a running
``k + 1`` smallest squared distances (for the radii) or running counts and flags
(for the four statistics). A tile of squared distances is one matrix product of rows
augmented with their squared norms (``[x, |x|^2, 1] . [-2y, 1, |y|^2]``). The ``k + 1``
smallest entries of a tile row are found without a full selection over the tile: its
columns are cut into groups of adjacent columns, and they lie in the ``k + 1`` groups
of smallest minimum (each group outside them has ``k + 1`` smaller entries in front of
its own minimum), so only those groups are searched.
With several devices the row blocks are dealt out over a mesh axis ``"data"``; the
per-column counts are summed over the devices (integers: the result is the same).

References:
    Kynkäänniemi et al., Improved Precision and Recall Metric for Assessing Generative
    Models, NeurIPS (2019); Naeem et al., Reliable Fidelity and Diversity Metrics for
    Generative Models, ICML (2020).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxcollapse import kernels as kn
from jaxcollapse._mesh import DATA_AXIS, mesh_size, on_mesh, resolve_mesh
from jaxcollapse._validate import check_instance

# Rows of a tile; its columns are COL_FACTOR times as many (256 x 2048 values, 2 MiB in
# float32: a tile stays in cache between the product and the selection).
ROW_TILE = 256
COL_FACTOR = 8
# Columns of a tile are searched in groups of this many (see the module docstring).
_GROUP = 16


class PRDC(NamedTuple):
    """Result of :func:`prdc`: four scalars in [0, 1] (density in [0, n/k]).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.arange(12.0).reshape(6, 2)
        >>> [float(v) for v in prdc(x, x, nearest_k=2)]
        [1.0, 1.0, 1.0, 1.0]
    """

    precision: jax.Array
    recall: jax.Array
    density: jax.Array
    coverage: jax.Array


def _blocks(u, side, fill, multiple=1, *, col=False):
    """``u`` cut into ``(blocks, side, width)`` zero-padded rows (a number of blocks
    that is a multiple of ``multiple``), each row augmented so that one matrix product
    gives squared distances (see :func:`_d2`): a row side point ``x`` becomes
    ``[x, |x|^2, 1, 0...]``, a column side point ``y`` (``col``) ``[-2y, 1, |y|^2,
    0...]``; ``fill`` is the squared norm of padding rows. The width ``d + 2`` is
    rounded up to a multiple of 8 (zeros), which the CPU product kernels prefer."""
    n, d = u.shape
    nb = -(-n // side)
    nb = -(-nb // multiple) * multiple
    up = jnp.pad(u, ((0, nb * side - n), (0, 0)))
    sq = jnp.where(jnp.arange(nb * side) < n, jnp.sum(up * up, -1), fill)[:, None]
    one = jnp.ones_like(sq)
    parts = [-2.0 * up, one, sq] if col else [up, sq, one]
    width = -(-(d + 2) // 8) * 8
    aug = jnp.pad(jnp.concatenate(parts, axis=1), ((0, 0), (0, width - d - 2)))
    return aug.reshape(nb, side, width)


def _d2(a, b):
    """Squared distances of a tile, ``|x|^2 + |y|^2 - 2 x.y`` in one product of the
    augmented rows of :func:`_blocks` (no separate pass over the tile to add the norms;
    not clamped at 0: callers clamp after selecting, or compare against radii > 0).
    Both passes use this one product on tiles of one shape, so a fake point equal to a
    real point gets the same arithmetic as that real point: the tie with the radius
    (its ``k+1``-th distance) compares as ``<`` does on equal numbers, as in the
    package."""
    return jnp.matmul(a, b.T, precision=lax.Precision.HIGHEST)


def _candidates(t, k1):
    """Entries of every row of ``t`` among which its ``k1`` smallest lie: the row cut
    into groups of ``_GROUP`` adjacent columns, the ``k1`` groups of smallest minimum
    (see the module docstring); the whole row when it has fewer than ``k1`` groups."""
    r, c = t.shape
    if c % _GROUP or c // _GROUP < k1:
        return t
    t3 = t.reshape(r, c // _GROUP, _GROUP)
    idx = lax.top_k(-jnp.min(t3, axis=2), k1)[1]
    return jnp.take_along_axis(t3, idx[:, :, None], axis=1).reshape(r, -1)


def _merge(run, t, k1):
    """The ``k1`` smallest of ``run`` (ascending, ``(r, k1)``) and of the rows of ``t``,
    by one selection over ``run`` and the candidates of ``t`` together (one selection
    instead of two measured a fifth faster)."""
    both = jnp.concatenate([run, _candidates(t, k1)], axis=1)
    return -lax.top_k(-both, k1)[0]


def _radii2_rows(a, cols, k1):
    """Squared distance from every row of ``a`` to its ``k1``-th nearest column point:
    a scan over the column blocks with a running selection. The clamp at 0 comes after
    the selection (it is monotone, so the ``k1``-th smallest of the clamped values is
    the clamped ``k1``-th smallest)."""

    def body(run, b):
        return _merge(run, _d2(a, b), k1), None

    init = jnp.full((a.shape[0], k1), jnp.inf, a.dtype)
    run, _ = lax.scan(body, init, cols)
    return jnp.maximum(run[:, -1], 0.0)


def _radii2(u, k1, rows, cols, mesh):
    """Squared distance from every point of ``u`` to its ``k1``-th nearest point of
    ``u`` (itself included), ``(n,)``: row blocks (dealt out over the mesh) against
    every column block. (A pass over the tiles above the diagonal only, updating rows
    and columns, halves the products but measured twice as slow on CPU.)"""
    n = u.shape[0]
    ub = _blocks(u, rows, 0.0, mesh_size(mesh))
    cb = _blocks(u, cols, jnp.inf, col=True)

    def local(ub, cb):
        return lax.map(lambda a: _radii2_rows(a, cb, k1), ub)

    split = P(DATA_AXIS)
    f = on_mesh(local, mesh, (split, P()), split)
    return f(ub, cb).reshape(-1)[:n]


def _prdc_core(real, fake, nearest_k, rows, cols, mesh):
    n, m = real.shape[0], fake.shape[0]
    k1 = nearest_k + 1
    # distances are translation invariant: centring shrinks the product form's round-off
    center = jnp.mean(real, axis=0)
    real, fake = real - center, fake - center
    rr2 = _radii2(real, k1, rows, cols, mesh)
    rf2 = _radii2(fake, k1, rows, cols, mesh)

    # padding rows are infinitely far (+inf norm) with radius 0: they count nowhere.
    # The tiles are not clamped at 0, so a radius 0 becomes -inf: for r2 >= 0,
    # max(d2, 0) < r2 exactly when r2 > 0 and d2 < r2.
    def cut(r2):
        return jnp.where(r2 > 0, r2, -jnp.inf)

    xb = _blocks(real, rows, jnp.inf, mesh_size(mesh))
    xr2 = jnp.pad(cut(rr2), (0, xb.shape[0] * rows - n)).reshape(xb.shape[:2])
    yb = _blocks(fake, cols, jnp.inf, col=True)
    yr2 = jnp.pad(cut(rf2), (0, yb.shape[0] * cols - m)).reshape(yb.shape[0], cols)

    def row_block(counts, blk):
        a, ra2 = blk

        def body(flags, col):
            b, rb2 = col
            d2 = _d2(a, b)
            in_real = d2 < ra2[:, None]
            in_fake = d2 < rb2[None, :]
            cov, rec = flags
            flags = (cov | jnp.any(in_real, 1), rec | jnp.any(in_fake, 1))
            return flags, jnp.sum(in_real, 0, dtype=jnp.int32)

        none = jnp.zeros(a.shape[0], bool)
        (cov, rec), cnt = lax.scan(body, (none, none), (yb, yr2))
        return counts + cnt, (cov, rec)

    def local(xb, xr2, yb, yr2):
        counts = jnp.zeros(yb.shape[:2], jnp.int32)
        counts, flags = lax.scan(row_block, counts, (xb, xr2))
        if mesh is not None:
            counts = lax.psum(counts, DATA_AXIS)
        return counts, flags

    split = P(DATA_AXIS)
    f = on_mesh(local, mesh, (split, split, P(), P()), (P(), (split, split)))
    counts, (cov, rec) = f(xb, xr2, yb, yr2)
    counts = counts.reshape(-1)[:m]
    cov, rec = cov.reshape(-1)[:n], rec.reshape(-1)[:n]
    dtype = real.dtype
    return PRDC(precision=jnp.mean(counts > 0, dtype=dtype),
                recall=jnp.mean(rec, dtype=dtype),
                density=jnp.sum(counts, dtype=dtype) / (nearest_k * m),
                coverage=jnp.mean(cov, dtype=dtype))


_prdc_jit = jax.jit(_prdc_core, static_argnames=("nearest_k", "rows", "cols", "mesh"))


def _check_k(nearest_k, n: int, m: int) -> None:
    if isinstance(nearest_k, bool) or not isinstance(nearest_k, int | np.integer):
        raise TypeError(f"nearest_k must be an integer; got {nearest_k!r}")
    top = min(n, m) - 1
    if not 1 <= nearest_k <= top:
        raise ValueError(f"nearest_k must be >= 1 and < the number of points of each set "
                         f"(real {n}, fake {m}: allowed 1..{top}); got {nearest_k}")


def _sizes(n: int, m: int, tile: int | None) -> tuple[int, int]:
    """Rows and columns of a tile."""
    kn._check_tile(tile)
    rows = max(1, min(ROW_TILE if tile is None else int(tile), max(n, m)))
    # no wider than the padded largest set (a multiple of the group size when it can be)
    widest = -(-max(n, m) // _GROUP) * _GROUP
    return rows, min(rows * COL_FACTOR, widest)


def prdc(real: jax.Array, fake: jax.Array, nearest_k: int = 5, *, tile: int | None = None,
         devices: int | Sequence[jax.Device] | None = None,
         mesh: jax.sharding.Mesh | None = None) -> PRDC:
    """k-NN precision and recall, density and coverage of ``fake`` against ``real``.

    The conventions are those of the ``prdc`` package (Naeem et al.'s reference
    code): Euclidean distances, a point's radius is the distance to its
    ``nearest_k``-th neighbour counting itself as the first (the ``nearest_k + 1``-th
    smallest distance to its own set), strict comparisons ``distance < radius``.
    The pairwise distances are computed tile by tile (``tile`` rows against
    ``8 tile`` columns) by the matrix-product form ``|x|^2 + |y|^2 - 2 x.y`` on
    centred data; memory stays at a few tiles whatever the sizes. Distances equal
    to a radius up to round-off may compare either way (as in any two
    implementations); the tests match the package to 1e-6 in float64.

    With several devices the row blocks of each pass are dealt out over them and
    the per-point counts added: integer sums, so the result equals the one-device
    one exactly.

    Args:
        real: ``(n, d)`` real features (``(n,)`` is read as d = 1).
        fake: ``(m, d)`` generated features.
        nearest_k: ``k``, with ``1 <= k < min(n, m)`` (static).
        tile: rows of a tile (static); default :data:`ROW_TILE`.
        devices: split the row blocks over this many devices (an int), these devices,
            or (``None``) all local devices, as in :func:`jaxcollapse.simulate`.
        mesh: alternatively, a ``jax.sharding.Mesh`` with an axis named ``"data"``.

    Returns:
        A :class:`PRDC` of scalars (the inputs' floating dtype).

    Example:
        >>> import jax
        >>> kr, kf = jax.random.split(jax.random.key(0))
        >>> real = jax.random.normal(kr, (300, 2))
        >>> fake = 0.5 * jax.random.normal(kf, (300, 2))
        >>> r = prdc(real, fake, nearest_k=5)
        >>> bool(r.precision > 0.9), bool(r.coverage < 0.9)
        (True, True)

    References:
        Kynkäänniemi et al., NeurIPS (2019); Naeem et al., ICML (2020).
    """
    real = kn.check_points(real, "real")
    fake = kn.check_points(fake, "fake", dim=real.shape[1])
    n, m = real.shape[0], fake.shape[0]
    _check_k(nearest_k, n, m)
    sizes = _sizes(n, m, tile)
    mesh = resolve_mesh(devices, mesh, DATA_AXIS, "tiles")
    dtype = jnp.result_type(real, fake)
    return _prdc_jit(real.astype(dtype), fake.astype(dtype), int(nearest_k), *sizes, mesh)


def prdc_plain(real: jax.Array, fake: jax.Array, nearest_k: int = 5,
               tile: int | None = None) -> PRDC:
    """:func:`prdc` without checks or devices: callable inside ``jit``, ``vmap`` and
    ``scan`` (e.g. in a :func:`jaxcollapse.simulate` metric). Shapes as for
    :func:`prdc`; the caller guarantees finite points and ``1 <= nearest_k < n, m``.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.arange(8.0).reshape(4, 2)
        >>> float(jax.jit(lambda a: prdc_plain(a, a + 0.1, 1).coverage)(x))
        1.0

    References:
        Naeem et al., ICML (2020).
    """
    sizes = _sizes(real.shape[0], fake.shape[0], tile)
    return _prdc_core(real, fake, nearest_k, *sizes, None)


@functools.cache
def prdc_metric(family, n_points: int = 500, nearest_k: int = 5):
    """A keyed :func:`jaxcollapse.simulate` metric: :func:`prdc` of ``n_points`` draws
    of each generation's fitted model (fake) against ``n_points`` draws of
    generation 0 (real), as a vector ``[precision, recall, density, coverage]``.

    Cached, so the same arguments give the same function and ``simulate`` does not
    recompile. ``family`` must offer ``sample(key, params, n)`` returning points
    ``(n, d)`` (Gaussian, GMM, KDE).

    Example:
        >>> import jaxcollapse as jc
        >>> m = prdc_metric(jc.GMM(2, 2), 100, 3)
        >>> m.needs_key, m is prdc_metric(jc.GMM(2, 2), 100, 3)
        (True, True)

    References:
        Naeem et al., ICML (2020); Kynkäänniemi et al., NeurIPS (2019).
    """
    check_instance(family, "family")
    if isinstance(n_points, bool) or not isinstance(n_points, int | np.integer) \
            or n_points < 2:
        raise ValueError(f"n_points must be an integer >= 2; got {n_points!r}")
    _check_k(nearest_k, int(n_points), int(n_points))
    if not callable(getattr(family, "sample", None)):
        raise TypeError(f"family must offer sample(key, params, n); got {family!r}")

    def prdc_vs_0(key, params, params0):
        k_real, k_fake = jax.random.split(key)
        real = family.sample(k_real, params0, n_points)
        fake = family.sample(k_fake, params, n_points)
        real, fake = (jnp.reshape(u, (n_points, -1)) for u in (real, fake))
        return jnp.stack(list(prdc_plain(real, fake, int(nearest_k))))

    prdc_vs_0.needs_key = True
    return prdc_vs_0


PRDC_FIELDS = PRDC._fields
