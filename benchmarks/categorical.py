"""Wright–Fisher recursion of a Zipf law, jaxcollapse vs numpy.

K = 10,000 categories, Zipf(1.1), M = 10,000 draws a generation, 1,000 chains x 100
generations (replace). Reference: numpy ``Generator.multinomial`` once per chain and
generation on the full K (what a user would write), timed on 50 chains and scaled
linearly to all chains (its chains are independent calls of equal cost).
jaxcollapse: ``categorical.wright_fisher`` (exact conditional binomials down a binary
tree over the live support, which shrinks as categories are lost; one compiled tree
program for every level and width) with its per-generation metrics; ``compile s`` is
the first call's extra time (every program it compiles). Goal: >= 3x. Two more rows
set it against the cost of merely drawing M uniforms per chain and generation, with
``jax.random.uniform`` and with the cheaper counter-mode ``jaxcollapse.random.uniform``
(the floor of any method that materialises the samples). ``max err`` is the difference
of the mean final heterozygosity from numpy's (a Monte Carlo difference).

Run: ``PYTHONPATH=. python benchmarks/categorical.py [--quick]`` (quick: 100 chains x
20 generations).
"""

from __future__ import annotations

import itertools
import os

import _common as bc
import jax
import numpy as np

from jaxcollapse import random as jr
from jaxcollapse.families import categorical as cat


def numpy_reference(rng, p0, chains, gens, M):
    het = []
    for _ in range(chains):
        p = p0
        for _ in range(gens):
            p = rng.multinomial(M, p) / M
        het.append(1.0 - np.sum(p**2))
    return np.array(het)


def run(quick: bool) -> list[dict]:
    K, beta, M = 10_000, 1.1, 10_000
    chains, gens = (100, 20) if quick else (1000, 100)
    ref_chains = 50
    size = f"K={K:,} Zipf({beta}), M={M:,}, {chains:,} chains × {gens} gens"
    p0 = cat.zipf(K, beta)
    seeds = itertools.count()

    def ours_call():
        return cat.wright_fisher(jax.random.key(next(seeds)), p0, n_generations=gens,
                                 n_samples=M, n_chains=chains).metrics["heterozygosity"]

    load = os.getloadavg()[0]
    with bc.PeakMemory() as m:
        ours = bc.time_jax(ours_call)
    rng = np.random.default_rng(0)
    p0_np = np.asarray(p0.probs, np.float64)
    ref = bc.time_host(lambda: numpy_reference(rng, p0_np, ref_chains, gens, M))
    per_call_us = 1e6 * ref.steady_s / (ref_chains * gens)
    ref = bc.scaled(ref, chains / ref_chains)

    floors = {}
    for name, fn in (("jax.random.uniform", jax.random.uniform),
                     ("jaxcollapse.random.uniform", jr.uniform)):
        uni = jax.jit(lambda k, fn=fn: fn(k, (chains, M)))
        t = bc.time_jax(lambda uni=uni: uni(jax.random.key(next(seeds))), repeats=5)
        floors[name] = bc.scaled(t, gens)._replace(compile_s=None)
    het = float(np.mean(np.asarray(ours.out)[:, -1]))
    return [
        bc.row("wright_fisher (exact)", size, ours,
               reference=f"numpy multinomial per chain-gen ({ref_chains} chains, scaled)",
               ref=ref, goal="≥ 3×", goal_value=3.0, peak_rss_mib=m.mib,
               max_err=abs(het - float(np.mean(ref.out))),
               note=f"numpy {per_call_us:.0f} µs a multinomial call; "
                    f"final heterozygosity {het:.4f}; load average {load:.1f} before, "
                    f"{os.getloadavg()[0]:.1f} after (2 cores, shared)"),
    ] + [
        bc.row("wright_fisher (exact)", size, ours,
               reference=f"{name}, M per chain-gen (floor)", ref=floor, peak_rss_mib=m.mib,
               note=f"the exact path costs {ours.steady_s / floor.steady_s:.2f}× "
                    "drawing M uniforms (wall)")
        for name, floor in floors.items()
    ]


if __name__ == "__main__":
    raise SystemExit(bc.script_main("categorical", run, __doc__))
