"""Exact samplers that stay fast under ``vmap`` on every backend.

``jax.random.gamma`` runs a rejection loop per element; under ``vmap`` on CPU it is
several times slower than NumPy. :func:`gamma` uses the Marsaglia-Tsang method
with a fixed number of vectorised candidates per element and falls back, for
the rare element whose candidates were all rejected, to further rounds of the
same candidates (a ``while_loop`` that usually runs zero times). Taking the
first accepted candidate of an i.i.d. sequence is exactly rejection sampling, so
the result has exactly the gamma law.

The uniform and normal variates come from :func:`bits`, Threefry-2x32 in counter
mode (the word pairs of ``fold_in(key, i)`` for i = 0, 1, ...). On CPU this is
several times cheaper than ``jax.random.bits`` for the same Threefry function,
and it is just as reproducible: the same key gives the same words on any backend,
batch size or sharding.

References:
    Marsaglia, Tsang. A simple method for generating gamma variables.
    ACM TOMS 26(3), 2000. Salmon et al. Parallel random numbers: as easy as
    1, 2, 3 (SC 2011) for counter-based Threefry.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jax import lax

# Acceptance is >= 0.95 a candidate for shape >= 1 and > 0.99 for shape >= 10; two
# candidates leave the fallback loop idle for almost every element.
_N_CANDIDATES = 2


def _as_float(x):
    """Keeps a floating dtype (float32 stays float32 under x64); else the default."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def bits(key: jax.Array, shape) -> jax.Array:
    """Random uint32 words: Threefry-2x32 in counter mode, ``fold_in(key, i)``.

    Example:
        >>> import jax
        >>> bits(jax.random.key(0), (2, 3)).shape
        (2, 3)
    """
    shape = tuple(shape)
    n = math.prod(shape)
    per = jax.random.key_data(key).shape[-1]  # words per derived key (2 for Threefry)
    m = -(-n // per)
    words = jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(key, i)))(
        jnp.arange(m, dtype=jnp.uint32))
    return words.reshape(-1)[:n].reshape(shape)


def uniform(key: jax.Array, shape=(), dtype=None) -> jax.Array:
    """Uniform variates on the open interval (0, 1): never 0, never 1.

    float32 uses 23 random bits, float64 uses 52 (two words), each rounded to the
    midpoint of its cell so that the law is symmetric about 1/2.

    Example:
        >>> import jax
        >>> u = uniform(jax.random.key(0), (1000,))
        >>> bool((u > 0).all() and (u < 1).all())
        True
    """
    dtype = jnp.dtype(dtype or jnp.result_type(float))
    shape = tuple(shape)
    if dtype == jnp.float64:
        w = bits(key, (2,) + shape).astype(jnp.uint64)
        m = (w[0] << 20) | (w[1] >> 12)  # 52 bits
        return ((m.astype(jnp.float64) + 0.5) * 2.0**-52).astype(dtype)
    w = bits(key, shape)
    return ((w >> 9).astype(jnp.float32) + 0.5) * jnp.float32(2.0**-23)


def normal(key: jax.Array, shape=(), dtype=None) -> jax.Array:
    """Standard normal variates by inversion of :func:`uniform` (as
    ``jax.random.normal`` does), from the cheaper counter-mode words.

    Example:
        >>> import jax
        >>> z = normal(jax.random.key(0), (20000,))
        >>> bool(abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05)
        True
    """
    u = uniform(key, shape, dtype)
    return jnp.sqrt(jnp.asarray(2.0, u.dtype)) * lax.erf_inv(2.0 * u - 1.0)


def _candidates(key, d, c, n, extra=0):
    """``n`` Marsaglia-Tsang candidates per element from ONE draw of uniforms (the
    normals by inversion, as ``jax.random.normal`` does): key derivations cost as
    much as the variates themselves, so one draw per round keeps the sampler cheap.
    ``extra`` further uniforms per element are returned for the caller."""
    u = uniform(key, (2 * n + extra,) + d.shape, d.dtype)
    x = jnp.sqrt(jnp.asarray(2.0, d.dtype)) * lax.erf_inv(2.0 * u[:n] - 1.0)
    v = (1.0 + c * x) ** 3
    vpos = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (jnp.log(u[n:2 * n]) < 0.5 * x * x + d - d * vpos + d * jnp.log(vpos))
    first = jnp.argmax(accept, axis=0)
    value = d * jnp.take_along_axis(vpos, first[None], axis=0)[0]
    return value, jnp.any(accept, axis=0), u[2 * n:]


def _gamma_ge1(key, a, extra=0):
    """Gamma(a) for a >= 1 (elementwise), exact; plus ``extra`` uniforms per element."""
    d = a - 1.0 / 3.0
    c = 1.0 / jnp.sqrt(9.0 * d)
    value, done, u_extra = _candidates(key, d, c, _N_CANDIDATES, extra)

    def cond(state):
        return ~jnp.all(state[1])

    def body(state):
        value, done, i = state
        v, ok, _ = _candidates(jax.random.fold_in(key, i), d, c, _N_CANDIDATES)
        value = jnp.where(done, value, v)
        return value, done | ok, i + 1

    value, _, _ = lax.while_loop(cond, body, (value, done, jnp.int32(1)))
    return value, u_extra


def log_gamma_variate(key: jax.Array, a: jax.Array, shape=None) -> jax.Array:
    """log of a Gamma(a, 1) variate, exact; stays finite for tiny ``a``.

    Args:
        key: a JAX PRNG key.
        a: shape parameter(s) > 0 (float array); broadcast to ``shape``.
        shape: output shape (default ``a.shape``).

    Returns:
        ``log G`` with ``G ~ Gamma(a, 1)``; ``-inf`` where ``a == 0``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = log_gamma_variate(jax.random.key(0), jnp.full((4,), 2.0))
        >>> x.shape
        (4,)
    """
    a = _as_float(a)
    shape = a.shape if shape is None else tuple(shape)
    a = jnp.broadcast_to(a, shape)
    boost = a < 1.0
    g, u = _gamma_ge1(key, jnp.where(boost, a + 1.0, jnp.maximum(a, 1.0)), extra=1)
    # Gamma(a) = Gamma(a + 1) * U^(1/a) for a < 1 (done in logs: U^(1/a) underflows)
    logg = jnp.log(g) + jnp.where(boost, jnp.log(u[0]) / jnp.where(a > 0, a, 1.0), 0.0)
    return jnp.where(a > 0, logg, -jnp.inf)


def gamma(key: jax.Array, a: jax.Array, shape=None) -> jax.Array:
    """Gamma(a, 1) variates, exact, fast under ``vmap`` (Marsaglia-Tsang).

    Args:
        key: a JAX PRNG key.
        a: shape parameter(s) >= 0; ``a == 0`` gives 0.
        shape: output shape (default ``a.shape``).

    Example:
        >>> import jax
        >>> x = gamma(jax.random.key(0), 3.0, (20000,))
        >>> bool(abs(x.mean() - 3.0) < 0.1)
        True

    References:
        Marsaglia, Tsang, ACM TOMS 26(3), 2000.
    """
    return jnp.exp(log_gamma_variate(key, a, shape))


def chisquare(key: jax.Array, df: jax.Array, shape=None) -> jax.Array:
    """Chi-square variates with ``df >= 0`` degrees of freedom (``df == 0`` gives 0).

    Example:
        >>> import jax
        >>> x = chisquare(jax.random.key(1), 5.0, (20000,))
        >>> bool(abs(x.mean() - 5.0) < 0.15)
        True
    """
    df = _as_float(df)
    return 2.0 * gamma(key, 0.5 * df, shape)


# Threefry-2x32 rotation constants (Salmon et al. 2011; as in jax.random).
_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry_words(key_words: tuple, x0: jax.Array, x1: jax.Array) -> tuple:
    """Threefry-2x32 (20 rounds) of the counter pair ``(x0, x1)`` under a raw key.

    Elementwise with broadcasting, so one call hashes a different counter (and, if
    wanted, a different key) for every element; written out in ``jnp`` integer
    ops it fuses into one vectorised loop, several times cheaper on CPU than
    ``vmap``-ing ``jax.random.fold_in`` over the same counters. With ``x0 = 0`` it
    equals ``jax.random.key_data(jax.random.fold_in(key, x1))``, so counters
    ``(r, i)`` give independent words for every pair.

    Args:
        key_words: ``(k0, k1)``, the two uint32 words of a Threefry key
            (``jax.random.key_data(key)``), arrays broadcastable with the counters.
        x0, x1: uint32 counter words.

    Returns:
        The two uint32 output words, each of the broadcast shape.

    References:
        Salmon et al. Parallel random numbers: as easy as 1, 2, 3 (SC 2011).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> key = jax.random.key(0)
        >>> k0, k1 = jax.random.key_data(key)
        >>> w = threefry_words((k0, k1), jnp.uint32(0), jnp.arange(3, dtype=jnp.uint32))
        >>> ref = jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(key, i)))(
        ...     jnp.arange(3))
        >>> bool((w[0] == ref[:, 0]).all() and (w[1] == ref[:, 1]).all())
        True
    """
    k0, k1 = (jnp.asarray(k, jnp.uint32) for k in key_words)
    x0, x1 = jnp.asarray(x0, jnp.uint32), jnp.asarray(x1, jnp.uint32)
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    x0, x1 = x0 + k0, x1 + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x0 ^ x1
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + jnp.uint32(i + 1)
    return x0, x1
