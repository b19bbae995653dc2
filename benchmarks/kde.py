"""KDE log-density: jaxcollapse vs scipy, jax.scipy and scikit-learn; peak memory.

Same data for every method: 20,000 points and 20,000 queries in 2-D, Scott's rule,
float64. Goals: >= 10x ``scipy.stats.gaussian_kde`` and >= 10x
``jax.scipy.stats.gaussian_kde`` (evaluated in query chunks of 2,000: it
materialises a queries x points matrix). scikit-learn's ``KernelDensity`` (a tree,
isotropic kernels only, so fitted on data whitened by Scott's bandwidth) is shown
without a goal. ``max err`` is the largest relative difference of the log-density
from scipy's. The peak process memory of a 10^6-point x 20,000-query 1-D
evaluation is measured in a fresh subprocess on the CPU; goal: under 1 GiB.

Run: ``PYTHONPATH=. python benchmarks/kde.py [--quick]`` (quick: 5,000 x 5,000 and a
10^5-point memory run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import jax

jax.config.update("jax_enable_x64", True)

import _common as bc  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxcollapse as jc  # noqa: E402


def memory_child(n_points: int, n_queries: int) -> None:
    """Runs in a fresh process: prints the baseline and peak RSS (MiB) and seconds."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n_points, 1))
    q = np.linspace(-5, 5, n_queries)[:, None]
    fam = jc.KDE(dim=1, bandwidth="scott")
    p = fam.params(x)
    base = bc.peak_rss_mib()
    bc.reset_peak_rss()
    t0 = time.perf_counter()
    out = jax.block_until_ready(fam.log_prob(p, q))
    sec = time.perf_counter() - t0
    peak = bc.peak_rss_mib()
    assert bool(jnp.all(jnp.isfinite(out)))
    print(f"RESULT {base:.1f} {peak:.1f} {sec:.3f}")


def run(quick: bool) -> list[dict]:
    import scipy.stats as ss
    from jax.scipy.stats import gaussian_kde as jgkde
    from sklearn.neighbors import KernelDensity

    n = 5000 if quick else 20_000
    size = f"{n:,} points × {n:,} queries, d=2"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2)) @ np.array([[1.0, 0.0], [0.6, 0.8]])
    q = rng.normal(size=(n, 2)) * 1.5

    fam = jc.KDE(dim=2, bandwidth="scott")
    p = fam.params(x)
    qj = jnp.asarray(q)
    with bc.PeakMemory() as m:
        ours = bc.time_jax(lambda: fam.log_prob(p, qj))

    ref = ss.gaussian_kde(x.T, bw_method="scott")
    scipy_t = bc.time_host(lambda: ref.logpdf(q.T))
    lp = scipy_t.out

    def rel(a, how=np.max):
        return float(how(np.abs(np.asarray(a) - lp) / np.abs(lp)))

    jk = jgkde(jnp.asarray(x.T), bw_method="scott")
    chunk = 2000
    jit_logpdf = jax.jit(lambda k, qq: k.logpdf(qq.T))
    jax_t = bc.time_jax(lambda: jnp.concatenate(
        [jit_logpdf(jk, qj[i:i + chunk]) for i in range(0, n, chunk)]), repeats=2)

    chol = np.linalg.cholesky(np.asarray(p.bandwidth))
    zx, zq = np.linalg.solve(chol, x.T).T, np.linalg.solve(chol, q.T).T
    kd = KernelDensity(kernel="gaussian", bandwidth=1.0).fit(zx)
    sk_t = bc.time_host(lambda: kd.score_samples(zq) - np.sum(np.log(np.diag(chol))))

    err = rel(ours.out)
    rows = [
        bc.row("KDE.log_prob", size, ours, reference="scipy.stats.gaussian_kde", ref=scipy_t,
               goal="≥ 10×", goal_value=10.0, peak_rss_mib=m.mib, max_err=err,
               note="max err: relative, vs scipy"),
        bc.row("KDE.log_prob", size, ours, reference=f"jax.scipy gaussian_kde (chunks of "
               f"{chunk})", ref=jax_t, goal="≥ 10×", goal_value=10.0, peak_rss_mib=m.mib,
               max_err=rel(jax_t.out), note="max err: jax.scipy's, vs scipy"),
        bc.row("KDE.log_prob", size, ours, reference="sklearn KernelDensity (whitened, "
               "tree)", ref=sk_t, peak_rss_mib=m.mib, max_err=rel(sk_t.out),
               note=f"max err: sklearn's, vs scipy (median {rel(sk_t.out, np.median):.0e})"),
    ]

    mem_points, mem_queries = (100_000 if quick else 1_000_000), 20_000
    cmd = [sys.executable, __file__, "--child", str(mem_points), str(mem_queries)]
    # host memory is the point (and a GPU is held by this process): the child uses the CPU
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    base, peak, sec = map(float, out.split("RESULT")[1].split())
    rows.append(bc.row(
        "KDE.log_prob peak memory (fresh CPU process)", f"{mem_points:,} points × "
        f"{mem_queries:,} queries, d=1", bc.Timing(None, sec, None, None),
        goal="< 1024 MiB", goal_value=1024.0, met=peak < 1024, peak_rss_mib=peak,
        note=f"one call, no warm-up; baseline after setup {base:.0f} MiB"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        memory_child(int(sys.argv[2]), int(sys.argv[3]))
    else:
        raise SystemExit(bc.script_main("kde", run, __doc__))
