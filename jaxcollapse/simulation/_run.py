"""All chains and generations: the scan (in blocks of generations with a family's
noise hooks), the outputs after the scan, and the compiled entry points, sharded
over a mesh of chains."""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from jaxcollapse import random as jcr
from jaxcollapse._fusion import hash_once
from jaxcollapse._mesh import CHAIN_AXIS, resolve_mesh
from jaxcollapse.families.base import (
    noise_hooks,
)
from jaxcollapse.simulation._chain import (
    _KEY_METRIC,
    _NOISE_BLOCK_BYTES,
    _NOISE_BLOCK_MIN,
    _NOISE_KEY,
    _chain_init,
    _chain_major,
    _chain_step,
    _Config,
    _counter_noise,
    _flat,
    _float_dtype,
    _fresh_noise,
    _fresh_noise_at,
    _outputs,
    _unflat,
)

PyTree = Any


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
        if cfg.remat:
            return jax.vmap(lambda c: _remat_scan(step, c, xs, cfg.remat),
                            out_axes=(0, 1))(carry)
        return jax.vmap(lambda c: lax.scan(step, c, xs), out_axes=(0, 1))(carry)
    ts, ms = xs[:2]
    valid = xs[2] if len(xs) > 2 else None
    n_steps = ts.shape[0]
    dtype = _float_dtype(params0)
    block = _noise_block(cfg, dtype, carry["gen_key"].shape[0], n_steps)
    if cfg.remat:
        block = min(block, cfg.remat)
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
        # the keys of every (generation, chain), hashed once for the whole run
        xs = xs + (hash_once(jcr.fold_in(carry["gen_key"][None, :], ts[:, None])),)
    blocked = jax.tree.map(lambda x: x.reshape((n_blocks, block) + x.shape[1:]), xs)

    def draw_block(xb):
        tb, mb = xb[:2]
        n = jax.vmap(lambda t, m: regime.at(t).n_synthetic(m))(tb, mb)
        if at is not None:
            noise = at(noise_keys, tb.astype(jnp.uint32)[:, None], n[:, None], dtype)
            if _fresh_noise(cfg, regime):  # the regime's fresh draws, drawn ahead too
                return noise, _fresh_noise_at(cfg, regime, carry["gen_key"][None, :],
                                              tb[:, None], dtype)
            return noise
        if cfg.exact:
            kb = xb[3]  # (generation, chain) keys
            return hooks[0](kb, jnp.broadcast_to(n[:, None], kb.shape), dtype)
        return hooks[0](xb[3], cfg.n_draw, dtype)

    def scan_block(carry, xb, noise):
        tb, mb, vb = xb[:3]
        # with a regime's fresh noise, z = (noise, fresh): the step's xs then end
        # with both
        extra = (lambda z: z) if _fresh_noise(cfg, regime) and at is not None else \
            (lambda z: (z,))
        return jax.vmap(lambda c, z: lax.scan(step, c, (tb, mb, vb, *extra(z))),
                        in_axes=(0, 1), out_axes=(0, 1))(carry, noise)

    def run_block(carry, xb):
        return scan_block(carry, xb, draw_block(xb))

    if cfg.remat:
        if _keep_noise(draw_block, blocked, n_blocks):
            # reverse mode keeps the noise (it has no derivative) and recomputes only
            # the arithmetic of a block from its carry
            def run_block(carry, xb):
                return jax.checkpoint(scan_block, prevent_cse=False)(
                    carry, xb[:3], draw_block(xb))
        else:  # reverse mode recomputes a block, its noise too, from its carry
            run_block = jax.checkpoint(run_block, prevent_cse=False)
    carry, outs = lax.scan(run_block, carry, blocked)
    outs = jax.tree.map(lambda y: y.reshape((n_blocks * block,) + y.shape[2:])[:n_steps], outs)
    return carry, outs


_KEEP_NOISE_BYTES = 256 * 2**20


def _keep_noise(draw_block, blocked, n_blocks) -> bool:
    """Whether reverse mode may keep every block's noise (at most
    ``_KEEP_NOISE_BYTES`` in all, e.g. the exact path's few variates a chain and
    generation) instead of drawing it again in the backward pass."""
    one = jax.eval_shape(draw_block, jax.tree.map(lambda x: x[0], blocked))
    size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(one))
    return size * n_blocks <= _KEEP_NOISE_BYTES


def _remat_scan(step, carry, xs, block):
    """``lax.scan(step, carry, xs)`` as a scan over blocks of ``block`` generations,
    each rematerialised (``jax.checkpoint``): reverse mode keeps one carry a block
    and one block's residuals. Padded generations (``valid`` False) leave the carry
    untouched and are dropped from the outputs."""
    ts, ms = xs[:2]
    n_steps = ts.shape[0]
    valid = xs[2] if len(xs) > 2 else jnp.ones((n_steps,), bool)
    n_blocks = -(-n_steps // block)
    pad = n_blocks * block - n_steps
    if pad:
        ts, ms = (jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]) for x in (ts, ms))
        valid = jnp.concatenate([valid, jnp.zeros((pad,), bool)])
    blocked = jax.tree.map(lambda x: x.reshape((n_blocks, block) + x.shape[1:]),
                           (ts, ms, valid))
    run = jax.checkpoint(lambda c, xb: lax.scan(step, c, xb), prevent_cse=False)
    carry, outs = lax.scan(run, carry, blocked)
    return carry, jax.tree.map(
        lambda y: y.reshape((n_blocks * block,) + y.shape[2:])[:n_steps], outs)


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

    out = _on_mesh(body, mesh, 1, 6)(chain_ids, key, params0, loop, sched, human)
    return _score_metrics(out) if cfg.score else out


def _score_metrics(out):
    """The score-function (REINFORCE) estimator as a term of every metric: with ``L``
    a chain's summed log-probability of its synthetic draws up to generation t
    (``score``), metric ``v`` becomes ``v + sg(v - b)(L - sg(L))`` (``sg`` =
    ``stop_gradient``; the "magic box" of Foerster et al., DiCE, 2018). Its value is
    ``v`` exactly; the derivative of any chain mean of it is the pathwise derivative
    plus ``E[(v - b) dL]``, unbiased because the baseline ``b`` is the mean of the
    other chains' ``v`` at the same generation (leave-one-out: independent of the
    chain's own draws), which removes most of the estimator's variance."""
    score = out.pop("score")
    sg = lax.stop_gradient

    def term(v):
        n = v.shape[0]
        vs = sg(v)
        base = (jnp.sum(vs, axis=0, keepdims=True) - vs) / max(n - 1, 1)
        return v + (vs - base) * (score - sg(score)).astype(v.dtype)

    return dict(out, metrics={k: term(v) for k, v in out["metrics"].items()})


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


