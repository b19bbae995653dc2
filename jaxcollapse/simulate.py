"""The generic multi-generation simulator.

One compiled program runs ``lax.scan`` over generations and ``vmap`` over chains
(and, for :func:`simulate_grid`, over a grid of human fractions or sample sizes).
Generation 0 is ``params0`` (the human distribution); generation t fits on a
training set built by the regime from draws of generation t - 1.

Randomness: chain i uses ``fold_in(key, i)``, which it splits once into a
generation key and a human-data key; generation t uses ``fold_in(gen_key, t)``.
A chain's trajectory therefore does not depend on how many chains run, how they
are chunked over generations or sharded over devices. Families with noise hooks
(families/base.py) have the noise of blocks of generations drawn for all chains at
once, from the same keys, so the scan over generations only does arithmetic.

References:
    Shumailov et al., Nature 631 (2024); Gerstgrasser et al., arXiv 2404.01413;
    Kazdan et al., arXiv 2410.16713. THEORY.md section 1.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse import random as jcr
from jaxcollapse import regimes as rg
from jaxcollapse import store as st
from jaxcollapse._fusion import apart, runtime_true
from jaxcollapse._mesh import CHAIN_AXIS, resolve_mesh
from jaxcollapse._progress import Progress
from jaxcollapse.families.base import (
    CounterNoise,
    DataSetFamily,
    NoiseStats,
    call_metric,
    noise_hooks,
    uses_exact_path,
)
from jaxcollapse.steps import _base as stp

PyTree = Any

_POOL_LIMIT_BYTES = 4 * 2**30
# the noise of a block of generations for all chains (noise hooks) stays below this:
# sample noise is read back soon enough to be in cache; the exact path's noise is
# small and each block pays a fixed cost (the gamma fallback), so its blocks are long
_NOISE_BLOCK_BYTES = {False: 4 * 2**20, True: 32 * 2**20}
_NOISE_BLOCK_MIN = 4  # generations: shorter blocks cost more in loop overhead
# fold_in(gen_key, _NOISE_KEY) keys a chain's counter-mode noise (stats_noise_at);
# generation keys fold_in(gen_key, t) use t = 0 .. n_generations
_NOISE_KEY = np.uint32(0xFFFFFFFF)


class SimulationResult(NamedTuple):
    """Output of :func:`simulate`.

    Attributes:
        params: the fitted parameters, a pytree whose leaves have leading axes
            ``(chain, generation)`` (generation 0 = ``params0``); ``None`` when
            ``save_params=False``.
        metrics: dict name -> array ``(chain, generation)``.
        degenerate: bool ``(chain, generation)``: the fit collapsed to a state the
            family flags (variance underflow, lost support...). Its metrics stay
            finite.
        n_samples: the training-set size of each generation, ``(generation,)``
            (0 at generation 0).

    Example:
        >>> import jax
        >>> import jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1)
        >>> res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=3,
        ...                   n_samples=10, n_chains=2)
        >>> res.metrics["w2sq"].shape, res.n_chains, res.n_generations
        ((2, 4), 2, 3)
    """

    params: PyTree
    metrics: dict[str, jax.Array]
    degenerate: jax.Array
    n_samples: jax.Array

    @property
    def n_chains(self) -> int:
        return int(self.degenerate.shape[-2])

    @property
    def n_generations(self) -> int:
        """Generations after generation 0."""
        return int(self.degenerate.shape[-1]) - 1


@dataclasses.dataclass(frozen=True)
class _Config:
    """Everything static about a simulation (part of the compiled program's key).

    The regime and the loop steps travel beside it as pytrees: their structure is
    static (part of the key through their tree structure), their values traced."""

    family: Any
    regime: str  # a description, for the store's fingerprint
    source: str
    n_generations: int
    n_max: int
    human_slots: int
    metrics: tuple[tuple[str, Callable], ...]
    save_params: bool
    exact: bool
    spec: rg.PoolSpec
    n_draw: int  # rows drawn a generation on the samples path (n_max x candidates)
    selects: tuple[bool, ...]  # which loop steps act through select (not their law)
    train_rows: int  # rows of a samples-path training set (data-set families' size)


class _Keys(NamedTuple):
    """The keys of one generation of one chain, derived in one place.

    ``synthetic = fold_in(gen_key, t)`` draws the synthetic data; the others are
    ``fold_in(synthetic, i)``, one fold_in each (not a split), so the compiler
    removes the keys a path does not use."""

    synthetic: jax.Array
    fit: jax.Array
    regime: jax.Array
    metric: jax.Array
    step: jax.Array


_KEY_FIT, _KEY_REGIME, _KEY_METRIC, _KEY_STEP = 1, 2, 3, 4


def _gen_keys(gen_key, t) -> _Keys:
    syn = jax.random.fold_in(gen_key, t)
    return _Keys(syn, *(jax.random.fold_in(syn, i)
                        for i in (_KEY_FIT, _KEY_REGIME, _KEY_METRIC, _KEY_STEP)))


# ---------------------------------------------------------------------------- helpers


def _float_dtype(tree):
    """The floating dtype of a parameter pytree (its first floating leaf)."""
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.result_type(float)


def _concat(a, b):
    return jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=0), a, b)


def _take(tree, idx):
    return jax.tree.map(lambda x: x[idx], tree)


def _outputs(cfg: _Config, key, params, params0, prev):
    met = {name: call_metric(fn, jax.random.fold_in(key, i), params, params0, prev)
           for i, (name, fn) in enumerate(cfg.metrics)}
    out = {"metrics": met, "degenerate": cfg.family.is_degenerate(params)}
    if cfg.save_params:
        out["params"] = params
    return out


def _split2(key):
    """``jax.random.split(key)``; with partitionable Threefry (JAX's default) its keys
    are ``fold_in(key, 0)`` and ``fold_in(key, 1)``, hashed in fusible operations
    instead of JAX's rolled loop."""
    if jax.config.jax_threefry_partitionable and \
            str(jax.random.key_impl(key)) == "threefry2x32":
        keys = jcr.fold_in(key, jnp.arange(2, dtype=jnp.uint32))
        return keys[0], keys[1]
    return tuple(jax.random.split(key))


def _chain_init(cfg: _Config, regime, chain_key, params0, human):
    gen_key, regime_key = _split2(chain_key)
    carry = {"params": params0, "gen_key": gen_key,
             "regime": regime.init(cfg.spec, regime_key, params0, human)}
    out0 = _outputs(cfg, jax.random.fold_in(gen_key, 0), params0, params0, params0)
    return carry, out0


def _counter_noise(family) -> bool:
    """Whether the exact path draws generation t as draw t under a chain's noise key
    (``stats_noise_at``, families/base.py)."""
    return isinstance(family, CounterNoise)


def _noise_stats(cfg: _Config, regime, n_select: int) -> bool:
    """Whether the samples path fits through the sums of the drawn normals
    (``sample_noise_stats`` and ``stats_from_noise_stats``, families/base.py): where
    the fit sees only the newest draws (and human rows), no step selects among the
    draws, and the family pools statistics."""
    return (not cfg.exact and regime.name in ("replace", "mix") and n_select == 0
            and isinstance(cfg.family, NoiseStats))


def _fitter(cfg: _Config, key):
    """``fit(training_set)`` for this path: statistics, or rows and weights (padded
    to the family's training-set size)."""
    fam = cfg.family
    if cfg.exact:
        return fam.fit_stats

    def fit(train):
        data, weights = train
        pad = cfg.train_rows - weights.shape[0]
        if pad > 0:  # a data-set family whose generation 0 holds more rows
            data = jax.tree.map(
                lambda x: jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]),
                data)
            weights = jnp.concatenate([weights, jnp.zeros((pad,), weights.dtype)])
        return fam.fit(key, data, weights)

    return fit


def _drawer(cfg: _Config):
    """``draw(key, params, n)`` in this path's form (fresh data for a regime)."""
    fam = cfg.family
    if cfg.exact:
        return lambda key, params, n: fam.sample_stats(key, params, jnp.int32(n))

    def draw(key, params, n):
        x = fam.sample(key, params, n)
        return x, jnp.ones((n,), _float_dtype(params))

    return draw


def _chain_step(cfg: _Config, regime, steps, params0, human, carry, xs):
    """One generation of one chain. ``xs`` is (t, m_t[, valid[, noise]]): ``valid``
    False leaves the state untouched (padding); ``noise`` is this generation's draw
    of the family's noise hook, used instead of sampling here."""
    fam = cfg.family
    t, m_t, valid, noise = (*xs, None, None)[:4]
    params = carry["params"]
    dt = _float_dtype(params)
    keys = _gen_keys(carry["gen_key"], t)
    m_syn = regime.n_synthetic(m_t)
    # the law the synthetic draws come from (the loop steps that act through it)
    law = stp.laws(tuple(s for s, sel in zip(steps, cfg.selects, strict=True) if not sel),
                   fam, params)
    select = tuple(s for s, sel in zip(steps, cfg.selects, strict=True) if sel)
    noise_stats = _noise_stats(cfg, regime, len(select))

    if cfg.exact:
        if noise is None and _counter_noise(fam):
            # the draw the noise hooks would make for this generation
            noise = fam.stats_noise_at(jcr.fold_in(carry["gen_key"], _NOISE_KEY),
                                       jnp.asarray(t, jnp.uint32), m_syn, dt)
        syn = fam.sample_stats(keys.synthetic, law, m_syn) if noise is None else \
            fam.stats_from_noise(law, noise, m_syn)
    elif noise is not None and noise_stats:
        # the drawn samples' statistics through their normals' sums
        syn = fam.stats_from_noise_stats(law, fam.sample_noise_stats(noise, m_syn), m_syn)
    else:
        noise_stats = False
        x = fam.sample(keys.synthetic, law, cfg.n_draw) if noise is None else \
            fam.sample_from_noise(law, noise, cfg.n_draw)
        w = (jnp.arange(cfg.n_draw) < m_syn * stp.n_candidates(select)).astype(dt)
        for i, s in enumerate(select):
            x, w = s.select(jax.random.fold_in(keys.step, i), fam, law, x, w)
        syn = (x, w)

    spec = dataclasses.replace(cfg.spec, exact=True) if noise_stats else cfg.spec
    gen = rg.Generation(t=t, m=m_t, key=keys.regime, synthetic=syn, human=human,
                        params0=params0,
                        fit=fam.fit_stats if noise_stats else _fitter(cfg, keys.fit),
                        draw=_drawer(cfg))
    new_params, regime_state = regime.update(spec, carry["regime"], gen)
    new_carry = dict(carry, params=new_params, regime=regime_state)
    # with the parameters saved, metrics and flags are evaluated after the scan, for
    # all generations at once (_outputs_after), and the step's one output is the
    # parameters it started from (a plain copy of the carry; the caller appends the
    # final carry)
    out = {"params": _flat(params)} if cfg.save_params else \
        _outputs(cfg, keys.metric, new_params, params0, params)
    if valid is not None:
        # padded generations of a last, short chunk leave the state untouched
        new_carry = jax.tree.map(_keep_if(valid), new_carry, carry)
    return new_carry, out


def _noise_block(cfg: _Config, dtype, n_chains: int, n_steps: int) -> int:
    """Generations whose noise is drawn at once: as many as keep the block for all
    chains under ``_NOISE_BLOCK_BYTES`` (measured from one noise draw's size)."""
    draw = noise_hooks(cfg.family, cfg.exact)[0]
    key = jax.random.key(0)
    n = jnp.int32(cfg.n_max) if cfg.exact else cfg.n_draw
    shapes = jax.eval_shape(lambda k: draw(k, n, dtype), key)
    per = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes)) * max(n_chains, 1)
    return int(min(max(_NOISE_BLOCK_BYTES[cfg.exact] // max(per, 1), _NOISE_BLOCK_MIN),
                   n_steps))


def _scan_chains(cfg: _Config, loop, params0, human, carry, xs):
    """Runs the generations ``xs`` = (ts, ms[, valid]) for all chains (the
    leading axis of ``carry``): ``vmap`` over chains of a ``lax.scan`` of
    :func:`_chain_step`. Returns the final carry and outputs with leading axes
    (generation, chain).

    With a family's noise hooks (families/base.py), the generations run in blocks:
    each block first draws the noise of all its generations and chains in one
    vectorised call, keyed by ``fold_in(gen_key, t)`` exactly as
    :func:`_chain_step` keys its own draw (or, for a family with
    ``stats_noise_at``, as draw ``t`` under the chain's noise key), then scans the
    cheap steps over it. A chain's numbers therefore do not depend on the block
    size, on chunking or on the other chains.
    """
    regime, steps = loop
    step = functools.partial(_chain_step, cfg, regime, steps, params0, human)
    hooks = noise_hooks(cfg.family, cfg.exact)
    if hooks is None:
        return jax.vmap(lambda c: lax.scan(step, c, xs), out_axes=(0, 1))(carry)
    ts, ms = xs[:2]
    valid = xs[2] if len(xs) > 2 else None
    n_steps = ts.shape[0]
    dtype = _float_dtype(params0)
    block = _noise_block(cfg, dtype, carry["gen_key"].shape[0], n_steps)
    n_blocks = -(-n_steps // block)
    pad = n_blocks * block - n_steps
    if pad:  # padded generations repeat the last one and leave the state untouched
        valid = jnp.ones((n_steps,), bool) if valid is None else valid
        ts, ms = (jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) for x in (ts, ms))
        valid = jnp.concatenate([valid, jnp.zeros((pad,), bool)])
    at = cfg.family.stats_noise_at if cfg.exact and _counter_noise(cfg.family) else None
    xs = (ts, ms, valid)
    if at is not None:
        # counter-mode noise: generation t of a chain is draw t under the chain's
        # noise key (a stream of its generation key that no fold_in(gen_key, t) uses)
        noise_keys = jcr.fold_in(carry["gen_key"], _NOISE_KEY)[None, :]
    else:
        # the keys of every (generation, chain), hashed once for the whole run (the
        # barrier keeps XLA from re-hashing them inside every consumer)
        keys = jcr.fold_in(carry["gen_key"][None, :], ts[:, None])
        xs = xs + (jax.random.wrap_key_data(
            lax.optimization_barrier(jax.random.key_data(keys))),)
    blocked = jax.tree.map(lambda x: x.reshape((n_blocks, block) + x.shape[1:]), xs)

    def run_block(carry, xb):
        tb, mb, vb = xb[:3]
        n = regime.n_synthetic(mb)
        if at is not None:
            noise = at(noise_keys, tb.astype(jnp.uint32)[:, None], n[:, None], dtype)
        elif cfg.exact:
            kb = xb[3]  # (generation, chain) keys
            noise = hooks[0](kb, jnp.broadcast_to(n[:, None], kb.shape), dtype)
        else:
            noise = hooks[0](xb[3], cfg.n_draw, dtype)
        return jax.vmap(lambda c, z: lax.scan(step, c, (tb, mb, vb, z)),
                        in_axes=(0, 1), out_axes=(0, 1))(carry, noise)

    carry, outs = lax.scan(run_block, carry, blocked)
    outs = jax.tree.map(lambda y: y.reshape((n_blocks * block,) + y.shape[2:])[:n_steps], outs)
    return carry, outs


def _outputs_after(cfg: _Config, params0, gen_keys, ts, params, prev):
    """:func:`_outputs` of every chain and generation from the saved parameters, in
    one vectorised pass: ``params`` and ``prev`` (the generation before each) have
    leading axes (chain, generation), ``ts`` (generation,) holds the generations.
    Each gets the key its step would have used (``fold_in(fold_in(gen_key, t), 3)``,
    and ``fold_in(gen_key, 0)`` at generation 0), so the numbers equal those of an
    evaluation inside the scan."""
    k_syn = jcr.fold_in(gen_keys[:, None], ts[None, :].astype(jnp.uint32))
    k_met = jcr.fold_in(k_syn, _KEY_METRIC)
    words = jnp.where((ts == 0)[None, :, None], jax.random.key_data(k_syn),
                      jax.random.key_data(k_met))
    keys = jax.random.wrap_key_data(words)
    return jax.vmap(jax.vmap(lambda k, p, q: _outputs(cfg, k, p, params0, q)))(
        keys, params, prev)


def _flat(params):
    """Each leaf as a vector, or a scalar if it has one element: the scan's outputs
    then have no unit axes, whose transposes XLA:CPU runs several times slower."""
    return jax.tree.map(lambda x: x.reshape(()) if x.size == 1 else x.reshape(-1), params)


def _unflat(flat, params0, lead: int):
    """Inverse of :func:`_flat` for leaves with ``lead`` leading axes."""
    return jax.tree.map(lambda x, p: x.reshape(x.shape[:lead] + p.shape), flat, params0)


def _chain_major(outs, key):
    """Outputs ``(generation, chain, ...)`` -> ``(chain, generation, ...)``, each
    transposed apart from the concatenation or scan that produces it (fused with
    them, XLA:CPU's transpose walks memory with a stride; see _fusion)."""
    flag = runtime_true(key)
    return jax.tree.map(lambda y: apart(flag, lambda y: jnp.swapaxes(y, 0, 1), y), outs)


def _keep_if(valid):
    def pick(new, old):
        if jax.dtypes.issubdtype(new.dtype, jax.dtypes.prng_key):
            return new  # keys never change within a chain
        return jnp.where(valid, new, old)

    return pick


def _run_chains(cfg, key, chain_ids, params0, loop, sched, human):
    """All chains, all generations (the one-program path)."""
    ts = jnp.arange(1, cfg.n_generations + 1, dtype=jnp.int32)
    carry, out0 = jax.vmap(
        lambda cid: _chain_init(cfg, loop[0], jcr.fold_in(key, cid), params0, human))(
        chain_ids)
    gen_keys = carry["gen_key"]
    last, outs = _scan_chains(cfg, loop, params0, human, carry, (ts, sched))
    if not cfg.save_params:
        outs = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0), out0, outs)
        return _chain_major(outs, key)
    # the steps output generations 0 .. G-1; the final carry holds generation G
    final = jax.vmap(_flat)(last["params"])
    params = jax.tree.map(lambda a, b: jnp.concatenate([a, b[None]], axis=0),
                          outs["params"], final)
    params = _unflat(_chain_major(params, key), params0, 2)
    # generation 0 is compared with itself
    prev = jax.tree.map(lambda p: jnp.concatenate([p[:, :1], p[:, :-1]], axis=1), params)
    return _outputs_after(cfg, params0, gen_keys, jnp.arange(cfg.n_generations + 1),
                          params, prev)


def _on_mesh(fn, mesh, n_sharded, n_args):
    """``fn`` itself, or ``fn`` under ``shard_map`` with its first ``n_sharded``
    arguments split along their leading (chain) axis over the mesh's ``chains``
    axis and the rest replicated. Chains never interact, so every device runs
    the same per-chain program on its own chains: results equal the one-device run."""
    if mesh is None:
        return fn
    P = jax.sharding.PartitionSpec
    specs = tuple(P(CHAIN_AXIS) if i < n_sharded else P() for i in range(n_args))
    return jax.shard_map(fn, mesh=mesh, in_specs=specs, out_specs=P(CHAIN_AXIS),
                         check_vma=False)


@functools.partial(jax.jit, static_argnames=("cfg", "mesh"))
def _run_jit(cfg, mesh, key, chain_ids, params0, loop, sched, human):
    def body(ids, key, params0, loop, sched, human):
        return _run_chains(cfg, key, ids, params0, loop, sched, human)

    return _on_mesh(body, mesh, 1, 6)(chain_ids, key, params0, loop, sched, human)


@functools.partial(jax.jit, static_argnames=("cfg", "loop_axes", "grid_sched"))
def _run_grid_jit(cfg, key, chain_ids, params0, loop, sched, human, loop_axes, grid_sched):
    fn = functools.partial(_run_chains, cfg, key, chain_ids, params0)
    axes = jax.tree.unflatten(jax.tree.structure(loop), loop_axes)
    return jax.vmap(fn, in_axes=(axes, 0 if grid_sched else None, None))(loop, sched, human)


@functools.partial(jax.jit, static_argnames=("cfg", "mesh"))
def _init_jit(cfg, mesh, key, chain_ids, params0, loop, human):
    def body(ids, key, params0, loop, human):
        return jax.vmap(lambda cid: _chain_init(cfg, loop[0], jcr.fold_in(key, cid), params0,
                                                human))(ids)

    return _on_mesh(body, mesh, 1, 5)(chain_ids, key, params0, loop, human)


@functools.partial(jax.jit, static_argnames=("cfg", "mesh"), donate_argnames=("carry",))
def _chunk_jit(cfg, mesh, carry, params0, ts, ms, loop, valid, human):
    def body(carry, params0, ts, ms, loop, valid, human):
        carry, outs = _scan_chains(cfg, loop, params0, human, carry, (ts, ms, valid))
        if not cfg.save_params:
            return carry, _chain_major(outs, carry["gen_key"])
        # the steps output the generations before ts (padded steps keep the carry)
        prev = outs["params"]
        params = jax.tree.map(lambda a, b: jnp.concatenate([a[1:], b[None]], axis=0),
                              prev, jax.vmap(_flat)(carry["params"]))
        params, prev = (_unflat(x, params0, 2)
                        for x in _chain_major((params, prev), carry["gen_key"]))
        return carry, _outputs_after(cfg, params0, carry["gen_key"], ts, params, prev)

    return _on_mesh(body, mesh, 1, 7)(carry, params0, ts, ms, loop, valid, human)


def _resolve_mesh(devices, mesh):
    """The mesh to shard chains over, or None for a single device."""
    return resolve_mesh(devices, mesh, CHAIN_AXIS, "chains")


def _pad_chains(chain_ids, mesh):
    if mesh is None:
        return chain_ids
    n_dev = mesh.shape[CHAIN_AXIS]
    n = chain_ids.shape[0]
    padded = -(-n // n_dev) * n_dev
    # extra chains (the ids after the last) fill the last device and are dropped
    # afterwards; the ids are contiguous, from 0 or from the start of a chain block
    first = int(chain_ids[0])
    return jnp.arange(first, first + padded, dtype=chain_ids.dtype)


def _check_chain_block(chain_block, n_chains):
    if chain_block is None:
        return 0, n_chains
    try:
        lo, hi = (int(v) for v in chain_block)
    except (TypeError, ValueError):
        raise TypeError(f"chain_block must be a pair (start, stop) of ints; got "
                        f"{chain_block!r}") from None
    if not 0 <= lo < hi <= n_chains:
        raise ValueError(f"chain_block must satisfy 0 <= start < stop <= n_chains="
                         f"{n_chains}; got {chain_block!r}")
    return lo, hi


# ------------------------------------------------------------------------- validation


def _check_key(key):
    if isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key):
        if key.shape != ():
            raise ValueError(f"key must be a single PRNG key (shape ()); got shape {key.shape}")
        return key
    if (isinstance(key, jax.Array | np.ndarray) and key.dtype == np.uint32
            and key.shape == (2,)):
        return jax.random.wrap_key_data(jnp.asarray(key))
    raise TypeError(f"key must be a JAX PRNG key from jax.random.key(seed); got {key!r}"[:200])


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _check_family(family):
    for attr in ("fit", "sample", "check_params", "default_metrics", "is_degenerate"):
        if not hasattr(family, attr):
            raise TypeError(f"family must follow the Family contract (missing {attr!r}); "
                            f"got {family!r}")
    try:
        hash(family)
    except TypeError:
        raise TypeError(f"family must be hashable (a frozen dataclass); got {family!r}") from None


def _min_samples(family):
    return int(family.min_samples()) if hasattr(family, "min_samples") else 2


def _check_schedule(family, n_samples, n_generations, name="n_samples"):
    """Returns an int32 array of shape (..., n_generations) and its static maximum."""
    lo = _min_samples(family)
    if isinstance(n_samples, bool):
        raise TypeError(f"{name} must be an integer or an integer array; got {n_samples!r}")
    m = np.asarray(n_samples)
    if m.dtype.kind == "f" and np.all(np.isfinite(m)) and np.all(m == np.round(m)):
        m = m.astype(np.int64)
    if m.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer or an integer array; got {n_samples!r}")
    if m.ndim == 0:
        m = np.full((n_generations,), int(m))
    if m.shape[-1] != n_generations:
        raise ValueError(f"{name} as a schedule must have length n_generations="
                         f"{n_generations} along its last axis; got shape {m.shape}")
    if m.min() < lo:
        raise ValueError(f"{name} must be >= {lo} for {family!r}; got a minimum of {m.min()}")
    if m.max() > 2**31 - 1:
        raise ValueError(f"{name} overflows int32; got {m.max()}")
    return jnp.asarray(m, jnp.int32), int(m.max())


def _check_metrics(family, metrics):
    if metrics is None:
        metrics = family.default_metrics()
    if isinstance(metrics, Mapping):
        items = tuple(metrics.items())
    elif isinstance(metrics, Sequence) and not isinstance(metrics, str):
        defaults = family.default_metrics()
        unknown = [m for m in metrics if m not in defaults]
        if unknown:
            raise ValueError(f"metrics must be names from {sorted(defaults)} or a dict "
                             f"name -> function; got unknown {unknown}")
        items = tuple((m, defaults[m]) for m in metrics)
    else:
        raise TypeError(f"metrics must be a dict name -> function, a list of names or None; "
                        f"got {metrics!r}")
    for name, fn in items:
        if not callable(fn):
            raise TypeError(f"metric {name!r} must be callable; got {fn!r}")
    return items


def _describe(regime, steps) -> str:
    """The regime and steps as a string for the store's fingerprint (mix's alpha is
    recorded apart)."""
    def leaves(obj):
        return [np.asarray(x).tolist() for x in jax.tree.leaves(obj)]

    text = regime.name
    if not isinstance(regime, rg.Mix | rg.Replace | rg.Accumulate):
        text += f"{leaves(regime)}{jax.tree.structure(regime)}"
    for s in steps:
        text += f" | {s.name}{leaves(s)}{jax.tree.structure(s)}"
    return _ADDRESS.sub("", text)


_ADDRESS = __import__("re").compile(r" at 0x[0-9a-f]+")


def _prepare(key, family, params0, *, n_generations, n_samples, n_chains, regime,
             human_data, metrics, save_params, step=None, alpha_values=None):
    key = _check_key(key)
    _check_family(family)
    n_generations = _check_int("n_generations", n_generations, 1)
    n_chains = _check_int("n_chains", n_chains, 1)
    params0 = family.check_params(params0)
    regime = rg.get_regime(regime)
    steps = stp.as_steps(step, family, params0)
    sched, n_max = _check_schedule(family, n_samples, n_generations)
    exact = uses_exact_path(family)
    if exact and not regime.stats_path:
        raise ValueError(f"regime {regime.name!r} needs the samples path: a subsample of a "
                         f"pool is not a function of its sufficient statistics; use "
                         f"method='samples' for {family!r}")
    select = stp.selectors(steps, family, params0)
    if exact and select:
        raise ValueError(f"step {select[0].name!r} selects among draws, which needs the "
                         f"samples path; use method='samples' for {family!r}")
    human_slots = 0
    if regime.uses_human:
        if human_data is None:
            raise ValueError(f"regime {regime.name!r} needs human_data (an array of human "
                             f"samples, e.g. family.sample(key, params0, n)); got None")
        human_data = family.check_data(human_data, "human_data")
        n_rows = jax.tree.leaves(human_data)[0].shape[0]
        alpha = np.asarray(regime.alpha if alpha_values is None else alpha_values, float)
        need = int(np.round(alpha.max() * n_max))
        if n_rows < need:
            raise ValueError(f"human_data has {n_rows} rows but alpha={alpha.max()} with "
                             f"n_samples={n_max} needs {need}")
        human_slots = min(n_rows, n_max)
    elif human_data is not None:
        raise ValueError(f"human_data is only used by regimes that train on human rows "
                         f"(mix); regime {regime.name!r} does not use it: leave it out")
    init_rows = 0
    if isinstance(family, DataSetFamily):
        init_rows = int(family.initial_data(params0)[1].shape[0])
    spec = rg.PoolSpec(family=family, exact=exact, n_max=n_max, n_generations=n_generations,
                       human_slots=human_slots,
                       init_rows=init_rows if isinstance(regime, rg.Accumulate) else 0)
    pool_rows = regime.pool_rows(spec)
    if pool_rows and not exact:
        leaves = jax.tree.leaves(jax.eval_shape(
            lambda: family.sample(jax.random.key(0), params0, 1)))
        row_bytes = sum(math.prod(x.shape[1:]) * x.dtype.itemsize for x in leaves)
        need = n_chains * pool_rows * row_bytes
        if need > _POOL_LIMIT_BYTES:
            raise ValueError(
                f"the accumulated pool needs {need / 2**30:.1f} GiB "
                f"(n_chains x n_generations x n_samples rows); use an exact family "
                f"(method='exact'), fewer chains, or simulate in batches of chains")
    train_rows = regime.train_rows(spec)
    if init_rows:
        # the carry holds generation 0's data set and every fit's: one size for both
        train_rows = max(train_rows, init_rows)
        params0 = family.pad_params(params0, train_rows)
    items = _check_metrics(family, metrics)
    cfg = _Config(family=family, regime=_describe(regime, steps),
                  source=getattr(regime, "source", "fixed"), n_generations=n_generations,
                  n_max=n_max, human_slots=human_slots, metrics=items,
                  save_params=bool(save_params), exact=exact, spec=spec,
                  n_draw=n_max * stp.n_candidates(select), train_rows=train_rows,
                  selects=tuple(any(s is x for x in select) for s in steps))
    dt = _float_dtype(params0)
    if alpha_values is not None:
        regime = dataclasses.replace(regime, alpha=jnp.asarray(alpha_values, dt))
    regime, steps = jax.tree.map(
        lambda x: jnp.asarray(x, dt) if jnp.issubdtype(jnp.result_type(x), jnp.floating)
        else x, (regime, steps))
    human = None
    if regime.uses_human:
        human = jax.tree.map(
            lambda x: x.astype(dt) if jnp.issubdtype(x.dtype, jnp.floating) else x, human_data)
    chain_ids = jnp.arange(n_chains, dtype=jnp.uint32)
    return cfg, key, chain_ids, params0, (regime, steps), sched, human


def _alpha_of(loop):
    """Mix's alpha for the store's fingerprint (other regimes: 0, as before)."""
    regime = loop[0]
    return regime.alpha if isinstance(regime, rg.Mix) else np.zeros(())


def _assemble(cfg, out, sched):
    zero = jnp.zeros(sched.shape[:-1] + (1,), sched.dtype)
    return SimulationResult(params=out.get("params"), metrics=out["metrics"],
                            degenerate=out["degenerate"],
                            n_samples=jnp.concatenate([zero, sched], axis=-1))


# ------------------------------------------------------------------------- public API


def simulate(key: jax.Array, family: Any, params0: PyTree, *, n_generations: int,
             n_samples: int | Sequence[int] | np.ndarray, n_chains: int,
             regime: Any = "replace", human_data: PyTree | None = None,
             step: Any = None,
             metrics: Mapping[str, Callable] | Sequence[str] | None = None,
             save_params: bool = True, chunk_size: int | None = None,
             progress: bool = False,
             on_chunk: Callable[[int, int, SimulationResult], None] | None = None,
             devices: int | Sequence[jax.Device] | None = None,
             mesh: jax.sharding.Mesh | None = None,
             checkpoint_dir: str | os.PathLike | None = None, keep: bool = True,
             chain_block: tuple[int, int] | None = None
             ) -> SimulationResult | st.StoredResult:
    """Runs ``n_chains`` independent chains of recursive training for ``n_generations``.

    Args:
        key: a JAX PRNG key (``jax.random.key(seed)``).
        family: a model family (e.g. ``Gaussian(dim=1, method="exact")``).
        params0: the human distribution's parameters (generation 0).
        n_generations: generations after generation 0 (>= 1).
        n_samples: training-set size M, or a schedule ``M_1..M_n`` (length
            ``n_generations``; see :func:`jaxcollapse.schedule`).
        n_chains: number of independent chains.
        regime: ``"replace"``, ``"accumulate"``, ``"accumulate-subsample"``, or a
            regime object such as ``mix(0.1, source="fresh")``.
        human_data: human samples (leading axis = samples) for the mix regime (an
            error with any other regime, which would ignore it).
        step: a loop step from :mod:`jaxcollapse.steps` (sampling bias, temperature,
            curation, verification...) or a sequence of them applied in order between
            sampling and the regime's pool; ``None`` trains on faithful draws.
        metrics: dict name -> ``fn(params, params0)``, a list of the family's metric
            names, or ``None`` for ``family.default_metrics()``.
        save_params: keep every generation's parameters (set ``False`` for families
            whose parameters are large, e.g. KDE data sets).
        chunk_size: run the generations in compiled chunks of this many (results are
            identical); needed for progress display and ``on_chunk``.
        progress: show a progress bar (chunks of about 1/20 of the run if
            ``chunk_size`` is not given).
        on_chunk: ``on_chunk(start, stop, chunk)`` after every chunk, where ``chunk``
            is a :class:`SimulationResult` (NumPy arrays) holding generations
            ``start..stop-1`` only (the first chunk includes generation 0), e.g. to
            append them to files so that an interrupted run loses no finished work.
        devices: shard the chains over this many devices (an int), these devices,
            or (``None``) all local devices. Chain counts that are not a multiple of
            the device count are padded and trimmed. Results are the same as on one
            device: each chain runs the same program on whichever device holds it.
        mesh: alternatively, a ``jax.sharding.Mesh`` with an axis named ``"chains"``.
        checkpoint_dir: write every finished chunk (metrics, flags, parameters if
            ``save_params``), the state needed to continue, and a fingerprint of the
            configuration to this directory as the run goes (see
            :mod:`jaxcollapse.store`). Called again with the same directory, the run
            resumes after the last written chunk and gives the same numbers as an
            uninterrupted run (bitwise); a finished run is read back without
            computing. A different configuration or ``chunk_size`` raises
            ``ValueError`` naming what differs. ``chunk_size`` defaults to about 1/20
            of the run; the device count may change between runs.
        keep: hold every generation in host memory and return a
            :class:`SimulationResult`. ``False`` (needs ``checkpoint_dir``) returns a
            :class:`~jaxcollapse.store.StoredResult` that reads the chunks from disk
            on demand, so host memory stays flat however many generations run.
        chain_block: run only chains ``start..stop-1`` of the ``n_chains`` (chain i
            still uses ``fold_in(key, i)``); the result's chain axis has
            ``stop - start`` entries. Used by multi-process runs
            (:mod:`jaxcollapse.distributed`).

    Returns:
        A :class:`SimulationResult` with leading axes ``(chain, generation)``, or a
        :class:`~jaxcollapse.store.StoredResult` when ``keep=False``.

    Example:
        >>> import jax, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=50,
        ...                   n_samples=100, n_chains=256)
        >>> res.metrics["var_ratio"].shape
        (256, 51)
        >>> bool(abs(res.metrics["var_ratio"][:, 50].mean() - 1.0) < 0.3)  # a martingale
        True

    References:
        Shumailov et al., Nature 631 (2024). THEORY.md section 1.
    """
    cfg, key, chain_ids, params0, loop, sched, human = _prepare(
        key, family, params0, n_generations=n_generations, n_samples=n_samples,
        n_chains=n_chains, regime=regime, human_data=human_data, metrics=metrics,
        save_params=save_params, step=step)
    if not isinstance(keep, bool):
        raise TypeError(f"keep must be True or False; got {keep!r}")
    if not keep and checkpoint_dir is None:
        raise ValueError("keep=False needs checkpoint_dir (the chunks are read back from "
                         "there); got checkpoint_dir=None")
    n_chains = int(chain_ids.shape[0])
    lo, hi = _check_chain_block(chain_block, n_chains)
    chain_ids = chain_ids[lo:hi]
    if chunk_size is None and (progress or on_chunk is not None or checkpoint_dir is not None):
        chunk_size = max(1, math.ceil(cfg.n_generations / 20))
    mesh = _resolve_mesh(devices, mesh)
    n = chain_ids.shape[0]
    if checkpoint_dir is None and (
            chunk_size is None or chunk_size >= cfg.n_generations and on_chunk is None):
        ids = _pad_chains(chain_ids, mesh)
        out = _run_jit(cfg, mesh, key, ids, params0, loop, sched, human)
        if ids.shape[0] != n:
            out = jax.tree.map(lambda a: a[:n], out)
        return _assemble(cfg, out, sched)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    writer = None
    if checkpoint_dir is not None:
        fp = st.fingerprint(cfg, key, params0, _alpha_of(loop), sched, human, chunk_size,
                            (lo, hi),
                            n_chains)
        writer = st.ChunkWriter(checkpoint_dir, fp,
                                n_chunks=math.ceil(cfg.n_generations / chunk_size),
                                params_type=st._params_type(params0) if save_params else None)
        if writer.complete and not keep:
            return st.StoredResult(writer.directory)
    return _simulate_chunked(cfg, mesh, key, chain_ids, n, params0, loop, sched, human,
                             chunk_size, progress, on_chunk, writer, keep)


def _simulate_chunked(cfg, mesh, key, chain_ids, n_chains, params0, loop, sched, human,
                      chunk_size, progress, on_chunk, writer=None, keep=True):
    G = cfg.n_generations
    sched_np = np.asarray(sched)
    all_n = np.concatenate([[0], sched_np])
    done = writer.chunks_done if writer is not None else 0
    pieces = []
    if done:  # resume: finished chunks come from disk, the carry from the last of them
        if keep:
            template = _template_outputs(cfg, loop, key, chain_ids[:1], params0, human)
            pieces = [jax.tree.map(np.asarray, st.unflatten_like(template,
                                                                 writer.read_chunk(k)))
                      for k in range(done)]
        if writer.complete:
            out = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *pieces)
            return _assemble(cfg, jax.tree.map(jnp.asarray, out), sched)
    ids = _pad_chains(chain_ids, mesh)
    carry, out0 = _init_jit(cfg, mesh, key, ids, params0, loop, human)
    if done:
        carry = st.carry_from_host(carry, writer.read_carry(), n_chains)
    else:
        pieces = [jax.tree.map(lambda a: np.asarray(a)[:n_chains, None], out0)]
    with Progress(G, "simulate", enabled=progress) as bar:
        bar.update(min(G, done * chunk_size))
        for start in range(1 + done * chunk_size, G + 1, chunk_size):
            ts = np.arange(start, start + chunk_size)
            valid = ts <= G
            ms = sched_np[np.minimum(ts, G) - 1]
            carry, outs = _chunk_jit(cfg, mesh, carry, params0, jnp.asarray(ts, jnp.int32),
                                     jnp.asarray(ms, jnp.int32),
                                     loop, jnp.asarray(valid),
                                     human)
            n_valid = int(valid.sum())
            piece = jax.tree.map(lambda a, n=n_valid: np.asarray(a)[:n_chains, :n], outs)
            if start == 1:  # the first chunk reports generation 0 too
                piece = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), pieces.pop(),
                                     piece)
            last = start + n_valid - 1
            first = 0 if start == 1 else start
            if writer is not None:
                writer.write((start - 1) // chunk_size, st.flatten(piece),
                             all_n[first:last + 1],
                             None if last == G else st.carry_to_host(carry, n_chains))
            if keep:
                pieces.append(piece)
            bar.update(last)
            if on_chunk is not None:
                on_chunk(first, last + 1, SimulationResult(
                    params=piece.get("params"), metrics=piece["metrics"],
                    degenerate=piece["degenerate"], n_samples=all_n[first:last + 1]))
    if not keep:
        return st.StoredResult(writer.directory)
    out = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), *pieces)
    return _assemble(cfg, jax.tree.map(jnp.asarray, out), sched)


def _store_fingerprint(key, family, params0, *, n_generations, n_samples, n_chains,
                       regime="replace", human_data=None, metrics=None, save_params=True,
                       chunk_size=None, chain_block=None, step=None, **_):
    """The fingerprint ``simulate(..., checkpoint_dir=...)`` gives this configuration."""
    cfg, key, chain_ids, params0, loop, sched, human = _prepare(
        key, family, params0, n_generations=n_generations, n_samples=n_samples,
        n_chains=n_chains, regime=regime, human_data=human_data, metrics=metrics,
        save_params=save_params, step=step)
    lo, hi = _check_chain_block(chain_block, n_chains)
    if chunk_size is None:
        chunk_size = max(1, math.ceil(cfg.n_generations / 20))
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    return st.fingerprint(cfg, key, params0, _alpha_of(loop), sched, human, chunk_size,
                          (lo, hi),
                          n_chains), st._params_type(params0) if save_params else None


def _template_outputs(cfg, loop, key, chain_ids, params0, human):
    """The structure of one chunk's outputs (shapes only, nothing computed)."""
    return jax.eval_shape(lambda k, i, p, h: jax.vmap(
        lambda cid: _chain_init(cfg, loop[0], jax.random.fold_in(k, cid), p, h)[1])(i),
        key, chain_ids, params0, human)


def simulate_grid(key: jax.Array, family: Any, params0: PyTree, *, n_generations: int,
                  n_samples: Any, n_chains: int, regime: Any = "replace",
                  alpha: Any = None, human_data: PyTree | None = None, step: Any = None,
                  metrics: Mapping[str, Callable] | Sequence[str] | None = None,
                  save_params: bool = False) -> SimulationResult:
    """:func:`simulate` over a grid of loop parameters and/or sample sizes, one program.

    The grid axis comes first in every output: ``(grid, chain, generation)``. Every
    grid point uses the same chain keys (common random numbers), so differences
    between grid points are not blurred by independent noise.

    Args:
        alpha: 1-D array of human fractions (requires ``regime="mix"`` or a ``mix``
            regime, whose own alpha is then ignored).
        regime, step: a regime or loop step whose array parameters have a leading grid
            axis is swept along it (for example ``weighted_fresh(w=jnp.array([0.3,
            0.6]), n_real=50)`` or ``steps.sampling_bias(jnp.array([0.9, 1.0]))``).
        n_samples: an int (no grid over sizes), a 1-D array of sizes (one grid point
            each, constant over generations), or a 2-D array of schedules
            ``(grid, n_generations)``. Sizes are traced within the static maximum.
        Other arguments: as for :func:`simulate`.

    Example:
        >>> import jax, jax.numpy as jnp, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> human = fam.sample(jax.random.key(1), fam.params(), 100)
        >>> res = jc.simulate_grid(jax.random.key(0), fam, fam.params(), n_generations=20,
        ...                        n_samples=100, n_chains=64, regime="mix",
        ...                        alpha=jnp.array([0.0, 0.1, 0.5]), human_data=human)
        >>> res.metrics["w2sq"].shape
        (3, 64, 21)
    """
    grid_alpha = alpha is not None
    if grid_alpha:
        a = np.asarray(alpha, float)
        if a.ndim != 1 or a.size < 1:
            raise ValueError(f"alpha must be a non-empty 1-D array of fractions; got {alpha!r}")
        rg.check_alpha(a)
        if isinstance(regime, str):
            regime = rg.get_regime(regime, alpha=0.0 if regime == "mix" else None)
        if not isinstance(regime, rg.Mix):
            raise ValueError(f"alpha needs regime='mix'; got regime="
                             f"{getattr(regime, 'name', regime)!r}")
    m = np.asarray(n_samples)
    grid_sched = m.ndim >= 1
    if grid_sched:
        if m.ndim == 1:
            m = np.repeat(m[:, None], _check_int("n_generations", n_generations, 1), axis=1)
        elif m.ndim != 2:
            raise ValueError(f"n_samples must be an int, a 1-D array of sizes or a 2-D array "
                             f"of schedules; got shape {m.shape}")
    cfg, key, chain_ids, params0, loop, sched, human = _prepare(
        key, family, params0, n_generations=n_generations, n_samples=m if grid_sched else
        int(m), n_chains=n_chains, regime=regime, human_data=human_data, metrics=metrics,
        save_params=save_params, step=step, alpha_values=a if grid_alpha else None)
    # the loop's array leaves carry the grid axis
    axes = tuple(0 if jnp.ndim(x) >= 1 else None for x in jax.tree.leaves(loop))
    sizes = {int(x.shape[0]) for x, ax in zip(jax.tree.leaves(loop), axes, strict=True)
             if ax == 0}
    if grid_sched:
        sizes.add(int(sched.shape[0]))
    if not sizes:
        raise ValueError("simulate_grid needs a grid: a 1-D alpha, a regime or step with "
                         "array parameters, and/or an array n_samples")
    if len(sizes) > 1:
        raise ValueError(f"the grids of alpha, the regime, the steps and n_samples must have "
                         f"the same length; got lengths {sorted(sizes)}")
    out = _run_grid_jit(cfg, key, chain_ids, params0, loop, sched, human, axes, grid_sched)
    if not grid_sched:
        sched = jnp.broadcast_to(sched, (sizes.pop(),) + sched.shape)
    return _assemble(cfg, out, sched)
