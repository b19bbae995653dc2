"""Threefry-2x32 in counter mode, written in plain elementwise operations, and the
maps from its words to uniforms and normals (the core of :mod:`jaxcollapse.random`).

JAX lowers its ``threefry2x32`` primitive on CPU to a rolled loop that XLA can
neither fuse nor vectorise; these twenty unrolled rounds give the same words and
fuse with whatever turns the words into variates (see :mod:`jaxcollapse._fusion`).

References:
    Salmon et al. Parallel random numbers: as easy as 1, 2, 3 (SC 2011).
    Giles. Approximating the erfinv function (GPU Computing Gems, 2011).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._validate import check_int, check_real, is_traced

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def _rotl(x, r):
    return (x << np.uint32(r)) | (x >> np.uint32(32 - r))


# jitted so that eager calls run as one compiled program (inlined when traced)
@functools.partial(jax.jit, inline=True)
def _threefry2x32(k0, k1, x0, x1):
    """Threefry-2x32, 20 rounds, on broadcastable uint32 arrays: the words JAX's
    ``threefry2x32`` primitive gives for key (k0, k1) and counter (x0, x1)."""
    k2 = k0 ^ k1 ^ _PARITY
    ks = (k0, k1, k2)
    x0, x1 = x0 + k0, x1 + k1
    for i in range(5):
        for r in _ROTATIONS[i % 2]:
            x0 = x0 + x1
            x1 = x0 ^ _rotl(x1, r)
        x0 = x0 + ks[(i + 1) % 3]
        x1 = x1 + ks[(i + 2) % 3] + np.uint32(i + 1)
    return x0, x1


def _key_words(key):
    """The two uint32 words of each Threefry key, shape ``key.shape`` each (another
    PRNG's key is first turned into two words drawn from it)."""
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype,
                                                                  jax.dtypes.prng_key)):
        raise TypeError(f"key must be a JAX PRNG key from jax.random.key; got {key!r}"[:200])
    if str(jax.random.key_impl(key)) == "threefry2x32":
        data = jax.random.key_data(key)
    else:
        data = jax.vmap(lambda k: jax.random.bits(k, (2,), jnp.uint32))(key.reshape(-1))
        data = data.reshape(key.shape + (2,))
    return data[..., 0], data[..., 1]


def _hash(key, stream, index):
    """Both words of the hash of counter (stream, index) under every key: shape
    ``key.shape + index.shape``."""
    k0, k1 = _key_words(key)
    extra = (None,) * jnp.ndim(index)
    k0, k1 = k0[(..., *extra)], k1[(..., *extra)]
    index = jnp.asarray(index, jnp.uint32)
    shape = jnp.broadcast_shapes(k0.shape, index.shape)
    stream = jnp.broadcast_to(jnp.asarray(stream, jnp.uint32), shape)
    return _threefry2x32(k0, k1, stream, jnp.broadcast_to(index, shape))


def _unit32(w):
    """float32 uniform on (0, 1) from the top 23 bits, at the midpoint of its cell."""
    return ((w >> np.uint32(9)).astype(jnp.float32) + 0.5) * np.float32(2.0**-23)


def _unit64(hi, lo):
    """float64 uniform on (0, 1) from 52 bits of two words."""
    m = (hi.astype(jnp.uint64) << np.uint64(20)) | (lo >> np.uint32(12)).astype(jnp.uint64)
    return (m.astype(jnp.float64) + 0.5) * 2.0**-52


def _horner(coefs, x):
    p = jnp.full_like(x, coefs[0])
    for c in coefs[1:]:
        p = p * x + c
    return p


# Giles (2011), single precision erfinv: central branch in w - 2.5, tail in sqrt(w) - 3
_ERFINV_CENTRAL = (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06,
                   0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)
_ERFINV_TAIL = (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844,
                0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)
# Cephes sinf / cosf on [-pi/4, pi/4]
_SIN = (-1.9515295891e-4, 8.3321608736e-3, -1.6666654611e-1)
_COS = (2.443315711809948e-5, -1.388731625493765e-3, 4.166664568298827e-2)


@functools.partial(jax.jit, inline=True)
def _ndtri32(u):
    """Standard normal quantile of float32 u in (0, 1): sqrt(2) erfinv(2u - 1), with
    w = -log(1 - (2u - 1)^2) as -log(4u(1 - u)) (no cancellation in the tails;
    relative error < 3e-7 on every float32 uniform). Each logarithm has one user, so
    XLA keeps the whole quantile in one loop with the hash."""
    q = 4.0 * u * (1.0 - u)
    central = _horner(_ERFINV_CENTRAL, -jnp.log(q) - 2.5)
    tail = _horner(_ERFINV_TAIL, jnp.sqrt(-jnp.log(4.0 * u - 4.0 * u * u)) - 3.0)
    p = jnp.where(q > np.float32(math.exp(-5.0)), central, tail)
    return np.float32(math.sqrt(2.0)) * p * (2.0 * u - 1.0)


def _ndtri64(u):
    return math.sqrt(2.0) * lax.erf_inv(2.0 * u - 1.0)


@functools.partial(jax.jit, inline=True)
def _cis_2pi32(u):
    """cos(2 pi u) + i sin(2 pi u) for float32 u in (0, 1), by quarter periods."""
    q = jnp.floor(4.0 * u + 0.5)
    t = (u - 0.25 * q) * np.float32(2.0 * math.pi)  # in [-pi/4, pi/4]
    t2 = t * t
    s = t + t * t2 * _horner(_SIN, t2)
    c = 1.0 - 0.5 * t2 + t2 * t2 * _horner(_COS, t2)
    quarter = q.astype(jnp.int32) & 3  # angle = quarter * pi / 2 + t
    odd = (quarter & 1) == 1
    sin = jnp.where(odd, c, s)
    cos = jnp.where(odd, s, c)
    sin = jnp.where(quarter >= 2, -sin, sin)
    cos = jnp.where((quarter == 1) | (quarter == 2), -cos, cos)
    return cos, sin


def _float_dtype(dtype):
    try:
        dtype = jnp.dtype(dtype or jnp.result_type(float))
    except TypeError:
        raise TypeError(f"dtype must be float32 or float64; got {dtype!r}") from None
    if dtype not in (jnp.float32, jnp.float64):
        raise ValueError(f"dtype must be float32 or float64; got {dtype}")
    return dtype


def _as_float(x):
    """Keeps a floating dtype (float32 stays float32 under x64); else the default."""
    x = jnp.asarray(x)
    if x.dtype in (jnp.float16, jnp.bfloat16):  # the samplers work in float32 at least
        return x.astype(jnp.float32)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


def _check_shape(shape, name="shape") -> tuple:
    """A static shape: a tuple of integers >= 0 (an int is one axis)."""
    if isinstance(shape, int | np.integer) and not isinstance(shape, bool):
        shape = (shape,)
    if not isinstance(shape, tuple | list):
        raise TypeError(f"{name} must be a tuple of integers >= 0; got {shape!r}"[:200])
    out = tuple(check_int(s, f"{name}[{i}]", minimum=0) for i, s in enumerate(shape))
    if math.prod(out) > np.iinfo(np.uint32).max:
        raise ValueError(f"{name} {out} holds {math.prod(out)} variates; at most 2**32 - 1 "
                         f"have distinct counters under one key (split the key)")
    return out


# Beyond this shape Marsaglia-Tsang's acceptance test, d (1 - v + log v) with
# v = 1 + O(1/sqrt(d)), is lost to rounding (float64 rejects every candidate near
# 1e30: the loop would never end); a traced shape is not checked.
_MAX_SHAPE = 1e15


def _check_shape_param(a, name, scale=1.0):
    """A gamma shape / degrees of freedom: real, >= 0, finite, at most 1e15 (host)."""
    if not is_traced(a):
        check_real(a, name, minimum=0.0, maximum=_MAX_SHAPE * scale)


def _index(shape):
    return lax.iota(jnp.uint32, math.prod(shape)).reshape(shape)


def _interleave(re, im, n, shape):
    """The first n of re_0, im_0, re_1, im_1, ... along the last axis -> key batch +
    shape."""
    flat = jnp.stack([re, im], axis=-1).reshape(re.shape[:-1] + (-1,))
    return flat[..., :n].reshape(re.shape[:-1] + shape)
