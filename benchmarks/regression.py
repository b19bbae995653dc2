"""Benchmark: fixed-design linear regression retrained on its own labels.

d = 50, T = 200, σ = 1, 1,000 chains x 100 generations, replace and accumulate (OLS).
Reference: numpy vectorised over chains with a precomputed pseudo-inverse
(relabel every chain's design, y = X w + σ ε with T normals a chain, then one
(chains, T) x (T, d) product a generation). jaxcollapse:
``regression.simulate_fixed_design`` (the same recursion, exact in law, in the
eigenbasis of XᵀX: d normals and O(d) work a chain and generation). Also
reported: the general family through ``jaxcollapse.simulate`` (exact
sufficient-statistic path, O(T d²) a chain and generation).

Run: ``python benchmarks/regression.py [--quick]``; writes
benchmarks/results/regression.json.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxcollapse as jc
from jaxcollapse.families import regression as fr
from jaxcollapse.io import save_json


def _time(fn, repeats):
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts), ts


def numpy_reference(rng, x, w0, noise, chains, gens, accumulate):
    """Excess risk (chains, gens + 1) with numpy, vectorised over chains."""
    t, d = x.shape
    gram = x.T @ x
    pinv = np.linalg.solve(gram, x.T)  # (d, T)
    w = np.broadcast_to(w0, (chains, d)).copy()
    s = np.zeros((chains, d))
    risk = np.zeros((chains, gens + 1))
    for g in range(1, gens + 1):
        y = w @ x.T + noise * rng.standard_normal((chains, t))
        if accumulate:
            s += y @ x
            w = np.linalg.solve(g * gram, s.T).T
        else:
            w = y @ pinv.T
        risk[:, g] = np.sum((w - w0) ** 2, axis=1)
    return risk


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 chains x 20 generations")
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    d, t, noise = 50, 200, 1.0
    chains, gens = (200, 20) if a.quick else (1000, 100)
    x = np.random.default_rng(1).standard_normal((t, d))
    w0 = np.ones(d) / np.sqrt(d)
    fam = fr.LinearRegression(dim=d, noise=noise, n_design=t)
    p0 = fam.params(jnp.asarray(w0), jnp.asarray(x))
    results, rows = {}, []
    for regime in ("replace", "accumulate"):
        acc = regime == "accumulate"
        rng = np.random.default_rng(0)
        t_np, _ = _time(lambda acc=acc, rng=rng: numpy_reference(rng, x, w0, noise, chains,
                                                                 gens, acc), a.repeats)

        def fast(seed, regime=regime):
            return fr.simulate_fixed_design(jax.random.key(seed), fam, p0,
                                            n_generations=gens, n_chains=chains,
                                            regime=regime).excess_risk

        t0 = time.perf_counter()
        jax.block_until_ready(fast(0))
        first = time.perf_counter() - t0
        t_fast, _ = _time(lambda f=fast: f(1), a.repeats)

        def general(seed, regime=regime):
            return jc.simulate(jax.random.key(seed), fam, p0, n_generations=gens,
                               n_samples=t, n_chains=chains, regime=regime,
                               save_params=False, metrics=["excess_risk"]).metrics

        t0 = time.perf_counter()
        jax.block_until_ready(general(0))
        first_g = time.perf_counter() - t0
        t_gen, _ = _time(lambda f=general: f(1), max(1, a.repeats // 2))
        results[regime] = dict(numpy_seconds=t_np, fast_seconds=t_fast,
                               fast_compile_seconds=max(first - t_fast, 0.0),
                               simulate_seconds=t_gen,
                               simulate_compile_seconds=max(first_g - t_gen, 0.0),
                               speedup_fast=t_np / t_fast, speedup_simulate=t_np / t_gen,
                               goal_met=t_np / t_fast >= 3)
        rows += [(regime, "numpy, vectorised over chains (reference)", t_np, None),
                 (regime, "jaxcollapse simulate_fixed_design", t_fast,
                  results[regime]["fast_compile_seconds"]),
                 (regime, "jaxcollapse simulate (family, exact stats)", t_gen,
                  results[regime]["simulate_compile_seconds"])]
    print(f"Fixed-design regression: d={d}, T={t}, {chains} chains x {gens} generations")
    print(f"{'regime':<11} {'method':<44} {'seconds':>8} {'compile':>8} {'vs numpy':>9}")
    for regime, name, s, c in rows:
        ref = results[regime]["numpy_seconds"]
        print(f"{regime:<11} {name:<44} {s:8.3f} {'' if c is None else f'{c:8.2f}':>8} "
              f"{ref / s:9.2f}")
    for regime, r in results.items():
        print(f"goal >= 3x ({regime}): {'met' if r['goal_met'] else 'NOT met'} "
              f"({r['speedup_fast']:.1f}x)")
    save_json(Path(__file__).parent / "results" / "regression.json", dict(
        config=dict(d=d, T=t, noise=noise, chains=chains, generations=gens, quick=a.quick,
                    backend=jax.default_backend(), x64=bool(jax.config.jax_enable_x64)),
        results=results))


if __name__ == "__main__":
    main()
