"""Exact binomial and multinomial samplers (the count vectors of the categorical
family): CDF inversion for small means, BTRS (Hormann 1993) above, and the
multinomial as a sequence of conditional binomials.

One binomial kernel (:func:`_binomial`), fed by counter-mode Threefry words: a
draw depends only on its (key words, counter id, n, p). :func:`binomial` and
:func:`multinomial` take the words of their key (the multinomial's category j
those of ``fold_in(key, j)``) and number the elements; the Wright–Fisher tree
sampler (families/wright_fisher.py) takes a chain's words and a node id, so that
a node's draw does not depend on the chunking or the other chains.

References:
    Kachitvichyanukul & Schmeiser (1988); Hormann (1993).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._fusion import row_exclusive_prefix
from jaxcollapse._threefry import _key_words, _unit32, _unit64
from jaxcollapse._validate import check_int_array, check_key, check_real, float_array, is_traced
from jaxcollapse.random import threefry_words

# Mean n*q below which a binomial is drawn by CDF inversion (few steps); above it
# the BTRS rejection sampler is valid and needs about 1.1 tries on average.
_SMALL_MEAN = 10.0

_STIRLING_TABLE = (0.08106146679532726, 0.04134069595540929, 0.02767792568499834,
                   0.02079067210376509, 0.01664469118982119, 0.01387612882307075,
                   0.01189670994589177, 0.01041126526197209, 0.009255462182712733,
                   0.008330563433362871)


def _stirling_tail(k: jax.Array) -> jax.Array:
    # log k! - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2]: exact below 10.
    k1 = k + 1.0
    kk = k1 * k1
    approx = (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kk) / kk) / k1
    table = jnp.asarray(_STIRLING_TABLE, dtype=k.dtype)
    return jnp.where(k < 10, table[jnp.clip(k, 0, 9).astype(jnp.int32)], approx)


def _btrs_constants(n, q):
    spq = jnp.sqrt(n * q * (1 - q))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * q
    c = n * q + 0.5
    vr = 0.92 - 4.2 / b
    r = q / (1 - q)
    alpha = (2.83 + 5.1 / b) * spq
    m = jnp.floor((n + 1) * q)
    lpm = ((m + 0.5) * jnp.log((m + 1) / (r * (n - m + 1)))
           + _stirling_tail(m) + _stirling_tail(n - m))
    return n, b, a, c, vr, r, alpha, m, lpm


def _btrs_try(u, v, n, b, a, c, vr, r, alpha, m, lpm):
    # One proposal of Hormann's transformed rejection with squeeze (BTRS).
    u = u - 0.5
    us = 0.5 - jnp.abs(u)
    k = jnp.floor((2 * a / us + b) * u + c)
    quick = (us >= 0.07) & (v <= vr)
    inside = (k >= 0) & (k <= n)
    kc = jnp.clip(k, 0, n)
    lv = jnp.log(v * alpha / (a / (us * us) + b))
    bound = (lpm + (n + 1) * jnp.log((n - m + 1) / (n - kc + 1))
             + (kc + 0.5) * jnp.log(r * (n - kc + 1) / (kc + 1))
             - _stirling_tail(kc) - _stirling_tail(n - kc))
    return kc, quick | (inside & (lv <= bound))


# --------------------------------------------------------------------------------------
# The binomial kernel. Element i draws from counter words under the key words ``kw``:
# try r of element ``ids[i]`` takes counter (r, id) in float32, (2r, id) and
# (2r + 1, id) in float64. A draw depends only on (kw, id, n, q), so neither the
# batch it sits in nor the path that finishes it (the one-pass fast path, or the
# exact loops) changes it.
# --------------------------------------------------------------------------------------

_INV_STEPS = 16     # unrolled inversion steps (one fused pass; most draws end there)
_BTRS_TRIES = 2     # unrolled BTRS proposals (each accepts 0.72-0.9)
_BOUND_SDS = 10.0   # inversion restarts past mean + 10 sd (numpy's bound; rounding guard)
_STRAGGLERS = 128   # draws the exact loops of _binomial finish together
_LOOP_UNROLL = (2, 1)  # unrolled (steps, tries) of the exact loops run directly (small batches)


def _uniforms(kw, ids, r, dtype):
    # The (u, v) pair of try r of the elements ``ids`` under the key words ``kw``.
    if dtype == jnp.float64:
        a = threefry_words(kw, 2 * r, ids)
        b = threefry_words(kw, 2 * r + 1, ids)
        return _unit64(*a), _unit64(*b)
    w0, w1 = threefry_words(kw, r, ids)
    return _unit32(w0), _unit32(w1)


def _inversion(kw, ids, n, q, finish, steps=_INV_STEPS):
    # Sequential search of the Binomial(n, q) CDF from 0 (q <= 1/2, so the ratio is
    # finite) with try 0's u: ``steps`` fused steps, then, with ``finish``, a loop
    # that restarts with the next try's u past mean + 10 sd (which also guards
    # against a rounded CDF that never reaches u); without, -1 where unfinished.
    dtype = n.dtype
    u = _uniforms(kw, ids, jnp.uint32(0), dtype)[0]
    rr = q / (1 - q)
    pmf0 = jnp.exp(n * jnp.log1p(-q))
    mu = n * q
    bound = jnp.minimum(n, jnp.floor(mu + _BOUND_SDS * jnp.sqrt(mu * (1 - q) + 1)))

    def step(c):
        k, pmf, cdf, u, j = c
        go = (u > cdf) & (k < bound)
        nxt = pmf * ((n - k) / (k + 1)) * rr
        return (jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf),
                jnp.where(go, cdf + nxt, cdf), u, j)

    c = (jnp.zeros_like(n), pmf0, pmf0, u, None)
    for _ in range(steps):
        c = step(c)
    if not finish:
        return jnp.where(c[3] > c[2], -1.0, c[0])

    def restart(c):
        k, pmf, cdf, u, j = c
        stuck = (u > cdf) & (k >= bound)
        j = jnp.where(stuck, j + 1, j)
        un = _uniforms(kw, ids, j, dtype)[0]
        return (jnp.where(stuck, 0.0, k), jnp.where(stuck, pmf0, pmf),
                jnp.where(stuck, pmf0, cdf), jnp.where(stuck, un, u), j)

    def body(c):
        stuck = jnp.any((c[3] > c[2]) & (c[0] >= bound))
        return step(lax.cond(stuck, restart, lambda c: c, c))

    c = c[:4] + (jnp.zeros(n.shape, jnp.uint32),)
    return lax.while_loop(lambda c: jnp.any(c[3] > c[2]), body, c)[0]


def _btrs(kw, ids, n, q, done, finish, tries=_BTRS_TRIES):
    # Hormann's BTRS from tries 0, 1, ... (``done``: elements not to draw):
    # ``tries`` unrolled tries, then, with ``finish``, a loop until every element
    # accepts; without, -1 where none accepted.
    consts = _btrs_constants(n, q)
    k, acc = jnp.zeros_like(n), done
    for r in range(tries):
        kn, an = _btrs_try(*_uniforms(kw, ids, jnp.uint32(r), n.dtype), *consts)
        k, acc = jnp.where(acc, k, kn), acc | an
    if not finish:
        return jnp.where(acc, k, -1.0)

    def body(c):
        k, acc, r = c
        kn, an = _btrs_try(*_uniforms(kw, ids, r, n.dtype), *consts)
        return jnp.where(acc, k, kn), acc | an, r + 1

    init = (k, acc, jnp.uint32(tries))
    return lax.while_loop(lambda c: ~jnp.all(c[1]), body, init)[0]


def _binomial(kw, ids, n, qq, finish=True, unroll=(_INV_STEPS, _BTRS_TRIES)):
    # Binomial(n, qq), qq <= 1/2: CDF inversion where the mean is below
    # _SMALL_MEAN, BTRS above, each run only if some element of the batch needs it
    # (its loops as long as its slowest element). Without ``finish``, one fused pass
    # a method: -1 where an element needs more inversion steps, a restart or more
    # BTRS tries (see _node_binomial). ``unroll`` (inversion steps, BTRS tries
    # before the loops) changes the cost, never the draw.
    small = n * qq < _SMALL_MEAN
    zero = jnp.zeros_like(n)
    # Dummy (n, q) where the other method applies keep each finite.
    k_inv = lax.cond(jnp.any(small & (n > 0) & (qq > 0)),
                     lambda: _inversion(kw, ids, jnp.where(small, n, 0.0),
                                        jnp.where(small, qq, 0.0), finish, unroll[0]),
                     lambda: zero)
    k_big = lax.cond(jnp.any(~small),
                     lambda: _btrs(kw, ids, jnp.where(small, 100.0, n),
                                   jnp.where(small, 0.5, qq), small, finish, unroll[1]),
                     lambda: zero)
    return jnp.where(small, k_inv, k_big)


def _node_binomial(kw, ids, n, qq):
    # The one-pass _binomial, then the elements it left (-1) gathered,
    # _STRAGGLERS at a time, and finished by the exact loops, which repeat the
    # fast pass's steps and tries from the same words before going on: a draw is
    # the same whichever path finishes it.
    k = _binomial(kw, ids, n, qq, finish=False)
    shape = k.shape
    kw0 = jnp.broadcast_to(kw[0], shape).reshape(-1)
    kw1 = jnp.broadcast_to(kw[1], shape).reshape(-1)
    flat = tuple(jnp.broadcast_to(x, shape).reshape(-1) for x in (ids, n, qq))

    def finish(k):
        k = k.reshape(-1)
        pending = (k < 0).astype(jnp.int32)
        cum = row_exclusive_prefix(pending) + pending
        total = cum[-1]
        size = min(_STRAGGLERS, k.shape[0])
        slots = jnp.arange(size, dtype=jnp.int32)

        def batch(b, k):
            want = b * size + slots + 1
            idx = jnp.searchsorted(cum, want, side="left").astype(jnp.int32)
            idx = jnp.where(want <= total, idx, k.shape[0])
            take = lambda x: x.at[idx].get(mode="fill", fill_value=0)
            vals = _binomial((take(kw0), take(kw1)), take(flat[0]), take(flat[1]),
                             take(flat[2]))
            return k.at[idx].set(vals, mode="drop")

        k = lax.fori_loop(0, (total + size - 1) // size, batch, k)
        return k.reshape(shape)

    return lax.cond(jnp.any(k < 0), finish, lambda k: k, k)


def _check_single_key(key):
    check_key(key)
    if key.ndim:
        raise ValueError(f"key must be a single PRNG key (shape ()); got shape {key.shape}")


def _binomial_any_p(kw, n, p):
    # Binomial(n, p), p in [0, 1], element i (row-major) from counter id i under the
    # key words ``kw``: the kernel draws min(p, 1 - p). A small batch (one element
    # under vmap) goes straight to the exact loops, which give the same draws.
    flip = p > 0.5
    qq = jnp.clip(jnp.where(flip, 1 - p, p), 0.0, 0.5)
    ids = jnp.arange(n.size, dtype=jnp.uint32).reshape(n.shape)
    if n.size > _STRAGGLERS:
        k = _node_binomial(kw, ids, n, qq)
    else:
        k = _binomial(kw, ids, n, qq, unroll=_LOOP_UNROLL)
    return jnp.where(flip, n - k, k)


def binomial(key: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    """Exact Binomial(n, p) draws, vectorised over arrays.

    Means ``n min(p, 1-p) < 10`` use sequential CDF inversion from zero (one
    uniform, a few cheap steps); larger means use BTRS rejection (two uniforms a
    proposal, accepted about 90% of the time). The common case takes one fused
    pass; the few draws that need more steps or tries are gathered and finished by
    exact loops. Element ``i`` (row-major) draws its uniforms from counter-mode
    Threefry words of ``(key, i)``, so its draw does not depend on the rest of the
    batch; the Wright–Fisher tree sampler uses the same kernel.

    Args:
        key: a PRNG key (a single one, shape ``()``).
        n: numbers of trials (non-negative integer values, float or int array).
        p: success probabilities in [0, 1], broadcastable with ``n``.

    Returns:
        Counts with the broadcast shape of ``n`` and ``p`` (floating dtype).

    References:
        Hormann, The generation of binomial random variates, J. Stat. Comput.
        Simul. 46 (1993) (BTRS); Devroye, Non-Uniform Random Variate Generation
        (1986), ch. X (inversion).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> k = binomial(jax.random.key(0), jnp.array([0., 5., 1000.]), jnp.array([.3, 1., .5]))
        >>> [int(k[0]), int(k[1]), 400 < int(k[2]) < 600]
        [0, 5, True]
    """
    _check_single_key(key)
    if not is_traced(n):
        check_int_array(n, "n", minimum=0)
    if not is_traced(p):
        check_real(p, "p", minimum=0.0, maximum=1.0)
    p = float_array(p, "p")
    try:
        n, p = jnp.broadcast_arrays(jnp.asarray(n, p.dtype), p)
    except ValueError:
        raise ValueError(f"n of shape {jnp.shape(n)} and p of shape {p.shape} do not "
                         f"broadcast together") from None
    if n.size == 0:
        return n
    return _binomial_any_p(_key_words(key), n, p)


def _sequential(key: jax.Array, n: jax.Array, probs: jax.Array) -> jax.Array:
    # Conditional binomials along the last axis: category j gets
    # Binomial(n - counts so far, w_j / Σ_{i >= j} w_i), drawn as binomial() under
    # the key words of fold_in(key, j).
    k = probs.shape[-1]
    w = jnp.moveaxis(probs, -1, 0)
    rest = jnp.cumsum(w[::-1], axis=0)[::-1]
    ratio = jnp.clip(jnp.where(rest > 0, w / jnp.where(rest > 0, rest, 1.0), 0.0), 0.0, 1.0)
    k0, k1 = _key_words(key)

    def cond(c):
        # Once nothing remains anywhere the later counts are all 0: stop early (on
        # a packed support this skips the empty slots).
        j, remaining, _ = c
        return (j < k) & jnp.any(remaining > 0)

    def body(c):
        j, remaining, counts = c
        kw = threefry_words((k0, k1), jnp.uint32(0), j.astype(jnp.uint32))
        cj = _binomial_any_p(kw, remaining, jnp.broadcast_to(ratio[j], remaining.shape))
        return j + 1, remaining - cj, counts.at[j].set(cj)

    _, left, counts = lax.while_loop(
        cond, body, (jnp.int32(0), n, jnp.zeros((k,) + n.shape, ratio.dtype)))
    # Rounding in the suffix sums can leave draws unassigned (ratio of the last live
    # category a hair below 1): they go to the last live category.
    last = k - 1 - jnp.argmax((w > 0)[::-1], axis=0)
    counts = counts + jnp.where(jnp.arange(k).reshape((k,) + (1,) * n.ndim) == last, left, 0)
    return jnp.moveaxis(counts, 0, -1)


def multinomial(key: jax.Array, n: Any, probs: jax.Array) -> jax.Array:
    """Exact multinomial counts by sequential conditional binomials.

    Category ``j`` gets ``Binomial(n - counts so far, p_j / Σ_{i >= j} p_i)``: a
    loop over the K categories (stopping once every count is placed) whose steps
    are vectorised over the leading (batch, e.g. chain) axes. A step's batch holds
    one category across chains, so its binomials have similar means and the
    samplers' loops stay short; no sample is materialised. ``n`` may be traced
    (and 0). Put probable categories first for the best rounding behaviour.

    Args:
        key: a PRNG key (a single one, shape ``()``).
        n: number of draws, scalar or shape ``probs.shape[:-1]`` (integer valued).
        probs: probabilities, shape ``(..., K)``, non-negative (normalised
            internally through the suffix sums).

    Returns:
        Counts of shape ``(..., K)`` (floating dtype) summing to ``n``.

    References:
        Devroye, Non-Uniform Random Variate Generation (1986), ch. XI.1
        (conditional binomials); numpy's ``Generator.multinomial`` does the same
        one chain at a time.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> c = multinomial(jax.random.key(0), 100, jnp.array([0.5, 0.0, 0.3, 0.2]))
        >>> int(c.sum()), int(c[1])
        (100, 0)
    """
    _check_single_key(key)
    if not is_traced(probs):
        check_real(probs, "probs", minimum=0.0)
        pr = np.asarray(probs, np.float64)
        if pr.ndim < 1 or pr.shape[-1] < 1:
            raise ValueError(f"probs must have shape (..., K) with K >= 1; got {pr.shape}")
        if np.any(pr.sum(-1) <= 0):
            raise ValueError("probs must have a positive sum along the last axis (K); got "
                             "an all-zero row")
    if not is_traced(n):
        check_int_array(n, "n", minimum=0)
    probs = float_array(probs, "probs")
    try:
        n0 = jnp.broadcast_to(jnp.asarray(n, probs.dtype), probs.shape[:-1])
    except ValueError:
        raise ValueError(f"n must be a scalar or have shape probs.shape[:-1] = "
                         f"{probs.shape[:-1]}; got {jnp.shape(n)}") from None
    return _sequential(key, n0, probs)
