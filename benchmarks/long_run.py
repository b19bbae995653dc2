"""Long runs: peak process memory of a chunked run stays flat as generations grow.

Each case runs in a fresh subprocess (so ``ru_maxrss`` is that run's own peak): a
1-D Gaussian (exact path, 5 metrics and the parameters saved), 64 chains, chunks of
1,000 generations, at 10^3, 10^4 and 10^5 generations. "disk" streams every chunk
to a checkpoint directory and keeps nothing in memory (``checkpoint_dir=...,
keep=False``); "memory" is the ordinary chunked run returning everything in memory
(no checkpoint directory), the reference a user would otherwise get, whose peak
grows with the generations. compile_s is the first chunk's time minus the median
chunk time (at 10^3 generations the only chunk: all of it).
Goal: the disk run's peak at the largest size is within 10% (+ 32 MB) of its peak
at 10^3 generations.

    python benchmarks/long_run.py [--quick] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as bc  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (1_000, 10_000)


def child(generations: int, chains: int, chunk: int, keep: bool) -> dict:
    """One run in this (fresh) process; returns timings and the peak memory."""
    import jax

    import jaxcollapse as jc

    fam = jc.Gaussian(dim=1, method="exact")
    stamps = []
    tmp = tempfile.mkdtemp(prefix="jc-long-run-")
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=generations,
                          n_samples=100, n_chains=chains, chunk_size=chunk,
                          checkpoint_dir=None if keep else tmp, keep=keep,
                          on_chunk=lambda a, b, c: stamps.append(time.perf_counter()))
        if keep:
            jax.block_until_ready(res)
        else:  # a reduction read back chunk by chunk, as a long-run user would
            res.per_generation("w2sq")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
    later = statistics.median(steps[1:]) if len(steps) > 1 else 0.0
    compile_s = max(0.0, steps[0] - later)  # the first chunk also compiles
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return dict(compile_s=compile_s, steady_s=wall - compile_s, cpu_s=cpu,
                peak_rss_mb=peak_kb / 1024)


def _spawn(generations, chains, chunk, keep) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(generations),
           "--chains", str(chains), "--chunk", str(chunk)] + (["--keep"] if keep else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    if proc.returncode != 0:
        raise RuntimeError(f"child run failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False, chains: int = 64, chunk: int = 1000) -> list[dict]:
    """Rows of the common benchmark table (see ``_common.COLUMNS``)."""
    sizes = QUICK_SIZES if quick else SIZES
    res = {(keep, g): _spawn(g, chains, chunk, keep) for keep in (False, True) for g in sizes}
    base = res[False, sizes[0]]["peak_rss_mb"]
    limit = 1.1 * base + 32
    rows = []
    for (keep, g), r in res.items():
        t = bc.Timing(r["compile_s"], r["steady_s"], r["cpu_s"], None)
        disk = not keep
        rows.append(bc.row(
            f"chunked simulate, {'held in memory (keep=True)' if keep else 'streamed to disk'}",
            f"{chains} chains × {g:,} gens, chunks of {chunk:,}", t,
            goal=f"peak ≤ 1.1 × peak at {sizes[0]:,} gens + 32 MB" if disk else
            "reference (grows with generations)",
            goal_value=None, met=bool(r["peak_rss_mb"] <= limit) if disk else None,
            peak_rss_mib=r["peak_rss_mb"],
            note=f"peak {r['peak_rss_mb'] / base:.2f}× the 10³-generation disk peak"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        ap = argparse.ArgumentParser()
        ap.add_argument("--child", type=int)
        ap.add_argument("--chains", type=int, default=64)
        ap.add_argument("--chunk", type=int, default=1000)
        ap.add_argument("--keep", action="store_true")
        args = ap.parse_args()
        print(json.dumps(child(args.child, args.chains, args.chunk, args.keep)))
    else:
        raise SystemExit(bc.script_main("long_run", run, __doc__))
