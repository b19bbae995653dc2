"""``jaxcollapse run gmm``: Shumailov et al.'s Gaussian-mixture experiment, many chains.

Generation 0 is a two-component mixture in 2-D; every generation draws M = 1,000
points from the previous fit and refits a K-component GMM by EM (k-means++ start).
The chains run at once through :func:`jaxcollapse.simulate`; per generation we report
the closed-form L2 distance and RBF MMD^2 to generation 0 and each component's
spread (relative to generation 0), and keep the fitted mixtures at the paper's
snapshot generations (0, 50, 100, 150, 200, 350, 2000).

References:
    Shumailov et al., Nature 631 (2024), the GMM experiment; THEORY.md section 6.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

import jaxcollapse as jc
from jaxcollapse._validate import check_instance
from jaxcollapse.experiments._common import print_table
from jaxcollapse.experiments._prdc import (
    PRDC_K,
    prdc_columns,
    prdc_head,
    prdc_text,
)
from jaxcollapse.experiments._steps import add_step_arguments, run_step
from jaxcollapse.io import save_json, save_npz

DESCRIPTION = "Recursive EM fits of a Gaussian mixture (Shumailov et al.'s GMM experiment)."
EXAMPLES = """examples:
  jaxcollapse run gmm                                # 64 chains x 2,000 generations, M=1,000
  jaxcollapse run gmm --quick                        # 8 chains x 100 generations, M=200
  jaxcollapse run gmm --regime mix --alpha 0.1       # keep 10% human data each generation
  jaxcollapse run gmm --components 3 --max-iter 50 --chains 256 --generations 300
  jaxcollapse run gmm --quick --sampling-bias 0.9     # components drawn with 0.9 Sigma_k
"""
DEFAULTS = dict(chains=64, generations=2000, samples=1000, regimes=["replace", "mix"])
SNAPSHOTS = (0, 50, 100, 150, 200, 350, 2000)


class GMMExperiment(NamedTuple):
    """Output of :func:`gmm_experiment`.

    Attributes:
        result: the :class:`jaxcollapse.SimulationResult` (metrics ``l2``, ``mmd``,
            ``spread_k``; ``(chain, generation)``), without parameters.
        snapshots: generation -> :class:`jaxcollapse.GMMParams` with a leading chain
            axis, at the snapshot generations that the run reached.
        params0: the generation-0 mixture.
    """

    result: Any
    snapshots: dict[int, Any]
    params0: Any


def paper_params0(family: jc.GMM, separation: float = 4.0):
    """Generation 0: equal weights, means ``+-separation/2`` on the first axis, unit
    covariances (other components, if K > 2, spread along the first axis).

    Example:
        >>> p = paper_params0(jc.GMM(2, 2))
        >>> p.means.tolist()
        [[-2.0, 0.0], [2.0, 0.0]]

    References:
        Shumailov et al., Nature 631 (2024).
    """
    k, d = family.n_components, family.dim
    centers = np.linspace(-0.5, 0.5, k) * separation * (k - 1) if k > 1 else np.zeros(1)
    means = np.zeros((k, d))
    means[:, 0] = centers
    return family.params(np.full(k, 1.0 / k), means, np.stack([np.eye(d)] * k))


def gmm_experiment(key: jax.Array, family: jc.GMM | None = None, params0: Any = None, *,
                   n_chains: int = 64, n_generations: int = 2000, n_samples: int = 1000,
                   regime: Any = "replace", human_data: Any = None,
                   snapshots: tuple[int, ...] = SNAPSHOTS, progress: bool = False,
                   on_chunk=None, prdc_points: int = 0, step: Any = None) -> GMMExperiment:
    """Runs the GMM recursion for many chains.

    Args:
        key: PRNG key.
        family: the fitted family (default ``GMM(2, 2)``: 2 components, 2-D, EM with
            tol 1e-3 and at most 100 iterations).
        params0: generation 0 (default :func:`paper_params0`).
        n_chains, n_generations, n_samples: as for :func:`jaxcollapse.simulate`.
        regime, human_data: as for :func:`jaxcollapse.simulate`.
        snapshots: generations whose fitted mixtures are kept (those beyond the run
            are dropped; the last generation is always kept).
        prdc_points: if > 0, also the metric ``prdc`` (``(chain, generation, 4)``:
            precision, recall, density, coverage with k = 5) of this many draws of
            each fit against as many of generation 0
            (:func:`jaxcollapse.metrics.prdc_metric`).
        step: a loop step for ``simulate`` (e.g. ``jaxcollapse.steps.sampling_bias``).

    Returns:
        A :class:`GMMExperiment`.

    Example:
        >>> import jax
        >>> out = gmm_experiment(jax.random.key(0), n_chains=2, n_generations=3,
        ...                      n_samples=50, snapshots=(0, 3))
        >>> out.result.metrics["l2"].shape, sorted(out.snapshots)
        ((2, 4), [0, 3])

    References:
        Shumailov et al., Nature 631 (2024).
    """
    family = jc.GMM(2, 2) if family is None else check_instance(family, "family")
    params0 = paper_params0(family) if params0 is None else params0
    snapshots = tuple(sorted({g for g in snapshots if 0 <= g <= n_generations}
                             | {n_generations}))
    metrics = None
    if prdc_points:
        metrics = dict(family.default_metrics(),
                       prdc=jc.metrics.prdc_metric(family, prdc_points, PRDC_K))
    res = jc.simulate(key, family, params0, n_generations=n_generations, n_samples=n_samples,
                      n_chains=n_chains, regime=regime, human_data=human_data,
                      save_params=True, progress=progress, on_chunk=on_chunk, metrics=metrics,
                      step=step)
    params = jax.tree.map(np.asarray, res.params)
    snaps = {g: jc.GMMParams(*(a[:, g] for a in params)) for g in snapshots}
    return GMMExperiment(res._replace(params=None), snaps, params0)


def add_arguments(p) -> None:
    p.add_argument("--components", type=int, default=2, help="K (default: %(default)s)")
    p.add_argument("--dim", type=int, default=2, help="dimension d (default: %(default)s)")
    p.add_argument("--covariance", default="full", choices=["full", "diag"],
                   help="covariance type (default: %(default)s)")
    p.add_argument("--max-iter", type=int, default=100,
                   help="EM iterations at most (default: %(default)s)")
    p.add_argument("--tol", type=float, default=1e-3,
                   help="EM tolerance on the mean log-likelihood (default: %(default)s)")
    p.add_argument("--reg-covar", type=float, default=1e-6,
                   help="added to covariance diagonals (default: %(default)s)")
    p.add_argument("--separation", type=float, default=4.0,
                   help="distance between generation-0 means (default: %(default)s)")
    p.add_argument("--snapshots", type=int, nargs="+", default=list(SNAPSHOTS),
                   help="generations whose mixtures are saved (default: the paper's)")
    add_step_arguments(p, "every component covariance")


def run(args) -> int:
    G, M = args.generations, args.samples
    step = run_step(args)
    if args.quick:
        G, M, args.chains = min(G, 100), min(M, 200), min(args.chains, 8)
    fam = jc.GMM(args.components, args.dim, args.covariance, reg_covar=args.reg_covar,
                 tol=args.tol, max_iter=args.max_iter)
    p0 = paper_params0(fam, args.separation)
    key = jax.random.key(args.seed)
    k_run, k_human = jax.random.split(key)
    regime, human = args.regime, None
    if regime == "mix":
        if len(args.alpha) != 1:
            raise ValueError(f"--alpha takes one value for 'run gmm'; got {args.alpha}")
        regime = jc.mix(args.alpha[0])
        human = fam.sample(k_human, p0, M)
    out = Path(args.out)
    config = dict(experiment="gmm", seed=args.seed, chains=args.chains, generations=G,
                  samples=M, regime=args.regime,
                  alpha=args.alpha[0] if args.regime == "mix" else None,
                  components=args.components, dim=args.dim, covariance=args.covariance,
                  max_iter=args.max_iter, tol=args.tol, reg_covar=args.reg_covar,
                  separation=args.separation, prdc=args.prdc,
                  sampling_bias=args.sampling_bias,
                  x64=bool(jax.config.jax_enable_x64),
                  backend=jax.default_backend())
    t0 = time.perf_counter()
    exp = gmm_experiment(k_run, fam, p0, n_chains=args.chains, n_generations=G, n_samples=M,
                         regime=regime, human_data=human, snapshots=tuple(args.snapshots),
                         progress=not args.no_progress, prdc_points=args.prdc, step=step)
    seconds = time.perf_counter() - t0
    res = exp.result
    arrays = {f"metric_{k}": np.asarray(v) for k, v in res.metrics.items()}
    arrays["degenerate"] = np.asarray(res.degenerate)
    for g, p in exp.snapshots.items():
        for name, a in p._asdict().items():
            arrays[f"snapshot_{g}_{name}"] = np.asarray(a)
    save_npz(out / "arrays.npz", arrays)
    rows = []
    spread_names = [k for k in res.metrics if k.startswith("spread_")]
    for g in sorted(exp.snapshots):
        l2 = np.asarray(res.metrics["l2"][:, g])
        mmd = np.asarray(res.metrics["mmd"][:, g])
        row = dict(generation=g, l2_median=float(np.median(l2)), l2_mean=float(l2.mean()),
                   mmd_mean=float(mmd.mean()),
                   degenerate=float(np.asarray(res.degenerate[:, g]).mean()))
        for k in spread_names:
            row[f"{k}_median"] = float(np.median(np.asarray(res.metrics[k][:, g])))
        row.update(prdc_columns(res.metrics, g))
        rows.append(row)
    save_json(out / "summary.json", dict(config=config, seconds=seconds, table=rows,
                                         files=dict(arrays="arrays.npz")))
    head = (f"{'gen':>6} | {'L2 median':>10} {'L2 mean':>10} | {'MMD^2 mean':>10} | "
            + " ".join(f"{k:>9}" for k in spread_names) + f" | {'degen':>6}"
            + prdc_head(args.prdc))
    bias = "" if step is None else f", sampling bias {args.sampling_bias:g}"
    print_table(f"GMM collapse: K={args.components}, d={args.dim}, M={M}{bias}, {args.chains} "
                f"chains x {G} generations, regime={args.regime}, {seconds:.2f}s", head, (
                    f"{r['generation']:>6} | {r['l2_median']:10.4g} {r['l2_mean']:10.4g} | "
                    f"{r['mmd_mean']:10.4g} | "
                    + " ".join(f"{r[k + '_median']:9.4g}" for k in spread_names)
                    + f" | {r['degenerate']:6.3f}" + prdc_text(r) for r in rows), out)
    return 0
