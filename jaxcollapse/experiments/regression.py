"""``jaxcollapse run regression``: OLS/ridge retrained on its own labels, beside theory."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxcollapse as jc
from jaxcollapse.experiments._common import print_table, report_generations
from jaxcollapse.families import regression as fr
from jaxcollapse.io import save_json, save_npz
from jaxcollapse.theory import regression as tr

DESCRIPTION = "Linear regression under replace / accumulate (THEORY.md section 5)."
EXAMPLES = """examples:
  jaxcollapse run regression                          # d=10, T=100, replace, 4096 x 50
  jaxcollapse run regression --regime accumulate
  jaxcollapse run regression --ridge 5 --dim 50 --samples 200
  jaxcollapse run regression --design fresh --generations 20
"""
DEFAULTS = dict(chains=4096, generations=50, samples=100, regimes=["replace", "accumulate"])


def add_arguments(p) -> None:
    p.add_argument("--dim", type=int, default=10, help="dimension d (default: %(default)s)")
    p.add_argument("--noise", type=float, default=1.0, help="label noise σ (default: 1)")
    p.add_argument("--ridge", type=float, default=0.0, help="ridge λ (default: 0, OLS)")
    p.add_argument("--design", default="fixed", choices=["fixed", "fresh"],
                   help="one fixed N(0, I) design of --samples rows, or fresh rows each "
                        "generation (default: %(default)s)")


def run(args) -> int:
    G, T, d = args.generations, args.samples, args.dim
    if args.chains < 1:
        raise ValueError(f"--chains must be >= 1; got {args.chains}")
    if args.quick:
        G, args.chains = min(G, 20), min(args.chains, 512)
    k_design, k_run = jax.random.split(jax.random.key(args.seed))
    w0 = jnp.ones(d) / np.sqrt(d)
    t0 = time.perf_counter()
    if args.design == "fixed":
        fam = fr.LinearRegression(dim=d, ridge=args.ridge, noise=args.noise, n_design=T)
        x = jax.random.normal(k_design, (T, d))
        p0 = fam.params(w0, x)
        risk = fr.simulate_fixed_design(k_run, fam, p0, n_generations=G, n_chains=args.chains,
                                        regime=args.regime).excess_risk
    else:
        fam = fr.LinearRegression(dim=d, ridge=args.ridge, noise=args.noise)
        res = jc.simulate(k_run, fam, fam.params(w0), n_generations=G, n_samples=T,
                          n_chains=args.chains, regime=args.regime, save_params=False,
                          metrics=["excess_risk"], progress=not args.no_progress)
        risk = res.metrics["excess_risk"]
    risk = np.asarray(jax.block_until_ready(risk))
    seconds = time.perf_counter() - t0
    n = np.arange(G + 1)
    theory = {}
    if args.ridge == 0 and T > d + 1:
        f = tr.excess_replace if args.regime == "replace" else tr.excess_accumulate
        if args.design == "fresh" and args.regime == "accumulate":
            pass  # no closed form with a fresh design under accumulate
        else:
            theory["averaged"] = np.asarray(f(n, d, T, args.noise))
    if args.design == "fixed":
        if args.ridge == 0:
            f = tr.excess_replace_fixed if args.regime == "replace" else \
                tr.excess_accumulate_fixed
            theory["this_design"] = np.asarray(f(n, x, args.noise))
        elif args.regime == "replace":
            theory["this_design"] = np.asarray(tr.excess_ridge_replace_fixed(
                n, x, w0, args.noise, args.ridge))
    gens = report_generations(G)
    rows = []
    for g in gens:
        row = dict(generation=g, excess_mean=float(risk[:, g].mean()),
                   excess_se=float(risk[:, g].std() / np.sqrt(risk.shape[0])))
        for k, v in theory.items():
            row[f"theory_{k}"] = float(v[g])
        rows.append(row)
    out = Path(args.out)
    config = dict(experiment="regression", seed=args.seed, chains=args.chains, generations=G,
                  samples=T, dim=d, noise=args.noise, ridge=args.ridge, design=args.design,
                  regime=args.regime, x64=bool(jax.config.jax_enable_x64))
    save_npz(out / "arrays.npz", {"excess_risk": risk.astype(np.float32)})
    save_json(out / "summary.json", dict(config=config, seconds=seconds, table=rows))
    head = f"{'gen':>5} {'E|w-w*|^2':>11} {'+-se':>9} {'theory(X)':>10} {'theory(E_X)':>11}"

    def line(r):
        a, b = r.get("theory_this_design"), r.get("theory_averaged")
        return (f"{r['generation']:>5} {r['excess_mean']:11.5g} {r['excess_se']:9.2g} "
                f"{'-' if a is None else f'{a:.5g}':>10} {'-' if b is None else f'{b:.5g}':>11}")

    print_table(f"Regression collapse: d={d}, T={T}, σ={args.noise}, λ={args.ridge}, "
                f"{args.design} design, regime={args.regime}, {args.chains} chains x {G} "
                f"generations, {seconds:.2f}s", head, map(line, rows), out,
                notes=[] if "averaged" in theory else
                ["no closed form for this configuration (Monte Carlo only)"])
    return 0
