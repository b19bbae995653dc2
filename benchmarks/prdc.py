"""k-NN precision, recall, density and coverage, 20,000 real x 20,000 fake points, d = 64:
jaxcollapse vs the ``prdc`` package (Naeem et al.'s reference code).

The reference materialises the three 20,000^2 distance matrices (scikit-learn's
``pairwise_distances``, ``n_jobs=8``) and selects the radii by ``argpartition``;
``jaxcollapse.metrics.prdc`` computes the same distances tile by tile with a running
selection and never holds a matrix. Same float32 features (what generative-model
features are), same ``nearest_k = 5``. Goal: >= 10x. ``max err`` is the largest
absolute difference of the four values (0 unless a distance within round-off of a
radius compares the other way). The reference runs once (about a minute of CPU and
5 GB of memory); the machine's load average is in the JSON and in the note, since
wall-time ratios on a shared machine depend on it.

Run: ``PYTHONPATH=. python benchmarks/prdc.py [--quick]`` (quick: 5,000 x 5,000).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import sys
from pathlib import Path

import _common as bc
import numpy as np

import jaxcollapse as jc

FIELDS = ("precision", "recall", "density", "coverage")


def _package():
    """The ``prdc`` package (dev extra), not this script, which has its name."""
    here = Path(__file__).resolve().parent
    saved = sys.path[:]
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != here]
    try:
        return importlib.import_module("prdc")
    finally:
        sys.path[:] = saved


def reference_prdc(real, fake, nearest_k):
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        out = _package().compute_prdc(real, fake, nearest_k)
    return np.array([out[f] for f in FIELDS])


def run(quick: bool) -> list[dict]:
    n, d, k = (5000 if quick else 20_000), 64, 5
    rng = np.random.default_rng(0)
    real = rng.normal(size=(n, d)).astype(np.float32)
    # a generator 10% too wide: all four values well inside (0, 1)
    fake = (1.1 * rng.normal(size=(n, d))).astype(np.float32)
    load_before = os.getloadavg()
    with bc.PeakMemory() as m:
        ours = bc.time_jax(lambda: jc.metrics.prdc(real, fake, nearest_k=k), repeats=3)
    with bc.PeakMemory() as mref:
        ref = bc.time_host(lambda: reference_prdc(real, fake, k))
    load_after = os.getloadavg()
    values = np.array([float(v) for v in ours.out])
    err = float(np.max(np.abs(values - ref.out)))
    shown = ", ".join(f"{f} {v:.4f}" for f, v in zip(FIELDS, values, strict=True))
    return [bc.row("metrics.prdc (k = 5)", f"{n:,} x {n:,} points, d={d}, float32", ours,
                   reference="prdc package (compute_prdc)", ref=ref, goal="≥ 10×",
                   goal_value=10.0, peak_rss_mib=m.mib, max_err=err,
                   note=f"{shown}; reference peak {mref.mib:,.0f} MiB; load average "
                        f"{load_before[0]:.1f} before, {load_after[0]:.1f} after",
                   load_average_before=list(load_before),
                   load_average_after=list(load_after), reference_peak_rss_mib=mref.mib)]


if __name__ == "__main__":
    raise SystemExit(bc.script_main("prdc", run, __doc__))
