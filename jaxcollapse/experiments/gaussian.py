"""``jaxcollapse run gaussian``: recursive fitting of a Gaussian, Monte Carlo beside theory."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

import jaxcollapse as jc
from jaxcollapse import distributed
from jaxcollapse.experiments._common import (
    print_table,
    remove_checkpoint,
    report_generations,
)
from jaxcollapse.experiments._steps import add_step_arguments, run_step
from jaxcollapse.io import save_json, save_npz
from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import bias_mix as tbm
from jaxcollapse.theory import gaussian as tg

DESCRIPTION = "Collapse of a recursively refitted Gaussian (THEORY.md sections 2-3)."
EXAMPLES = """examples:
  jaxcollapse run gaussian                          # 4,096 chains x 1,000 generations, M=100
  jaxcollapse run gaussian --regime mix --alpha 0.1 --out runs/mix
  jaxcollapse run gaussian --dim 3 --samples 20 --generations 200 --method samples
  jaxcollapse run gaussian --schedule power --x64   # M_i = M i^2 keeps W2 bounded
  jaxcollapse run gaussian --sampling-bias 0.9      # draws from N(mu, 0.9 Sigma): MAD
  jaxcollapse run gaussian --generations 100000 --chunk-size 1000 --out runs/long
  jaxcollapse run gaussian --generations 100000 --chunk-size 1000 --out runs/long --resume
  jaxcollapse run gaussian --out /shared/run --coordinator 10.0.0.1:29500 \
      --num-processes 2 --process-id 0          # and --process-id 1 on the other host
"""
DEFAULTS = dict(chains=4096, generations=1000, samples=100, regimes=[
    "replace", "accumulate", "accumulate-subsample", "mix"])


def add_arguments(p) -> None:
    p.add_argument("--dim", type=int, default=1, help="dimension d (default: %(default)s)")
    p.add_argument("--ddof", type=int, default=1, choices=[0, 1],
                   help="1: unbiased covariance, 0: MLE (default: %(default)s)")
    p.add_argument("--method", default="exact", choices=["exact", "samples"],
                   help="exact sufficient statistics or draw-and-fit (default: %(default)s)")
    p.add_argument("--source", default="fixed", choices=["fixed", "fresh"],
                   help="human data for --regime mix: one fixed subset or fresh draws")
    p.add_argument("--human", type=int, default=None,
                   help="size of the human data set for mix (default: 10 x samples)")
    p.add_argument("--schedule", default="constant", choices=["constant", "linear", "power"],
                   help="sample-size schedule M_i (default: %(default)s)")
    p.add_argument("--report", type=int, nargs="+", default=None,
                   help="generations to tabulate (default: about 8, log-spaced)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint under --out "
                        "(same flags); without it a leftover checkpoint is discarded")
    p.add_argument("--chunk-size", type=int, default=None, metavar="G",
                   help="generations per chunk written to --out/checkpoint as the run "
                        "goes (default: about 1/20 of the run)")
    p.add_argument("--store", choices=["npz", "zarr"], default=None,
                   help="format of --out/checkpoint: npz files, or a zarr v3 group that "
                        "xarray.open_zarr reads while the run goes (the zarr extra); "
                        "default: the format of a checkpoint being resumed, else npz")
    add_step_arguments(p, "the covariance", prdc=False)


def _bias_theory_columns(args, M, gens, lam):
    """Theory with ``--sampling-bias`` (:mod:`jaxcollapse.theory.bias`): replace regime,
    constant M; E W2^2 exact in 1-D (the d-D form is a second-order expansion, left
    out)."""
    out = {}
    if args.regime != "replace" or args.schedule != "constant":
        return out
    if args.dim == 1:
        out["w2sq_mean"] = [float(tb.w2sq_mean(g, M, lam, 1.0, args.ddof)) for g in gens]
        out["var_median"] = [1.0 if g == 0 else float(tb.variance_quantile(
            0.5, g, M, lam, 1.0, args.ddof)) for g in gens]
    out["mean_shift_mean"] = [float(tb.mean_shift_mv(g, M, lam, args.dim, args.ddof))
                              for g in gens]
    out["logdet_mean"] = [float(tb.logdet_mean(g, M, args.dim, lam, 0.0, args.ddof))
                          for g in gens]
    return out


def _mix_theory_columns(args, M, gens, human):
    """Theory under ``--regime mix`` (constant M), with or without ``--sampling-bias``:
    the exact moments of :func:`jaxcollapse.theory.bias_mix.bias_mix_moments` given
    this run's human pool (its mean and ddof-0 covariance, subsets without
    replacement): E tr(Sigma_t)/tr(Sigma_0) and E|mu_t - mu_0|^2 (E W2^2 does not close
    on these moments)."""
    if args.schedule != "constant":
        return {}
    x = np.asarray(human, np.float64).reshape(-1, args.dim)
    lam = 1.0 if args.sampling_bias is None else args.sampling_bias
    th = tbm.bias_mix_moments(max(gens), M, args.alpha[0], lam, source=args.source,
                              human_mean=x.mean(0), human_cov=np.cov(x.T, ddof=0),
                              mean0=np.zeros(args.dim), cov0=np.eye(args.dim),
                              n_pool=x.shape[0], ddof=args.ddof)
    tr = np.trace(th.cov, axis1=-2, axis2=-1) / args.dim
    return dict(var_mean=[float(tr[g]) for g in gens],
                mean_shift_mean=[float(th.mean_shift[g]) + 0.0 for g in gens])


def _theory_columns(args, sched, gens, human=None):
    """Theory where it is exact: replace regime (constant M for quantiles), and the
    moments under mix (constant M)."""
    out = {}
    if args.regime == "mix":
        return _mix_theory_columns(args, int(sched[0]), gens, human)
    if args.regime != "replace":
        return out
    if args.sampling_bias is not None:
        return _bias_theory_columns(args, int(sched[0]), gens, args.sampling_bias)
    w2 = np.asarray(tg.w2sq_mean_schedule(sched, 1.0, args.ddof))
    ms = np.asarray(tg.mean_shift_schedule(sched, 1.0, args.ddof))
    if args.dim == 1:
        out["w2sq_mean"] = [float(w2[g]) for g in gens]
    out["mean_shift_mean"] = [float(ms[g]) * args.dim for g in gens]
    if args.schedule == "constant":
        M = int(sched[0])
        out["logdet_mean"] = [float(tg.logdet_mean(g, M, args.dim, 0.0, args.ddof))
                              for g in gens]
        if args.dim == 1:
            out["var_median"] = [1.0 if g == 0 else float(tg.variance_quantile(
                0.5, g, M, 1.0, args.ddof)) for g in gens]
    return out


def _join(args) -> distributed.ProcessInfo:
    """Joins a multi-process run (flags or environment) before any JAX computation."""
    try:
        return distributed.initialize(getattr(args, "coordinator", None),
                                      getattr(args, "num_processes", None),
                                      getattr(args, "process_id", None))
    except TimeoutError as e:  # reported like a bad argument: one line, exit code 2
        raise ValueError(str(e)) from None


def run(args) -> int:
    G, M = args.generations, args.samples
    step = run_step(args, prdc=False)
    info = _join(args)
    if args.quick:
        G, args.chains = min(G, 200), min(args.chains, 1024)
    fam = jc.Gaussian(dim=args.dim, ddof=args.ddof, method=args.method)
    p0 = fam.params()
    if args.schedule == "constant":
        sched = np.full(G, M)
    else:
        sched = jc.schedule(args.schedule, G, M)
    key = jax.random.key(args.seed)
    k_run, k_human = jax.random.split(key)
    regime = args.regime
    human = None
    if regime == "mix":
        if len(args.alpha) != 1:
            raise ValueError(f"--alpha takes one value for 'run gaussian'; got {args.alpha}")
        regime = jc.mix(args.alpha[0], args.source)
        n_h = args.human if args.human is not None else 10 * int(sched.max())
        human = fam.sample(k_human, p0, n_h)
    out = Path(args.out)
    gens = report_generations(G, args.report)
    config = dict(experiment="gaussian", seed=args.seed, chains=args.chains, generations=G,
                  samples=M, schedule=args.schedule, regime=args.regime,
                  alpha=args.alpha[0] if args.regime == "mix" else None, source=args.source,
                  dim=args.dim, ddof=args.ddof, method=args.method,
                  sampling_bias=args.sampling_bias, x64=bool(jax.config.jax_enable_x64),
                  backend=jax.default_backend())

    def arrays_of(res):
        arrays = {f"metric_{k}": np.asarray(v, np.float32) for k, v in res.metrics.items()}
        arrays["degenerate"] = np.asarray(res.degenerate)
        arrays["n_samples"] = np.asarray(res.n_samples)
        if res.params is not None:
            arrays["mean"] = np.asarray(res.params.mean, np.float32)
            cov = np.asarray(res.params.cov, np.float32)
            if args.dim == 1:
                arrays["var"] = cov[..., 0, 0]
            else:
                arrays["cov"] = cov
        return arrays

    def save_progress(start, stop, chunk):
        # finished generations reach out/checkpoint as they complete (simulate writes
        # them there): an interrupted run resumes with --resume
        save_json(out / "progress.json", dict(config=config, generations_done=stop - 1,
                                              complete=False))

    ckpt = out / "checkpoint"
    resume = getattr(args, "resume", False)
    chunk_size = getattr(args, "chunk_size", None)
    t0 = time.perf_counter()
    if info.num_processes == 1:
        if not resume:
            remove_checkpoint(ckpt)  # the store's own files only
        res = jc.simulate(k_run, fam, p0, n_generations=G, n_samples=sched,
                          n_chains=args.chains, regime=regime, human_data=human, step=step,
                          progress=not args.no_progress, on_chunk=save_progress,
                          chunk_size=chunk_size, checkpoint_dir=ckpt,
                          store_format=getattr(args, "store", None))
    else:
        pid, n_proc = info.process_id, info.num_processes
        if not resume:
            remove_checkpoint(distributed.shard_dir(ckpt, pid, n_proc))
        try:
            stored = distributed.simulate_processes(
                k_run, fam, p0, out=ckpt, n_chains=args.chains, n_generations=G,
                n_samples=sched, regime=regime, human_data=human, chunk_size=chunk_size,
                step=step, progress=not args.no_progress,
                store_format=getattr(args, "store", None))
        except TimeoutError as e:  # a shard never came: one line, exit code 2
            raise ValueError(str(e)) from None
        if stored is None:
            lo, hi = distributed.chain_block(args.chains, pid, n_proc)
            print(f"process {pid} of {n_proc}: chains {lo}..{hi - 1} written; process 0 "
                  f"merges the results into {out}")
            return 0
        res = stored.load()
    jax.block_until_ready(res)
    seconds = time.perf_counter() - t0
    save_npz(out / "arrays.npz", arrays_of(res))
    remove_checkpoint(ckpt)
    save_json(out / "progress.json", dict(config=config, generations_done=G, complete=True))

    var = np.asarray(res.metrics["var_ratio"])
    w2 = np.asarray(res.metrics["w2sq"])
    ld = np.asarray(res.metrics["logdet_ratio"])
    ms = np.asarray(res.metrics["mean_shift"])
    th = _theory_columns(args, sched, gens, human)
    rows = []
    for i, g in enumerate(gens):
        v = var[:, g]
        row = dict(generation=g, M=int(res.n_samples[g]),
                   var_q05=float(np.quantile(v, 0.05)), var_median=float(np.median(v)),
                   var_q95=float(np.quantile(v, 0.95)),
                   w2sq_mean=float(w2[:, g].mean()),
                   w2sq_se=float(w2[:, g].std() / np.sqrt(w2.shape[0])),
                   var_mean=float(v.mean()), var_se=float(v.std() / np.sqrt(v.shape[0])),
                   mean_shift_mean=float(ms[:, g].mean()),
                   mean_shift_se=float(ms[:, g].std() / np.sqrt(ms.shape[0])),
                   logdet_mean=float(ld[:, g].mean()),
                   degenerate=float(np.asarray(res.degenerate[:, g]).mean()))
        for k, col in th.items():
            row[f"theory_{k}"] = col[i]
        rows.append(row)
    summary = dict(config=config, seconds=seconds, table=rows,
                   files=dict(arrays="arrays.npz", summary="summary.json"))
    save_json(out / "summary.json", summary)
    _print_table(config, rows, seconds, out)
    return 0


def _fmt(x):
    return "      -" if x is None else f"{x:9.4g}"


def _print_table(config, rows, seconds, out):
    d = config["dim"]
    what = "var" if d == 1 else "tr(S)/tr(S0)"
    title = (f"Gaussian collapse: d={d}, M={config['samples']} ({config['schedule']}), "
             f"{config['chains']} chains x {config['generations']} generations, "
             f"regime={config['regime']}"
             + (f" alpha={config['alpha']}" if config["alpha"] is not None else "")
             + f", method={config['method']}"
             + (f", sampling bias {config['sampling_bias']:g}"
                if config.get("sampling_bias") is not None else "")
             + f", {seconds:.2f}s")
    if config["regime"] == "mix" and any("theory_var_mean" in r for r in rows):
        _print_mix_table(title, what, rows, out)
        return
    head = (f"{'gen':>6} {'M':>6} | {what + ' q05':>12} {'median':>9} {'theory':>9} "
            f"{'q95':>9} | {'E W2^2':>9} {'+-se':>9} {'theory':>9} | {'E logdet':>9} "
            f"{'theory':>9} | {'degen':>6}")
    print_table(title, head, (
        f"{r['generation']:>6} {r['M']:>6} | {r['var_q05']:12.4g} {r['var_median']:9.4g} "
        f"{_fmt(r.get('theory_var_median'))} {r['var_q95']:9.4g} | "
        f"{r['w2sq_mean']:9.4g} {r['w2sq_se']:9.2g} {_fmt(r.get('theory_w2sq_mean'))} | "
        f"{r['logdet_mean']:9.4g} {_fmt(r.get('theory_logdet_mean'))} | "
        f"{r['degenerate']:6.3f}" for r in rows), out)


def _print_mix_table(title, what, rows, out):
    """Under mix: E var and E|mu_t - mu_0|^2 beside the exact moments (theory.bias_mix)."""
    head = (f"{'gen':>6} {'M':>6} | {'E ' + what:>12} {'+-se':>9} {'theory':>9} | "
            f"{'E|mu-mu0|^2':>11} {'+-se':>9} {'theory':>9} | {'E W2^2':>9} {'+-se':>9} | "
            f"{'degen':>6}")
    print_table(title, head, (
        f"{r['generation']:>6} {r['M']:>6} | {r['var_mean']:12.4g} {r['var_se']:9.2g} "
        f"{_fmt(r.get('theory_var_mean'))} | {r['mean_shift_mean']:11.4g} "
        f"{r['mean_shift_se']:9.2g} {_fmt(r.get('theory_mean_shift_mean'))} | "
        f"{r['w2sq_mean']:9.4g} {r['w2sq_se']:9.2g} | {r['degenerate']:6.3f}" for r in rows),
        out, notes=["theory: exact moments under mix given this run's human pool "
                    "(theory.bias_mix; theory.mixing without --sampling-bias); E W2^2 "
                    "has no closed form under mix"])
