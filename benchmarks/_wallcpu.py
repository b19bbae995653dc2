"""Timing helpers of the KDE, MMD and GMM benchmarks: wall and process CPU time."""

from __future__ import annotations

import json
import platform
import resource
import statistics
import time
from pathlib import Path

import jax

RESULTS = Path(__file__).resolve().parent / "results"


def block(out):
    """Blocks until every array in ``out`` is ready."""
    return jax.block_until_ready(out)


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def time_jax(fn, *args, repeats: int = 3):
    """(first-call seconds minus steady median = compile estimate, steady median, output).

    The median process CPU time of the steady calls is kept in ``LAST_CPU``.
    """
    global LAST_CPU
    t0 = time.perf_counter()
    out = block(fn(*args))
    first = time.perf_counter() - t0
    times, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu()
        out = block(fn(*args))
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    med = statistics.median(times)
    LAST_CPU = statistics.median(cpus)
    return max(first - med, 0.0), med, out


def time_host(fn, *args, repeats: int = 1):
    """Median seconds of a host (numpy/scipy/sklearn) call, and its output; the median
    process CPU time is kept in ``LAST_CPU``."""
    global LAST_CPU
    times, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu()
        out = fn(*args)
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    LAST_CPU = statistics.median(cpus)
    return statistics.median(times), out


LAST_CPU = 0.0


def environment() -> dict:
    import os

    return dict(jax=jax.__version__, backend=jax.default_backend(),
                devices=[str(d) for d in jax.devices()], cpus=os.cpu_count(),
                load_average=os.getloadavg(), python=platform.python_version(),
                x64=bool(jax.config.jax_enable_x64))


def report(name: str, rows: list[dict], extra: dict | None = None) -> None:
    """Prints a table and writes JSON. ``speedup`` = reference wall seconds / ours;
    ``cpu_speedup`` = the same in process CPU seconds, which a machine shared with
    other jobs distorts less (the load average is recorded too)."""
    head = (f"{'method':<44} {'compile s':>9} {'steady s':>9} {'cpu s':>8} {'speed-up':>9} "
            f"{'cpu sp-up':>9} {'max rel err':>11}")
    print(head)
    print("-" * len(head))
    for r in rows:
        comp = "-" if r.get("compile_s") is None else f"{r['compile_s']:.3f}"
        err = "-" if r.get("max_rel_err") is None else f"{r['max_rel_err']:.2e}"
        ratio = "-" if r.get("speedup") is None else f"{r['speedup']:.1f}x"
        cratio = "-" if r.get("cpu_speedup") is None else f"{r['cpu_speedup']:.1f}x"
        print(f"{r['method']:<44} {comp:>9} {r['steady_s']:>9.3f} {r.get('cpu_s', 0):>8.2f} "
              f"{ratio:>9} {cratio:>9} {err:>11}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    payload = dict(benchmark=name, environment=environment(), rows=rows, **(extra or {}))
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {path}")
