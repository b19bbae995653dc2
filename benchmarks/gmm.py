"""EM for 256 independent data sets at once vs scikit-learn one by one.

256 data sets of 1,000 points from a 2-component mixture in 2-D; K = 2, full
covariances, exactly 100 EM iterations (tol = 0) after a k-means start (ours:
k-means++ seeding and 10 Lloyd steps, vmapped; scikit-learn: its default KMeans
start, n_init=1, limited to one BLAS thread, its fastest setting on a shared
machine). Goal: >= 20x. The agreement is reported as the largest difference of
the final mean log-likelihoods (different starts may, rarely, reach different
optima).

Run: ``PYTHONPATH=. python benchmarks/gmm.py [--quick]``.
"""

from __future__ import annotations

import argparse
import warnings

import jax

jax.config.update("jax_enable_x64", True)

import _wallcpu  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from _wallcpu import report, time_host, time_jax  # noqa: E402

import jaxcollapse as jc  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="32 data sets")
    args = ap.parse_args()
    n_sets, n, iters = (32 if args.quick else 256), 1000, 100
    fam = jc.GMM(n_components=2, dim=2, tol=0.0, max_iter=iters)
    p0 = fam.params([0.4, 0.6], [[-2.0, 0.0], [2.0, 1.0]],
                    [np.eye(2), [[0.5, 0.2], [0.2, 1.5]]])
    keys = jax.random.split(jax.random.key(0), n_sets)
    xs = jax.vmap(lambda k: fam.sample(k, p0, n))(keys)
    w = jnp.ones((n,))
    fit_all = jax.jit(jax.vmap(lambda k, x: fam.fit(k, x, w)))
    fit_keys = jax.random.split(jax.random.key(1), n_sets)
    comp, steady, params = time_jax(fit_all, fit_keys, xs)
    cpu = _wallcpu.LAST_CPU
    ll_ours = np.asarray(jax.vmap(fam.mean_log_likelihood)(params, xs))

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    xs_np = np.asarray(xs)

    from threadpoolctl import threadpool_limits

    def sklearn_all():
        out = []
        # one BLAS/OpenMP thread: on a shared machine oversubscribed thread pools make
        # scikit-learn far slower, which would flatter the ratio
        with warnings.catch_warnings(), threadpool_limits(1):
            warnings.simplefilter("ignore", ConvergenceWarning)
            for i, x in enumerate(xs_np):
                g = GaussianMixture(2, covariance_type="full", tol=0.0, max_iter=iters,
                                    n_init=1, random_state=i).fit(x)
                out.append(g.score(x))
        return np.array(out)

    t_sk, ll_sk = time_host(sklearn_all)
    cpu_sk = _wallcpu.LAST_CPU
    diff = np.abs(ll_ours - ll_sk)
    rows = [dict(method=f"jaxcollapse GMM.fit, vmapped over {n_sets} sets", compile_s=comp,
                 steady_s=steady, cpu_s=cpu, speedup=None, max_rel_err=None),
            dict(method="sklearn GaussianMixture, one by one", compile_s=None, steady_s=t_sk,
                 cpu_s=cpu_sk, speedup=t_sk / steady, cpu_speedup=cpu_sk / cpu,
                 max_rel_err=None)]
    print(f"GMM EM: {n_sets} data sets x {n} points, K=2, d=2, {iters} iterations, float64")
    report("gmm", rows, dict(data_sets=n_sets, points=n, iterations=iters,
                             mean_loglik_abs_diff_max=float(diff.max()),
                             mean_loglik_abs_diff_median=float(np.median(diff)),
                             same_optimum_fraction=float(np.mean(diff < 1e-6)),
                             goals=dict(sklearn_20x=t_sk / steady >= 20,
                                        sklearn_20x_cpu=cpu_sk / cpu >= 20)))
    print(f"final mean log-likelihood vs sklearn: median |diff| {np.median(diff):.1e}, "
          f"max {diff.max():.1e}, same optimum (|diff| < 1e-6) in "
          f"{100 * np.mean(diff < 1e-6):.0f}% of sets")


if __name__ == "__main__":
    main()
