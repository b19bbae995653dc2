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
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import regimes as rg
from jaxcollapse import store as st
from jaxcollapse._mesh import mesh_size
from jaxcollapse._progress import Progress
from jaxcollapse._validate import is_traced
from jaxcollapse.families.base import FastRunner
from jaxcollapse.simulation._chain import SimulationResult, _chain_init
from jaxcollapse.simulation._run import (
    _check_chain_block,
    _chunk_jit,
    _init_jit,
    _pad_chains,
    _resolve_mesh,
    _run_grid_jit,
    _run_jit,
)
from jaxcollapse.simulation._setup import (
    _alpha_of,
    _assemble,
    _check_int,
    _check_memory,
    _fingerprint_cfg,
    _prepare,
)

__all__ = ["SimulationResult", "simulate", "simulate_grid"]

PyTree = Any


# ------------------------------------------------------------------------- public API


def simulate(key: jax.Array, family: Any, params0: PyTree, *, n_generations: int,
             n_samples: int | Sequence[int] | np.ndarray, n_chains: int,
             regime: Any = "replace", human_data: PyTree | None = None,
             step: Any = None, truth: tuple[Any, PyTree] | None = None,
             metrics: Mapping[str, Callable] | Sequence[str] | None = None,
             save_params: bool | None = None, chunk_size: int | None = None,
             progress: bool = False,
             on_chunk: Callable[[int, int, SimulationResult], None] | None = None,
             devices: int | Sequence[jax.Device] | None = None,
             mesh: jax.sharding.Mesh | None = None,
             checkpoint_dir: str | os.PathLike | None = None, keep: bool = True,
             chain_block: tuple[int, int] | None = None, store_format: str | None = None
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
        truth: ``(truth_family, truth_params)``: generation 1 trains on draws from
            this distribution instead of from ``params0`` (which stays generation 0
            of the result), e.g. a ``GMM`` mixture for a Gaussian fit, whose family
            cannot hold it (functional expressivity error). Its draws must be rows of
            the family's form; ``n_max`` rows are drawn once a chain, before the scan
            (on the statistics path, their sufficient statistics are kept). Loop steps act
            from generation 2 on; the regime is not one that draws fresh data from
            ``params0`` (weighted fresh). ``truth_params`` are traced (a new truth
            reuses the compiled program). Metrics still compare with ``params0``:
            measure against the truth from the saved parameters (see
            docs/architecture.md). ``None`` (default): generation 1 draws from
            ``params0``.
        metrics: dict name -> ``fn(params, params0)``, a list of the family's metric
            names, or ``None`` for ``family.default_metrics()``.
        save_params: keep every generation's parameters (set ``False`` for families
            whose parameters are large, e.g. KDE data sets). ``None`` (default): keep
            them, except where a family's fast runner serves the run, which keeps
            none (a :class:`~jaxcollapse.Categorical` under replace or accumulate with
            a constant sample size, the default metrics and no chunking, sharding or
            checkpoints runs the Wright–Fisher live-support runner, equal in law to
            the generic path and O(live support) a generation; a fixed-design
            :class:`~jaxcollapse.LinearRegression` on the exact path with
            ``n_samples = n_design`` runs the O(d) fixed-design runner; a fast runner
            takes no
            ``chunk_size``, ``on_chunk``, ``checkpoint_dir``, ``chain_block`` or ``mesh``,
            and asking for one is an error, so that a key gives one result); pass
            ``True`` or ``False`` for the generic path.
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
        store_format: how ``checkpoint_dir`` is written: ``"npz"`` (one ``.npz`` a
            chunk) or ``"zarr"`` (a zarr v3 group, one array per metric and parameter
            leaf chunked by generations and chains, that ``xarray.open_zarr`` reads
            lazily while the run goes; needs the ``zarr`` extra; see
            :mod:`jaxcollapse._store_zarr`). ``None`` (default): the format of the
            store already in ``checkpoint_dir``, else ``"npz"``. Same guarantees and
            the same numbers either way.

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
    if on_chunk is not None and not callable(on_chunk):
        raise TypeError(f"on_chunk must be a callable on_chunk(start, stop, chunk) or None; "
                        f"got {on_chunk!r}"[:200])
    if not isinstance(progress, bool | np.bool_):
        raise TypeError(f"progress must be True or False; got {progress!r}"[:200])
    cfg, key, n_all, params0, loop, sched, human = _prepare(
        key, family, params0, n_generations=n_generations, n_samples=n_samples,
        n_chains=n_chains, regime=regime, human_data=human_data, metrics=metrics,
        save_params=save_params is not False, step=step, truth=truth)
    traced = is_traced((params0, loop, human))
    if traced:
        _check_traceable(chunk_size=chunk_size, on_chunk=on_chunk,
                         checkpoint_dir=checkpoint_dir, progress=progress or None,
                         keep=None if keep else False)
    if traced:  # reverse mode recomputes blocks of about sqrt(G) generations
        cfg = dataclasses.replace(cfg, remat=max(1, math.isqrt(cfg.n_generations)),
                                  score=_check_score(cfg, save_params))
    if save_params is None and not traced and _fast_applies(cfg, loop, sched):
        # the runner depends on the family, regime, steps, schedule and metrics only,
        # never on chunking or devices, so that a key gives one result
        for name, value in (("chunk_size", chunk_size), ("on_chunk", on_chunk),
                            ("checkpoint_dir", checkpoint_dir), ("chain_block", chain_block),
                            ("mesh", mesh)):
            if value is not None:
                raise ValueError(
                    f"{name} is not supported by {type(cfg.family).__name__}'s fast runner, "
                    f"which simulate takes for this run; pass save_params=True (or False) "
                    f"to run the generic path, which supports it (equal in law, other "
                    f"numbers)")
        _check_memory(cfg, params0, n_chains, fast=True)
        return _fast_run(cfg, loop, key, params0, sched, n_chains, progress)
    save_params = save_params is not False
    st.check_store_format(store_format, checkpoint_dir)
    if not isinstance(keep, bool):
        raise TypeError(f"keep must be True or False; got {keep!r}")
    if not keep and checkpoint_dir is None:
        raise ValueError("keep=False needs checkpoint_dir (the chunks are read back from "
                         "there); got checkpoint_dir=None")
    n_chains = n_all
    lo, hi = _check_chain_block(chain_block, n_chains)
    if chunk_size is None and (progress or on_chunk is not None or checkpoint_dir is not None):
        chunk_size = max(1, math.ceil(cfg.n_generations / 20))
    mesh = _resolve_mesh(devices, mesh)
    n = hi - lo
    if checkpoint_dir is None and (
            chunk_size is None or chunk_size >= cfg.n_generations and on_chunk is None):
        _check_memory(cfg, params0, n, n_devices=mesh_size(mesh))
        ids = _pad_chains(jnp.arange(lo, hi, dtype=jnp.uint32), mesh)
        out = _run_jit(cfg, mesh, key, ids, params0, loop, sched, human)
        if ids.shape[0] != n:
            out = jax.tree.map(lambda a: a[:n], out)
        return _assemble(cfg, out, sched)
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    _check_memory(cfg, params0, n, gens=chunk_size + 1, n_devices=mesh_size(mesh),
                  host_gens=cfg.n_generations + 1 if keep else 0)
    writer = None
    if checkpoint_dir is not None:
        fp = st.fingerprint(_fingerprint_cfg(cfg, loop), key, params0, _alpha_of(loop),
                            sched, human, chunk_size, (lo, hi), n_chains)
        writer = st.open_writer(checkpoint_dir, fp,
                                st._params_type(params0) if save_params else None,
                                store_format)
        if writer.complete and not keep:
            return st.StoredResult(writer.directory)
    chain_ids = jnp.arange(lo, hi, dtype=jnp.uint32)
    return _simulate_chunked(cfg, mesh, key, chain_ids, n, params0, loop, sched, human,
                             chunk_size, progress, on_chunk, writer, keep)


def _check_traceable(**options) -> None:
    """Refuses, under ``jax.grad``/``jit``/``vmap`` of a traced loop parameter or
    ``params0``, the options that work on the host between compiled chunks."""
    for name, value in options.items():
        if value is not None:
            raise ValueError(
                f"{name}={value!r} runs on the host between compiled chunks, which a "
                f"traced loop parameter or params0 (simulate under jax.grad, jit or vmap) "
                f"cannot: leave {name} out of a differentiated simulate (one compiled "
                f"call; reverse mode keeps memory bounded by recomputing blocks of "
                f"generations)")


def _check_score(cfg, save_params) -> bool:
    """Whether a traced run takes the score-function estimator: a family whose
    draws are discrete (``draws_log_prob``), whose metrics are then evaluated inside
    the scan (``save_params=False``, which such a run needs)."""
    if not hasattr(cfg.family, "draws_log_prob"):
        return False
    if save_params is not False:
        raise ValueError(
            f"a traced {type(cfg.family).__name__} run (simulate under jax.grad, jit or "
            f"vmap of a loop parameter) differentiates its discrete draws by the score "
            f"function, which needs the metrics evaluated inside the scan: pass "
            f"save_params=False; got save_params={save_params!r}")
    return True


def _fast_applies(cfg, loop, sched) -> bool:
    """Whether a family's fast runner (``fast_simulate``, families/base.py
    ``FastRunner``) serves this run: no loop steps, replace or accumulate, a constant
    sample size and the family's own metrics."""
    fam = cfg.family
    regime, steps = loop
    sched_np = np.asarray(sched)
    if not isinstance(fam, FastRunner) or steps or type(regime) not in (
            rg.Replace, rg.Accumulate) or np.any(sched_np != sched_np[0]):
        return False
    defaults = fam.default_metrics()
    if any(defaults.get(name) is not fn for name, fn in cfg.metrics):
        return False
    return fam.fast_simulate(None, None, regime=regime.name, n_generations=0,
                             n_samples=int(sched_np[0]), n_chains=0,
                             metrics=tuple(n for n, _ in cfg.metrics), check_only=True)


def _fast_run(cfg, loop, key, params0, sched, n_chains, progress):
    """The family's fast runner on this run (:func:`_fast_applies` said it serves it)."""
    regime = loop[0]
    sched_np = np.asarray(sched)
    out = cfg.family.fast_simulate(key, params0, regime=regime.name,
                            n_generations=cfg.n_generations, n_samples=int(sched_np[0]),
                            n_chains=n_chains, metrics=tuple(n for n, _ in cfg.metrics),
                            progress=progress)
    metrics, degenerate = out
    return SimulationResult(params=None, metrics=dict(metrics), degenerate=degenerate,
                            n_samples=jnp.concatenate([jnp.zeros((1,), sched.dtype), sched]))


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
    # chunk k ends at generation (k + 1)C - shift: the npz store's chunks hold kC+1..(k+1)C,
    # the zarr store's kC..(k+1)C-1 (one zarr chunk each; its first is one step short),
    # except a one-chunk zarr store's (0..G, G <= C), as the npz store's (shift 0)
    shift = writer.SHIFT if writer is not None else 0
    with Progress(G, "simulate", enabled=progress, scale=n_chains) as bar:
        bar.update(min(G, done * chunk_size - shift) if done else 0)
        for k in range(done, math.ceil((G + shift) / chunk_size)):
            start = max(1, k * chunk_size + 1 - shift)
            ts = np.arange(start, start + chunk_size)
            valid = ts <= min(G, (k + 1) * chunk_size - shift)
            ms = sched_np[np.minimum(ts, G) - 1]
            carry, outs = _chunk_jit(cfg, mesh, carry, params0, jnp.asarray(ts, jnp.int32),
                                     jnp.asarray(ms, jnp.int32),
                                     loop, jnp.asarray(valid),
                                     human)
            n_valid = int(valid.sum())
            piece = jax.tree.map(lambda a, n=n_valid: np.asarray(a)[:n_chains, :n], outs)
            if k == 0:  # the first chunk reports generation 0 too
                piece = jax.tree.map(lambda *xs: np.concatenate(xs, axis=1), pieces.pop(),
                                     piece)
            last = start + n_valid - 1
            first = 0 if k == 0 else start
            if writer is not None:
                writer.write(k, st.flatten(piece),
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
                       chunk_size=None, chain_block=None, step=None, truth=None, **_):
    """The fingerprint ``simulate(..., checkpoint_dir=...)`` gives this configuration."""
    save_params = save_params is not False
    cfg, key, n_all, params0, loop, sched, human = _prepare(
        key, family, params0, n_generations=n_generations, n_samples=n_samples,
        n_chains=n_chains, regime=regime, human_data=human_data, metrics=metrics,
        save_params=save_params, step=step, truth=truth)
    lo, hi = _check_chain_block(chain_block, n_chains)
    if chunk_size is None:
        chunk_size = max(1, math.ceil(cfg.n_generations / 20))
    chunk_size = _check_int("chunk_size", chunk_size, 1)
    return st.fingerprint(_fingerprint_cfg(cfg, loop), key, params0, _alpha_of(loop), sched,
                          human, chunk_size, (lo, hi),
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
    cfg, key, n_all, params0, loop, sched, human = _prepare(
        key, family, params0, n_generations=n_generations, n_samples=m if grid_sched else
        n_samples, n_chains=n_chains, regime=regime, human_data=human_data, metrics=metrics,
        save_params=save_params, step=step, alpha_values=a if grid_alpha else None,
        grid=True)
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
    _check_memory(cfg, params0, n_all, grid=max(sizes), what="simulate_grid")
    chain_ids = jnp.arange(n_all, dtype=jnp.uint32)
    out = _run_grid_jit(cfg, key, chain_ids, params0, loop, sched, human, axes, grid_sched)
    if not grid_sched:
        sched = jnp.broadcast_to(sched, (sizes.pop(),) + sched.shape)
    return _assemble(cfg, out, sched)

