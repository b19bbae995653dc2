"""Exact samplers that stay fast under ``vmap`` and ``scan`` on every backend.

Every variate comes from Threefry-2x32 (the hash behind ``jax.random``) in counter
mode: variate ``i`` of stream ``s`` uses the two words of the hash of counter
``(s, i)`` under the key (stream 0 gives :func:`bits`: the words of
``fold_in(key, i)``). The hash is written here in plain elementwise operations,
bit-identical to JAX's; on CPU, JAX lowers it to a rolled loop that XLA can neither
fuse nor vectorise, while these twenty unrolled rounds fuse with whatever turns the
words into variates.

* :func:`uniform`: the open interval (0, 1) from 23 (float32) or 52 (float64) bits.
* :func:`complex_normal` / :func:`normal`: Box-Muller, two independent standard
  normals per pair of uniforms, as the real and imaginary parts of one complex
  number. Keeping the pair in one complex array lets XLA compute each hash once (it
  recomputes a fused hash for every output array that needs it); :func:`normal`
  lists the parts in turn. float32 evaluates sine and cosine by polynomials on a
  quarter period (Cephes), which vectorise, unlike XLA's.
* :func:`gamma` and :func:`chisquare`: Marsaglia-Tsang with one vectorised
  candidate per element (its normal by inversion: Giles' erfinv); the rare element
  whose candidate is rejected draws further candidates in a ``while_loop`` over
  the few segments of 32 elements that hold one (gathered, then scattered back),
  so a batch pays for its few rejections only. Taking the first accepted candidate
  of an i.i.d. sequence is exactly rejection sampling, so the result has exactly
  the gamma law. Candidate ``r`` of element ``i`` uses stream ``r + 1`` (float64:
  streams ``2r + 1`` and ``2r + 2``), so a key may serve :func:`normal` and
  :func:`gamma` at once, and no result depends on batching.

Every function also accepts an array of keys: the result then has the keys' shape
in front, element for element what ``jax.vmap`` over the keys would give (one
vectorised draw, and one fallback loop for all the keys' rejections).

References:
    Salmon et al. Parallel random numbers: as easy as 1, 2, 3 (SC 2011).
    Box, Muller. A note on the generation of random normal deviates (1958).
    Giles. Approximating the erfinv function (GPU Computing Gems, 2011).
    Marsaglia, Tsang. A simple method for generating gamma variables.
    ACM TOMS 26(3), 2000.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._fusion import apart, runtime_true
from jaxcollapse._validate import check_int, check_int_array, check_key, check_real, is_traced

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)
# stream of the uniform that boosts a Gamma(a < 1) variate
_BOOST = np.uint32(0xFFFFFFFF)
# the gamma fallback treats the first pending element of each segment this long,
# for at least this many segments at a time
_SEGMENT = 32
_FALLBACK_BLOCKS = 64


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


def fold_in(key: jax.Array, data) -> jax.Array:
    """``jax.random.fold_in`` (same keys) for Threefry keys, broadcast over arrays of
    keys and of non-negative 32-bit integers ``data``, in fusible operations.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> key = jax.random.key(0)
        >>> keys = fold_in(key, jnp.arange(3))
        >>> bool((jax.random.key_data(keys[2])
        ...       == jax.random.key_data(jax.random.fold_in(key, 2))).all())
        True
    """
    check_key(key)
    if not is_traced(data):
        check_int_array(data, "data", minimum=0)
        if np.size(data) and np.max(np.asarray(data)) > np.iinfo(np.uint32).max:
            raise ValueError(f"data must be 32-bit integers (< 2**32); got {data!r}"[:200])
    if str(jax.random.key_impl(key)) != "threefry2x32":
        return jax.vmap(jax.random.fold_in)(*jnp.broadcast_arrays(key, jnp.asarray(data)))
    k0, k1 = _key_words(key)
    data = jnp.asarray(data).astype(jnp.uint32)
    shape = jnp.broadcast_shapes(k0.shape, data.shape)
    a, b = _threefry2x32(k0, k1, jnp.zeros(shape, jnp.uint32), data)
    return jax.random.wrap_key_data(jnp.stack([a, b], axis=-1))


def bits(key: jax.Array, shape) -> jax.Array:
    """Random uint32 words: the words of ``fold_in(key, i)`` for i = 0, 1, ...

    Example:
        >>> import jax
        >>> key = jax.random.key(0)
        >>> w = bits(key, (2, 3))
        >>> w.shape
        (2, 3)
        >>> bool((w.reshape(-1)[:2] == jax.random.key_data(jax.random.fold_in(key, 0))).all())
        True
    """
    check_key(key)
    shape = _check_shape(shape)
    n = math.prod(shape)
    a, b = _hash(key, 0, _index((-(-n // 2),)))
    return _interleave(a, b, n, shape)


def uniform(key: jax.Array, shape=(), dtype=None) -> jax.Array:
    """Uniform variates on the open interval (0, 1): never 0, never 1.

    float32 takes the top 23 bits of each word of :func:`bits`; float64 takes 52
    bits of the two words of hash ``i`` for variate ``i``. Each is the midpoint of its
    cell, so the law is symmetric about 1/2.

    Example:
        >>> import jax
        >>> u = uniform(jax.random.key(0), (1000,))
        >>> bool((u > 0).all() and (u < 1).all())
        True
    """
    check_key(key)
    dtype = _float_dtype(dtype)
    shape = _check_shape(shape)
    if dtype == jnp.float64:
        return _unit64(*_hash(key, 0, _index(shape)))
    return _unit32(bits(key, shape))


def complex_normal(key: jax.Array, shape=(), dtype=None) -> jax.Array:
    """Pairs of independent standard normals as complex numbers ``z1 + i z2``
    (Box-Muller from the pair of uniforms of one hash; float64: of two hashes).

    ``dtype`` is the real dtype (float32 gives complex64). Computing both normals of
    a pair in one complex array costs one hash per pair.

    Example:
        >>> import jax
        >>> z = complex_normal(jax.random.key(0), (20000,), "float32")
        >>> z.dtype.name
        'complex64'
        >>> bool(abs(float(z.real.std()) - 1) < 0.05 and abs(float(z.imag.std()) - 1) < 0.05)
        True
    """
    check_key(key)
    dtype = _float_dtype(dtype)
    shape = _check_shape(shape)
    if dtype == jnp.float64:
        a, b = _hash(key, 0, 2 * _index(shape))
        c, d = _hash(key, 0, 2 * _index(shape) + 1)
        u1, u2 = _unit64(a, b), _unit64(c, d)
        angle = 2.0 * math.pi * u2
        cos, sin = jnp.cos(angle), jnp.sin(angle)
    else:
        a, b = _hash(key, 0, _index(shape))
        u1, u2 = _unit32(a), _unit32(b)
        cos, sin = _cis_2pi32(u2)
    r = jnp.sqrt(-2.0 * jnp.log(u1))
    return lax.complex(r * cos, r * sin)


def normal(key: jax.Array, shape=(), dtype=None) -> jax.Array:
    """Standard normal variates: the parts of :func:`complex_normal` in turn.

    Example:
        >>> import jax
        >>> z = normal(jax.random.key(0), (20000,))
        >>> bool(abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05)
        True
    """
    shape = _check_shape(shape)
    n = math.prod(shape)
    z = complex_normal(key, (-(-n // 2),), dtype)
    return _interleave(jnp.real(z), jnp.imag(z), n, shape)


def from_complex_pairs(z: jax.Array, shape) -> jax.Array:
    """Unpacks :func:`complex_normal` pairs (last axis) into real normals of ``shape``
    (after any leading axes), as :func:`normal` lists them.

    Example:
        >>> import jax
        >>> key = jax.random.key(0)
        >>> z = from_complex_pairs(complex_normal(key, (3,)), (5,))
        >>> bool((z == normal(key, (5,))).all())
        True
    """
    shape = tuple(shape)
    return _interleave(jnp.real(z), jnp.imag(z), math.prod(shape), shape)


def _mt_candidate(k0, k1, rnd, index, d, c):
    """Candidate ``rnd`` (0, 1, ...) of Marsaglia-Tsang for Gamma(d + 1/3) per element:
    the value where accepted, -1 where rejected (one output array, so XLA hashes
    once). It uses stream rnd + 1 (float64: 2 rnd + 1 and 2 rnd + 2) at ``index``."""
    rnd = rnd.astype(jnp.uint32)
    if d.dtype == jnp.float64:
        a, b = _threefry2x32(k0, k1, 2 * rnd + 1, index)
        x = _ndtri64(_unit64(a, b))
        a, b = _threefry2x32(k0, k1, 2 * rnd + 2, index)
        u = _unit64(a, b)
    else:
        a, b = _threefry2x32(k0, k1, rnd + 1, index)
        x, u = _ndtri32(_unit32(a)), _unit32(b)
    v = (1.0 + c * x) ** 3
    vpos = jnp.where(v > 0, v, 1.0)
    accept = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * vpos + d * jnp.log(vpos))
    return jnp.where(accept, d * vpos, -1.0).astype(d.dtype)


def _gamma_ge1(k0, k1, index, a, inputs, value=None):
    """Gamma(a) for flat ``a`` >= 1 (n,), with key words and counter indices (n,).

    Candidate 0 for every element at once (or ``value``: candidate 0 drawn by the
    caller, -1 where rejected). While some are rejected, a pass gathers
    up to ``_FALLBACK_BLOCKS`` segments of ``_SEGMENT`` elements that hold pending
    ones and, in a small loop, draws the next candidate of the first pending element
    of each segment (keyed by that element's own round count) until those segments
    are done; a rare overflow of segments waits for the next pass. ``inputs(pos)``
    gives (k0, k1, index, a) at flat positions ``pos``, gathered from arrays the
    caller already holds, so the fallback materialises nothing of size n.
    """
    n = (a if value is None else value).shape[0]

    def candidate(k0, k1, rnd, index, a):
        d = a - 1.0 / 3.0
        return _mt_candidate(k0, k1, rnd, index, d, lax.rsqrt(9.0 * d))

    if value is None:
        value = candidate(k0, k1, jnp.zeros((n,), jnp.uint32), index, a)
    seg = min(_SEGMENT, n)
    n_seg = -(-n // seg)
    n_pick = min(n_seg, max(_FALLBACK_BLOCKS, n_seg // 8))
    pad = n_seg * seg - n
    if pad:  # padded slots hold an accepted dummy value
        value = jnp.concatenate([value, jnp.ones((pad,), value.dtype)])
    value = value.reshape(n_seg, seg)

    def next_candidates(state):
        sub, rows, last, rnd = state
        pending = sub < 0
        j = jnp.argmax(pending, axis=1).astype(jnp.int32)
        rnd = jnp.where(j == last, rnd + 1, 1)
        picked = [jnp.take_along_axis(x, j[:, None], axis=1)[:, 0] for x in rows]
        cand = candidate(picked[0], picked[1], rnd, *picked[2:])
        hit = (lax.iota(jnp.int32, seg)[None, :] == j[:, None]) & pending
        return jnp.where(hit, cand[:, None], sub), rows, j, rnd

    def fallback_pass(value):
        # min, not any(value < 0): XLA:CPU vectorises a reduction only of a plain array
        pending = jnp.min(value, axis=1) < 0
        # fill with the first segment: a repeat redoes the same draws, so it is harmless
        pick = jnp.nonzero(pending, size=n_pick, fill_value=0)[0].astype(jnp.int32)
        pos = jnp.minimum(pick[:, None] * seg + lax.iota(jnp.int32, seg)[None, :], n - 1)
        state = (value[pick], list(inputs(pos)), jnp.full((n_pick,), -1, jnp.int32),
                 jnp.zeros((n_pick,), jnp.int32))
        state = lax.while_loop(lambda s: jnp.min(s[0]) < 0, next_candidates, state)
        return value.at[pick].set(state[0])

    value = lax.while_loop(lambda v: jnp.min(v) < 0, fallback_pass, value)
    return value.reshape(-1)[:n]


@functools.partial(jax.jit, static_argnames=("shape", "log"))
def _gamma_flat(key, a, shape, log):
    """Gamma(a) (or its log) for ``a`` broadcast to ``key.shape + shape``."""
    kshape = key.shape
    out_shape = kshape + shape
    per = math.prod(shape)
    k0, k1 = _key_words(key)
    extra = (None,) * len(shape)
    k0 = jnp.broadcast_to(k0[(..., *extra)], out_shape).reshape(-1)
    k1 = jnp.broadcast_to(k1[(..., *extra)], out_shape).reshape(-1)
    index = jnp.broadcast_to(_index(shape), out_shape).reshape(-1)
    a = jnp.broadcast_to(a, out_shape).reshape(-1)
    boost = a < 1.0
    a_ge1 = jnp.where(boost, a + 1.0, jnp.maximum(a, 1.0))
    w0, w1 = (w.reshape(-1) for w in _key_words(key))

    def inputs(pos):
        kpos = pos // per
        return w0[kpos], w1[kpos], (pos % per).astype(jnp.uint32), a_ge1[pos]

    g = _gamma_ge1(k0, k1, index, a_ge1, inputs)

    def plain():
        return jnp.log(g) if log else g

    def with_boost():
        w0, w1 = _threefry2x32(k0, k1, jnp.full(index.shape, _BOOST), index)
        u = _unit64(w0, w1) if a.dtype == jnp.float64 else _unit32(w0)
        # Gamma(a) = Gamma(a + 1) * U^(1/a) for a < 1 (in logs: U^(1/a) underflows)
        boosted = jnp.log(g) + jnp.log(u) / jnp.where(a > 0, a, 1.0)
        boosted = jnp.where(a > 0, boosted, -jnp.inf)
        # elements with a >= 1 keep exactly the plain value, whichever branch runs
        return jnp.where(boost, boosted if log else jnp.exp(boosted), plain())

    # the boost is drawn only when some element needs it (a batch-wide test: under
    # vmap over batched shapes it is always drawn)
    return lax.cond(jnp.min(a) < 1.0, with_boost, plain).reshape(out_shape)


def _gather_broadcast(x, shape, pos):
    """``jnp.broadcast_to(x, shape).reshape(-1)[pos]`` without materialising the
    broadcast."""
    x = jnp.reshape(x, (1,) * (len(shape) - jnp.ndim(x)) + jnp.shape(x))
    coords = jnp.unravel_index(pos, shape)
    idx = tuple(c if s > 1 else 0 for c, s in zip(coords, x.shape, strict=True))
    return jnp.broadcast_to(x[idx], jnp.shape(pos))


@jax.jit
def _normal_gamma(key, a, index):
    shape = jnp.broadcast_shapes(key.shape, a.shape, index.shape)
    w0, w1 = _key_words(key)
    # the words and counters broadcast inside each loop that uses them (as operands
    # of a conditional they would be materialised at full size)
    k0, k1, idx = w0, w1, index
    boost = a < 1.0
    a1 = jnp.where(boost, a + 1.0, jnp.maximum(a, 1.0))  # Marsaglia-Tsang's shape
    d = a1 - 1.0 / 3.0

    def first_pair():
        """The normal and the first candidate (-1 where rejected) as one complex array."""
        if a.dtype == jnp.float64:
            u1 = _unit64(*_threefry2x32(k0, k1, jnp.uint32(0), 2 * idx))
            h1 = _threefry2x32(k0, k1, jnp.uint32(0), 2 * idx + 1)
            angle = 2.0 * math.pi * _unit64(*h1)
            cos, sin = jnp.cos(angle), jnp.sin(angle)
            u = _unit64(*_threefry2x32(k0, k1, jnp.uint32(1), idx))
        else:
            h0, h1 = _threefry2x32(k0, k1, jnp.uint32(0), idx)
            u1 = _unit32(h0)
            cos, sin = _cis_2pi32(_unit32(h1))
            u = _unit32(_threefry2x32(k0, k1, jnp.uint32(1), idx)[0])
        r = jnp.sqrt(-2.0 * jnp.log(u1))
        x = r * sin  # the first candidate's normal
        v = (1.0 + lax.rsqrt(9.0 * d) * x) ** 3
        vpos = jnp.where(v > 0, v, 1.0)
        accept = (v > 0) & (jnp.log(u) < 0.5 * x * x + d - d * vpos + d * jnp.log(vpos))
        return lax.complex(r * cos, jnp.where(accept, d * vpos, -1.0))

    # one array from one loop (see _fusion): as two outputs, XLA would hash twice
    pair = apart(runtime_true(a1), first_pair)
    z, first = jnp.real(pair), jnp.imag(pair)

    def inputs(pos):
        return (_gather_broadcast(w0, shape, pos), _gather_broadcast(w1, shape, pos),
                _gather_broadcast(index, shape, pos), _gather_broadcast(a1, shape, pos))

    g = _gamma_ge1(None, None, None, None, inputs, value=first.reshape(-1)).reshape(shape)

    def with_boost():
        b = _threefry2x32(k0, k1, jnp.uint32(_BOOST), idx)
        ub = _unit64(*b) if a.dtype == jnp.float64 else _unit32(b[0])
        # Gamma(a) = Gamma(a + 1) U^(1/a) for a < 1
        boosted = jnp.where(a > 0, g * jnp.exp(jnp.log(ub) / jnp.where(a > 0, a, 1.0)), 0.0)
        return jnp.where(boost, boosted, g)

    return z, lax.cond(jnp.min(a) < 1.0, with_boost, lambda: g)


def normal_gamma(key: jax.Array, a: jax.Array, index=0) -> tuple[jax.Array, jax.Array]:
    """A standard normal and an independent Gamma(a, 1) variate per element, from
    a shared budget of hashes: the exact sufficient statistics of a Gaussian
    sample (its mean's normal and its scatter's chi-square) in one pass.

    Box-Muller on the pair of counter ``(0, index)`` gives the normal and the
    normal of the first Marsaglia-Tsang candidate, whose uniform is the first word
    of counter ``(1, index)``; the rare rejected element continues with candidates
    ``r = 1, 2, ...`` on streams ``r + 1`` exactly as :func:`gamma` does, so the
    gamma variate has exactly the Gamma(a) law (``a < 1`` is boosted, ``a == 0``
    gives 0). Drawing both from two hashes, instead of a normal from one and a
    gamma candidate from another plus an inverse-CDF normal, makes this about
    twice as cheap as :func:`normal` and :func:`gamma` on the same key.

    Args:
        key: a JAX PRNG key or an array of keys.
        a: gamma shape(s) >= 0, broadcast with the keys.
        index: uint32 counter(s), broadcast with the keys: different indices under
            one key give independent pairs (e.g. one per generation).

    Returns:
        ``(z, g)``, each of the broadcast shape of ``key``, ``a`` and ``index``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> z, g = normal_gamma(jax.random.key(0), jnp.float32(3.0),
        ...                     jnp.arange(20000, dtype=jnp.uint32))
        >>> bool(abs(float(z.mean())) < 0.05 and abs(float(g.mean()) - 3.0) < 0.1)
        True
    """
    _key_words(key)  # a clear TypeError for anything but a PRNG key
    _check_shape_param(a, "a")
    a = _as_float(a)
    if not isinstance(index, jax.core.Tracer):
        index_np = np.asarray(index)
        if not np.issubdtype(index_np.dtype, np.integer) or np.any(index_np < 0) or \
                np.any(index_np > np.iinfo(np.uint32).max):
            raise ValueError("index must hold non-negative 32-bit integers; got "
                             f"{index_np.dtype} {index_np.ravel()[:4]}")
    index = jnp.asarray(index, jnp.uint32)
    try:
        jnp.broadcast_shapes(key.shape, a.shape, index.shape)
    except ValueError:
        raise ValueError(f"key {key.shape}, a {a.shape} and index {index.shape} do not "
                         "broadcast together") from None
    return _normal_gamma(key, a, index)


def _per_key_shape(key, a, shape):
    if shape is None:
        shape = a.shape[key.ndim:] if a.ndim >= key.ndim else a.shape
    shape = _check_shape(shape)
    try:
        ok = jnp.broadcast_shapes(a.shape, key.shape + shape) == key.shape + shape
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"a of shape {a.shape} must broadcast to key.shape + shape = "
                         f"{key.shape + shape}")
    return shape


def log_gamma_variate(key: jax.Array, a: jax.Array, shape=None) -> jax.Array:
    """log of a Gamma(a, 1) variate, exact; stays finite for tiny ``a``.

    Args:
        key: a JAX PRNG key, or an array of keys (their shape leads the result).
        a: shape parameter(s) >= 0 (float array), broadcast to ``key.shape + shape``.
        shape: the shape per key (default: ``a.shape`` after the key's axes).

    Returns:
        ``log G`` with ``G ~ Gamma(a, 1)``; ``-inf`` where ``a == 0``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = log_gamma_variate(jax.random.key(0), jnp.full((4,), 2.0))
        >>> x.shape
        (4,)
    """
    check_key(key)
    _check_shape_param(a, "a")
    a = _as_float(a)
    return _gamma_flat(key, a, _per_key_shape(key, a, shape), log=True)


def gamma(key: jax.Array, a: jax.Array, shape=None) -> jax.Array:
    """Gamma(a, 1) variates, exact, fast under ``vmap`` (Marsaglia-Tsang).

    Args:
        key: a JAX PRNG key, or an array of keys (their shape leads the result).
        a: shape parameter(s) >= 0; ``a == 0`` gives 0.
        shape: the shape per key (default: ``a.shape`` after the key's axes).

    Example:
        >>> import jax
        >>> x = gamma(jax.random.key(0), 3.0, (20000,))
        >>> bool(abs(x.mean() - 3.0) < 0.1)
        True

    References:
        Marsaglia, Tsang, ACM TOMS 26(3), 2000.
    """
    check_key(key)
    _check_shape_param(a, "a")
    a = _as_float(a)
    return _gamma_flat(key, a, _per_key_shape(key, a, shape), log=False)


def chisquare(key: jax.Array, df: jax.Array, shape=None) -> jax.Array:
    """Chi-square variates with ``df >= 0`` degrees of freedom (``df == 0`` gives 0).

    Example:
        >>> import jax
        >>> x = chisquare(jax.random.key(1), 5.0, (20000,))
        >>> bool(abs(x.mean() - 5.0) < 0.15)
        True
    """
    _check_shape_param(df, "df", scale=2.0)
    df = _as_float(df)
    return 2.0 * gamma(key, 0.5 * df, shape)


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
    return _threefry2x32(k0, k1, jnp.asarray(x0, jnp.uint32), jnp.asarray(x1, jnp.uint32))


def subset_indices(key: jax.Array, n: int, k: int, n_used=None) -> jax.Array:
    """``k`` distinct indices drawn uniformly from ``range(n)``: a uniformly random
    ``k``-subset in uniformly random order (``n``, ``k`` static, ``k <= n``).

    The first ``k`` steps of a Fisher–Yates shuffle of a virtual ``arange(n)``, its
    swaps kept in a table of ``k`` entries: O(k^2) work and O(k) memory however
    large ``n`` is, where ``jax.random.permutation(key, n)[:k]`` sorts all ``n``.
    The first ``j`` indices are themselves a uniformly random ``j``-subset.
    ``n_used`` (traced, ``<= k``) computes only the first ``n_used`` entries (the
    rest are 0): the loop then runs ``n_used`` steps, O(n_used k).

    Example:
        >>> import jax
        >>> idx = subset_indices(jax.random.key(0), 1000, 5)
        >>> idx.shape, len(set(idx.tolist())) == 5, bool((idx < 1000).all())
        ((5,), True, True)
    """
    n, k = int(n), int(k)
    if not 0 <= k <= n:
        raise ValueError(f"k must satisfy 0 <= k <= n={n}; got {k}")
    if k == 0:
        return jnp.zeros((0,), jnp.int32)
    i = jnp.arange(k, dtype=jnp.int32)
    # step i swaps position i with a uniform position j_i in [i, n)
    j = jax.random.randint(key, (k,), i, n, dtype=jnp.int32)
    pos = jnp.full((k,), -1, jnp.int32)  # the table: position written at step s ...
    val = jnp.zeros((k,), jnp.int32)     # ... and the value written there

    def lookup(pos, val, p):
        # the latest write to position p, else p itself
        hit = jnp.where(pos == p, i, -1)
        last = jnp.max(hit)
        return jnp.where(last >= 0, val[jnp.maximum(last, 0)], p)

    def body(s, c):
        pos, val, out = c
        vj = lookup(pos, val, j[s])
        vi = lookup(pos, val, s)
        out = out.at[s].set(vj)
        # position j_s now holds what was at position s (positions < s never matter)
        return pos.at[s].set(j[s]), val.at[s].set(vi), out

    out = jnp.zeros((k,), jnp.int32)
    if n_used is not None:
        stop = jnp.minimum(jnp.asarray(n_used, jnp.int32), k)
        return lax.fori_loop(0, stop, body, (pos, val, out))[2]
    if k <= 16:
        c = (pos, val, out)
        for s in range(k):
            c = body(s, c)
        return c[2]
    return lax.fori_loop(0, k, body, (pos, val, out))[2]
