"""Shared helpers for the benchmark scripts (timing, tables, JSON output)."""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import time
from pathlib import Path

import jax

RESULTS = Path(__file__).resolve().parent / "results"


def block(x):
    return jax.block_until_ready(x)


def time_call(fn, repeats=5):
    """Returns (first_call_seconds, median_steady_seconds, median_steady_cpu_seconds).
    The first call includes compilation; compile time is reported as first - median.
    Process CPU time (all threads) is robust to other jobs sharing the machine."""
    t0 = time.perf_counter()
    block(fn())
    first = time.perf_counter() - t0
    times, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        block(fn())
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return first, statistics.median(times), statistics.median(cpus)


def time_host(fn, repeats=3):
    """(median wall seconds, median process CPU seconds) of a host call."""
    times, cpus = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return statistics.median(times), statistics.median(cpus)


def machine():
    dev = jax.devices()[0]
    return dict(platform=platform.platform(), processor=platform.processor(),
                cpus=os.cpu_count(), backend=jax.default_backend(),
                device=getattr(dev, "device_kind", str(dev)), jax=jax.__version__,
                python=platform.python_version(),
                date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


def write(name, payload):
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    payload = dict(payload, machine=machine())
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path


def table(rows, columns):
    widths = [max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns]
    line = " | ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))
    out = [line, "-+-".join("-" * w for w in widths)]
    for r in rows:
        out.append(" | ".join(str(r.get(c, "")).ljust(w)
                              for c, w in zip(columns, widths, strict=True)))
    return "\n".join(out)
