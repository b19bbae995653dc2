"""``jaxcollapse run kde``: the KDE recursion for many chains, beside its theory.

Generation 0 is a data set of M points from a bimodal mixture; each generation
draws M points from the Gaussian KDE of the previous data set and refits it. The
variance of the data follows THEORY.md section 6 exactly (diffusion to
``(M - 1) h^2`` with a fixed bandwidth, growth by ``(M - 1)/M + factor^2`` per
generation under Scott's or Silverman's rule), while the RKHS distance to
generation 0 shows the modes washing out.

References:
    Shumailov et al., Nature 631 (2024); THEORY.md section 6.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

import jaxcollapse as jc
from jaxcollapse._validate import check_instance
from jaxcollapse.experiments._common import print_table, report_generations
from jaxcollapse.experiments._prdc import (
    PRDC_K,
    prdc_columns,
    prdc_head,
    prdc_text,
)
from jaxcollapse.experiments._steps import add_step_arguments, run_step
from jaxcollapse.io import save_json, save_npz
from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import kde as tk

DESCRIPTION = "Recursive kernel density estimation (THEORY.md section 6)."
EXAMPLES = """examples:
  jaxcollapse run kde                                  # 1,024 chains x 100 generations, M=100
  jaxcollapse run kde --bandwidth 0.2                  # fixed h: diffusion to (M-1) h^2
  jaxcollapse run kde --bandwidth silverman --regime mix --alpha 0.1
  jaxcollapse run kde --bandwidth cv --chains 64 --generations 30
  jaxcollapse run kde --bandwidth 0.3 --sampling-bias 0.5  # kernel drawn with 0.5 h^2
"""
DEFAULTS = dict(chains=1024, generations=100, samples=100)


class KDEExperiment(NamedTuple):
    """Output of :func:`kde_experiment`: the simulation ``result`` (metrics
    ``data_var``, ``bandwidth_ratio``, ``rkhs_to_0``, ``rkhs_successive``), the
    generation-0 ``params0`` and the ``theory`` of ``E[s_n^2]/s_0^2`` per generation
    (``None`` where no closed form applies)."""

    result: Any
    params0: Any
    theory: np.ndarray | None


def bimodal_data(key: jax.Array, n: int, dim: int = 1, separation: float = 4.0):
    """``n`` points from ``0.5 N(-s/2 e_1, I) + 0.5 N(s/2 e_1, I)``, shape ``(n, d)``.

    Example:
        >>> import jax
        >>> bimodal_data(jax.random.key(0), 10, 2).shape
        (10, 2)

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md section 6.
    """
    fam = jc.GMM(2, dim)
    means = np.zeros((2, dim))
    means[:, 0] = [-separation / 2, separation / 2]
    p = fam.params([0.5, 0.5], means, np.stack([np.eye(dim)] * 2))
    return fam.sample(key, p, n)


def kde_experiment(key: jax.Array, family: jc.KDE, data0: jax.Array, *, n_chains: int,
                   n_generations: int, regime: Any = "replace",
                   chunk_size: int | None = None, progress: bool = False,
                   prdc_points: int = 0, step: Any = None) -> KDEExperiment:
    """Runs the KDE recursion from the data set ``data0`` (M points).

    With ``regime`` mix, ``data0`` is also the human data; ``simulate`` pads the
    stored data sets with zero-weight rows to the training-set size of the regime. With
    ``prdc_points > 0`` the metric ``prdc`` (``(chain, generation, 4)``: precision,
    recall, density, coverage, k = 5) compares that many draws of each generation's
    KDE with as many of generation 0's (:func:`jaxcollapse.metrics.prdc_metric`).
    ``step`` (e.g. ``jaxcollapse.steps.sampling_bias(lam)``) goes to ``simulate``; the
    theory then has the bias (:mod:`jaxcollapse.theory.bias`).

    Example:
        >>> import jax
        >>> fam = jc.KDE(dim=1, bandwidth=0.3)
        >>> x0 = bimodal_data(jax.random.key(0), 20)
        >>> out = kde_experiment(jax.random.key(1), fam, x0, n_chains=4, n_generations=5)
        >>> out.result.metrics["data_var"].shape, out.theory.shape
        ((4, 6), (6,))

    References:
        THEORY.md section 6.
    """
    x0 = check_instance(family, "family").check_data(data0, "data0")
    m = x0.shape[0]
    reg = jc.regimes.get_regime(regime)
    p0 = family.params(x0)
    metrics = None
    if prdc_points:
        metrics = dict(family.default_metrics(),
                       prdc=jc.metrics.prdc_metric(family, prdc_points, PRDC_K))
    res = jc.simulate(key, family, p0, n_generations=n_generations, n_samples=m,
                      n_chains=n_chains, regime=reg,
                      human_data=x0 if reg.name == "mix" else None, save_params=False,
                      chunk_size=chunk_size, progress=progress, metrics=metrics, step=step)
    theory = None
    lam = None
    if step is not None:
        lam = float(step.lam) if getattr(step, "name", "") == "sampling_bias" else None
    if reg.name == "replace" and (step is None or lam is not None):
        gens = np.arange(n_generations + 1)
        s0 = float(np.sum(np.var(np.asarray(x0), axis=0)))
        bw = family.bandwidth
        if isinstance(bw, float) and lam is not None:
            theory = tb.kde_var_fixed(gens, m, bw, s0 / family.dim, lam) * family.dim / s0
        elif isinstance(bw, float):
            theory = tk.expected_var_fixed(gens, m, bw, s0 / family.dim) * family.dim / s0
        elif bw in ("scott", "silverman") and lam is not None:
            theory = tb.kde_var_rule(gens, m, 1.0, lam, family.dim, bw)
        elif bw in ("scott", "silverman"):  # the trace grows by g also when diagonal
            theory = tk.expected_var_rule(gens, m, 1.0, family.dim, bw)
    return KDEExperiment(res, p0, theory)


def _bandwidth(text: str):
    if text in ("scott", "silverman", "cv"):
        return text
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"--bandwidth must be scott, silverman, cv or a positive number; "
                         f"got {text!r}") from None


def add_arguments(p) -> None:
    p.add_argument("--bandwidth", default="scott",
                   help="scott, silverman, cv or a fixed h (default: %(default)s)")
    p.add_argument("--dim", type=int, default=1, help="dimension d (default: %(default)s)")
    p.add_argument("--separation", type=float, default=4.0,
                   help="distance between the two modes of generation 0 (default: "
                        "%(default)s)")
    add_step_arguments(p, "the kernel (bandwidth) matrix")


def run(args) -> int:
    G, M = args.generations, args.samples
    step = run_step(args)
    if args.quick:
        G, args.chains = min(G, 30), min(args.chains, 256)
    fam = jc.KDE(dim=args.dim, bandwidth=_bandwidth(args.bandwidth))
    key = jax.random.key(args.seed)
    k_run, k_data = jax.random.split(key)
    x0 = bimodal_data(k_data, M, args.dim, args.separation)
    regime = args.regime
    if regime == "mix":
        if len(args.alpha) != 1:
            raise ValueError(f"--alpha takes one value for 'run kde'; got {args.alpha}")
        regime = jc.mix(args.alpha[0])
    out = Path(args.out)
    config = dict(experiment="kde", seed=args.seed, chains=args.chains, generations=G,
                  samples=M, regime=args.regime,
                  alpha=args.alpha[0] if args.regime == "mix" else None,
                  bandwidth=args.bandwidth, dim=args.dim, separation=args.separation,
                  prdc=args.prdc, sampling_bias=args.sampling_bias,
                  x64=bool(jax.config.jax_enable_x64), backend=jax.default_backend())
    t0 = time.perf_counter()
    exp = kde_experiment(k_run, fam, x0, n_chains=args.chains, n_generations=G, regime=regime,
                         progress=not args.no_progress, prdc_points=args.prdc, step=step)
    seconds = time.perf_counter() - t0
    res = exp.result
    arrays = {f"metric_{k}": np.asarray(v) for k, v in res.metrics.items()}
    arrays["degenerate"] = np.asarray(res.degenerate)
    arrays["data0"] = np.asarray(x0)
    save_npz(out / "arrays.npz", arrays)
    gens = report_generations(G)
    rows = []
    for g in gens:
        v = np.asarray(res.metrics["data_var"][:, g])
        row = dict(generation=g, var_mean=float(v.mean()),
                   var_se=float(v.std() / np.sqrt(len(v))),
                   theory_var=None if exp.theory is None else float(exp.theory[g]),
                   rkhs_to_0=float(np.mean(np.asarray(res.metrics["rkhs_to_0"][:, g]))),
                   rkhs_successive=float(np.mean(np.asarray(
                       res.metrics["rkhs_successive"][:, g]))),
                   degenerate=float(np.asarray(res.degenerate[:, g]).mean()))
        row.update(prdc_columns(res.metrics, g))
        rows.append(row)
    save_json(out / "summary.json", dict(config=config, seconds=seconds, table=rows,
                                         files=dict(arrays="arrays.npz")))
    head = (f"{'gen':>6} | {'s^2/s0^2':>10} {'+-se':>9} {'theory':>10} | {'RKHS to 0':>10} "
            f"{'RKHS succ':>10} | {'degen':>6}" + prdc_head(args.prdc))

    def line(r):
        th = "         -" if r["theory_var"] is None else f"{r['theory_var']:10.4g}"
        return (f"{r['generation']:>6} | {r['var_mean']:10.4g} {r['var_se']:9.2g} {th} | "
                f"{r['rkhs_to_0']:10.4g} {r['rkhs_successive']:10.4g} | "
                f"{r['degenerate']:6.3f}" + prdc_text(r))

    bias = "" if step is None else f", sampling bias {args.sampling_bias:g}"
    print_table(f"KDE recursion: d={args.dim}, M={M}, bandwidth={args.bandwidth}{bias}, "
                f"{args.chains} chains x {G} generations, regime={args.regime}, "
                f"{seconds:.2f}s", head, map(line, rows), out)
    return 0
