"""``jaxcollapse run categorical``: Wright–Fisher drift of a Zipf law, beside theory."""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

from jaxcollapse.experiments._common import print_table, report_generations
from jaxcollapse.families import categorical as cat
from jaxcollapse.io import save_json, save_npz
from jaxcollapse.theory import discrete as td

DESCRIPTION = "Lost tails of a recursively refitted categorical law (THEORY.md section 4)."
EXAMPLES = """examples:
  jaxcollapse run categorical                        # Zipf(1.1), K=10^4, M=10^4, 1000 x 100
  jaxcollapse run categorical --categories 100000 --beta 1.5 --chains 200
  jaxcollapse run categorical --uniform --categories 50 --samples 100 --generations 500
  jaxcollapse run categorical --regime accumulate --quick
"""
DEFAULTS = dict(chains=1000, generations=100, samples=10_000,
                regimes=["replace", "accumulate"])


def add_arguments(p) -> None:
    p.add_argument("--categories", type=int, default=10_000,
                   help="number of categories K (default: %(default)s)")
    p.add_argument("--beta", type=float, default=1.1,
                   help="Zipf exponent, p_i ∝ i^-beta (default: %(default)s)")
    p.add_argument("--uniform", action="store_true", help="start from the uniform law")
    p.add_argument("--report", type=int, nargs="+", default=None,
                   help="generations to tabulate (default: about 8, log-spaced)")


def run(args) -> int:
    G, M, K = args.generations, args.samples, args.categories
    if args.chains < 1:
        raise ValueError(f"--chains must be >= 1; got {args.chains}")
    if args.quick:
        G, args.chains, M, K = min(G, 30), min(args.chains, 100), min(M, 1000), min(K, 1000)
    p0 = cat.uniform(K) if args.uniform else cat.zipf(K, args.beta)
    gens = report_generations(G, args.report)
    out = Path(args.out)
    t0 = time.perf_counter()
    res = cat.wright_fisher(jax.random.key(args.seed), p0, n_generations=G, n_samples=M,
                            n_chains=args.chains, regime=args.regime,
                            progress=not args.no_progress)
    jax.block_until_ready(res.metrics)
    seconds = time.perf_counter() - t0
    met = {k: np.asarray(v) for k, v in res.metrics.items()}
    h0 = float(met["heterozygosity"][0, 0])
    theory_h = np.asarray(td.expected_heterozygosity(h0, M, np.arange(G + 1)))
    rows = []
    for g in gens:
        row = dict(generation=g, capacity=int(res.capacity[g]))
        for k, v in met.items():
            row[f"{k}_mean"] = float(v[:, g].mean())
            row[f"{k}_se"] = float(v[:, g].std() / np.sqrt(v.shape[0]))
        if args.regime == "replace":
            row["theory_heterozygosity"] = float(theory_h[g])
        rows.append(row)
    one_step = dict(survivors=float(td.expected_survivors(p0.probs, M)),
                    lost_mass=float(td.expected_lost_mass(p0.probs, M)),
                    fixation_time=float(td.expected_fixation_time(p0.probs, M)))
    config = dict(experiment="categorical", seed=args.seed, chains=args.chains,
                  generations=G, samples=M, categories=K, regime=args.regime,
                  law="uniform" if args.uniform else f"zipf({args.beta})",
                  x64=bool(jax.config.jax_enable_x64))
    save_npz(out / "arrays.npz", {f"metric_{k}": v.astype(np.float32) for k, v in met.items()})
    save_json(out / "summary.json", dict(config=config, seconds=seconds, table=rows,
                                         theory_generation_1=one_step))
    head = (f"{'gen':>5} {'survivors':>10} {'lost mass':>10} {'entropy':>8} "
            f"{'H mean':>9} {'+-se':>8} {'theory':>9} {'KL|S':>8} {'TV':>7} {'tail rank':>9}")

    def line(r):
        th = r.get("theory_heterozygosity")
        return (f"{r['generation']:>5} {r['survivors_mean']:10.1f} {r['lost_mass_mean']:10.4f} "
                f"{r['entropy_mean']:8.3f} {r['heterozygosity_mean']:9.5f} "
                f"{r['heterozygosity_se']:8.1e} {'-' if th is None else f'{th:.5f}':>9} "
                f"{r['kl_mean']:8.4f} {r['tv_mean']:7.4f} {r['tail_rank_mean']:9.1f}")

    print_table(f"Categorical collapse: {config['law']}, K={K}, M={M}, {args.chains} chains x "
                f"{G} generations, regime={args.regime}, {seconds:.2f}s", head, map(line, rows),
                out, notes=[f"generation 1 theory: survivors {one_step['survivors']:.1f}, lost "
                            f"mass {one_step['lost_mass']:.4f}; diffusion fixation time "
                            f"{one_step['fixation_time']:.0f} generations"])
    return 0
