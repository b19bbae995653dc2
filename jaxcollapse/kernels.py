"""Positive-definite kernels and Gram matrices computed tile by tile.

Every kernel here is stationary and isotropic: ``k(x, y) = f(|x - y|^2 / l^2)`` with
a lengthscale ``l`` that is an ordinary (traced) array, so one compiled program
serves a sweep over lengthscales. All of them have ``k(x, x) = 1``.

Large Gram matrices are never materialised by the reductions below: rows are cut
into tiles, each tile's squared distances come from the matrix-product form
``|x|^2 + |y|^2 - 2 x.y`` (clamped at zero against negative round-off), and only a
tile of kernel values lives in memory at a time. A symmetric sum (``y = x``) visits
only the tiles on and above the diagonal.

``gram`` and ``kernel_sum`` take ``devices=`` / ``mesh=`` (a mesh axis named
``"data"``, as :func:`jaxcollapse.simulate` takes one named ``"chains"``) and split
their rows or tiles over several devices; results equal the one-device ones up to the
order of the sums.

References:
    Gretton et al., A Kernel Two-Sample Test, JMLR 13 (2012);
    Rasmussen & Williams, Gaussian Processes for Machine Learning (2006), ch. 4.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import PartitionSpec as P

from jaxcollapse._fusion import SMALL_DIM
from jaxcollapse._kernel_inputs import (
    check_gram_memory,
    check_lengthscale,
    check_points,
    check_real,
)
from jaxcollapse._mesh import DATA_AXIS, mesh_size, on_mesh, resolve_mesh

Kernel = Callable[..., jax.Array]

# Elements of one tile of a materialised Gram matrix (2^22 doubles = 32 MiB).
TILE_ELEMENTS = 2**22
# Side of the square tiles of a Gram reduction (1024^2 values, 8 MiB in float64).
SUM_TILE = 1024
# Up to this dimension a tile's inner products are unrolled elementwise (a compiler
# workaround: see jaxcollapse._fusion.SMALL_DIM, where its backend note is).
_UNROLL_DIM = SMALL_DIM


def _rbf_profile(r2):
    return jnp.exp(-0.5 * r2)


def _laplace_profile(r2):
    return jnp.exp(-jnp.sqrt(r2))


def _imq_profile(r2):
    return lax.rsqrt(1.0 + r2)


def _matern32_profile(r2):
    # (1 + r) e^-r underflows to 0 beyond r = 745 in float64; the clamp keeps r = inf
    # (a padding row of a tiled sum) from giving inf * 0
    r = jnp.minimum(jnp.sqrt(3.0 * r2), 800.0)
    return (1.0 + r) * jnp.exp(-r)


def _pair(profile, x, y, lengthscale):
    x, y = check_real(x, "x"), check_real(y, "y")
    if x.ndim < 1 or y.ndim < 1 or x.shape[-1] != y.shape[-1]:
        raise ValueError(f"x and y must be points (..., d) of one dimension d; got shapes "
                         f"{x.shape} and {y.shape}")
    check_lengthscale(lengthscale)
    ell = jnp.asarray(lengthscale, jnp.result_type(x, y, float))
    r2 = jnp.sum((x - y) ** 2, axis=-1) / ell**2
    return profile(r2)


def rbf(x: jax.Array, y: jax.Array, lengthscale: jax.Array | float = 1.0) -> jax.Array:
    """Gaussian (RBF) kernel ``exp(-|x - y|^2 / (2 l^2))``.

    Args:
        x: points of shape ``(..., d)``; y: points broadcastable against ``x``.
        lengthscale: ``l > 0`` (traced).

    Returns:
        Kernel values of the broadcast batch shape ``(...)``.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(rbf(jnp.zeros(2), jnp.ones(2))), 6)
        0.367879

    References:
        Gretton et al., JMLR 13 (2012); THEORY.md section 6.
    """
    return _pair(_rbf_profile, x, y, lengthscale)


def laplace(x: jax.Array, y: jax.Array, lengthscale: jax.Array | float = 1.0) -> jax.Array:
    """Laplace kernel ``exp(-|x - y| / l)`` (Euclidean norm).

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(laplace(jnp.zeros(1), jnp.ones(1), 2.0)), 6)
        0.606531

    References:
        Rasmussen & Williams (2006), section 4.2.
    """
    return _pair(_laplace_profile, x, y, lengthscale)


def inverse_multiquadric(x: jax.Array, y: jax.Array,
                         lengthscale: jax.Array | float = 1.0) -> jax.Array:
    """Inverse multiquadric kernel ``(1 + |x - y|^2 / l^2)^(-1/2)``.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(inverse_multiquadric(jnp.zeros(1), jnp.ones(1))), 6)
        0.707107

    References:
        Gorham & Mackey, Measuring Sample Quality with Kernels, ICML (2017).
    """
    return _pair(_imq_profile, x, y, lengthscale)


def matern32(x: jax.Array, y: jax.Array, lengthscale: jax.Array | float = 1.0) -> jax.Array:
    """Matérn 3/2 kernel ``(1 + sqrt(3) r / l) exp(-sqrt(3) r / l)``, ``r = |x - y|``.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(matern32(jnp.zeros(1), jnp.ones(1))), 6)
        0.483358

    References:
        Rasmussen & Williams (2006), eq. 4.17.
    """
    return _pair(_matern32_profile, x, y, lengthscale)


KERNELS: dict[str, Kernel] = {
    "rbf": rbf,
    "laplace": laplace,
    "imq": inverse_multiquadric,
    "matern32": matern32,
}

# kernels of r = sqrt(r^2): their tiles take coordinate differences (see _tile_r2)
_OF_DISTANCE = (_laplace_profile, _matern32_profile)

_PROFILES = {
    rbf: _rbf_profile,
    laplace: _laplace_profile,
    inverse_multiquadric: _imq_profile,
    matern32: _matern32_profile,
}


def get_kernel(kernel: str | Kernel) -> Kernel:
    """Resolves a kernel name (``"rbf"``, ``"laplace"``, ``"imq"``, ``"matern32"``).

    Example:
        >>> get_kernel("rbf") is rbf
        True
        >>> get_kernel("cosine")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: kernel must be one of ['rbf', 'laplace', 'imq', 'matern32'] ...

    References:
        Gretton et al., JMLR 13 (2012).
    """
    if isinstance(kernel, str) and kernel in KERNELS:
        return KERNELS[kernel]
    if callable(kernel) and kernel in _PROFILES:
        return kernel
    raise ValueError(f"kernel must be one of {list(KERNELS)} or one of those functions; "
                     f"got {kernel!r}")


def sq_dist(x: jax.Array, y: jax.Array) -> jax.Array:
    """Pairwise squared distances ``(n, m)`` by the matrix-product form, clamped >= 0.

    Example:
        >>> import jax.numpy as jnp
        >>> sq_dist(jnp.array([[0.0], [1.0]]), jnp.array([[3.0]])).tolist()
        [[9.0], [4.0]]

    References:
        Gretton et al., JMLR 13 (2012).
    """
    xx = jnp.sum(x * x, axis=-1)[:, None]
    yy = jnp.sum(y * y, axis=-1)[None, :]
    xy = jnp.matmul(x, y.T, precision=lax.Precision.HIGHEST)
    return jnp.maximum(xx + yy - 2.0 * xy, 0.0)


def _pad_rows(x, rows):
    """``x`` padded with zero rows to ``rows`` rows."""
    return jnp.pad(x, ((0, rows - x.shape[0]), (0, 0)))


def _tile_rows(n: int, m: int, tile: int | None) -> int:
    if tile is not None:
        return max(1, min(int(tile), n))
    return max(1, min(n, TILE_ELEMENTS // max(m, 1)))


def _gram_tile(kernel, x, y, lengthscale):
    ell = jnp.asarray(lengthscale, x.dtype)
    x, y = x / ell, y / ell
    profile = _PROFILES[kernel]
    if profile in _OF_DISTANCE and x.shape[-1] <= _UNROLL_DIM:
        sx, sy = jnp.sum(x * x, -1), jnp.sum(y * y, -1)
        return profile(_tile_r2(x, sx, y, sy, True))
    return profile(sq_dist(x, y))


def _gram(x, y, kernel, lengthscale, tile=None):
    """The Gram matrix one row tile at a time (plain: callable inside any transform)."""
    n, m = x.shape[0], y.shape[0]
    # translation invariance: centring shrinks the round-off of the product form
    center = jnp.mean(y, axis=0)
    x, y = x - center, y - center
    rows = _tile_rows(n, m, tile)
    nb = -(-n // rows)
    xb = _pad_rows(x, nb * rows).reshape(nb, rows, -1)
    out = lax.map(lambda xi: _gram_tile(kernel, xi, y, lengthscale), xb)
    return out.reshape(-1, m)[:n]


@functools.partial(jax.jit, static_argnames=("kernel", "tile", "mesh"))
def _gram_jit(x, y, lengthscale, kernel, tile, mesh):
    n = x.shape[0]
    k = mesh_size(mesh)
    per = -(-n // k)
    # rows are dealt out in equal slices (the last padded); the padding is cut off
    f = on_mesh(lambda xl, yy, ell: _gram(xl, yy, kernel, ell, tile), mesh,
                (P(DATA_AXIS), P(), P()), P(DATA_AXIS))
    return f(_pad_rows(x, per * k), y, lengthscale)[:n]


def _check_tile(tile, name="tile"):
    if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int | np.integer)
                             or tile < 1):
        raise ValueError(f"{name} must be None or an integer >= 1; got {tile!r}")


def _check_inputs(kernel, tile, devices, mesh, split, x, y, lengthscale, *, y_optional=False):
    # The public boundary of gram and kernel_sum, in one order: the kernel, the tile,
    # the mesh (its data axis split into ``split``), the points, the lengthscale.
    k = get_kernel(kernel)
    _check_tile(tile)
    mesh = resolve_mesh(devices, mesh, DATA_AXIS, split)
    x = check_points(x, "x")
    y = x if y is None and y_optional else check_points(y, "y", dim=x.shape[1])
    check_lengthscale(lengthscale)
    return k, mesh, x, y


def gram(x: jax.Array, y: jax.Array, kernel: str | Kernel = "rbf",
         lengthscale: jax.Array | float = 1.0, *, tile: int | None = None,
         devices: int | Sequence[jax.Device] | None = None,
         mesh: jax.sharding.Mesh | None = None) -> jax.Array:
    """The Gram matrix ``K[i, j] = k(x_i, y_j)``, computed one row tile at a time.

    With several devices the rows (``x``) are split in equal slices, one per device
    (``n`` need not be a multiple of the device count); every entry is computed by
    the same arithmetic as on one device, so the result is the same (compared in
    the tests to rtol 1e-12 in float64).

    Args:
        x: ``(n, d)``; y: ``(m, d)``.
        kernel: a kernel name or function from :data:`KERNELS`.
        lengthscale: ``l > 0`` (traced).
        tile: rows per tile (static); default keeps a tile near 2^22 elements.
        devices: split the rows over this many devices (an int), these devices, or
            (``None``) all local devices, as in :func:`jaxcollapse.simulate`.
        mesh: alternatively, a ``jax.sharding.Mesh`` with an axis named ``"data"``.

    Returns:
        ``(n, m)`` kernel values.

    Raises:
        ValueError: for points that are empty, not finite or of different dimensions,
            a lengthscale that is not a finite positive scalar, or an output larger
            than half the device's memory (the message gives the size; the tiled
            :func:`kernel_sum` and :func:`jaxcollapse.metrics.mmd2` never hold it).
        TypeError: for complex input.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0], [1.0], [2.0]])
        >>> gram(x, x, "rbf", 1.0, tile=2).round(4).tolist()[0]
        [1.0, 0.6065, 0.1353]

    References:
        Gretton et al., JMLR 13 (2012).
    """
    k, mesh, x, y = _check_inputs(kernel, tile, devices, mesh, "rows", x, y, lengthscale)
    dtype = jnp.result_type(x, y, float)
    check_gram_memory(x.shape[0], y.shape[0], dtype)
    return _gram_jit(x.astype(dtype), y.astype(dtype), jnp.asarray(lengthscale, dtype), k,
                     tile, mesh)


# ------------------------------------------------------------------- tiled Gram sums


def _tile_r2(a, sa, b, sb, direct):
    """Squared distances of a tile. ``sa``, ``sb`` are squared norms, ``+inf`` on
    padding rows (which gives ``+inf`` here).

    The default is the matrix-product form ``|a|^2 + |b|^2 - 2 a.b``, clamped at 0
    against round-off: its absolute error (~eps |a|^2) is harmless to kernels smooth
    in ``r^2`` (RBF, IMQ). Kernels of ``r = sqrt(r^2)`` (Laplace, Matern) would turn it
    into ~sqrt(eps) |a| near ``r = 0``, coincident points included, so they take
    ``direct=True``: the sum of squared coordinate differences, exactly 0 there. In
    low dimension the products are unrolled elementwise, which XLA fuses with the
    kernel and the reduction into one loop over the tile; in higher dimension a
    matrix product is faster.
    """
    d = a.shape[-1]
    if d <= _UNROLL_DIM:
        if direct:
            pad = jnp.where(sa == jnp.inf, jnp.inf, 0.0)[:, None] + \
                jnp.where(sb == jnp.inf, jnp.inf, 0.0)[None, :]
            return sum((a[:, k, None] - b[None, :, k]) ** 2 for k in range(d)) + pad
        cross = sum(a[:, k, None] * b[None, :, k] for k in range(d))
    else:
        cross = jnp.matmul(a, b.T, precision=lax.Precision.HIGHEST)
    return jnp.maximum(sa[:, None] + sb[None, :] - 2.0 * cross, 0.0)


def _blocks(u, side):
    """``(blocks, side, d)`` zero-padded row blocks and their squared norms, which are
    ``+inf`` on padding rows: a padding row is infinitely far from every point, so its
    kernel values are exactly 0 and the inner loop needs no mask."""
    n = u.shape[0]
    nb = -(-n // side)
    up = _pad_rows(u, nb * side)
    sq = jnp.where(jnp.arange(nb * side) < n, jnp.sum(up * up, -1), jnp.inf)
    return up.reshape(nb, side, -1), sq.reshape(nb, side)


def _pair_list(n_blocks, terms, n_shards):
    """Block pairs ``(i, j)``, their weights and term ids, padded with weight-0 pairs
    to a multiple of ``n_shards``. A symmetric term (a set against itself) visits only
    the blocks ``i <= j``, counting ``i < j`` twice."""
    offsets = np.concatenate([[0], np.cumsum(n_blocks)])
    cols = []
    for t, (a, b) in enumerate(terms):
        na, nb = n_blocks[a], n_blocks[b]
        if a == b:
            i, j = np.triu_indices(na)
            w = np.where(i == j, 1.0, 2.0)
        else:
            i, j = np.divmod(np.arange(na * nb), nb)
            w = np.ones(na * nb)
        cols.append((i + offsets[a], j + offsets[b], w, np.full(i.shape, t)))
    i, j, w, g = (np.concatenate(c) for c in zip(*cols, strict=True))
    pad = -len(i) % n_shards
    i, j, g = (np.pad(v, (0, pad)).astype(np.int32) for v in (i, j, g))
    return i, j, np.pad(w, (0, pad)), g


def _tiled_sums(profile, sets, terms, side, mesh):
    """``sums[t] = sum_ij k(sets[a]_i, sets[b]_j)`` for every term ``t = (a, b)`` of
    already scaled (``x / l``) point sets, by one scan over square tiles of ``side``
    rows. With a mesh, the tiles are dealt out in equal shares over its devices and
    the per-device sums are added by a ``psum``."""
    dtype = sets[0].dtype
    # kernels are translation invariant: centring shrinks the round-off of the
    # matrix-product form for data far from the origin
    center = jnp.mean(sets[0], axis=0)
    blocks = [_blocks(u - center, side) for u in sets]
    zb = jnp.concatenate([b for b, _ in blocks])
    zsq = jnp.concatenate([s for _, s in blocks])
    pairs = _pair_list([b.shape[0] for b, _ in blocks], terms, mesh_size(mesh))

    direct = profile in _OF_DISTANCE

    rbf_form = profile is _rbf_profile and zb.shape[-1] <= _UNROLL_DIM
    if rbf_form:
        zsq = -0.5 * zsq

    def tile(a, sa, b, sb):
        if rbf_form:
            # -|a - b|^2 / 2 = ha + hb + a.b with h = -|.|^2 / 2 (-inf on padding)
            e = sa[:, None] + sb[None, :] + sum(a[:, k, None] * b[None, :, k]
                                                for k in range(a.shape[-1]))
            return jnp.exp(jnp.minimum(e, 0.0))
        return profile(_tile_r2(a, sa, b, sb, direct))

    def partial_sums(zb, zsq, pi, pj, pw, pg):
        def body(acc, p):
            i, j, w, g = p
            t = tile(zb[i], zsq[i], zb[j], zsq[j])
            return acc.at[g].add(w * jnp.sum(t)), None

        acc, _ = lax.scan(body, jnp.zeros((len(terms),), dtype), (pi, pj, pw, pg))
        return acc if mesh is None else lax.psum(acc, DATA_AXIS)

    split = P(DATA_AXIS)
    f = on_mesh(partial_sums, mesh, (P(), P(), split, split, split, split), P())
    return f(zb, zsq, *(jnp.asarray(v) for v in pairs[:2]), jnp.asarray(pairs[2], dtype),
             jnp.asarray(pairs[3]))


def _sum_side(n: int, tile) -> int:
    """The side of square tiles of about ``tile`` rows (default :data:`SUM_TILE`)
    that cover ``n`` rows with the fewest blocks and the least padding (a multiple
    of 8 rows, the vector width, when large)."""
    side = max(1, min(int(SUM_TILE if tile is None else tile), n))
    side = -(-n // -(-n // side))
    return side if side <= 64 else -(-side // 8) * 8


@functools.partial(jax.jit, static_argnames=("kernel", "tile", "mesh", "symmetric"))
def _kernel_sum_jit(x, y, lengthscale, kernel, tile, mesh, symmetric):
    sets = [x / lengthscale] if symmetric else [x / lengthscale, y / lengthscale]
    side = _sum_side(max(u.shape[0] for u in sets), tile)
    terms = [(0, 0)] if symmetric else [(0, 1)]
    return _tiled_sums(_PROFILES[kernel], sets, terms, side, mesh)[0]


def kernel_sum(x: jax.Array, y: jax.Array | None, kernel: str | Kernel = "rbf",
               lengthscale: jax.Array | float = 1.0, *, tile: int | None = None,
               devices: int | Sequence[jax.Device] | None = None,
               mesh: jax.sharding.Mesh | None = None) -> jax.Array:
    """``sum_ij k(x_i, y_j)`` without materialising the Gram matrix.

    The Gram matrix is cut into square tiles of ``tile`` rows (default
    :data:`SUM_TILE`); one scan over the tiles accumulates their sums, so memory
    stays at one tile whatever ``n`` and ``m``. For ``y=None`` (meaning ``y = x``)
    only the tiles on and above the diagonal are computed, the others being their
    transposes: half the work. Padding rows are made infinitely far from every
    point, so their kernel values are exactly 0 and no mask enters the inner loop.

    With several devices the tiles are dealt out in equal shares and the per-device
    sums added at the end: the same terms summed in another order, equal to the
    one-device result to floating-point reordering (a few ulps of the total; the
    tests hold it to rtol 1e-12 in float64).

    Args:
        x: ``(n, d)``; y: ``(m, d)``, or ``None`` for ``y = x``.
        kernel, lengthscale: as for :func:`gram`.
        tile: side of a square tile (static).
        devices, mesh: as for :func:`gram` (axis ``"data"``).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0], [1.0], [2.0]])
        >>> round(float(kernel_sum(x, x, "rbf", 1.0, tile=2)), 4)
        5.6968
        >>> round(float(kernel_sum(x, None, "rbf", 1.0, tile=1)), 4)
        5.6968

    References:
        Gretton et al., JMLR 13 (2012).
    """
    k, mesh, x, y_ = _check_inputs(kernel, tile, devices, mesh, "tiles", x, y, lengthscale,
                                   y_optional=True)
    dtype = jnp.result_type(x, y_, float)
    return _kernel_sum_jit(x.astype(dtype), y_.astype(dtype), jnp.asarray(lengthscale, dtype),
                           k, tile, mesh, y is None)
