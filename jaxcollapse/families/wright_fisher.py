"""The Wright–Fisher live-support runner of the categorical recursion.

The same recursion as ``simulate(key, Categorical(K), ...)`` (exact multinomial
counts each generation), organised for large K: lost categories never return, so
each chain's live categories are packed into the first slots and the arrays shrink
with the support. :func:`jaxcollapse.simulate` runs it by itself where the family,
regime and options allow (see :meth:`Categorical.fast_simulate`).

References:
    Shumailov et al., Nature 631 (2024); Kimura (1955); Ewens (2004). THEORY.md
    section 4.
"""

from __future__ import annotations

import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._fusion import row_exclusive_prefix, row_min, row_sum
from jaxcollapse._progress import Progress
from jaxcollapse.families._counts import _node_binomial
from jaxcollapse.families.categorical import (
    _METRICS,
    Categorical,
    CategoricalParams,
    zipf,  # noqa: F401 (the doctests use it)
)
from jaxcollapse.random import threefry_words

__all__ = ["WrightFisherResult", "wright_fisher"]


class WrightFisherResult(NamedTuple):
    """Output of :func:`wright_fisher`.

    Attributes:
        metrics: name -> array ``(n_chains, n_generations + 1)`` (the metrics of
            :meth:`Categorical.default_metrics`; generation 0 is ``p0``).
        capacity: live-support capacity used at each generation, ``(n_generations + 1,)``.

    Example:
        >>> r = WrightFisherResult({"survivors": np.full((2, 4), 50.0)}, np.full(4, 64))
        >>> r.metrics["survivors"].shape, r.capacity.tolist()   # (chain, generation)
        ((2, 4), [64, 64, 64, 64])
    """

    metrics: dict
    capacity: np.ndarray


# The tree sampler of wright_fisher. Chains lie along the minor axis: a pool is
# (slots, chains), and the nodes of every tree level are rows of one "heap" array
# (levels bottom-up, level s at row offset ``offsets[s]``, with slack rows). One
# compiled program walks the levels top-down (lax.fori_loop) and each level in
# chunks of ``rows`` rows (every chain at once), stopping at the last row that is
# live in any chain: a single copy of the binomial kernel serves every level and
# every capacity. A node's draw depends only on its (chain key, node id, n, q), so
# the chunking, the capacity and the other chains do not change it.
_CHUNK = 4096       # nodes a chunk: rows x chains
_MIN_CAP = 64       # narrowest pool width


def _heap_offsets(cap: int, rows: int) -> tuple:
    # Row offset of each level's region (level 0 = the slots, level s = blocks of
    # 2^s slots), and the total: a region holds the level's ceil(cap / 2^s) nodes,
    # an even-padding row and slack for the chunks that run past the last node.
    offs, off, s = [], 0, 0
    while True:
        offs.append(off)
        size = -(-cap // 2**s)
        off += size + 1 + 2 * rows
        if size == 1:
            return tuple(offs), off
        s += 1


def _write_masses(heap_m, masses, offsets):
    # The masses of every level of the tree over ``masses`` (slots, chains) into
    # their heap regions, each padded to an even number of rows.
    lv, s = masses, 0
    while True:
        if lv.shape[0] > 1 and lv.shape[0] % 2:
            lv = jnp.concatenate([lv, jnp.zeros((1,) + lv.shape[1:], lv.dtype)])
        heap_m = lax.dynamic_update_slice(heap_m, lv, (jnp.int32(offsets[s]), jnp.int32(0)))
        if lv.shape[0] == 1:
            return heap_m
        lv, s = lv[0::2] + lv[1::2], s + 1


@functools.partial(jax.jit, static_argnames=("rows",), donate_argnums=(0,))
def _tree_draw(heap_n, heap_m, chain_kw, t, n_draws, offsets, live_rows, *, rows):
    # Multinomial counts over the slots by conditional binomials down a binary
    # tree: node (s, a) (counter id 32 a + s; the block of slots [a 2^s, (a+1) 2^s),
    # whatever the width) sends Binomial(n, left mass / its mass) of its n draws to
    # its left child. The root is the lowest level whose one block covers the live
    # rows; above a chain's own packed slots the splits are deterministic. Counts
    # land in rows [0, live_rows) of level 0 (rows beyond are stale).
    c = heap_n.shape[1]
    dtype = heap_n.dtype
    w0, w1 = threefry_words((chain_kw[:, 0], chain_kw[:, 1]), jnp.uint32(0), t)
    kw = (w0[None], w1[None])
    z = jnp.int32(0)
    live_rows = jnp.asarray(live_rows, jnp.int32)
    h = jnp.maximum(1, 32 - lax.clz(jnp.maximum(live_rows, 2) - 1))
    heap_n = lax.dynamic_update_slice(heap_n, jnp.full((1, c), n_draws, dtype),
                                      (offsets[h], z))
    row_ids = jnp.arange(rows, dtype=jnp.uint32)[:, None]

    def level(i, heap_n):
        s = h - i
        nodes = (live_rows + (1 << s) - 1) >> s

        def chunk(j, heap_n):
            a0 = (j * rows).astype(jnp.int32)
            top, below = offsets[s] + a0, offsets[s - 1] + 2 * a0
            n = lax.dynamic_slice(heap_n, (top, z), (rows, c))
            m = lax.dynamic_slice(heap_m, (top, z), (rows, c))
            left = lax.dynamic_slice(heap_m, (below, z), (2 * rows, c))[0::2]
            q = jnp.clip(jnp.where(m > 0, left / jnp.where(m > 0, m, 1.0), 0.0), 0.0, 1.0)
            flip = q > 0.5
            qq = jnp.where(flip, 1.0 - q, q)
            n = jnp.where(m > 0, n, 0.0)
            ids = (a0.astype(jnp.uint32) + row_ids) * jnp.uint32(32) + s.astype(jnp.uint32)
            k = _node_binomial(kw, ids, n, qq)
            b = jnp.where(flip, n - k, k)
            kids = jnp.stack([b, n - b], 1).reshape(2 * rows, c)
            return lax.dynamic_update_slice(heap_n, kids, (below, z))

        return lax.fori_loop(0, (nodes + rows - 1) // rows, chunk, heap_n)

    return lax.fori_loop(0, h, level, heap_n)


def _chunk_rows(n_chains: int) -> int:
    return max(1, min(64, _CHUNK // n_chains))


def _tree_counts(kw_key, n_draws, masses):
    # The tree sampler on its own (tests): counts of ``n_draws`` draws over the
    # slots of ``masses`` (slots, chains) for chain keys ``kw_key`` (chains, 2),
    # generation 1.
    cap, c = masses.shape
    rows = _chunk_rows(c)
    offsets, total = _heap_offsets(cap, rows)
    heap_m = _write_masses(jnp.zeros((total, c), masses.dtype), masses, offsets)
    live = jnp.int32(cap - int(np.argmax(np.asarray(jnp.any(masses > 0, 1))[::-1])))
    heap_n = _tree_draw(jnp.zeros((total, c), masses.dtype), heap_m, kw_key, jnp.uint32(1),
                        n_draws, jnp.asarray(offsets, jnp.int32), live, rows=rows)
    return jnp.where(jnp.arange(cap)[:, None] < live, heap_n[:cap], 0.0)


def _wf_metrics(pool, p0c, p0_sorted):
    # Metrics from the slots (pool, p0c: (slots, chains); p0c is p0 of the slot's
    # category): mass of p0 outside the live slots is lost mass. Every sum is over
    # adjacent pairs of slots (the same additions whatever the width).
    alive = pool > 0
    p = pool / row_sum(pool)[None]
    safe = jnp.where(alive, p, 1.0)
    p0a = jnp.where(alive, p0c, 0.0)
    # Separate pairwise sums (those of a stacked array fuse badly on CPU, ~10x
    # slower), each term written out on both slots of the first pair so that the
    # products and the first add sit in one expression whatever the width (a
    # product fused into an add in one program and not in another could round
    # differently).
    def pair_terms(rows):
        return (p0a[rows], jnp.where(alive[rows], p[rows] * jnp.log(safe[rows]), 0.0),
                p[rows] * p[rows], jnp.abs(p[rows] - p0a[rows]), alive[rows].astype(p.dtype))

    if pool.shape[0] % 2:
        raise ValueError("pool rows must be even")
    ev, od = pair_terms(slice(0, None, 2)), pair_terms(slice(1, None, 2))
    inside, neg_ent, sq, dist, count = (row_sum(a + b) for a, b in zip(ev, od, strict=True))
    z = jnp.where(inside > 0, inside, 1.0)[None]
    p0s = p0a / z

    def kl_terms(rows):
        ps = p0s[rows]
        return jnp.where(ps > 0, ps * jnp.log(jnp.where(ps > 0, ps, 1.0) / safe[rows]), 0.0)

    kl = row_sum(kl_terms(slice(0, None, 2)) + kl_terms(slice(1, None, 2)))
    t = row_min(jnp.where(alive, p0c, jnp.inf))
    rank = p0_sorted.shape[0] - jnp.searchsorted(p0_sorted, t, side="left")
    return jnp.stack([
        count,                                        # survivors
        jnp.maximum(1.0 - inside, 0.0),               # lost_mass
        -neg_ent,                                     # entropy
        1.0 - sq,                                     # heterozygosity
        jnp.maximum(kl, 0.0),                         # kl
        0.5 * (dist + (1.0 - inside)),                # tv
        rank.astype(p.dtype),                         # tail_rank
    ])


def _pack(pool, p0c):
    # Live slots to the front, in slot order (a function of the chain's own live
    # set): the (j+1)-th live slot's row, then gathers.
    cap = pool.shape[0]
    alive = pool > 0
    dest = jnp.where(alive, row_exclusive_prefix(alive.astype(jnp.int32)), cap)
    cols = jnp.arange(pool.shape[1])[None]
    src = jnp.full(pool.shape, cap, jnp.int32).at[dest, cols].set(
        jnp.broadcast_to(jnp.arange(cap, dtype=jnp.int32)[:, None], pool.shape), mode="drop")
    take = lambda x: jnp.take_along_axis(
        jnp.concatenate([x, jnp.zeros((1, x.shape[1]), x.dtype)]), src, 0)
    return take(pool), take(p0c)


@functools.partial(jax.jit, static_argnames=("accumulate",), donate_argnums=(1, 2))
def _wf_counts(heap_n, pool, p0c, live_rows, pack, *, accumulate):
    # The generation's counts into the pool, packed when ``pack``; the new number
    # of rows live in some chain.
    cap = pool.shape[0]
    counts = jnp.where(jnp.arange(cap)[:, None] < live_rows, heap_n[:cap], 0.0)
    pool = pool + counts if accumulate else counts
    pool, p0c = lax.cond(pack, _pack, lambda a, b: (a, b), pool, p0c)
    live_any = jnp.any(pool > 0, 1)
    live_rows = jnp.max(jnp.where(live_any, jnp.arange(1, cap + 1), 0)).astype(jnp.int32)
    return pool, p0c, live_rows


@functools.partial(jax.jit, static_argnames=("offsets",), donate_argnums=(0,))
def _wf_masses_metrics(heap_m, pool, p0c, p0_sorted, *, offsets):
    # The generation's metrics, and the tree masses of the next generation.
    return _write_masses(heap_m, pool, offsets), _wf_metrics(pool, p0c, p0_sorted)


@functools.partial(jax.jit, static_argnames=("offsets", "total", "cap", "n_chains"))
def _wf_init(p0, *, offsets, total, cap, n_chains):
    p0c = jnp.zeros((cap, n_chains), p0.dtype).at[:p0.shape[0]].set(p0[:, None])
    heap_m = _write_masses(jnp.zeros((total, n_chains), p0.dtype), p0c, offsets)
    return heap_m, jnp.zeros((total, n_chains), p0.dtype), jnp.zeros_like(p0c), p0c


def _packs_at(t: int) -> bool:
    # Repacking costs about as much as a generation's draws, so it runs on a fixed
    # schedule (a chain's slot layout must not depend on the other chains): at
    # generations 1, 2, 4 and 8, then whenever t passes a power of 2^(1/4).
    if t <= 8:
        return t in (1, 2, 4, 8)
    return math.floor(4 * math.log2(t)) > math.floor(4 * math.log2(t - 1))


def wright_fisher(key: jax.Array, probs0: Any, *, n_generations: int, n_samples: int,
                  n_chains: int, regime: str = "replace",
                  progress: bool = False) -> WrightFisherResult:
    """Many Wright–Fisher chains of the categorical recursion, on a shrinking support.

    The same recursion as ``simulate(key, Categorical(K), ...)`` (exact multinomial
    counts each generation), organised for large K. Lost categories never return,
    so each chain's live categories are packed into the first slots (in their
    original order) and the arrays shrink to the next power of two above the
    largest live count (at least 64): after generation 1 at most M categories are alive and the
    cost a generation falls from O(K) to O(live support). Packing runs at
    generations 1, 2, 4, 8 and then on a fixed geometric schedule (see
    ``capacity``).

    The counts are drawn by conditional binomials down a binary tree over the
    slots (a node with n draws sends Binomial(n, left mass / its mass) of them to
    its left half): log2(width) vectorised levels instead of one sequential step
    a category. Each binomial is exact (inversion for means below 10, BTRS
    above) and takes its uniforms from counter-mode Threefry words keyed by
    (chain, generation, tree node). One compiled program walks every level (and
    serves every width) in chunks of rows over all chains, skipping the rows
    that are empty in every chain; a fixed number of unrolled inversion steps
    and BTRS proposals finishes almost every node, and the few left are gathered
    and finished by the exact loops.

    Chain i uses ``fold_in(key, i)`` and generation t ``fold_in(chain_key, t)``.
    A chain's slot layout and tree are functions of its own live set, a tree
    node is the same block of slots whatever the width the other chains force
    (the levels above a chain's packed slots split deterministically), and the
    metrics are sums over adjacent pairs of slots, so a chain's path is the same
    (bitwise) whatever ``n_chains``. (Counts are exact integers in the floating
    dtype: this needs the pool size, ``M`` or ``M t`` when accumulating, below
    2^24 in float32.)

    Args:
        key: a PRNG key.
        probs0: initial probabilities ``(K,)`` (or :class:`CategoricalParams`).
        n_generations: generations after generation 0 (>= 1).
        n_samples: M, draws a generation (>= 1).
        n_chains: independent chains (>= 1).
        regime: ``"replace"`` (fit on the newest M draws) or ``"accumulate"`` (fit on
            all draws so far).
        progress: print a progress bar to stderr.

    Returns:
        A :class:`WrightFisherResult` with the default metrics per chain and
        generation.

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md sections 1 and 4.

    Example:
        >>> import jax
        >>> res = wright_fisher(jax.random.key(0), zipf(1000, 1.1), n_generations=3,
        ...                     n_samples=100, n_chains=4)
        >>> res.metrics["survivors"].shape
        (4, 4)
        >>> bool((res.metrics["survivors"][:, 1:] <= 100).all())
        True
    """
    probs = probs0.probs if isinstance(probs0, CategoricalParams) else probs0
    if np.ndim(probs) != 1 or np.shape(probs)[0] < 2:
        raise ValueError(f"probs0 must have shape (K,) with K >= 2; got {np.shape(probs)}")
    probs = Categorical(int(np.shape(probs)[0])).check_params(
        CategoricalParams(probs), name="probs0").probs
    for name, v, lo in (("n_generations", n_generations, 1), ("n_samples", n_samples, 1),
                        ("n_chains", n_chains, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
    if regime not in ("replace", "accumulate"):
        raise ValueError(f"regime must be 'replace' or 'accumulate'; got {regime!r}")
    accumulate = regime == "accumulate"
    k = probs.shape[0]
    dtype = jnp.float64 if probs.dtype == jnp.float64 else jnp.float32
    p0 = (probs / jnp.sum(probs)).astype(dtype)
    p0_sorted = jnp.sort(p0)
    # Chains padded to a power of two (at least 8): fewer shapes to compile; the
    # extra chains are ordinary chains, dropped at the end.
    n_run = max(8, 2 ** math.ceil(math.log2(n_chains)))
    rows = _chunk_rows(n_run)
    cap = k + k % 2
    offsets, total = _heap_offsets(cap, rows)
    offsets_arr = jnp.asarray(offsets, jnp.int32)
    chain_kw = jax.random.key_data(
        jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_run)))
    heap_m, heap_n, pool, p0c = _wf_init(p0, offsets=offsets, total=total, cap=cap,
                                         n_chains=n_run)
    live_rows = jnp.int32(k - int(np.argmax(np.asarray(p0)[::-1] > 0)))
    ones = jnp.ones(n_chains, dtype)
    rows0 = jnp.stack([fn(CategoricalParams(p0), CategoricalParams(p0)) * ones
                       for fn in _METRICS.values()])
    out = [rows0]
    caps = [k]
    with Progress(n_generations, "wright-fisher", enabled=progress) as bar:
        for t in range(1, n_generations + 1):
            pack = _packs_at(t)
            heap_n = _tree_draw(heap_n, heap_m, chain_kw, jnp.uint32(t), n_samples,
                                offsets_arr, live_rows, rows=rows)
            pool, p0c, live_rows = _wf_counts(heap_n, pool, p0c, live_rows, jnp.bool_(pack),
                                              accumulate=accumulate)
            if pack:
                # Powers of two, at least _MIN_CAP (each new width compiles new
                # update steps; the tree skips empty rows anyway); the live slots
                # are packed at the front, so shrinking drops only empty ones.
                live = int(live_rows)
                new = max(_MIN_CAP, 2 ** math.ceil(math.log2(max(live, 2))))
                if new < pool.shape[0]:
                    pool, p0c = pool[:new], p0c[:new]
            heap_m, m = _wf_masses_metrics(heap_m, pool, p0c, p0_sorted, offsets=offsets)
            out.append(m[:, :n_chains])
            caps.append(pool.shape[0])
            bar.update(t)
    stacked = jnp.stack(out, axis=2)
    metrics = {name: stacked[i] for i, name in enumerate(_METRICS)}
    return WrightFisherResult(metrics, np.asarray(caps))
