"""``jaxcollapse run decompose``: the three sources of collapse error, one at a time."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from jaxcollapse import decomposition as dc
from jaxcollapse.experiments._common import print_table, report_generations
from jaxcollapse.io import save_json, save_npz
from jaxcollapse.theory import gaussian as tg

DESCRIPTION = "Statistical / expressivity / approximation error, isolated (THEORY.md §7)."
EXAMPLES = """examples:
  jaxcollapse run decompose                       # M=100, N_pop=20,000, 256 chains x 100
  jaxcollapse run decompose --samples 1000 --population 100000
  jaxcollapse run decompose --sgd-steps 20 --learning-rate 0.2
"""
DEFAULTS = dict(chains=256, generations=100, samples=100, regimes=["replace"])


def add_arguments(p) -> None:
    p.add_argument("--population", type=int, default=20_000,
                   help="population-sized training set N_pop (default: %(default)s)")
    p.add_argument("--sgd-steps", type=int, default=50,
                   help="gradient steps of the imperfect fitter (default: %(default)s)")
    p.add_argument("--learning-rate", type=float, default=0.5,
                   help="its step size (default: %(default)s)")
    p.add_argument("--separation", type=float, default=2.0,
                   help="mixture truth 0.5 N(-s, 1) + 0.5 N(s, 1) (default: %(default)s)")


def run(args) -> int:
    G = args.generations
    if args.chains < 1:
        raise ValueError(f"--chains must be >= 1; got {args.chains}")
    if args.quick:
        G, args.chains, args.population = min(G, 20), min(args.chains, 64), \
            min(args.population, 5000)
    s = args.separation
    mix = dc.Mixture([0.5, 0.5], [-s, s], [1.0, 1.0])
    t0 = time.perf_counter()
    res = dc.decompose(jax.random.key(args.seed), n_generations=G, n_samples=args.samples,
                       n_population=args.population, n_chains=args.chains, mixture=mix,
                       sgd_steps=args.sgd_steps, learning_rate=args.learning_rate)
    dist = {k: np.asarray(jax.block_until_ready(v)) for k, v in res.distance.items()}
    seconds = time.perf_counter() - t0
    theory = np.asarray(tg.w2sq_mean(np.arange(G + 1), args.samples, res.truth_var))
    best = float(dc.gaussian_l2sq(mix, res.truth_mean, res.truth_var))
    gens = report_generations(G)
    rows = []
    for g in gens:
        row = dict(generation=g, theory_statistical=float(theory[g]),
                   theory_expressivity=0.0 if g == 0 else best)
        for arm, v in dist.items():
            row[f"{arm}_mean"] = float(v[:, g].mean())
            row[f"{arm}_se"] = float(v[:, g].std() / np.sqrt(v.shape[0]))
        rows.append(row)
    out = Path(args.out)
    config = dict(experiment="decompose", seed=args.seed, chains=args.chains, generations=G,
                  samples=args.samples, population=args.population, sgd_steps=args.sgd_steps,
                  learning_rate=args.learning_rate, separation=s, metric=res.metric,
                  x64=bool(jax.config.jax_enable_x64))
    save_npz(out / "arrays.npz", {f"distance_{k}": v.astype(np.float32)
                                  for k, v in dist.items()})
    save_json(out / "summary.json", dict(config=config, seconds=seconds, table=rows))
    head = (f"{'gen':>5} | {'statistical W2^2':>16} {'theory':>9} | {'expressivity L2^2':>17} "
            f"{'theory':>9} | {'approx. W2^2':>12} | {'all L2^2':>9}")
    print_table(f"Error decomposition: mixture 0.5 N(-{s}, 1) + 0.5 N({s}, 1), "
                f"M={args.samples}, N_pop={args.population}, {args.chains} chains x {G} "
                f"generations, {seconds:.2f}s", head, (
                    f"{r['generation']:>5} | {r['statistical_mean']:16.5g} "
                    f"{r['theory_statistical']:9.5g} | {r['expressivity_mean']:17.5g} "
                    f"{r['theory_expressivity']:9.5g} | {r['approximation_mean']:12.5g} | "
                    f"{r['all_mean']:9.5g}" for r in rows), out)
    return 0
