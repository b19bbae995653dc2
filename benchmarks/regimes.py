"""Every regime against replace, at the same size, on both Gaussian paths.

1,024 chains x 50 generations x M = 100, a human pool of 1,000 rows (the issue's
size), 1-D Gaussian: the samples path (rows drawn and refitted) and the exact path
(sufficient statistics). The reference of each row is ``replace`` on the same path
in the same process, so the ratio is the regime's cost over replace's; the goal is
at most 1.5x. ``mix(0.1, ...)`` holds room for 12 human rows (round(0.1 M) = 10
rounded up to a multiple of 4, not min(rows, M) = 100) and draws them as indices (a
partial Fisher–Yates shuffle in straight-line code, each step from its own
counter); ``"fixed"`` pools the statistics of its subset once. Accumulate pools
statistics on the exact path and refits a buffer of rows on the samples path;
accumulate-subsample draws a uniform score per pooled row and keeps the M
smallest (a top-M selection over n M rows each generation: its floor);
``weighted_fresh`` fits fresh draws from p_0 beside the synthetic ones.

Run: ``PYTHONPATH=. python benchmarks/regimes.py [--quick]`` (quick: 256 chains).
"""

from __future__ import annotations

import itertools

import _common as bc
import jax

import jaxcollapse as jc


def run(quick: bool) -> list[dict]:
    C, G, M = (256, 50, 100) if quick else (1024, 50, 100)
    repeats = 5
    human = jc.Gaussian(dim=1).sample(jax.random.key(99), jc.Gaussian(dim=1).params(), 1000)
    regimes = {"replace": jc.replace(), "accumulate": jc.accumulate(),
               "accumulate-subsample": jc.accumulate_subsample(),
               "mix(0.1, fixed)": jc.mix(0.1, "fixed"), "mix(0.1, fresh)": jc.mix(0.1, "fresh"),
               "weighted_fresh(0.6, 100)": jc.weighted_fresh(0.6, 100)}
    rows = []
    for method in ("samples", "exact"):
        fam = jc.Gaussian(dim=1, method=method)
        p0 = fam.params()
        times = {}
        for name, regime in regimes.items():
            if method == "exact" and not regime.stats_path:
                continue
            seeds = itertools.count()

            def call(regime=regime, fam=fam, p0=p0, seeds=seeds):
                return jc.simulate(jax.random.key(next(seeds)), fam, p0, n_generations=G,
                                   n_samples=M, n_chains=C, regime=regime, metrics={},
                                   human_data=human if regime.uses_human else None
                                   ).params.cov[:, -1, 0, 0]

            with bc.PeakMemory() as m:
                times[name] = (bc.time_jax(call, repeats), m.mib)
        ref = times["replace"][0]
        for name, (t, mib) in times.items():
            if name == "replace":
                continue
            ratio = t.steady_s / ref.steady_s
            rows.append(bc.row(
                f"{name}, {method} path", f"{C:,} chains × {G} gens × M={M}", t,
                reference=f"replace, {method} path", ref=ref, ratio=ratio,
                lower_is_better=True,
                goal="≤ 1.5× replace", goal_value=1.5,
                met=ratio <= 1.5, peak_rss_mib=mib,
                note="ratio = regime seconds / replace seconds (lower is better)"))
    return rows


if __name__ == "__main__":
    raise SystemExit(bc.script_main("regimes", run, __doc__))
