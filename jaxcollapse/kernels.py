"""Positive-definite kernels and Gram matrices computed tile by tile.

Every kernel here is stationary and isotropic: ``k(x, y) = f(|x - y|^2 / l^2)`` with
a lengthscale ``l`` that is an ordinary (traced) array, so one compiled program
serves a sweep over lengthscales. All of them have ``k(x, x) = 1``.

Large Gram matrices are never materialised by the reductions below: rows are cut
into tiles, each tile's squared distances come from the matrix-product form
``|x|^2 + |y|^2 - 2 x.y`` (clamped at zero against negative round-off), and only a
tile of kernel values lives in memory at a time.

References:
    Gretton et al., A Kernel Two-Sample Test, JMLR 13 (2012);
    Rasmussen & Williams, Gaussian Processes for Machine Learning (2006), ch. 4.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

Kernel = Callable[..., jax.Array]

# Elements of one tile of a materialised Gram matrix (2^22 doubles = 32 MiB).
TILE_ELEMENTS = 2**22
# Rows x columns of one tile of a Gram reduction (4 MiB in float64: stays in cache).
SUM_TILE = (512, 1024)


def _rbf_profile(r2):
    return jnp.exp(-0.5 * r2)


def _laplace_profile(r2):
    return jnp.exp(-jnp.sqrt(r2))


def _imq_profile(r2):
    return lax.rsqrt(1.0 + r2)


def _matern32_profile(r2):
    r = jnp.sqrt(3.0 * r2)
    return (1.0 + r) * jnp.exp(-r)


def _pair(profile, x, y, lengthscale):
    x, y = jnp.asarray(x), jnp.asarray(y)
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


def check_lengthscale(lengthscale, name: str = "lengthscale") -> None:
    """Host-side check that a (concrete) lengthscale is finite and positive.

    Example:
        >>> check_lengthscale(0.5)
        >>> check_lengthscale(0.0)
        Traceback (most recent call last):
        ...
        ValueError: lengthscale must be finite and > 0; got 0.0

    References:
        Gretton et al., JMLR 13 (2012).
    """
    if isinstance(lengthscale, jax.core.Tracer):
        return
    a = np.asarray(lengthscale, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        shown = a.item() if a.ndim == 0 else a.tolist()
        raise ValueError(f"{name} must be finite and > 0; got {shown}")


def check_points(x, name: str, dim: int | None = None) -> jax.Array:
    """Host-side check of a point set: shape ``(n, d)`` (or ``(n,)`` for d = 1), finite.

    Example:
        >>> check_points([1.0, 2.0], "x").shape
        (2, 1)

    References:
        Gretton et al., JMLR 13 (2012).
    """
    x = jnp.asarray(x)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n >= 1; got {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have dimension {dim} to match; got shape {x.shape}")
    if not bool(jnp.all(jnp.isfinite(x))):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    return x


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


def _tile_rows(n: int, m: int, tile: int | None) -> int:
    if tile is not None:
        return max(1, min(int(tile), n))
    return max(1, min(n, TILE_ELEMENTS // max(m, 1)))


def _row_blocks(x, rows):
    """Pads ``x`` to a multiple of ``rows`` and reshapes to ``(blocks, rows, d)``."""
    n = x.shape[0]
    nb = math.ceil(n / rows)
    pad = nb * rows - n
    xp = jnp.pad(x, ((0, pad), (0, 0)))
    mask = jnp.arange(nb * rows) < n
    return xp.reshape(nb, rows, -1), mask.reshape(nb, rows)


def _gram_tile(kernel, x, y, lengthscale):
    ell = jnp.asarray(lengthscale, x.dtype)
    x, y = x / ell, y / ell
    return _PROFILES[kernel](sq_dist(x, y))


def gram(x: jax.Array, y: jax.Array, kernel: str | Kernel = "rbf",
         lengthscale: jax.Array | float = 1.0, *, tile: int | None = None) -> jax.Array:
    """The Gram matrix ``K[i, j] = k(x_i, y_j)``, computed one row tile at a time.

    Args:
        x: ``(n, d)``; y: ``(m, d)``.
        kernel: a kernel name or function from :data:`KERNELS`.
        lengthscale: ``l > 0`` (traced).
        tile: rows per tile (static); default keeps a tile near 2^22 elements.

    Returns:
        ``(n, m)`` kernel values.

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0], [1.0], [2.0]])
        >>> gram(x, x, "rbf", 1.0, tile=2).round(4).tolist()[0]
        [1.0, 0.6065, 0.1353]

    References:
        Gretton et al., JMLR 13 (2012).
    """
    k = get_kernel(kernel)
    n, m = x.shape[0], y.shape[0]
    rows = _tile_rows(n, m, tile)
    xb, _ = _row_blocks(x, rows)
    out = lax.map(lambda xi: _gram_tile(k, xi, y, lengthscale), xb)
    return out.reshape(-1, m)[:n]


def _tile_pair(n: int, m: int, tile) -> tuple[int, int]:
    if tile is None:
        rows, cols = SUM_TILE
    elif isinstance(tile, int):
        rows, cols = tile, SUM_TILE[1]
    else:
        rows, cols = tile
    return max(1, min(int(rows), n)), max(1, min(int(cols), m))


def kernel_sum(x: jax.Array, y: jax.Array | None, kernel: str | Kernel = "rbf",
               lengthscale: jax.Array | float = 1.0, *,
               tile: int | tuple[int, int] | None = None) -> jax.Array:
    """``sum_ij k(x_i, y_j)`` without materialising the Gram matrix.

    The Gram matrix is cut into ``rows x cols`` tiles (default :data:`SUM_TILE`, small
    enough to stay in cache); a scan over column tiles inside a map over row tiles
    accumulates their sums, so memory stays at one tile whatever ``n`` and ``m``.

    (Visiting only half of the tiles of a symmetric sum was measured slower on CPU
    than the full sweep over rectangular cache-sized tiles, so ``y=None``, meaning
    ``y = x``, takes the same path.)

    Args:
        x: ``(n, d)``; y: ``(m, d)``, or ``None`` for ``y = x``.
        kernel, lengthscale: as for :func:`gram`.
        tile: rows, or ``(rows, cols)``, of a tile (static).

    Example:
        >>> import jax.numpy as jnp
        >>> x = jnp.array([[0.0], [1.0], [2.0]])
        >>> round(float(kernel_sum(x, x, "rbf", 1.0, tile=(2, 2))), 4)
        5.6968
        >>> round(float(kernel_sum(x, None, "rbf", 1.0, tile=1)), 4)
        5.6968

    References:
        Gretton et al., JMLR 13 (2012).
    """
    k = get_kernel(kernel)
    if y is None:
        y = x
    n, m = x.shape[0], y.shape[0]
    rows, cols = _tile_pair(n, m, tile)
    dtype = jnp.result_type(x, y)
    ell = jnp.asarray(lengthscale, dtype)
    xb, mx = _row_blocks(x.astype(dtype) / ell, rows)
    yb, my = _row_blocks(y.astype(dtype) / ell, cols)
    profile = _PROFILES[k]

    def per_row_tile(inp):
        xi, wi = inp

        def body(acc, inp_j):
            yj, wj = inp_j
            t = profile(sq_dist(xi, yj))
            # padded rows and columns are masked out (fused into the reduction)
            return acc + jnp.sum(jnp.where(wi[:, None] & wj[None, :], t, 0.0)), None

        acc, _ = lax.scan(body, jnp.zeros((), dtype), (yb, my))
        return acc

    return jnp.sum(lax.map(per_row_tile, (xb, mx)))

