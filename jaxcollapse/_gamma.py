"""Exact gamma variates that stay fast under ``vmap``: Marsaglia-Tsang with one
vectorised candidate per element and a fallback loop over the rare rejections
(the gamma samplers of :mod:`jaxcollapse.random`, which re-exports the public ones).

References:
    Marsaglia, Tsang. A simple method for generating gamma variables.
    ACM TOMS 26(3), 2000.
    Box, Muller. A note on the generation of random normal deviates (1958).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._fusion import any_negative, apart, runtime_true
from jaxcollapse._threefry import (
    _as_float,
    _check_shape,
    _check_shape_param,
    _cis_2pi32,
    _index,
    _key_words,
    _ndtri32,
    _ndtri64,
    _threefry2x32,
    _unit32,
    _unit64,
)
from jaxcollapse._validate import check_key

# stream of the uniform that boosts a Gamma(a < 1) variate
_BOOST = np.uint32(0xFFFFFFFF)
# the gamma fallback treats the first pending element of each segment this long,
# for at least this many segments at a time
_SEGMENT = 32
_FALLBACK_BLOCKS = 64


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
        pending = any_negative(value, axis=1)
        # fill with the first segment: a repeat redoes the same draws, so it is harmless
        pick = jnp.nonzero(pending, size=n_pick, fill_value=0)[0].astype(jnp.int32)
        pos = jnp.minimum(pick[:, None] * seg + lax.iota(jnp.int32, seg)[None, :], n - 1)
        state = (value[pick], list(inputs(pos)), jnp.full((n_pick,), -1, jnp.int32),
                 jnp.zeros((n_pick,), jnp.int32))
        state = lax.while_loop(lambda s: any_negative(s[0]), next_candidates, state)
        return value.at[pick].set(state[0])

    value = lax.while_loop(any_negative, fallback_pass, value)
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


def _gamma_variates(key, a, shape, log):
    check_key(key)
    _check_shape_param(a, "a")
    a = _as_float(a)
    return _gamma_flat(key, a, _per_key_shape(key, a, shape), log=log)


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
    return _gamma_variates(key, a, shape, log=True)


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
    return _gamma_variates(key, a, shape, log=False)


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


# Report the public home as the module (the documented home).
for _obj in (normal_gamma, log_gamma_variate, gamma, chisquare):
    _obj.__module__ = "jaxcollapse.random"
del _obj
