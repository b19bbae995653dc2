"""Unbiased MMD^2, 20,000 vs 20,000 points in 2-D, RBF kernel: jaxcollapse vs numpy.

The reference is what one writes in numpy without materialising 20,000^2 matrices:
row blocks of 1,000, squared distances by the matrix-product form, ``exp``, sums.
Same data, same formula, float64. Goal: >= 10x. ``max err`` is the relative
difference of the two values.

Run: ``PYTHONPATH=. python benchmarks/mmd.py [--quick]`` (quick: 5,000 vs 5,000).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

import _common as bc  # noqa: E402
import numpy as np  # noqa: E402

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


def run(quick: bool) -> list[dict]:
    n = 5000 if quick else 20_000
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2))
    y = rng.normal(size=(n, 2)) * [1.0, 1.2] + [0.1, 0.0]
    ell = float(jc.metrics.median_heuristic(x, y))
    with bc.PeakMemory() as m:
        ours = bc.time_jax(lambda: jc.metrics.mmd2(x, y, "rbf", ell))
    ref = bc.time_host(lambda: numpy_mmd2_unbiased(x, y, ell))
    value = float(ours.out)
    return [bc.row("metrics.mmd2 (unbiased, RBF)", f"{n:,} vs {n:,} points, d=2", ours,
                   reference="numpy, row blocks of 1,000", ref=ref, goal="≥ 10×",
                   goal_value=10.0, peak_rss_mib=m.mib,
                   max_err=abs(value - ref.out) / abs(ref.out),
                   note=f"MMD² {value:.4g}, lengthscale {ell:.3f} (median heuristic), "
                        "max err relative")]


if __name__ == "__main__":
    raise SystemExit(bc.script_main("mmd", run, __doc__))
