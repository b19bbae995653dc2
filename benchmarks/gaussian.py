"""Gaussian collapse: 4,096 chains x 200 generations x 100 samples.

jaxcollapse (samples and exact paths) against, in the same process on the same work:
a vectorised NumPy run that samples and refits; the same exact algorithm in NumPy
(normal + chi-square); and a per-chain Python loop (timed on 32 chains and scaled, as
labelled). Both sides run in JAX's default float precision: float32 (NumPy then draws
float32 normals and its chi-square as ``2 * rng.standard_gamma(df / 2, dtype=float32)``,
which is how ``rng.chisquare`` computes it in float64), or float64 with
``JAX_ENABLE_X64=1`` (NumPy's ``rng.standard_normal`` and ``rng.chisquare``).
Goals: samples >= 5x NumPy samples; exact >= 40x NumPy samples and >= 2x NumPy
exact. ``max err`` is the difference of the mean final log-variance
between jaxcollapse and the reference (a Monte Carlo difference: both estimate the
same expectation, whose theoretical value is in the note).

Run: ``PYTHONPATH=. python benchmarks/gaussian.py [--quick]`` (quick: 4,096 chains x
50 generations).
"""

from __future__ import annotations

import itertools

import _common as bc
import jax
import numpy as np

import jaxcollapse as jc


def numpy_samples(rng, C, G, M, dtype=np.float64):
    mu, sd = np.zeros(C, dtype), np.ones(C, dtype)
    for _ in range(G):
        x = mu[:, None] + sd[:, None] * rng.standard_normal((C, M), dtype=dtype)
        mu, sd = x.mean(1), x.std(1, ddof=1)
    return sd**2


def _chisquare(rng, df, size, dtype):
    if dtype == np.float64:
        return rng.chisquare(df, size)
    # rng.chisquare(df) is 2 * standard_gamma(df / 2), in float64 only
    return 2 * rng.standard_gamma(df / 2, size, dtype=dtype)


def numpy_exact(rng, C, G, M, dtype=np.float64):
    mu, var = np.zeros(C, dtype), np.ones(C, dtype)
    for _ in range(G):
        mu = mu + np.sqrt(var / M) * rng.standard_normal(C, dtype=dtype)
        var = var * _chisquare(rng, M - 1, C, dtype) / dtype(M - 1)
    return var


def python_loop(rng, C, G, M):
    out = []
    for _ in range(C):
        mu, sd = 0.0, 1.0
        for _ in range(G):
            x = rng.normal(mu, sd, M)
            mu, sd = x.mean(), x.std(ddof=1)
        out.append(sd**2)
    return np.array(out)


def run(quick: bool) -> list[dict]:
    C, G, M = (4096, 50, 100) if quick else (4096, 200, 100)
    repeats, loop_chains = 5, 32
    size = f"{C:,} chains × {G} gens × M={M}"
    rng = np.random.default_rng(0)
    theory = float(jc.theory.gaussian.log_variance_mean(G, M))
    # the same precision on both sides: JAX's default float (float32 unless x64)
    dtype = np.dtype(jax.numpy.result_type(float)).type
    size += f", {np.dtype(dtype).name} both sides"

    def mean_log(v):
        return float(np.mean(np.log(np.asarray(v))))

    ours, mem = {}, {}
    for method in ("samples", "exact"):
        fam = jc.Gaussian(dim=1, method=method)
        p0 = fam.params()
        seeds = itertools.count()

        def call(fam=fam, p0=p0, seeds=seeds):
            return jc.simulate(jax.random.key(next(seeds)), fam, p0, n_generations=G,
                               n_samples=M, n_chains=C, metrics={}).params.cov[:, -1, 0, 0]

        with bc.PeakMemory() as m:
            ours[method] = bc.time_jax(call, repeats)
        mem[method] = m.mib

    refs = {"numpy sample-and-refit": bc.time_host(
                lambda: numpy_samples(rng, C, G, M, dtype), 3),
            "numpy exact (chisquare)": bc.time_host(
                lambda: numpy_exact(rng, C, G, M, dtype), repeats)}
    for method, t in ours.items():
        assert np.asarray(t.out).dtype == dtype, (method, np.asarray(t.out).dtype)
    loop = bc.time_host(lambda: python_loop(rng, loop_chains, G, M), 1)
    loop_name = f"python loop per chain ({loop_chains} chains, scaled)"
    refs[loop_name] = bc.scaled(loop, C / loop_chains)

    # (path, reference) -> goal; None: shown without a goal
    pairs = {("samples", "numpy sample-and-refit"): 5.0, ("samples", loop_name): None,
             ("exact", "numpy sample-and-refit"): 40.0,
             ("exact", "numpy exact (chisquare)"): 2.0}
    rows = []
    for (method, ref_name), goal_value in pairs.items():
        t, ref = ours[method], refs[ref_name]
        rows.append(bc.row(
            f"simulate, {method} path", size, t, reference=ref_name, ref=ref,
            goal=f"≥ {goal_value:g}×" if goal_value else "", goal_value=goal_value,
            peak_rss_mib=mem[method], max_err=abs(mean_log(t.out) - mean_log(ref.out)),
            note=f"E log σ²_G: ours {mean_log(t.out):.3f}, theory {theory:.3f}"))
    return rows


if __name__ == "__main__":
    raise SystemExit(bc.script_main("gaussian", run, __doc__))
