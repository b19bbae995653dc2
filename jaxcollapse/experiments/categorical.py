"""``jaxcollapse run categorical``: Wright–Fisher drift of a Zipf law, beside theory.

Without loop-step flags the run takes the Wright–Fisher live-support runner
(:func:`jaxcollapse.families.categorical.wright_fisher`). With ``--temperature``,
``--top-k``, ``--top-p``, ``--verify`` or ``--curate`` it runs :func:`jaxcollapse.simulate`
with those steps (the exact count path; the steps act through the law of a kept draw)
and prints entropy, lost mass and (with ``--curate``) the expected reward beside the
deterministic M -> ∞ iteration of the composed map (:mod:`jaxcollapse.theory.decoding`,
:mod:`jaxcollapse.theory.verification`, :mod:`jaxcollapse.theory.curation`), which is
also E[p_1] exactly. With ``--verify`` it adds the share of right draws q_t = p_t[0]
and the cost in draws per kept draw, beside the M -> ∞ map and (the verifier alone,
M <= 2000) the exact finite-M law.
"""

from __future__ import annotations

import time
from pathlib import Path

import jax
import numpy as np

import jaxcollapse as jc
from jaxcollapse.experiments._common import print_table, report_generations
from jaxcollapse.experiments._steps import (
    MAX_EXACT_M,
    CategoricalSteps,
    add_categorical_arguments,
    reward_metric,
    verify_metrics,
)
from jaxcollapse.families import categorical as cat
from jaxcollapse.io import save_json, save_npz
from jaxcollapse.theory import decoding as tdec
from jaxcollapse.theory import discrete as td

DESCRIPTION = "Lost tails of a recursively refitted categorical law (THEORY.md section 4)."
EXAMPLES = """examples:
  jaxcollapse run categorical                        # Zipf(1.1), K=10^4, M=10^4, 1000 x 100
  jaxcollapse run categorical --categories 100000 --beta 1.5 --chains 200
  jaxcollapse run categorical --uniform --categories 50 --samples 100 --generations 500
  jaxcollapse run categorical --regime accumulate --quick
  jaxcollapse run categorical --temperature 0.8 --top-p 0.9 --quick
  jaxcollapse run categorical --curate 4 --reward linear:3 --eta 0.9 --quick
  jaxcollapse run categorical --verify 0.9,0.3 --samples 1000 --quick
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
    add_categorical_arguments(p)


def run(args) -> int:
    G, M, K = args.generations, args.samples, args.categories
    if args.chains < 1:
        raise ValueError(f"--chains must be >= 1; got {args.chains}")
    if K < 2:
        raise ValueError(f"--categories must be an integer >= 2; got {K}")
    if args.quick:
        G, args.chains, M, K = min(G, 30), min(args.chains, 100), min(M, 1000), min(K, 1000)
    p0 = cat.uniform(K) if args.uniform else cat.zipf(K, args.beta)
    loop = CategoricalSteps(args, K, p0.probs)
    if loop:
        return _run_steps(args, loop, p0, G, M, K)
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


def _run_steps(args, loop: CategoricalSteps, p0, G: int, M: int, K: int) -> int:
    """The run with loop steps: ``simulate`` on the exact count path, theory beside."""
    gens = report_generations(G, args.report)
    out = Path(args.out)
    fam = jc.Categorical(K)
    metrics = fam.default_metrics()
    if loop.reward is not None:
        metrics["reward"] = reward_metric(loop.reward)
    if loop.tpr is not None:
        metrics.update(verify_metrics(loop))
    t0 = time.perf_counter()
    res = jc.simulate(jax.random.key(args.seed), fam, p0, n_generations=G, n_samples=M,
                      n_chains=args.chains, regime=args.regime, step=loop.steps,
                      metrics=metrics, save_params=False, progress=not args.no_progress)
    jax.block_until_ready(res.metrics)
    seconds = time.perf_counter() - t0
    met = {k: np.asarray(v, np.float64) for k, v in res.metrics.items()}
    path = loop.theory_path(G)
    th = dict(entropy=np.asarray(tdec.entropy(path)),
              lost_mass=np.asarray(tdec.lost_mass(path, path[0])),
              survivors=np.sum(path > 0, axis=-1).astype(float))
    if loop.reward is not None:
        th["reward"] = path @ loop.reward
    if loop.tpr is not None:
        th.update(loop.verify_theory(path, M, args.regime))
    rows = []
    for g in gens:
        row = dict(generation=g)
        for k, v in met.items():
            row[f"{k}_mean"] = float(v[:, g].mean())
            row[f"{k}_se"] = float(v[:, g].std() / np.sqrt(v.shape[0]))
        for k, v in th.items():
            row[f"theory_{k}"] = float(v[g]) + 0.0  # no -0.0 in the table
        rows.append(row)
    config = dict(experiment="categorical", seed=args.seed, chains=args.chains,
                  generations=G, samples=M, categories=K, regime=args.regime,
                  law="uniform" if args.uniform else f"zipf({args.beta})",
                  runner="simulate", **loop.record(args.reward),
                  verify_exact=None if loop.tpr is None else "right_exact" in th,
                  x64=bool(jax.config.jax_enable_x64))
    arrays = {f"metric_{k}": v.astype(np.float32) for k, v in met.items()}
    arrays["theory_probs"] = path.astype(np.float32)
    if loop.reward is not None:
        arrays["reward"] = loop.reward
    save_npz(out / "arrays.npz", arrays)
    save_json(out / "summary.json", dict(
        config=config, seconds=seconds, table=rows,
        theory="deterministic iteration of the composed map p -> E[p_{t+1} | p_t] "
               "(M -> infinity; exact in expectation one generation ahead)",
        files=dict(arrays="arrays.npz", summary="summary.json")))
    has_r = loop.reward is not None
    has_v = loop.tpr is not None
    head = (f"{'gen':>5} {'survivors':>10} {'theory':>8} | {'entropy':>8} {'+-se':>8} "
            f"{'theory':>8} | {'lost mass':>9} {'+-se':>8} {'theory':>8}"
            + (f" | {'E reward':>9} {'+-se':>8} {'theory':>9}" if has_r else "")
            + (f" | {'E q right':>9} {'+-se':>8} {'M->inf':>8} {'exact M':>8} | "
               f"{'draws/kept':>10} {'+-se':>8} {'M->inf':>8} {'exact M':>8}"
               if has_v else ""))

    def opt(r, k):
        v = r.get(k)
        return f"{'-':>8}" if v is None else f"{v:8.4f}"

    def line(r):
        text = (f"{r['generation']:>5} {r['survivors_mean']:10.1f} "
                f"{r['theory_survivors']:8.0f} | {r['entropy_mean']:8.4f} "
                f"{r['entropy_se']:8.1e} {r['theory_entropy']:8.4f} | "
                f"{r['lost_mass_mean']:9.4f} {r['lost_mass_se']:8.1e} "
                f"{r['theory_lost_mass']:8.4f}")
        if has_r:
            text += (f" | {r['reward_mean']:9.4f} "
                     f"{r['reward_se']:8.1e} {r['theory_reward']:9.4f}")
        if has_v:
            text += (f" | {r['right_mean']:9.4f} {r['right_se']:8.1e} "
                     f"{r['theory_right_inf']:8.4f} {opt(r, 'theory_right_exact')} | "
                     f"{r['cost_mean']:10.4f} {r['cost_se']:8.1e} "
                     f"{r['theory_cost_inf']:8.4f} {opt(r, 'theory_cost_exact')}")
        return text

    notes = ["theory: the deterministic M -> inf iteration of the composed map "
             "(E[p_1] equals its generation 1 exactly: so does E reward at "
             "generation 1); steps apply in the order temperature, top-k, top-p, "
             "verify, curation"]
    if has_v:
        notes.append(
            "verify: q_t = p_t[0] (category 0 is right), E q_{t+1} = a q/(a q + b(1 - q)) "
            "given q_t; draws/kept = 1/(a q + b(1 - q)) sampling generation t + 1 from "
            "generation t; exact M: the binomial law of M q_t " + (
                "(the verifier alone)" if "right_exact" in th else
                f"(shown for the verifier alone, regime replace and M <= {MAX_EXACT_M})"))

    print_table(f"Categorical loop with {loop.describe()}: {config['law']}, K={K}, M={M}, "
                f"{args.chains} chains x {G} generations, regime={args.regime}, "
                f"{seconds:.2f}s", head, map(line, rows), out, notes=notes)
    return 0

