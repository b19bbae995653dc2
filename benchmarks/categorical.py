"""Benchmark: Wright–Fisher recursion of a Zipf law, jaxcollapse vs numpy.

K = 10,000 categories, Zipf(1.1), M = 10,000 draws a generation, 1,000 chains x 100
generations (replace). Reference: numpy ``Generator.multinomial`` once per chain and
generation on the full K (what a user would write). jaxcollapse:
``categorical.wright_fisher`` (exact conditional binomials down a binary tree over
the live support, which shrinks as categories are lost) plus its per-generation
metrics. Also reported: the cost of merely drawing M uniforms per chain and
generation, with ``jax.random.uniform`` and with the cheaper counter-mode
``jaxcollapse.random.uniform`` (the floor of any method that materialises the
samples). Wall and process CPU seconds are both reported (the machine may be
shared; CPU time is distorted less).

The numpy reference is timed on ``--ref-chains`` chains and scaled linearly to all
chains (its chains are independent calls of equal cost). Run:
``python benchmarks/categorical.py [--quick]``; writes benchmarks/results/categorical.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from jaxcollapse import random as jr
from jaxcollapse.families import categorical as cat
from jaxcollapse.io import save_json


def _time(fn, repeats):
    ts, cs = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
        cs.append(time.process_time() - c0)
    return statistics.median(ts), ts, statistics.median(cs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="100 chains x 20 generations")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ref-chains", type=int, default=50)
    a = ap.parse_args()
    K, beta, M = 10_000, 1.1, 10_000
    chains, gens = (100, 20) if a.quick else (1000, 100)
    p0 = cat.zipf(K, beta)
    p0_np = np.asarray(p0.probs, np.float64)

    # numpy reference (timed on ref_chains chains, scaled to all chains)
    ref_chains = min(a.ref_chains, chains)
    rng = np.random.default_rng(0)
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(ref_chains):
        p = p0_np
        for _ in range(gens):
            c = rng.multinomial(M, p)
            p = c / M
    t_ref = (time.perf_counter() - t0) * chains / ref_chains
    c_ref = (time.process_time() - c0) * chains / ref_chains
    per_call = t_ref / (chains * gens)

    def run(seed):
        return cat.wright_fisher(jax.random.key(seed), p0, n_generations=gens, n_samples=M,
                                 n_chains=chains)

    t0 = time.perf_counter()
    jax.block_until_ready(run(0).metrics)
    first = time.perf_counter() - t0
    steady, all_t, c_steady = _time(lambda: run(1).metrics, a.repeats)
    compile_s = max(first - steady, 0.0)
    caps = run(1).capacity

    floors = {}
    for name, fn in (("jax.random.uniform", jax.random.uniform), ("jaxcollapse.random.uniform",
                                                                  jr.uniform)):
        uni = jax.jit(lambda k, fn=fn: fn(k, (chains, M)))
        jax.block_until_ready(uni(jax.random.key(0)))
        t_gen, _, c_gen = _time(lambda uni=uni: uni(jax.random.key(1)), max(a.repeats, 5))
        floors[name] = (t_gen * gens, c_gen * gens)
    rows = [("numpy multinomial per chain (reference)", t_ref, c_ref, None),
            ("jaxcollapse wright_fisher (exact, steady)", steady, c_steady, compile_s)]
    rows += [(f"{name}, M a chain-gen (floor)", t, c, None) for name, (t, c) in floors.items()]
    print(f"Categorical Wright–Fisher: K={K}, Zipf({beta}), M={M}, {chains} chains x {gens} "
          f"generations; numpy {per_call * 1e6:.0f} us a multinomial call "
          f"(timed on {ref_chains} chains, scaled); load average {os.getloadavg()[0]:.1f}")
    print(f"{'method':<48} {'seconds':>8} {'cpu s':>8} {'compile':>8} {'speed-up':>9} "
          f"{'cpu sp-up':>9}")
    for name, t, c, comp in rows:
        print(f"{name:<48} {t:8.2f} {c:8.2f} {'' if comp is None else f'{comp:8.1f}':>8} "
              f"{t_ref / t:9.2f} {c_ref / c:9.2f}")
    jr_floor = floors["jaxcollapse.random.uniform"]
    print(f"exact path / uniform floor (jaxcollapse.random): {steady / jr_floor[0]:.2f}x wall, "
          f"{c_steady / jr_floor[1]:.2f}x cpu the cost of drawing M uniforms")
    print(f"live-support capacity by generation: {caps[:6].tolist()} ... {caps[-1]}")
    goal = t_ref / steady >= 3
    print(f"goal >= 3x vs numpy: {'met' if goal else 'NOT met'} ({t_ref / steady:.2f}x wall, "
          f"{c_ref / c_steady:.2f}x cpu)")
    save_json(Path(__file__).parent / "results" / "categorical.json", dict(
        config=dict(K=K, beta=beta, M=M, chains=chains, generations=gens, quick=a.quick,
                    ref_chains=ref_chains, backend=jax.default_backend(),
                    x64=bool(jax.config.jax_enable_x64), cpus=os.cpu_count(),
                    load_average=os.getloadavg()),
        numpy_seconds=t_ref, numpy_cpu_seconds=c_ref, numpy_us_per_call=per_call * 1e6,
        jax_steady_median_seconds=steady, jax_steady_all_seconds=all_t,
        jax_steady_cpu_seconds=c_steady, jax_compile_seconds=compile_s,
        uniform_floor_seconds=floors["jax.random.uniform"][0],
        uniform_floor_cpu_seconds=floors["jax.random.uniform"][1],
        counter_uniform_floor_seconds=jr_floor[0], counter_uniform_floor_cpu_seconds=jr_floor[1],
        speedup_vs_numpy=t_ref / steady, cpu_speedup_vs_numpy=c_ref / c_steady,
        cost_vs_uniform_floor=steady / floors["jax.random.uniform"][0],
        cost_vs_counter_uniform_floor=steady / jr_floor[0], goal_met=goal,
        capacity=np.asarray(caps).tolist()))


if __name__ == "__main__":
    main()
