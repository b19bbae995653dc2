"""Unbiased MMD^2, 20,000 vs 20,000 points in 2-D, RBF kernel: jaxcollapse vs numpy.

The reference is what one writes in numpy without materialising 20,000^2 matrices:
row blocks of 1,000, squared distances by the matrix-product form, ``exp``, sums.
Same data, same formula, float64. Goal: >= 10x.

Run: ``PYTHONPATH=. python benchmarks/mmd.py [--quick]``.
"""

from __future__ import annotations

import argparse

import jax

jax.config.update("jax_enable_x64", True)

import _wallcpu  # noqa: E402
import numpy as np  # noqa: E402
from _wallcpu import report, time_host, time_jax  # noqa: E402

import jaxcollapse as jc  # noqa: E402


def numpy_mmd2_unbiased(x, y, lengthscale, block=1000):
    def ksum(a, b):
        total, bb = 0.0, np.sum(b * b, 1)
        for i in range(0, len(a), block):
            ai = a[i:i + block]
            d2 = np.maximum(np.sum(ai * ai, 1)[:, None] + bb[None, :] - 2.0 * ai @ b.T, 0.0)
            total += np.exp(-0.5 * d2 / lengthscale**2).sum()
        return total

    n, m = len(x), len(y)
    return ((ksum(x, x) - n) / (n * (n - 1)) + (ksum(y, y) - m) / (m * (m - 1))
            - 2.0 * ksum(x, y) / (n * m))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="5,000 vs 5,000 points")
    args = ap.parse_args()
    n = 5000 if args.quick else 20_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(n, 2)) * [1.0, 1.2] + [0.1, 0.0]
    ell = float(jc.metrics.median_heuristic(x, y))
    comp, steady, ours = time_jax(lambda a, b: jc.metrics.mmd2(a, b, "rbf", ell), x, y)
    cpu = _wallcpu.LAST_CPU
    t_np, ref = time_host(numpy_mmd2_unbiased, x, y, ell)
    cpu_np = _wallcpu.LAST_CPU
    err = abs(float(ours) - ref) / abs(ref)
    rows = [dict(method="jaxcollapse metrics.mmd2 (unbiased)", compile_s=comp,
                 steady_s=steady, cpu_s=cpu, speedup=None, max_rel_err=err),
            dict(method="numpy, row blocks of 1,000", compile_s=None, steady_s=t_np,
                 cpu_s=cpu_np, speedup=t_np / steady, cpu_speedup=cpu_np / cpu,
                 max_rel_err=0.0)]
    print(f"unbiased MMD^2, {n} vs {n} points, d=2, RBF lengthscale {ell:.3f} (median "
          f"heuristic), float64; value {float(ours):.6g}")
    report("mmd", rows, dict(points=n, dim=2, lengthscale=ell, value=float(ours),
                             goals=dict(numpy_10x=t_np / steady >= 10,
                                        numpy_10x_cpu=cpu_np / cpu >= 10)))


if __name__ == "__main__":
    main()
