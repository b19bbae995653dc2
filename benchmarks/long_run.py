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

Stores: every disk run is made twice, once per ``store_format`` ("npz": one .npz a
chunk; "zarr": a zarr v3 group, one array per metric and parameter leaf), in the same
invocation, one after the other. Write: the whole ``simulate`` call (compute and
store) and, apart, the seconds spent in the store's ``write`` (chunk files, carry,
metadata, manifest; timed by wrapping the writer's method). Read: every metric read
back chunk by chunk (``per_generation``, verified against the checksums) in a fresh
``load_run``. Wall and CPU seconds of each, and the load average when the child ran
(other jobs on the machine distort wall time). Goal: zarr/npz <= 1.2 for the store's
write time and for the read time.

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
CHAINS, CHUNK = 64, 1000


def _timed_writes(totals: dict):
    """Wraps the store writers' ``write`` so that their seconds add up in ``totals``
    (instrumentation of this benchmark only)."""
    from jaxcollapse import _store_zarr, store

    for cls in (store.ChunkWriter, _store_zarr.ZarrChunkWriter):
        def write(self, *a, _orig=cls.write, **kw):
            t, c = time.perf_counter(), time.process_time()
            _orig(self, *a, **kw)
            totals["write_s"] += time.perf_counter() - t
            totals["write_cpu_s"] += time.process_time() - c
        cls.write = write


def child(generations: int, chains: int, chunk: int, keep: bool,
          store: str = "npz") -> dict:
    """One run in this (fresh) process; returns timings and the peak memory."""
    import jax

    import jaxcollapse as jc

    fam = jc.Gaussian(dim=1, method="exact")
    stamps = []
    totals = dict(write_s=0.0, write_cpu_s=0.0)
    _timed_writes(totals)
    tmp = tempfile.mkdtemp(prefix="jc-long-run-")
    read = {}
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=generations,
                          n_samples=100, n_chains=chains, chunk_size=chunk,
                          checkpoint_dir=None if keep else tmp, keep=keep,
                          store_format=None if keep else store,
                          on_chunk=lambda a, b, c: stamps.append(time.perf_counter()))
        if keep:
            jax.block_until_ready(res)
        else:  # a reduction read back chunk by chunk, as a long-run user would
            res.per_generation("w2sq")
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if not keep:  # every metric read back, chunk by chunk, by a fresh reader
            t, c = time.perf_counter(), time.process_time()
            again = jc.load_run(tmp)
            for name in again.metric_names:
                again.per_generation(name)
            read = dict(read_s=time.perf_counter() - t, read_cpu_s=time.process_time() - c)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    steps = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
    later = statistics.median(steps[1:]) if len(steps) > 1 else 0.0
    compile_s = max(0.0, steps[0] - later)  # the first chunk also compiles
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return dict(compile_s=compile_s, steady_s=wall - compile_s, cpu_s=cpu,
                peak_rss_mb=peak_kb / 1024, load_avg=os.getloadavg()[0], **totals, **read)


def _spawn(generations, chains, chunk, keep, store="npz") -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(generations),
           "--chains", str(chains), "--chunk", str(chunk), "--store", store] + (
               ["--keep"] if keep else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    if proc.returncode != 0:
        raise RuntimeError(f"child run failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(quick: bool = False) -> list[dict]:
    """Rows of the common benchmark table (see ``_common.COLUMNS``)."""
    chains, chunk = CHAINS, CHUNK
    sizes = QUICK_SIZES if quick else SIZES
    res = {}
    for g in sizes:  # npz and zarr one after the other, so that both see the same load
        for store in ("npz", "zarr"):
            res[store, g] = _spawn(g, chains, chunk, False, store)
    for g in sizes:
        res["memory", g] = _spawn(g, chains, chunk, True)
    rows = []
    for (store, g), r in res.items():
        t = bc.Timing(r["compile_s"], r["steady_s"], r["cpu_s"], None)
        disk = store != "memory"
        base = res[store if disk else "npz", sizes[0]]["peak_rss_mb"]
        limit = 1.1 * base + 32
        size = f"{chains} chains × {g:,} gens, chunks of {chunk:,}"
        note = (f"peak {r['peak_rss_mb'] / base:.2f}× the 10³-generation disk peak; "
                f"load average {r['load_avg']:.1f}")
        if disk:
            note += (f"; store write {r['write_s']:.2f} s wall, {r['write_cpu_s']:.2f} s "
                     f"CPU; read back {r['read_s']:.2f} s wall, {r['read_cpu_s']:.2f} s CPU")
        rows.append(bc.row(
            "chunked simulate, " + (f"streamed to disk, store_format={store!r}" if disk
                                    else "held in memory (keep=True)"),
            size, t, goal=f"peak ≤ 1.1 × peak at {sizes[0]:,} gens + 32 MB" if disk else
            "reference (grows with generations)",
            goal_value=None, met=bool(r["peak_rss_mb"] <= limit) if disk else None,
            peak_rss_mib=r["peak_rss_mb"], note=note,
            **{k: r.get(k) for k in ("write_s", "write_cpu_s", "read_s", "read_cpu_s",
                                     "load_avg")}))
    for g in sizes:  # throughput: zarr against npz, same sizes, same invocation
        z, n = res["zarr", g], res["npz", g]
        for what in ("write", "read"):
            ratio = z[f"{what}_s"] / n[f"{what}_s"]
            cpu_ratio = z[f"{what}_cpu_s"] / max(n[f"{what}_cpu_s"], 1e-9)
            rows.append(bc.row(
                f"zarr store {what}, against the npz store",
                f"{chains} chains × {g:,} gens, chunks of {chunk:,}",
                bc.Timing(None, z[f"{what}_s"], z[f"{what}_cpu_s"], None),
                reference=f"npz store {what}",
                ref=bc.Timing(None, n[f"{what}_s"], n[f"{what}_cpu_s"], None),
                # the table's ratio is reference / ours, as everywhere: npz / zarr
                ratio=1 / ratio, goal="zarr ≤ 1.2 × npz (wall): ratio ≥ 0.83",
                goal_value=None, met=bool(ratio <= 1.2),
                note=f"zarr/npz: wall {ratio:.2f}, CPU {cpu_ratio:.2f}; load average "
                     f"{z['load_avg']:.1f} (zarr), {n['load_avg']:.1f} (npz); whole run "
                     f"wall {z['steady_s'] + z['compile_s']:.1f} s (zarr), "
                     f"{n['steady_s'] + n['compile_s']:.1f} s (npz)"))
    return rows


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        ap = argparse.ArgumentParser()
        ap.add_argument("--child", type=int)
        ap.add_argument("--chains", type=int, default=64)
        ap.add_argument("--chunk", type=int, default=1000)
        ap.add_argument("--keep", action="store_true")
        ap.add_argument("--store", default="npz", choices=["npz", "zarr"])
        args = ap.parse_args()
        print(json.dumps(child(args.child, args.chains, args.chunk, args.keep, args.store)))
    else:
        raise SystemExit(bc.script_main("long_run", run, __doc__))
