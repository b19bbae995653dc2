"""Exact binomial and multinomial samplers (the count vectors of the categorical
family): CDF inversion for small means, BTRS (Hormann 1993) above, and the
multinomial as a sequence of conditional binomials.

One binomial method, two sources of uniforms: :func:`binomial` (and
:func:`multinomial`) split a key; :func:`_node_binomial`, the kernel of the
Wright–Fisher tree sampler, hashes counter words per node, so that a node's draw
does not depend on the chunking or the other chains. Both share the BTRS proposal
(:func:`_btrs_try`), the Stirling tail and the word-to-uniform maps.

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
from jaxcollapse._threefry import _unit32, _unit64
from jaxcollapse._validate import check_int_array, check_key, check_real, float_array, is_traced
from jaxcollapse.random import threefry_words

# Mean n*q below which a binomial is drawn by CDF inversion (few steps); above it
# the BTRS rejection sampler is valid and needs about 1.1 tries on average.
_SMALL_MEAN = 10.0

# --------------------------------------------------------------------------------------
# Exact binomial and multinomial samplers.
# --------------------------------------------------------------------------------------

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


def _inversion(u, n, q):
    # Sequential search of the Binomial(n, q) CDF from 0; q <= 1/2 so r is finite.
    r = q / (1 - q)
    pmf = jnp.exp(n * jnp.log1p(-q))

    def cond(c):
        k, _, cdf = c
        return jnp.any((u > cdf) & (k < n))

    def body(c):
        k, pmf, cdf = c
        go = (u > cdf) & (k < n)
        nxt = pmf * (n - k) / (k + 1) * r
        return jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf), jnp.where(go, cdf + nxt, cdf)

    # A few unrolled steps fuse into one pass and finish almost every element of a
    # small-mean batch; the loop then usually runs zero times.
    state = (jnp.zeros_like(n), pmf, pmf)
    for _ in range(4):
        state = body(state)
    return lax.while_loop(cond, body, state)[0]


def _btrs(key, u, n, q):
    consts = _btrs_constants(n, q)
    if key.ndim == 0:
        k_v, k_loop = jax.random.split(key)
        v0 = jax.random.uniform(k_v, n.shape, n.dtype)

        def draws(key):
            key, k1, k2 = jax.random.split(key, 3)
            return (jax.random.uniform(k1, n.shape, n.dtype),
                    jax.random.uniform(k2, n.shape, n.dtype), key)
    else:
        # One key per element: try r takes both uniforms from fold_in(key, r), so
        # an element's draws do not depend on the rest of the batch.
        def pair(r):
            one = lambda k: jax.random.uniform(jax.random.fold_in(k, r), (2,), n.dtype)
            uv = jax.vmap(one)(key.reshape(-1))
            return uv[:, 0].reshape(n.shape), uv[:, 1].reshape(n.shape)

        v0, k_loop = pair(0)[0], jnp.int32(1)

        def draws(r):
            return (*pair(r), r + 1)

    k, acc = _btrs_try(u, v0, *consts)

    def body(c):
        k, acc, state = c
        un, vn, state = draws(state)
        kn, an = _btrs_try(un, vn, *consts)
        return jnp.where(acc, k, kn), acc | an, state

    return lax.while_loop(lambda c: jnp.any(~c[1]), body, (k, acc, k_loop))[0]


def binomial(key: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    """Exact Binomial(n, p) draws, vectorised over arrays.

    Means ``n min(p, 1-p) < 10`` use sequential CDF inversion from zero (one
    uniform, a few cheap steps); larger means use BTRS rejection (two uniforms a
    proposal, accepted about 90% of the time), run only when some element of the
    batch needs it. Each loop lasts as long as its slowest element, so batches of
    similar (n, p) (one category across chains) are the cheap case.

    Args:
        key: a PRNG key.
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
    check_key(key)
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
    k_u, k_bt = jax.random.split(key)
    return _binomial_given_u(k_bt, jax.random.uniform(k_u, n.shape, p.dtype), n, p)


def _binomial_given_u(key, u, n, p):
    # ``u``: the uniform of the inversion / first BTRS proposal; ``key`` feeds the
    # BTRS branch (its second uniform and any retries) only when it is needed. It is
    # one key, or a function returning one key per element (shape ``n.shape``),
    # called only inside that branch; with per-element keys an element's draw does
    # not depend on the rest of the batch.
    flip = p > 0.5
    q = jnp.clip(jnp.where(flip, 1 - p, p), 0.0, 0.5)
    small = n * q < _SMALL_MEAN
    k_inv = _inversion(u, jnp.where(small, n, 0.0), jnp.where(small, q, 0.0))
    # Dummy (n, q) = (100, 1/2) where the inversion applies keeps BTRS finite.
    k_big = lax.cond(jnp.any(~small),
                     lambda: _btrs(key() if callable(key) else key, u,
                                   jnp.where(small, 100.0, n), jnp.where(small, 0.5, q)),
                     lambda: jnp.zeros_like(n))
    k = jnp.where(small, k_inv, k_big)
    return jnp.where(flip, n - k, k)


def _sequential(key: jax.Array, n: jax.Array, probs: jax.Array) -> jax.Array:
    # Conditional binomials along the last axis: category j gets
    # Binomial(n - counts so far, p_j / Σ_{i >= j} p_i).
    k = probs.shape[-1]
    p = jnp.moveaxis(probs, -1, 0)
    rest = jnp.cumsum(p[::-1], axis=0)[::-1]
    # Every step's first uniform is drawn up front in one call: far cheaper than a
    # small random-number call inside each of the K steps.
    k_u, k_steps = jax.random.split(key)
    u = jax.random.uniform(k_u, p.shape, p.dtype)
    keys = jax.random.split(k_steps, k)
    return jnp.moveaxis(_conditional_binomials(n, p, rest, u, lambda j: keys[j]), 0, -1)


def _conditional_binomials(n, w, rest, u, step_key):
    # ``w``, ``rest`` (suffix sums of ``w``), ``u``: shape (K, *n.shape), category
    # first; ``step_key(j)`` is the BTRS key of step j (see _binomial_given_u).
    k = w.shape[0]
    ratio = jnp.clip(jnp.where(rest > 0, w / jnp.where(rest > 0, rest, 1.0), 0.0), 0.0, 1.0)

    def cond(c):
        # Once nothing remains anywhere the later counts are all 0: stop early (on
        # a packed support this skips the empty slots).
        j, remaining, _ = c
        return (j < k) & jnp.any(remaining > 0)

    def body(c):
        j, remaining, counts = c
        cj = _binomial_given_u(step_key(j), u[j], remaining,
                               jnp.broadcast_to(ratio[j], remaining.shape))
        return j + 1, remaining - cj, counts.at[j].set(cj)

    _, left, counts = lax.while_loop(
        cond, body, (jnp.int32(0), n, jnp.zeros((k,) + n.shape, ratio.dtype)))
    # Rounding in the suffix sums can leave draws unassigned (ratio of the last live
    # category a hair below 1): they go to the last live category.
    last = k - 1 - jnp.argmax((w > 0)[::-1], axis=0)
    return counts + jnp.where(jnp.arange(k).reshape((k,) + (1,) * n.ndim) == last, left, 0)


def multinomial(key: jax.Array, n: Any, probs: jax.Array) -> jax.Array:
    """Exact multinomial counts by sequential conditional binomials.

    Category ``j`` gets ``Binomial(n - counts so far, p_j / Σ_{i >= j} p_i)``: a
    loop over the K categories (stopping once every count is placed) whose steps
    are vectorised over the leading (batch, e.g. chain) axes. A step's batch holds
    one category across chains, so its binomials have similar means and the
    samplers' loops stay short; no sample is materialised. ``n`` may be traced
    (and 0). Put probable categories first for the best rounding behaviour.

    Args:
        key: a PRNG key.
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
    check_key(key)
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

# --------------------------------------------------------------------------------------
# The same binomial from counter words: one draw per node of the Wright–Fisher tree
# sampler (families/wright_fisher.py), keyed by (chain key, node id) so that a node's
# draw does not depend on the chunking, the capacity or the other chains. It shares
# the BTRS proposal above; its inversion is bounded (restarting past mean + 10 sd).
# --------------------------------------------------------------------------------------

_INV_STEPS = 16     # unrolled inversion steps of the fast path
_BTRS_TRIES = 2     # unrolled BTRS proposals of the fast path (each accepts 0.72-0.9)
_BOUND_SDS = 10.0   # inversion restarts past mean + 10 sd (numpy's bound; rounding guard)
_STRAGGLERS = 128   # nodes the exact loops finish together


def _node_uniforms(kw, ids, r, dtype):
    # The (u, v) pair of try r of the nodes ``ids`` under the chain keys ``kw``:
    # counter (r, id) in float32, (2r, id) and (2r + 1, id) in float64.
    if dtype == jnp.float64:
        a = threefry_words(kw, 2 * r, ids)
        b = threefry_words(kw, 2 * r + 1, ids)
        return _unit64(*a), _unit64(*b)
    w0, w1 = threefry_words(kw, r, ids)
    return _unit32(w0), _unit32(w1)


def _exact_binomial(kw, ids, n, qq):
    # Binomial(n, qq), qq <= 1/2, a node, from the node's own counter words: CDF
    # inversion from 0 where the mean is below 10 (restarting with the next try's
    # uniform past mean + 10 sd, which also guards against a rounded CDF that never
    # reaches u), BTRS with tries from counters (0, id), (1, id), ... above. Each
    # method runs only if some node of the batch needs it, its loop as long as
    # its slowest node.
    dtype = n.dtype
    small = n * qq < _SMALL_MEAN
    u, v = _node_uniforms(kw, ids, jnp.uint32(0), dtype)
    zero = jnp.zeros_like(n)

    def inversion():
        ns, qs = jnp.where(small, n, 0.0), jnp.where(small, qq, 0.0)
        rr = qs / (1 - qs)
        pmf0 = jnp.exp(ns * jnp.log1p(-qs))
        mu = ns * qs
        bound = jnp.minimum(ns, jnp.floor(mu + _BOUND_SDS * jnp.sqrt(mu * (1 - qs) + 1)))

        def step(c):
            k, pmf, cdf, u, j = c
            go = (u > cdf) & (k < bound)
            nxt = pmf * ((ns - k) / (k + 1)) * rr
            return (jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf),
                    jnp.where(go, cdf + nxt, cdf), u, j)

        def restart(c):
            k, pmf, cdf, u, j = c
            stuck = (u > cdf) & (k >= bound)
            j = jnp.where(stuck, j + 1, j)
            un = _node_uniforms(kw, ids, j, dtype)[0]
            return (jnp.where(stuck, 0.0, k), jnp.where(stuck, pmf0, pmf),
                    jnp.where(stuck, pmf0, cdf), jnp.where(stuck, un, u), j)

        c = (zero, pmf0, pmf0, u, jnp.zeros(n.shape, jnp.uint32))
        for _ in range(_INV_STEPS):
            c = step(c)

        def body(c):
            stuck = jnp.any((c[3] > c[2]) & (c[0] >= bound))
            return step(lax.cond(stuck, restart, lambda c: c, c))

        return lax.while_loop(lambda c: jnp.any(c[3] > c[2]), body, c)[0]

    def btrs():
        consts = _btrs_constants(jnp.where(small, 100.0, n), jnp.where(small, 0.5, qq))
        k, acc = _btrs_try(u, v, *consts)
        acc = acc | small
        for r in range(1, _BTRS_TRIES):
            un, vn = _node_uniforms(kw, ids, jnp.uint32(r), dtype)
            kn, an = _btrs_try(un, vn, *consts)
            k, acc = jnp.where(acc, k, kn), acc | an

        def body(c):
            k, acc, r = c
            un, vn = _node_uniforms(kw, ids, r, dtype)
            kn, an = _btrs_try(un, vn, *consts)
            return jnp.where(acc, k, kn), acc | an, r + 1

        init = (k, acc, jnp.uint32(_BTRS_TRIES))
        return lax.while_loop(lambda c: ~jnp.all(c[1]), body, init)[0]

    k_inv = lax.cond(jnp.any(small & (n > 0) & (qq > 0)), inversion, lambda: zero)
    k_big = lax.cond(jnp.any(~small), btrs, lambda: zero)
    return jnp.where(small, k_inv, k_big)


def _fast_binomial(kw, ids, n, qq):
    # The common case of _exact_binomial in one pass a method, each a single
    # output (XLA otherwise splits the unrolled steps into several fusions that
    # recompute them): the draw, or -1 where the node needs more inversion steps,
    # a restart or more BTRS tries.
    dtype = n.dtype
    small = n * qq < _SMALL_MEAN
    zero = jnp.zeros_like(n)

    def inversion():
        u = _node_uniforms(kw, ids, jnp.uint32(0), dtype)[0]
        ns, qs = jnp.where(small, n, 0.0), jnp.where(small, qq, 0.0)
        rr = qs / (1 - qs)
        pmf = jnp.exp(ns * jnp.log1p(-qs))
        mu = ns * qs
        bound = jnp.minimum(ns, jnp.floor(mu + _BOUND_SDS * jnp.sqrt(mu * (1 - qs) + 1)))
        k, cdf = zero, pmf
        for _ in range(_INV_STEPS):
            go = (u > cdf) & (k < bound)
            nxt = pmf * ((ns - k) / (k + 1)) * rr
            k, pmf, cdf = jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf), \
                jnp.where(go, cdf + nxt, cdf)
        return jnp.where(u > cdf, -1.0, k)

    def btrs():
        consts = _btrs_constants(jnp.where(small, 100.0, n), jnp.where(small, 0.5, qq))
        k, acc = zero, small
        for r in range(_BTRS_TRIES):
            un, vn = _node_uniforms(kw, ids, jnp.uint32(r), dtype)
            kn, an = _btrs_try(un, vn, *consts)
            k, acc = jnp.where(acc, k, kn), acc | an
        return jnp.where(acc, k, -1.0)

    k_inv = lax.cond(jnp.any(small & (n > 0) & (qq > 0)), inversion, lambda: zero)
    k_big = lax.cond(jnp.any(~small), btrs, lambda: zero)
    return jnp.where(small, k_inv, k_big)


def _node_binomial(kw, ids, n, qq):
    # _fast_binomial, then the nodes it left (-1) gathered, _STRAGGLERS at a time,
    # and finished by _exact_binomial, which repeats the fast path's steps and
    # tries from the same words before going on: a node's draw is the same
    # whichever path finishes it.
    k = _fast_binomial(kw, ids, n, qq)
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
            vals = _exact_binomial((take(kw0), take(kw1)), take(flat[0]), take(flat[1]),
                                   take(flat[2]))
            return k.at[idx].set(vals, mode="drop")

        k = lax.fori_loop(0, (total + size - 1) // size, batch, k)
        return k.reshape(shape)

    return lax.cond(jnp.any(k < 0), finish, lambda k: k, k)
