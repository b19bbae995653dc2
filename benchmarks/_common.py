"""Shared helpers of the benchmark scripts: timing, peak memory, rows, tables, JSON.

Every script ``benchmarks/NAME.py`` defines ``run(quick: bool) -> list[dict]`` whose
rows are built by :func:`row` (the keys of :data:`COLUMNS`, in that order), and ends
with ``raise SystemExit(script_main("NAME", run, __doc__))``. ``python -m benchmarks``
runs every script in its own process and gathers the rows into one report.

Timing: the first call of a jitted function includes compilation; ``compile_s`` is
that first call minus the steady-state median, ``steady_s`` the median of the
repeats, ``cpu_s`` the median process CPU time (all threads) of the same repeats,
which other jobs sharing the machine distort less than wall time. Every output is
blocked on.

Memory: ``peak_rss_mib`` is the process's peak resident set while the case ran.
The kernel's high-water mark (``VmHWM``) is reset before the case
(``/proc/self/clear_refs``), so the figure is that case's own peak (the interpreter,
JAX and the data already resident included), not the script's.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax

from jaxcollapse.io import save_json

RESULTS = Path(__file__).resolve().parent / "results"

# The keys of every row, in table order. ``ratio`` is reference seconds / jaxcollapse
# seconds (a speed-up) unless the row's goal says otherwise (e.g. a fraction of peak).
COLUMNS = ("case", "size", "compile_s", "steady_s", "cpu_s", "reference", "reference_s",
           "reference_cpu_s", "ratio", "cpu_ratio", "goal", "goal_value", "met",
           "peak_rss_mib", "max_err", "note")


class Timing(NamedTuple):
    """Seconds of one timed case and the output of its last call."""

    compile_s: float | None
    steady_s: float
    cpu_s: float
    out: Any


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _repeat(fn, repeats):
    times, cpus, out = [], [], None
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), _cpu()
        out = jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    return statistics.median(times), statistics.median(cpus), out


def time_jax(fn, repeats: int = 3) -> Timing:
    """Times ``fn()`` (a compiled computation): a first call that compiles, then the
    median of ``repeats`` steady-state calls. ``fn`` may use a fresh key each call
    as long as shapes stay the same (no recompilation)."""
    t0 = time.perf_counter()
    jax.block_until_ready(fn())
    first = time.perf_counter() - t0
    steady, cpu, out = _repeat(fn, repeats)
    return Timing(max(first - steady, 0.0), steady, cpu, out)


def time_host(fn, repeats: int = 1) -> Timing:
    """Median wall and process CPU seconds of ``repeats`` calls of a host (NumPy,
    SciPy, scikit-learn) function ``fn()``; ``compile_s`` is None."""
    steady, cpu, out = _repeat(fn, repeats)
    return Timing(None, steady, cpu, out)


def scaled(t: Timing, factor: float) -> Timing:
    """``t`` with its times multiplied by ``factor`` (a reference timed on a subset of
    independent, equal-cost units of work and scaled to all of them)."""
    return t._replace(steady_s=t.steady_s * factor, cpu_s=t.cpu_s * factor)


# ----------------------------------------------------------------------------- memory

def _read_hwm_mib() -> float | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return float(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def reset_peak_rss() -> bool:
    """Resets the process's peak-RSS mark to its current RSS (Linux); False where
    the kernel does not allow it (then the peak is the process's since start)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float:
    """The process's peak resident set in MiB (since start or the last reset)."""
    hwm = _read_hwm_mib()
    if hwm is not None:
        return hwm
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / (1024 * 1024) if sys.platform == "darwin" else maxrss / 1024


class PeakMemory:
    """``with PeakMemory() as m: ...`` then ``m.mib`` is the peak RSS of the block."""

    def __enter__(self):
        reset_peak_rss()
        self.mib = None
        return self

    def __exit__(self, *exc):
        self.mib = peak_rss_mib()
        return False


# ------------------------------------------------------------------------------- rows

def row(case: str, size: str, ours: Timing | None, *, reference: str | None = None,
        ref: Timing | None = None, ratio: float | None = None, goal: str = "",
        goal_value: float | None = None, met: bool | None = None,
        peak_rss_mib: float | None = None, max_err: float | None = None,
        note: str = "", lower_is_better: bool = False, **extra) -> dict:
    """One result row with the keys of :data:`COLUMNS` (plus ``extra``).

    ``ratio`` defaults to ``ref.steady_s / ours.steady_s`` (a speed-up) and ``met`` to
    ``ratio >= goal_value``; with ``lower_is_better`` (a cost relative to the
    reference) to ``ours.steady_s / ref.steady_s`` and ``ratio <= goal_value``. The CPU
    ratio is always taken in the same direction as the wall ratio.
    """
    if ratio is None and ours is not None and ref is not None:
        ratio = (ours.steady_s / ref.steady_s if lower_is_better
                 else ref.steady_s / ours.steady_s)
    cpu_ratio = None
    if ours is not None and ref is not None and ours.cpu_s > 0 and ref.cpu_s > 0:
        cpu_ratio = ours.cpu_s / ref.cpu_s if lower_is_better else ref.cpu_s / ours.cpu_s
    if met is None and goal_value is not None and ratio is not None:
        met = bool(ratio <= goal_value if lower_is_better else ratio >= goal_value)
    r = dict(case=case, size=size,
             compile_s=None if ours is None else ours.compile_s,
             steady_s=None if ours is None else ours.steady_s,
             cpu_s=None if ours is None else ours.cpu_s,
             reference=reference, reference_s=None if ref is None else ref.steady_s,
             reference_cpu_s=None if ref is None else ref.cpu_s, ratio=ratio,
             cpu_ratio=cpu_ratio, goal=goal, goal_value=goal_value, met=met,
             peak_rss_mib=peak_rss_mib, max_err=max_err, note=note)
    if extra:
        r["extra"] = extra
    return r


def _fmt(key: str, v: Any) -> str:
    if v is None or v == "":
        return "—" if key in ("met", "ratio") else ""
    if key == "met":
        return "yes" if v else "**no**"
    if key in ("ratio", "cpu_ratio"):
        return f"{v:.3g}×" if v < 100 else f"{v:,.0f}×"
    if key.endswith("_s") and isinstance(v, float):
        return f"{v:.3g}" if v < 100 else f"{v:,.0f}"
    if key == "peak_rss_mib":
        return f"{v:,.0f}"
    if key == "max_err":
        return f"{v:.1e}"
    if key == "goal_value":
        return f"{v:g}"
    return str(v)


# The columns of the printed / Markdown tables (goal_value and the reference's CPU
# time stay in the JSON).
TABLE = (("benchmark", "benchmark"), ("case", "case"), ("size", "size"),
         ("compile_s", "compile s"), ("steady_s", "steady s"), ("cpu_s", "cpu s"),
         ("reference", "reference"), ("reference_s", "ref s"), ("ratio", "ratio"),
         ("cpu_ratio", "cpu ratio"), ("goal", "goal"), ("met", "met"),
         ("peak_rss_mib", "peak MiB"), ("max_err", "max err"), ("note", "note"))


def format_table(rows: list[dict], markdown: bool = False) -> str:
    """The rows as a Markdown table or as aligned plain text."""
    cols = [(k, h) for k, h in TABLE if any(k in r for r in rows)]
    cells = [[_fmt(k, r.get(k)) for k, _ in cols] for r in rows]
    if markdown:
        def esc(s):
            return s.replace("|", "\\|")
        lines = ["| " + " | ".join(h for _, h in cols) + " |",
                 "|" + "|".join("---" for _ in cols) + "|"]
        lines += ["| " + " | ".join(esc(c) for c in cr) + " |" for cr in cells]
        return "\n".join(lines)
    widths = [max(len(h), *(len(cr[i]) for cr in cells)) if cells else len(h)
              for i, (_, h) in enumerate(cols)]
    lines = [" | ".join(h.ljust(w) for (_, h), w in zip(cols, widths, strict=True)),
             "-+-".join("-" * w for w in widths)]
    lines += [" | ".join(c.ljust(w) for c, w in zip(cr, widths, strict=True)) for cr in cells]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- machine

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> dict:
    """Where the numbers came from: CPU model, cores, backend, device, versions, load."""
    dev = jax.devices()[0]
    return dict(cpu=cpu_model(), cores=os.cpu_count(), backend=jax.default_backend(),
                device=getattr(dev, "device_kind", str(dev)), n_devices=jax.device_count(),
                jax=jax.__version__, python=platform.python_version(),
                platform=platform.platform(), load_average=list(os.getloadavg()),
                date=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"))


# ------------------------------------------------------------------------ script main

def script_main(name: str, run, doc: str | None, argv: list[str] | None = None) -> int:
    """The command line of every benchmark script: ``[--quick] [--json PATH]``.

    Runs ``run(quick)``, prints the table and writes ``{benchmark, quick, machine,
    seconds, rows}`` as JSON to PATH (default ``benchmarks/results/NAME.json``).
    """
    ap = argparse.ArgumentParser(prog=f"benchmarks/{name}.py",
                                 description=(doc or name).strip().splitlines()[0])
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes (the whole suite in under 10 minutes on 2 cores)")
    ap.add_argument("--json", type=Path, default=RESULTS / f"{name}.json",
                    help="where to write the rows (default: %(default)s)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    rows = run(args.quick)
    seconds = time.perf_counter() - t0
    for r in rows:
        missing = [c for c in COLUMNS if c not in r]
        if missing:
            raise RuntimeError(f"{name}: row {r.get('case')!r} lacks columns {missing}")
    print(format_table([dict(r, benchmark=name) for r in rows]))
    path = save_json(args.json, dict(benchmark=name, quick=args.quick, machine=machine(),
                                     seconds=seconds, rows=rows))
    print(f"wrote {path} ({seconds:.0f} s)")
    return 0
