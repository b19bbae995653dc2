"""Every regime against replace, at the same size, on both Gaussian paths.

1,024 chains x 50 generations x M = 100, a human pool of 1,000 rows (the issue's
size), 1-D Gaussian: the samples path (rows drawn and refitted) and the exact path
(sufficient statistics). The reference of each row is ``replace`` on the same path
in the same process, so the ratio is the regime's cost over replace's; the goal is
at most 1.5x. ``mix(0.1, ...)`` holds room for 12 human rows (round(0.1 M) = 10
rounded up to a multiple of 4, not min(rows, M) = 100) and draws them as indices (a
partial Fisher–Yates shuffle in straight-line code, each step from its own
counter); ``"fixed"`` pools the statistics of its subset once. Accumulate pools
statistics on both paths; accumulate-subsample keeps its rows and draws M distinct
indices into them by rejection (``jaxcollapse.random.distinct_indices``);
``weighted_fresh`` fits fresh draws from p_0 beside the synthetic ones.

The ``floor:`` rows time, in the same process, work a regime cannot avoid, as
replace plus that work over replace (no goal: they say how low the row above
them can go): the 10 distinct human indices a generation of ``mix(0.1, fresh)``
draws (exact path: replace's whole step is one normal and one chi-square) and the
second statistics draw of ``weighted_fresh`` (exact path), each vectorised over all
chains and generations at once. (Accumulate-subsample's floor, drawing its rows,
appending them and gathering M of them without any selection, is about 2x replace:
docs/regimes.md.)

Run: ``PYTHONPATH=. python benchmarks/regimes.py [--quick]`` (quick: 256 chains).
"""

from __future__ import annotations

import itertools

import _common as bc
import jax
import jax.numpy as jnp

import jaxcollapse as jc
from jaxcollapse import random as jcr


def run(quick: bool) -> list[dict]:
    C, G, M = (256, 50, 100) if quick else (1024, 50, 100)
    repeats = 15  # medians of cheap (1-2 ms) calls need more than 5 on a busy machine
    human = jc.Gaussian(dim=1).sample(jax.random.key(99), jc.Gaussian(dim=1).params(), 1000)
    regimes = {"replace": jc.replace(), "accumulate": jc.accumulate(),
               "accumulate-subsample": jc.accumulate_subsample(),
               "mix(0.1, fixed)": jc.mix(0.1, "fixed"), "mix(0.1, fresh)": jc.mix(0.1, "fresh"),
               "weighted_fresh(0.6, 100)": jc.weighted_fresh(0.6, 100)}
    rows, refs = [], {}
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
        refs[method] = ref
    rows += _floor_rows(C, G, M, refs, repeats)
    return rows


def _floor_rows(C, G, M, refs, repeats):
    """The ``floor:`` rows (module docstring): each times its unavoidable work for
    all chains and generations, vectorised, and reports (replace + it) / replace."""
    keys = jax.random.split(jax.random.key(7), C * G)
    fam = jc.Gaussian(dim=1, method="exact")
    p0 = fam.params()
    human = jnp.arange(1000.0)

    @jax.jit
    def mix_indices(keys):
        return jax.vmap(lambda k: jnp.take(
            human, jcr.subset_indices(k, 1000, 12, n_used=10)).sum())(keys)

    @jax.jit
    def second_draw(keys):
        return jax.vmap(lambda k: fam.sample_stats(k, p0, jnp.int32(100)).scatter)(keys)

    cases = (("mix(0.1, fresh)'s 10 distinct indices", "exact", lambda: mix_indices(keys)),
             ("weighted_fresh's second statistics draw", "exact", lambda: second_draw(keys)))
    rows = []
    for name, method, fn in cases:
        t = bc.time_jax(fn, repeats)
        ref = refs[method]
        r = bc.row(
            f"floor: {name}, {method} path", f"{C:,} chains × {G} gens × M={M}", t,
            reference=f"replace, {method} path", ref=ref,
            ratio=(ref.steady_s + t.steady_s) / ref.steady_s, lower_is_better=True,
            note="ratio = (replace + this work) / replace: the lowest the regime's row "
                 "can reach")
        r["cpu_ratio"] = (ref.cpu_s + t.cpu_s) / ref.cpu_s
        rows.append(r)
    return rows


if __name__ == "__main__":
    raise SystemExit(bc.script_main("regimes", run, __doc__))
