"""Validation before tracing: the key, the family, the counts, the schedule, the
metrics, the regime and the loop steps, and the static configuration they make."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import regimes as rg
from jaxcollapse._memory import check_memory, format_bytes, on_accelerator
from jaxcollapse._validate import check_instance
from jaxcollapse.families.base import (
    DataSetFamily,
    uses_exact_path,
)
from jaxcollapse.simulation._chain import (
    _NOISE_BLOCK_BYTES,
    _POOL_LIMIT_BYTES,
    SimulationResult,
    _Config,
    _float_dtype,
    _pools_noise_stats,
)
from jaxcollapse.simulation._truth import TruthFirst, check_truth
from jaxcollapse.steps import _base as stp

PyTree = Any


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


def _refuse_traced(name, value):
    if isinstance(value, jax.core.Tracer):
        raise TypeError(
            f"{name} is static (a count that sets the compiled program's shapes): it "
            f"cannot be traced or differentiated (simulate under jax.grad, jit or vmap "
            f"with {name} as a traced argument); pass a Python int, and differentiate "
            f"a traced loop parameter instead (a mix alpha, a weight, a bias...)")


def _check_int(name, value, minimum):
    _refuse_traced(name, value)
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def _check_family(family):
    check_instance(family, "family")
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


def _check_schedule(family, n_samples, n_generations, name="n_samples", max_ndim=2):
    """Returns an int32 array of shape (..., n_generations) and its static maximum
    (``max_ndim``: 1 for simulate, 2 for simulate_grid's schedules)."""
    lo = _min_samples(family)
    _refuse_traced(name, n_samples)
    if isinstance(n_samples, bool):
        raise TypeError(f"{name} must be an integer or an integer array; got {n_samples!r}")
    m = np.asarray(n_samples)
    if m.dtype.kind == "f" and np.all(np.isfinite(m)) and np.all(m == np.round(m)):
        m = m.astype(np.int64)
    if m.dtype.kind not in "iu":
        raise TypeError(f"{name} must be an integer or an integer array; got {n_samples!r}")
    if m.ndim > max_ndim:
        grid = " (a grid of schedules is simulate_grid's)" if max_ndim == 1 else ""
        raise ValueError(f"{name} must be an integer or a 1-D schedule of length "
                         f"n_generations={n_generations}{grid}; got shape {m.shape}")
    if m.size == 0:
        raise ValueError(f"{name} must not be empty; got shape {m.shape}")
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


def _describe(regime, steps, values: bool = True) -> str:
    """The regime and steps as a string: with their values for the store's
    fingerprint (mix's alpha is recorded apart), or without (``values=False``) for
    the static configuration, so that a new value reuses the compiled program."""
    def leaves(obj):  # (traced values, under jax.grad or jit, are unknown here)
        if not values:
            return [f"{jnp.shape(x)}" for x in jax.tree.leaves(obj)]
        return ["traced" if isinstance(x, jax.core.Tracer) else np.asarray(x).tolist()
                for x in jax.tree.leaves(obj)]

    text = regime.name
    if isinstance(regime, rg.Mix) and regime.weighting != "count":
        text += f"(weighting={regime.weighting!r})"
    if not isinstance(regime, rg.Mix | rg.Replace | rg.Accumulate):
        text += f"{leaves(regime)}{jax.tree.structure(regime)}"
    for s in steps:
        text += f" | {s.name}{leaves(s)}{jax.tree.structure(s)}"
    return _ADDRESS.sub("", text)


_ADDRESS = __import__("re").compile(r" at 0x[0-9a-f]+")


def _prepare(*args, **kwargs):
    """Validates everything on the host and builds the static configuration. Under
    an outer ``jit``/``grad``, computations on concrete values (a concrete
    ``params0``'s checks) still run now rather than being staged into the trace."""
    with jax.ensure_compile_time_eval():
        return _prepare_now(*args, **kwargs)


def _prepare_now(key, family, params0, *, n_generations, n_samples, n_chains, regime,
                 human_data, metrics, save_params, step=None, alpha_values=None,
                 grid=False, truth=None):
    key = _check_key(key)
    _check_family(family)
    n_generations = _check_int("n_generations", n_generations, 1)
    n_chains = _check_int("n_chains", n_chains, 1)
    params0 = family.check_params(params0)
    regime = rg.get_regime(regime)
    regime.check_family(family)
    steps = stp.as_steps(step, family, params0)
    sched, n_max = _check_schedule(family, n_samples, n_generations,
                                   max_ndim=2 if grid else 1)
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
        alpha = np.asarray(1.0 if isinstance(regime.alpha, jax.core.Tracer) and
                           alpha_values is None else
                           regime.alpha if alpha_values is None else alpha_values, float)
        if alpha_values is None and not grid and np.ndim(regime.alpha) == 1 and \
                np.shape(regime.alpha) != (n_generations,):
            raise ValueError(f"alpha as a schedule must have one fraction a generation, "
                             f"shape (n_generations,) = ({n_generations},); got shape "
                             f"{np.shape(regime.alpha)}")
        need = int(np.round(alpha.max() * n_max))
        if n_rows < need:
            raise ValueError(f"human_data has {n_rows} rows but alpha={alpha.max()} with "
                             f"n_samples={n_max} needs {need}")
        human_slots = regime.human_slots(n_rows, n_max, need)
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
    if pool_rows and not exact and not _pools_noise_stats(family, regime, len(select)):
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
    cfg = _Config(family=family, regime=_describe(regime, steps, values=False),
                  source=getattr(regime, "source", "fixed"), n_generations=n_generations,
                  n_max=n_max, human_slots=human_slots, metrics=items,
                  save_params=bool(save_params), exact=exact, spec=spec,
                  n_draw=n_max * stp.n_candidates(select), train_rows=train_rows,
                  selects=tuple(any(s is x for x in select) for s in steps))
    dt = _float_dtype(params0)
    if alpha_values is not None:
        regime = dataclasses.replace(regime, alpha=jnp.asarray(alpha_values, dt))
    if truth is not None:  # generation 1 trains on the truth's draws (simulation/_truth.py)
        regime = TruthFirst(regime, *check_truth(truth, family, params0, regime,
                                                 n_max=n_max, n_chains=n_chains),
                            m1=sched[0])
    regime, steps = jax.tree.map(
        lambda x: jnp.asarray(x, dt) if jnp.issubdtype(jnp.result_type(x), jnp.floating)
        else x, (regime, steps))
    human = None
    if regime.uses_human:
        human = jax.tree.map(
            lambda x: x.astype(dt) if jnp.issubdtype(x.dtype, jnp.floating) else x, human_data)
    # the chain count, not the ids: those are made after the memory estimate
    return cfg, key, n_chains, params0, (regime, steps), sched, human


def _fingerprint_cfg(cfg, loop):
    """``cfg`` as the store's fingerprint reads it: the regime and steps with their
    values (the static configuration holds their structure only)."""
    return dataclasses.replace(cfg, regime=_describe(*loop))


def _alpha_of(loop):
    """Mix's alpha for the store's fingerprint (other regimes: 0, as before)."""
    regime = loop[0]
    return regime.alpha if isinstance(regime, rg.Mix) else np.zeros(())


def _assemble(cfg, out, sched):
    zero = jnp.zeros(sched.shape[:-1] + (1,), sched.dtype)
    return SimulationResult(params=out.get("params"), metrics=out["metrics"],
                            degenerate=out["degenerate"],
                            n_samples=jnp.concatenate([zero, sched], axis=-1))




# ------------------------------------------------------------------------ memory estimate


def _pairwise(fn) -> bool:
    """Whether a metric builds Gram matrices of the parameters' points (the KDE's RKHS
    distances; a user's metric may say so with ``fn.pairwise = True``)."""
    if getattr(fn, "pairwise", False):
        return True
    return getattr(fn, "__name__", "") in ("rkhs_to_0", "rkhs_successive")


def _nbytes(tree) -> int:
    return sum(math.prod(x.shape) * np.dtype(x.dtype).itemsize
               for x in jax.tree.leaves(tree))


def _check_memory(cfg, params0, n_chains: int, *, gens: int | None = None,
                  host_gens: int = 0, grid: int = 1, n_devices: int = 1,
                  fast: bool = False, what: str = "simulate") -> None:
    """Refuses (:class:`~jaxcollapse._memory.InsufficientMemoryError`) a simulation
    whose outputs and working set cannot fit, before anything is compiled.

    Per chain (times ``n_chains * grid``): the outputs of the generations one
    program holds (``gens``, default all: ``n_generations + 1``; each the saved
    parameters, one value per metric and the flag; twice with ``save_params``, whose
    scan output is concatenated and reshaped), the working set of a generation
    (4 copies of the drawn and training rows, 4 of the parameters, the pool), and
    three Gram matrices of the parameters' points for a pairwise metric (KDE's RKHS
    distances), once per generation evaluated at once (all of them with
    ``save_params``). ``host_gens``: generations also held in host memory (a
    chunked run with ``keep=True``). ``fast``: a family's fast runner (no
    parameters, O(live support) work).
    """
    dt = np.dtype(_float_dtype(params0))
    G = cfg.n_generations
    gens = G + 1 if gens is None else min(gens, G + 1)
    chains = n_chains * grid
    p_bytes = _nbytes(params0)
    n_metrics = len(cfg.metrics)
    save = cfg.save_params and not fast
    out_gen = (p_bytes if save else 0) + n_metrics * dt.itemsize + 1
    work = (1 if fast else 4) * p_bytes
    row_bytes = 0
    if not cfg.exact and not fast:
        leaves = jax.tree.leaves(jax.eval_shape(
            lambda: cfg.family.sample(jax.random.key(0), params0, 1)))
        row_bytes = sum(math.prod(x.shape[1:]) * x.dtype.itemsize for x in leaves)
        # (an accumulating pool is a training set: train_rows counts it)
        work += 4 * (cfg.n_draw + cfg.train_rows) * row_bytes
    points = getattr(params0, "points", None)
    gram = 0
    if points is not None and any(_pairwise(fn) for _, fn in cfg.metrics):
        rows = int(points.shape[0])
        gram = 3 * rows * rows * dt.itemsize * (gens if save else 1)
    per_chain = gens * out_gen * (2 if save else 1) + work + gram
    device = chains * per_chain + _NOISE_BLOCK_BYTES[cfg.exact]
    host = chains * host_gens * out_gen
    parts = (f"outputs {format_bytes(chains * gens * out_gen)}, working set "
             f"{format_bytes(chains * (work + gram))}"
             + (f", host copy {format_bytes(host)}" if host else ""))
    sizes = (f"{n_chains:,} chains" + (f" x {grid} grid points" if grid > 1 else "")
             + f" x {G + 1} generations")
    advice = ("use fewer chains (or run them in blocks with chain_block=), "
              + ("save_params=False (the parameters of every generation are kept), "
                 if save else "")
              + ("fewer or non-pairwise metrics (the RKHS metrics hold a Gram matrix "
                 "of the points per chain), " if gram else "")
              + "chunk_size= with checkpoint_dir= and keep=False (host memory stays "
                "flat), or shard the chains with devices=")
    if on_accelerator():
        check_memory(device / max(n_devices, 1), f"{what} ({sizes}, per device)", advice,
                     parts=parts)
        if host:
            check_memory(host, f"{what} ({sizes}, results on the host)", advice, host=True)
    else:
        check_memory(device + host, f"{what} ({sizes})", advice, parts=parts)
