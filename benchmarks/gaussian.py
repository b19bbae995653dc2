"""Gaussian collapse: 4,096 chains x 200 generations x 100 samples.

jaxcollapse (samples and exact paths) against, in the same process on the same work:
a vectorised NumPy run that samples and refits; the same exact algorithm in NumPy
(normal + chi-square); and a per-chain Python loop (timed on a subset of chains and
scaled, as labelled). Goals: samples >= 5x NumPy samples; exact >= 40x NumPy
samples and >= 2x NumPy exact.

Both sides run in the same precision: ``--precision float32`` (default; NumPy draws
float32 normals and its chi-square as ``2 * rng.standard_gamma(df / 2, dtype=float32)``,
which is how ``rng.chisquare`` computes it in float64) or ``float64`` (jax with x64;
NumPy's float64 ``rng.standard_normal`` and ``rng.chisquare``), written to
``results/gaussian.json`` and ``results/gaussian_float64.json``.

    python benchmarks/gaussian.py [--chains 4096 --generations 200 --samples 100]
                                  [--precision float32|float64]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

import jaxcollapse as jc  # noqa: E402


def numpy_samples(rng, C, G, M, dtype=np.float64):
    mu, sd = np.zeros(C, dtype), np.ones(C, dtype)
    for _ in range(G):
        x = mu[:, None] + sd[:, None] * rng.standard_normal((C, M), dtype=dtype)
        mu, sd = x.mean(1), x.std(1, ddof=1)
    return mu, sd**2


def _chisquare(rng, df, size, dtype):
    if dtype == np.float64:
        return rng.chisquare(df, size)
    # rng.chisquare(df) is 2 * standard_gamma(df / 2), float64 only
    return 2 * rng.standard_gamma(df / 2, size, dtype=dtype)


def numpy_exact(rng, C, G, M, dtype=np.float64):
    mu, var = np.zeros(C, dtype), np.ones(C, dtype)
    for _ in range(G):
        mu = mu + np.sqrt(var / M) * rng.standard_normal(C, dtype=dtype)
        var = var * _chisquare(rng, M - 1, C, dtype) / dtype(M - 1)
    return mu, var


def python_loop(rng, C, G, M):
    out = []
    for _ in range(C):
        mu, sd = 0.0, 1.0
        for _ in range(G):
            x = rng.normal(mu, sd, M)
            mu, sd = x.mean(), x.std(ddof=1)
        out.append(sd**2)
    return np.array(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chains", type=int, default=4096)
    ap.add_argument("--generations", type=int, default=200)
    ap.add_argument("--samples", type=int, default=100)
    ap.add_argument("--loop-chains", type=int, default=32,
                    help="chains timed for the per-chain Python loop (scaled up)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--precision", choices=("float32", "float64"), default="float32",
                    help="precision of both sides (float64 turns on jax x64)")
    args = ap.parse_args(argv)
    C, G, M = args.chains, args.generations, args.samples
    dtype = np.dtype(args.precision).type
    if dtype == np.float64:
        jax.config.update("jax_enable_x64", True)
    rng = np.random.default_rng(0)

    results = {}
    for method in ("samples", "exact"):
        fam = jc.Gaussian(dim=1, method=method)
        p0 = fam.params(dtype=dtype)
        keys = iter(range(1000))

        def call(fam=fam, p0=p0, keys=keys):
            return jc.simulate(jax.random.key(next(keys)), fam, p0, n_generations=G,
                               n_samples=M, n_chains=C, metrics={})

        first, steady, cpu = bc.time_call(call, args.repeats)
        res = call()
        assert res.params.cov.dtype == dtype, res.params.cov.dtype
        v = np.asarray(res.params.cov[:, -1, 0, 0])
        results[f"jaxcollapse {method}"] = dict(steady_s=steady, cpu_s=cpu,
                                                compile_s=first - steady,
                                                final_log_var=float(np.log(v).mean()))

    t, cpu = bc.time_host(lambda: numpy_samples(rng, C, G, M, dtype), 3)
    _, v = numpy_samples(rng, C, G, M, dtype)
    assert v.dtype == dtype, v.dtype
    results["numpy samples"] = dict(steady_s=t, cpu_s=cpu, final_log_var=float(np.log(v).mean()))
    t, cpu = bc.time_host(lambda: numpy_exact(rng, C, G, M, dtype), args.repeats)
    _, v = numpy_exact(rng, C, G, M, dtype)
    assert v.dtype == dtype, v.dtype
    results["numpy exact"] = dict(steady_s=t, cpu_s=cpu, final_log_var=float(np.log(v).mean()))
    c_loop = min(args.loop_chains, C)
    t, cpu = bc.time_host(lambda: python_loop(rng, c_loop, G, M), 1)
    results["python loop (scaled)"] = dict(steady_s=t * C / c_loop, cpu_s=cpu * C / c_loop,
                                           note=f"timed on {c_loop} chains")

    ref_s = results["numpy samples"]["steady_s"]
    ref_e = results["numpy exact"]["steady_s"]
    goals = {"jaxcollapse samples": [("numpy samples", 5.0)],
             "jaxcollapse exact": [("numpy samples", 40.0), ("numpy exact", 2.0)]}
    rows, checks = [], []
    for name, r in results.items():
        rows.append(dict(case=name, steady_ms=f"{1e3 * r['steady_s']:.1f}",
                         cpu_ms=f"{1e3 * r['cpu_s']:.1f}",
                         compile_s=f"{r['compile_s']:.2f}" if "compile_s" in r else "",
                         vs_numpy_samples=f"{ref_s / r['steady_s']:.1f}x",
                         vs_numpy_exact=f"{ref_e / r['steady_s']:.2f}x",
                         mean_log_var_final=f"{r.get('final_log_var', float('nan')):.3f}"))
        for ref, goal in goals.get(name, []):
            ratio = results[ref]["steady_s"] / r["steady_s"]
            ratio_cpu = results[ref]["cpu_s"] / r["cpu_s"]
            checks.append(dict(case=name, reference=ref, ratio=round(ratio, 2),
                               ratio_cpu=round(ratio_cpu, 2), goal=goal, met=ratio >= goal))
    theory = float(jc.theory.gaussian.log_variance_mean(G, M))
    print(f"Gaussian collapse: {C} chains x {G} generations x {M} samples, "
          f"{args.precision} on both sides (theory E log var_final = {theory:.3f})")
    print(bc.table(rows, ["case", "steady_ms", "cpu_ms", "compile_s", "vs_numpy_samples",
                          "vs_numpy_exact", "mean_log_var_final"]))
    print()
    print(bc.table(checks, ["case", "reference", "ratio", "ratio_cpu", "goal", "met"]))
    name = "gaussian" if dtype == np.float32 else "gaussian_float64"
    # wall-time ratios need a quiet machine; the load average says how quiet it was
    path = bc.write(name, dict(size=dict(chains=C, generations=G, samples=M),
                               precision=args.precision, results=results, goals=checks,
                               theory_final_log_var=theory, load_average=os.getloadavg()))
    print(f"\nwrote {path}")
    return results, checks


if __name__ == "__main__":
    main()
