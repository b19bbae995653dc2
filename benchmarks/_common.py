"""Timing helpers shared by the benchmark scripts (not collected by pytest)."""

from __future__ import annotations

import json
import platform
import statistics
import time
from pathlib import Path

import jax

RESULTS = Path(__file__).resolve().parent / "results"


def block(out):
    """Blocks until every array in ``out`` is ready."""
    return jax.block_until_ready(out)


def time_jax(fn, *args, repeats: int = 3):
    """(first-call seconds minus steady median = compile estimate, steady median, output)."""
    t0 = time.perf_counter()
    out = block(fn(*args))
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = block(fn(*args))
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    return max(first - med, 0.0), med, out


def time_host(fn, *args, repeats: int = 1):
    """Median seconds of a host (numpy/scipy/sklearn) call, and its output."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def environment() -> dict:
    import os

    return dict(jax=jax.__version__, backend=jax.default_backend(),
                devices=[str(d) for d in jax.devices()], cpus=os.cpu_count(),
                load_average=os.getloadavg(), python=platform.python_version(),
                x64=bool(jax.config.jax_enable_x64))


def report(name: str, rows: list[dict], extra: dict | None = None) -> None:
    """Prints a table (ratio = reference seconds / jaxcollapse seconds) and writes JSON."""
    head = f"{'method':<44} {'compile s':>10} {'steady s':>10} {'speed-up':>9} {'max rel err':>12}"
    print(head)
    print("-" * len(head))
    for r in rows:
        comp = "-" if r.get("compile_s") is None else f"{r['compile_s']:.3f}"
        err = "-" if r.get("max_rel_err") is None else f"{r['max_rel_err']:.2e}"
        ratio = "-" if r.get("speedup") is None else f"{r['speedup']:.1f}x"
        print(f"{r['method']:<44} {comp:>10} {r['steady_s']:>10.3f} {ratio:>9} {err:>12}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = dict(benchmark=name, environment=environment(), rows=rows, **(extra or {}))
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
