"""Benchmark: Wright–Fisher recursion of a Zipf law, jaxcollapse vs numpy.

K = 10,000 categories, Zipf(1.1), M = 10,000 draws a generation, 1,000 chains x 100
generations (replace). Reference: numpy ``Generator.multinomial`` once per chain and
generation on the full K (what a user would write). jaxcollapse:
``categorical.wright_fisher`` (exact conditional binomials on the live support,
which shrinks as categories are lost) plus its per-generation metrics. Also
reported: the cost of merely drawing M uniforms per chain and generation with
``jax.random.uniform`` (the floor of any method that materialises the samples).

The numpy reference is timed on ``--ref-chains`` chains and scaled linearly to all
chains (its chains are independent calls of equal cost). Run:
``python benchmarks/categorical.py [--quick]``; writes benchmarks/results/categorical.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import numpy as np

from jaxcollapse.families import categorical as cat
from jaxcollapse.io import save_json


def _time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


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
    t0 = time.perf_counter()
    for _ in range(ref_chains):
        p = p0_np
        for _ in range(gens):
            c = rng.multinomial(M, p)
            p = c / M
    t_ref = (time.perf_counter() - t0) * chains / ref_chains
    per_call = t_ref / (chains * gens)

    def run(seed):
        return cat.wright_fisher(jax.random.key(seed), p0, n_generations=gens, n_samples=M,
                                 n_chains=chains).metrics

    t0 = time.perf_counter()
    jax.block_until_ready(run(0))
    first = time.perf_counter() - t0
    steady, all_t = _time(lambda: run(1), a.repeats)
    compile_s = max(first - steady, 0.0)

    uni = jax.jit(lambda k: jax.random.uniform(k, (chains, M)))
    jax.block_until_ready(uni(jax.random.key(0)))
    t_uni_gen, _ = _time(lambda: uni(jax.random.key(1)), max(a.repeats, 5))
    t_uni = t_uni_gen * gens

    caps = cat.wright_fisher(jax.random.key(2), p0, n_generations=gens, n_samples=M,
                             n_chains=min(chains, 100)).capacity
    rows = [
        ("numpy multinomial per chain (reference)", t_ref, None),
        ("jaxcollapse wright_fisher (exact, steady)", steady, compile_s),
        ("jax.random.uniform, M a chain-gen (floor)", t_uni, None),
    ]
    print(f"Categorical Wright–Fisher: K={K}, Zipf({beta}), M={M}, {chains} chains x {gens} "
          f"generations; numpy {per_call * 1e6:.0f} us a multinomial call "
          f"(timed on {ref_chains} chains, scaled)")
    print(f"{'method':<44} {'seconds':>9} {'compile':>8} {'speed-up vs numpy':>18}")
    for name, t, c in rows:
        print(f"{name:<44} {t:9.2f} {'' if c is None else f'{c:8.1f}':>8} {t_ref / t:18.2f}")
    print(f"exact path / uniform floor: {steady / t_uni:.2f}x the cost of drawing M uniforms")
    print(f"live-support capacity by generation (100 chains): {caps[:6].tolist()} ... "
          f"{caps[-1]}")
    goal = t_ref / steady >= 3
    print(f"goal >= 3x vs numpy: {'met' if goal else 'NOT met'} ({t_ref / steady:.2f}x)")
    save_json(Path(__file__).parent / "results" / "categorical.json", dict(
        config=dict(K=K, beta=beta, M=M, chains=chains, generations=gens, quick=a.quick,
                    ref_chains=ref_chains, backend=jax.default_backend(),
                    x64=bool(jax.config.jax_enable_x64)),
        numpy_seconds=t_ref, numpy_us_per_call=per_call * 1e6,
        jax_steady_median_seconds=steady, jax_steady_all_seconds=all_t,
        jax_compile_seconds=compile_s, uniform_floor_seconds=t_uni,
        speedup_vs_numpy=t_ref / steady, cost_vs_uniform_floor=steady / t_uni, goal_met=goal,
        capacity=np.asarray(caps).tolist()))


if __name__ == "__main__":
    main()
