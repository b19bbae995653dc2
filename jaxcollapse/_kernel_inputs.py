"""Host-side checks of the inputs of :mod:`jaxcollapse.kernels` and
:mod:`jaxcollapse.metrics`, run before tracing: each names the argument, its value
and what is allowed. Checks of values skip tracers (the caller then owns them);
checks of shapes and dtypes, which are static, always run.

References:
    Gretton et al., A Kernel Two-Sample Test, JMLR 13 (2012).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

# Mixture weights must sum to 1 within this (absolute) tolerance.
WEIGHT_SUM_TOL = 1e-5


def _concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def check_real(x, name: str):
    """``x`` as an array; a complex one is refused (its imaginary part would be lost).

    Example:
        >>> check_real([1.0, 2.0], "x").shape
        (2,)
        >>> check_real([1j], "x")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: x must be real; got complex...
    """
    x = x if isinstance(x, jax.core.Tracer) else jnp.asarray(x)
    if jnp.issubdtype(x.dtype, jnp.complexfloating):
        raise TypeError(f"{name} must be real; got {x.dtype} (complex input is refused: its "
                        "imaginary part would be dropped)")
    return x


def check_lengthscale(lengthscale, name: str = "lengthscale") -> None:
    """A lengthscale must be a real scalar (the kernels are isotropic), finite and > 0;
    a tracer is checked for its shape only.

    Example:
        >>> check_lengthscale(0.5)
        >>> check_lengthscale(0.0)
        Traceback (most recent call last):
        ...
        ValueError: lengthscale must be finite and > 0; got 0.0
        >>> check_lengthscale([1.0, 2.0])
        Traceback (most recent call last):
        ...
        ValueError: lengthscale must be a scalar (the kernels are isotropic); got shape (2,)
    """
    if isinstance(lengthscale, int | float | np.number | np.ndarray) and \
            not isinstance(lengthscale, bool):
        # host values are checked with NumPy: no JAX backend is started (metrics are
        # built at import time, before jax.distributed.initialize may be called)
        a = np.asarray(lengthscale)
        if np.iscomplexobj(a):
            raise TypeError(f"{name} must be real; got {a.dtype} (complex input is refused: "
                            "its imaginary part would be dropped)")
    else:
        a = check_real(lengthscale, name)
    if a.ndim != 0:
        raise ValueError(f"{name} must be a scalar (the kernels are isotropic); got shape "
                         f"{tuple(a.shape)}")
    if not _concrete(a):
        return
    v = float(np.asarray(a, dtype=float))
    if not np.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be finite and > 0; got {v}")


def check_points(x, name: str, dim: int | None = None) -> jax.Array:
    """A point set: shape ``(n, d)`` (``(n,)`` read as d = 1) with n, d >= 1, real,
    finite (integers become floats).

    Example:
        >>> check_points([1.0, 2.0], "x").shape
        (2, 1)
        >>> check_points([[1.0, float("nan")]], "y")
        Traceback (most recent call last):
        ...
        ValueError: y must be finite; got NaN or inf in 1 of 1 rows
    """
    x = check_real(x, name)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n, d >= 1; got {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise ValueError(f"{name} must have dimension {dim} to match; got shape {x.shape}")
    if _concrete(x):
        bad = ~np.all(np.isfinite(np.asarray(x)), axis=1)
        if bad.any():
            raise ValueError(f"{name} must be finite; got NaN or inf in {int(bad.sum())} of "
                             f"{x.shape[0]} rows")
    return x


def check_key(key, name: str = "key") -> jax.Array:
    """A single PRNG key (``jax.random.key``; a legacy ``uint32[2]`` key is wrapped).

    Example:
        >>> check_key(jax.random.key(0)).shape
        ()
        >>> check_key(0)
        Traceback (most recent call last):
        ...
        TypeError: key must be a JAX PRNG key from jax.random.key(seed); got int 0
    """
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"{name} must be a single PRNG key (shape ()); got shape "
                             f"{key.shape}")
        return key
    if isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32 \
            and key.shape == (2,):
        return jax.random.wrap_key_data(jnp.asarray(key))
    raise TypeError(f"{name} must be a JAX PRNG key from jax.random.key(seed); got "
                    f"{type(key).__name__} {key!r}"[:200])


def _eig_floor(c):
    """The smallest eigenvalue of each symmetric part and a round-off tolerance."""
    c = np.asarray(c, dtype=float)
    eig = np.linalg.eigvalsh(0.5 * (c + np.swapaxes(c, -1, -2)))
    scale = np.maximum(np.max(np.abs(eig), axis=-1), np.finfo(float).tiny)
    return eig[..., 0], 1e3 * np.finfo(np.float32 if c.dtype == np.float32 else float).eps * scale


def check_gaussian(mean, cov, name: str, definite: bool = False):
    """``mean (..., d)`` and ``cov (..., d, d)``: real, finite, symmetric and positive
    semi-definite (``definite``: positive definite), up to round-off.

    Example:
        >>> m, c = check_gaussian([0.0], [[1.0]], "1")
        >>> check_gaussian([0.0], [[-1.0]], "1")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: cov1 must be positive semi-definite; ... eigenvalue -1
    """
    mean, cov = check_real(mean, f"mean{name}"), check_real(cov, f"cov{name}")
    if mean.ndim < 1 or mean.shape[-1] < 1 or cov.shape[-2:] != (mean.shape[-1],) * 2:
        raise ValueError(f"mean{name} must be (..., d) and cov{name} (..., d, d) with d >= 1; "
                         f"got {mean.shape} and {cov.shape}")
    if not (_concrete(mean) and _concrete(cov)):
        return mean, cov
    c = np.asarray(cov, dtype=float)
    if not (np.all(np.isfinite(np.asarray(mean, float))) and np.all(np.isfinite(c))):
        raise ValueError(f"mean{name} and cov{name} must be finite; got NaN or inf")
    asym = np.max(np.abs(c - np.swapaxes(c, -1, -2)), initial=0.0)
    low, tol = _eig_floor(c)
    if asym > np.max(tol):
        raise ValueError(f"cov{name} must be symmetric; got an asymmetry of {asym:.3g}")
    worst = float(np.min(low))
    if definite and np.any(low <= tol):
        raise ValueError(f"cov{name} must be positive definite; got a smallest eigenvalue "
                         f"{worst:.6g}")
    if np.any(low < -tol):
        raise ValueError(f"cov{name} must be positive semi-definite; got a smallest "
                         f"eigenvalue {worst:.6g}")
    return mean, cov


def check_mixture(w, means, covs, name: str, definite: bool = False):
    """Mixture weights ``(K,)`` (>= 0, summing to 1 within :data:`WEIGHT_SUM_TOL`),
    means ``(K, d)``, covariances ``(K, d, d)`` as :func:`check_gaussian`.

    Example:
        >>> w, m, c = check_mixture([0.5, 0.5], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "1")
        >>> check_mixture([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]], "1")
        Traceback (most recent call last):
        ...
        ValueError: w1 must sum to 1 (within 1e-05); got sum 1.1
    """
    w = check_real(w, f"w{name}")
    means, covs = check_gaussian(means, covs, f"s{name}", definite)
    if w.ndim != 1 or means.ndim != 2 or covs.ndim != 3 or means.shape[0] != w.shape[0] \
            or w.shape[0] < 1:
        raise ValueError(f"w{name}, means{name}, covs{name} must have shapes (K,), (K, d), "
                         f"(K, d, d) with K >= 1; got {w.shape}, {means.shape}, {covs.shape}")
    if _concrete(w):
        a = np.asarray(w, dtype=float)
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise ValueError(f"w{name} must be finite and >= 0; got {a.tolist()}"[:200])
        total = float(a.sum())
        if abs(total - 1.0) > WEIGHT_SUM_TOL:
            raise ValueError(f"w{name} must sum to 1 (within {WEIGHT_SUM_TOL:g}); got sum "
                             f"{total:.6g}")
    return w, means, covs


def memory_limit_bytes() -> int:
    """Half the memory of the default device (an accelerator's reported limit, or the
    host's physical memory on CPU).

    Example:
        >>> memory_limit_bytes() > 0
        True
    """
    try:
        stats = jax.local_devices()[0].memory_stats() or {}
        if stats.get("bytes_limit"):
            return int(stats["bytes_limit"]) // 2
    except Exception:  # noqa: BLE001 - CPU devices may not report memory
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (ValueError, OSError, AttributeError):
        return 2**34


def check_gram_memory(n: int, m: int, dtype) -> None:
    """Refuses a Gram matrix ``(n, m)`` larger than :func:`memory_limit_bytes`.

    Example:
        >>> check_gram_memory(10**5, 10**5, "float64")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: gram of 100,000 x 100,000 points needs 74.5 GiB ...
    """
    need = int(n) * int(m) * np.dtype(dtype).itemsize
    if need > memory_limit_bytes():
        raise ValueError(f"gram of {n:,} x {m:,} points needs {need / 2**30:.1f} GiB for its "
                         f"output (more than half of the {2 * memory_limit_bytes() / 2**30:.0f} "
                         "GiB available); use the tiled evaluators kernels.kernel_sum or "
                         "metrics.mmd2, which never hold the matrix, or fewer points")
