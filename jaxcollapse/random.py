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
* :func:`distinct_indices`: distinct uniform indices below a traced ``n`` by
  rejection (the first distinct values of an i.i.d. stream, repeats found in a
  carried table), O(k) work however large ``n`` is; :func:`subset_indices` is the
  partial Fisher–Yates shuffle for a static ``n``.

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

import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._gamma import chisquare, gamma, log_gamma_variate, normal_gamma
from jaxcollapse._threefry import (
    _check_shape,
    _cis_2pi32,
    _float_dtype,
    _hash,
    _index,
    _interleave,
    _key_words,
    _threefry2x32,
    _unit32,
    _unit64,
)
from jaxcollapse._validate import check_int_array, check_key, is_traced

__all__ = ["bits", "chisquare", "complex_normal", "distinct_indices", "distinct_scratch",
           "fold_in", "from_complex_pairs", "gamma", "log_gamma_variate", "normal",
           "normal_gamma", "subset_indices", "threefry_words", "uniform"]


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
    Step ``s`` draws its swap from its own words (those of ``fold_in(key, s)``), so the first
    ``j`` indices are the same for every ``k >= j`` (a caller may size ``k`` to its
    convenience) and are themselves a uniformly random ``j``-subset. ``n_used``
    (traced, ``<= k``) keeps only the first ``n_used`` entries (the rest are 0);
    above ``_UNROLL`` slots the loop then runs only ``n_used`` steps, O(n_used k).

    Example:
        >>> import jax
        >>> idx = subset_indices(jax.random.key(0), 1000, 5)
        >>> idx.shape, len(set(idx.tolist())) == 5, bool((idx < 1000).all())
        ((5,), True, True)
        >>> bool((subset_indices(jax.random.key(0), 1000, 40)[:5] == idx).all())
        True
    """
    n, k = int(n), int(k)
    if not 0 <= k <= n:
        raise ValueError(f"k must satisfy 0 <= k <= n={n}; got {k}")
    if k == 0:
        return jnp.zeros((0,), jnp.int32)
    i = jnp.arange(k, dtype=jnp.int32)
    # step s swaps position s with a uniform position j_s in [s, n), from the two words
    # of fold_in(key, s) combined as jax.random.randint combines its two words
    hi, lo = _hash(key, 0, _index((k,)))
    span = (n - i).astype(jnp.uint32)
    # 2**32 mod span for span <= 2**16 (0 above, where lo alone spans the range), as
    # jax.random.randint computes it
    mult = lax.rem(lax.rem(jnp.uint32(2**16), span) ** 2, span)
    j = i + lax.rem(lax.rem(hi, span) * mult + lax.rem(lo, span), span).astype(jnp.int32)
    if k <= _UNROLL:
        # straight-line steps, the table a list of scalars: each lookup is a chain of
        # selects that XLA fuses (later writes override earlier ones)
        pos, val, out = [], [], []
        for s in range(k):
            vj, vi = j[s], jnp.int32(s)
            for p, v in zip(pos, val, strict=True):
                vj = jnp.where(p == j[s], v, vj)
                vi = jnp.where(p == s, v, vi)
            out.append(vj)
            # position j_s now holds what was at position s (positions < s never matter)
            pos.append(j[s])
            val.append(vi)
        out = jnp.stack(out)
        if n_used is None:
            return out
        return jnp.where(i < jnp.asarray(n_used, jnp.int32), out, 0)

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
    return lax.fori_loop(0, k, body, (pos, val, out))[2]


#: subsets of at most this many indices are drawn by straight-line code, not a loop
_UNROLL = 32


def distinct_scratch(size: int, k: int) -> jax.Array:
    """The zeroed scratch table :func:`distinct_indices` needs for indices below
    ``size`` and subsets of at most ``k`` (static): ``size`` small integers, uint8 up
    to ``k = 200``. Allocate it once and carry it: each call returns it zeroed.

    Example:
        >>> t = distinct_scratch(5000, 100)
        >>> t.shape, t.dtype.name, int(t.max())
        ((5000,), 'uint8', 0)
    """
    size, k = int(size), int(k)
    if size < 1 or k < 0:
        raise ValueError(f"size must be >= 1 and k >= 0; got size={size}, k={k}")
    top = max(_distinct_batches(k))  # stamps 1..top, and top + 1 marks a kept index
    dtype = next(d for d in (jnp.uint8, jnp.uint16, jnp.uint32) if top < np.iinfo(d).max)
    return jnp.zeros((size,), dtype)


def distinct_indices(key: jax.Array, n, k: int, scratch: jax.Array, count=None
                     ) -> tuple[jax.Array, jax.Array]:
    """``count`` distinct indices drawn uniformly from ``range(n)`` with ``n`` traced:
    a uniformly random ``count``-subset in uniformly random order, in the first
    ``count`` of ``k`` slots (the others 0), and ``scratch`` zeroed again.

    Rejection: the first ``count`` distinct values, in order of first appearance, of
    a stream of i.i.d. uniform indices, read in batches: a first batch of about
    ``k + k / 8`` and, while some chain lacks indices, batches of about ``k / 4``.
    Why that law is exact: relabel the indices by any permutation ``pi`` of
    ``range(n)``; the stream ``pi(X_1), pi(X_2), ...`` has the law of ``X_1, X_2,
    ...`` and "the first ``count`` distinct values in order" commutes with ``pi``, so
    the law of the output is invariant under every relabelling. The symmetric group
    acts transitively on ordered ``count``-tuples of distinct indices, so that law is
    uniform on them. (How many values the stream needs does not depend on labels.)

    Each index comes from one 32-bit word by Lemire's multiply-shift, rejecting the
    ``2**32 mod n`` low products that would bias it (a rejected word is skipped), so
    each accepted index is exactly uniform. Duplicates are found in ``scratch``, a
    table with an entry per index (:func:`distinct_scratch`): a scatter-max of each
    candidate's stamp (earlier candidates larger) and a gather tell the first
    occurrences; the indices kept so far are marked above every stamp. O(k) work per
    batch however large ``n`` is, where a top-``k`` of uniform scores or a sort
    touches all ``n``; the expected number of batches is small while ``count <= n / 2``
    (it grows as ``count`` nears ``n``; ``count`` is clamped to ``n``, where the loop
    still ends).

    Batch ``r`` reads the words of counters ``(r, i)`` (stream 0 is :func:`bits`), so
    no result depends on batching: the same key gives the same indices for every
    array of keys it is part of.

    Args:
        key: a key (or an array of keys, batched in front).
        n: indices lie in ``range(n)`` (traced int, ``1 <= n <= scratch.shape[-1]``).
        k: slots of the result (static).
        scratch: :func:`distinct_scratch`, zeroed (as every call returns it).
        count: how many indices (traced int ``<= k``; default ``k``).

    Returns:
        ``(indices, scratch)``: int32 ``(..., k)`` and the zeroed table.

    References:
        Lemire. Fast random integer generation in an interval. ACM TOMACS 29(1), 2019.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> table = distinct_scratch(1000, 5)
        >>> idx, table = distinct_indices(jax.random.key(0), jnp.int32(1000), 5, table)
        >>> idx.shape, len(set(idx.tolist())) == 5, bool((idx < 1000).all())
        ((5,), True, True)
        >>> int(table.max())
        0
    """
    check_key(key)
    k = int(k)
    if k < 0:
        raise ValueError(f"k must be >= 0; got {k}")
    if not is_traced(n):
        check_int_array(n, "n", minimum=1)
        if np.max(np.asarray(n)) > scratch.shape[-1]:
            raise ValueError(f"n must be at most the scratch table's length "
                             f"{scratch.shape[-1]}; got {n!r}"[:200])
    if scratch.dtype != distinct_scratch(1, k).dtype:
        raise ValueError(f"scratch must be distinct_scratch(size, k={k}), of dtype "
                         f"{distinct_scratch(1, k).dtype}; got {scratch.dtype}")
    if key.shape:
        return jax.vmap(distinct_indices, in_axes=(0, 0, None, 0, 0))(
            key, jnp.broadcast_to(jnp.asarray(n), key.shape),
            k, jnp.broadcast_to(scratch, key.shape + scratch.shape[-1:]),
            jnp.broadcast_to(jnp.asarray(k if count is None else count), key.shape))
    n = jnp.asarray(n, jnp.int32)
    count = jnp.int32(k) if count is None else jnp.asarray(count, jnp.int32)
    count = jnp.clip(count, 0, jnp.minimum(n, k))
    if k == 0:
        return jnp.zeros((0,), jnp.int32), scratch
    return _distinct(key, n, k, scratch, count)


def _distinct_batches(k: int) -> tuple[int, int]:
    """Candidates in the first batch and in each later one (even: a hash gives two
    words). The first covers the expected duplicates while ``n`` is a few times ``k``
    or more; later ones top up the few indices a chain still lacks."""
    first = k + max(8, k // 8)
    return first + first % 2, max(8, (k // 4) + (k // 4) % 2)


def _distinct(key, n, k, scratch, count):
    size = scratch.shape[0]
    dt = scratch.dtype
    first, later = _distinct_batches(k)
    mark = jnp.asarray(max(first, later) + 1, dt)
    un = n.astype(jnp.uint32)
    # Lemire: w * n = hi * 2**32 + lo; hi is uniform on range(n) given lo >= 2**32 mod n
    threshold = (jnp.uint32(0) - un) % un
    slots = jnp.arange(k, dtype=jnp.int32)

    def candidates(stream, b):
        hi_w, lo_w = _hash(key, stream, _index((b // 2,)))
        w = jnp.concatenate([hi_w, lo_w])
        hi, lo = _mul_hilo(w, un)
        return jnp.where(lo >= threshold, hi.astype(jnp.int32), size)  # size: skipped

    def batch(stream, b, carry):
        scratch, out, filled = carry
        active = filled < count
        v = jnp.where(active, candidates(stream, b), size)
        stamp = (b - jnp.arange(b)).astype(dt)  # the earliest of equal values wins
        scratch = scratch.at[v].max(stamp, mode="drop")
        # (a clamped gather: XLA:CPU's filling one costs more than the whole scatter)
        seen = scratch.at[jnp.minimum(v, size - 1)].get(mode="promise_in_bounds")
        firsts = (seen == stamp) & (v < size)
        pos = filled + jnp.cumsum(firsts, dtype=jnp.int32) - 1
        out = out.at[jnp.where(firsts & (pos < count), pos, k)].set(v, mode="drop")
        filled = jnp.minimum(filled + jnp.sum(firsts, dtype=jnp.int32), count)
        done = filled >= count
        # what this batch touched: kept (marked) while indices are still lacking, else
        # cleared; the indices kept in earlier batches are cleared at the end
        scratch = scratch.at[v].set(jnp.where(done, jnp.zeros((), dt), mark), mode="drop")
        return scratch, out, filled

    carry = (scratch, jnp.zeros((k,), jnp.int32), jnp.int32(0))
    scratch, out, filled = batch(0, first, carry)
    once = filled >= count  # then nothing is marked

    def step(c):
        *carry, stream = c
        return *batch(stream, later, carry), stream + 1

    scratch, out, filled, _ = lax.while_loop(
        lambda c: c[2] < count, step, (scratch, out, filled, jnp.uint32(1)))
    # the indices kept while some were lacking are marked: clear them
    scratch = scratch.at[jnp.where(~once & (slots < count), out, size)].set(0, mode="drop")
    return out, scratch


def _mul_hilo(a, b):
    """The high and low 32-bit words of the 64-bit product of uint32 ``a`` and ``b``
    (16-bit limbs: no 64-bit integers needed)."""
    mask = jnp.uint32(0xFFFF)
    a_lo, a_hi, b_lo, b_hi = a & mask, a >> 16, b & mask, b >> 16
    ll, lh, hl, hh = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (ll >> 16) + (lh & mask) + (hl & mask)
    return hh + (lh >> 16) + (hl >> 16) + (mid >> 16), a * b
