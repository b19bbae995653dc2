"""KDE log-density: jaxcollapse vs scipy, jax.scipy and scikit-learn; peak memory.

Same data for every method: 20,000 points and 20,000 queries in 2-D, Scott's rule,
float64. Goals: >= 10x ``scipy.stats.gaussian_kde`` and >= 10x
``jax.scipy.stats.gaussian_kde``. The peak process memory of a 10^6-point x
20,000-query 1-D evaluation is measured in a fresh subprocess (``ru_maxrss``);
goal: under 1 GB.

Run: ``PYTHONPATH=. python benchmarks/kde.py [--quick]``.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import _wallcpu  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _wallcpu import report, time_host, time_jax  # noqa: E402

import jaxcollapse as jc  # noqa: E402


def _peak_rss_mib() -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return float(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_memory_child(n_points: int, n_queries: int) -> None:
    """Runs in a fresh process: prints baseline and peak RSS in MiB.

    A child inherits the high-water mark of the parent it was forked from, so the
    mark is reset first (``/proc/self/clear_refs``), where Linux allows it.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_points, 1))
    q = np.linspace(-5, 5, n_queries)[:, None]
    fam = jc.KDE(dim=1, bandwidth="scott")
    p = fam.params(x)
    base = _peak_rss_mib()
    t0 = time.perf_counter()
    out = jax.block_until_ready(fam.log_prob(p, q))
    sec = time.perf_counter() - t0
    peak = _peak_rss_mib()
    assert bool(jnp.all(jnp.isfinite(out)))
    print(f"RESULT {base:.1f} {peak:.1f} {sec:.2f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="5,000 x 5,000, 10^5-point memory run")
    ap.add_argument("--child", nargs=2, type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        peak_memory_child(*args.child)
        return
    import scipy.stats as ss
    from jax.scipy.stats import gaussian_kde as jgkde
    from sklearn.neighbors import KernelDensity

    n = 5000 if args.quick else 20_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.0], [0.6, 0.8]])
    q = rng.normal(size=(n, 2)) * 1.5

    rows = []
    fam = jc.KDE(dim=2, bandwidth="scott")
    p = fam.params(x)
    comp, steady, ours = time_jax(lambda pp, qq: fam.log_prob(pp, qq), p, q)
    cpu = _wallcpu.LAST_CPU
    ours = np.asarray(ours)

    ref = ss.gaussian_kde(x.T, bw_method="scott")
    t_scipy, lp_scipy = time_host(ref.logpdf, q.T)
    cpu_scipy = _wallcpu.LAST_CPU

    def rel(a, how=np.max):
        return float(how(np.abs(np.asarray(a) - lp_scipy) / np.abs(lp_scipy)))

    rows.append(dict(method="jaxcollapse KDE.log_prob", compile_s=comp, steady_s=steady,
                     cpu_s=cpu, speedup=None, max_rel_err=rel(ours)))
    rows.append(dict(method="scipy.stats.gaussian_kde.logpdf", compile_s=None,
                     steady_s=t_scipy, cpu_s=cpu_scipy, speedup=t_scipy / steady,
                     cpu_speedup=cpu_scipy / cpu, max_rel_err=0.0))

    # jax.scipy materialises a (queries x points) matrix: evaluate in query chunks
    jk = jgkde(jnp.asarray(x.T), bw_method="scott")
    chunk = 2000
    qj = jnp.asarray(q)
    jit_logpdf = jax.jit(lambda k, qq: k.logpdf(qq.T))

    def jax_scipy(k, qq):
        return jnp.concatenate([jit_logpdf(k, qq[i:i + chunk])
                                for i in range(0, qq.shape[0], chunk)])

    comp_j, t_j, lp_j = time_jax(jax_scipy, jk, qj, repeats=2)
    cpu_j = _wallcpu.LAST_CPU
    rows.append(dict(method=f"jax.scipy gaussian_kde (chunks of {chunk})", compile_s=comp_j,
                     steady_s=t_j, cpu_s=cpu_j, speedup=t_j / steady, cpu_speedup=cpu_j / cpu,
                     max_rel_err=rel(lp_j)))

    # scikit-learn: isotropic kernels only, so fit on data whitened by Scott's bandwidth
    chol = np.linalg.cholesky(np.asarray(p.bandwidth))
    zx = np.linalg.solve(chol, x.T).T
    zq = np.linalg.solve(chol, q.T).T
    kd = KernelDensity(kernel="gaussian", bandwidth=1.0).fit(zx)
    t_sk, lp_sk = time_host(lambda: kd.score_samples(zq) - np.sum(np.log(np.diag(chol))))
    cpu_sk = _wallcpu.LAST_CPU
    rows.append(dict(method="sklearn KernelDensity (whitened, tree)", compile_s=None,
                     steady_s=t_sk, cpu_s=cpu_sk, speedup=t_sk / steady,
                     cpu_speedup=cpu_sk / cpu, max_rel_err=rel(lp_sk),
                     median_rel_err=rel(lp_sk, np.median)))

    mem_points = 100_000 if args.quick else 1_000_000
    n_mem_q = 20_000
    cmd = [sys.executable, __file__, "--child", str(mem_points), str(n_mem_q)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    base, peak, sec = map(float, out.split("RESULT")[1].split())
    memory = dict(points=mem_points, queries=20_000, dim=1, baseline_rss_mib=base,
                  peak_rss_mib=peak, seconds=sec, goal_mib=1024, goal_met=peak < 1024)
    print(f"KDE log_prob, {n} points x {n} queries, d=2, float64")
    report("kde", rows, dict(points=n, queries=n, dim=2, memory=memory,
                             goals=dict(scipy_10x=t_scipy / steady >= 10,
                                        jax_scipy_10x=t_j / steady >= 10,
                                        scipy_10x_cpu=cpu_scipy / cpu >= 10,
                                        jax_scipy_10x_cpu=cpu_j / cpu >= 10)))
    print(f"peak RSS of {mem_points:,} points x 20,000 queries (1-D): {peak:.0f} MiB "
          f"(baseline after setup {base:.0f} MiB, {sec:.1f}s); goal < 1024 MiB: "
          f"{'met' if peak < 1024 else 'NOT met'}")


if __name__ == "__main__":
    main()
