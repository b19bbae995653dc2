"""Runs the benchmark suite and writes one report.

    python -m benchmarks [--quick] [--only NAME ...] [--out DIR] [--readme PATH]

Every script runs in its own subprocess (so its peak memory is its own and one
failure does not stop the rest). The rows of all scripts go to
``DIR/<UTC date>.json`` (with the machine: CPU model, cores, backend, device kind,
JAX version, load average) and ``DIR/<UTC date>.md`` (a Markdown table); a quick run
adds ``-quick`` to the name and a run on an accelerator adds the backend (e.g.
``2026-11-24-gpu.json``). With ``--only``, the rows of the named scripts replace
theirs in that day's file and the others are kept.

A full CPU run of the whole suite also replaces the table between
``<!-- bench:start -->`` and ``<!-- bench:end -->`` in the README with the new
table and the machine line; ``--readme PATH`` replaces it in PATH for any CPU run,
``--no-readme`` never. Accelerator runs never replace the (CPU) README table.

Exit status: 0 when every script ran, 1 when one failed (its row says why), 2 on a
bad argument. Missed goals do not change it: they are results.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from jaxcollapse.io import atomic_write_bytes

from . import _common as bc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SCRIPTS = ("gaussian", "regimes", "kde", "mmd", "prdc", "gmm", "categorical", "regression",
           "lm", "vae",
           "scaling", "long_run", "steps", "grad")
SCRIPTS_DIR = HERE  # where run_script finds NAME.py (tests point it elsewhere)
START, END = "<!-- bench:start -->", "<!-- bench:end -->"


def _parser(prog: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog=prog, description=__doc__.splitlines()[0],
        epilog="examples:\n  python -m benchmarks --quick\n"
               "  python -m benchmarks --only kde mmd --out /tmp/bench",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smaller sizes: the whole suite in under 10 minutes on 2 cores")
    ap.add_argument("--only", nargs="+", metavar="NAME",
                    help=f"run only these scripts (of {', '.join(SCRIPTS)})")
    ap.add_argument("--out", type=Path, default=bc.RESULTS,
                    help="folder of the report files (default: benchmarks/results)")
    readme = ap.add_mutually_exclusive_group()
    readme.add_argument("--readme", type=Path, metavar="PATH",
                        help="replace the table between the bench markers in PATH")
    readme.add_argument("--no-readme", action="store_true",
                        help="never replace a README table")
    ap.add_argument("--timeout", type=float, default=None,
                    help="seconds allowed to each script (default 600 quick, 3600 full)")
    return ap


def _env() -> dict:
    env = dict(os.environ)
    paths = [str(ROOT)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def probe_machine() -> dict:
    """The machine as a fresh process sees it (the runner itself never starts a JAX
    backend: on a GPU that would take the memory its scripts need)."""
    code = "import json, _common; print(json.dumps(_common.machine()))"
    out = subprocess.run([sys.executable, "-c", code], cwd=HERE, env=_env(),
                         capture_output=True, text=True, check=True, timeout=300)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _failure(name: str, why: str) -> dict:
    r = bc.row("FAILED", "", None, note=why)
    return dict(r, benchmark=name)


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_script(name: str, quick: bool, tmp: Path, timeout: float,
               scripts_dir: Path | None = None) -> tuple[list[dict], dict]:
    """Runs ``scripts_dir/name.py`` in a subprocess; its rows (each with ``benchmark``)
    and ``{seconds, returncode}``; a failure is one row saying why."""
    out = tmp / f"{name}.json"
    cmd = [sys.executable, str((scripts_dir or SCRIPTS_DIR) / f"{name}.py"), "--json", str(out)]
    cmd += ["--quick"] if quick else []
    t0, c0 = time.perf_counter(), _children_cpu()
    # its own session, so that a timeout also ends the processes it started
    with subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, start_new_session=True) as proc:
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            stdout, _ = proc.communicate()
            why = f"timed out after {timeout:.0f} s"
            print(f"{stdout[-3000:]}\n{name}: {why}", flush=True)
            return [_failure(name, why)], dict(seconds=time.perf_counter() - t0,
                                               returncode=None, error=why)
        except BaseException:  # e.g. Ctrl-C: do not leave the script running
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    sec, cpu = time.perf_counter() - t0, _children_cpu() - c0
    print(stdout, end="", flush=True)
    if proc.returncode == 0 and out.exists():
        rows = [dict(r, benchmark=name) for r in json.loads(out.read_text())["rows"]]
        return rows, dict(seconds=sec, cpu_s=cpu, returncode=0)
    tail = [ln for ln in stderr.strip().splitlines() if ln.strip()]
    why = f"exit {proc.returncode}: {tail[-1] if tail else 'no error output'}"
    print(stderr[-4000:], file=sys.stderr, flush=True)
    return [_failure(name, why)], dict(seconds=sec, cpu_s=cpu, returncode=proc.returncode,
                                       error=why)


def machine_line(machine: dict, quick: bool) -> str:
    load = machine.get("load_average") or []
    parts = [f"{machine.get('date', '')[:16].replace('T', ' ')} UTC",
             f"{machine.get('cpu', '?')} ({machine.get('cores', '?')} cores)",
             f"backend {machine.get('backend', '?')} ({machine.get('device', '?')})",
             f"jax {machine.get('jax', '?')}",
             "load average " + " / ".join(f"{x:.1f}" for x in load) + " at start"]
    if quick:
        parts.append("`--quick` sizes")
    return "Measured " + " · ".join(parts) + "."


def markdown_report(report: dict) -> str:
    lines = [f"# Benchmarks {report['date'][:10]}", "",
             machine_line(report["machine"], report["quick"]), "",
             bc.format_table(report["rows"], markdown=True), ""]
    failed = {k: v["error"] for k, v in report["scripts"].items() if v.get("error")}
    if failed:
        lines += ["Failed: " + "; ".join(f"`{k}` ({v})" for k, v in failed.items()), ""]
    lines += ["Ratio: reference seconds / jaxcollapse seconds (a speed-up) unless the goal "
              "says otherwise; cpu ratio: the same in process CPU seconds; peak MiB: the "
              "process's peak RSS while the case ran; max err: see each script's docstring.",
              ""]
    return "\n".join(lines)


def replace_between_markers(text: str, block: str) -> str:
    """``text`` with what lies between the bench markers replaced by ``block``."""
    i, j = text.find(START), text.find(END)
    if i < 0 or j < 0 or j < i:
        raise ValueError(f"README needs the markers {START} and {END}, in that order")
    return text[:i + len(START)] + "\n" + block.strip() + "\n" + text[j:]


def main(argv: list[str] | None = None, prog: str = "python -m benchmarks") -> int:
    """Runs the suite (see the module docstring); returns the exit status.

    ``prog`` names the command in messages (e.g. ``"jaxcollapse bench"``).
    """
    ap = _parser(prog)
    try:
        args = ap.parse_args(argv)
    except SystemExit as e:  # argparse has printed why
        return int(e.code or 0)
    names = list(args.only or SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        print(f"{prog}: error: unknown benchmark {', '.join(map(repr, unknown))} "
              f"in --only; choose from {', '.join(SCRIPTS)}", file=sys.stderr)
        return 2
    timeout = args.timeout or (600.0 if args.quick else 3600.0)

    machine = probe_machine()
    backend = machine["backend"]
    start = datetime.datetime.now(datetime.UTC)
    stem = start.strftime("%Y-%m-%d") + ("-quick" if args.quick else "") + \
        ("" if backend == "cpu" else f"-{backend}")
    rows, scripts = [], {}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        for k, name in enumerate(names, 1):
            print(f"[{k}/{len(names)}] {name}{' --quick' if args.quick else ''}", flush=True)
            r, info = run_script(name, args.quick, Path(tmp), timeout)
            rows += r
            scripts[name] = info
            print(f"[{k}/{len(names)}] {name}: "
                  f"{'ok' if info['returncode'] == 0 else 'FAILED'} ({info['seconds']:.0f} s, "
                  f"{info.get('cpu_s', 0):.0f} CPU s)",
                  flush=True)
    machine["load_average_end"] = list(os.getloadavg())
    report = dict(date=start.isoformat(timespec="seconds"), quick=args.quick,
                  seconds=time.perf_counter() - t0,
                  cpu_s=sum(v.get("cpu_s", 0.0) for v in scripts.values()), machine=machine,
                  columns=["benchmark", *bc.COLUMNS], scripts=scripts, rows=rows)

    json_path, md_path = args.out / f"{stem}.json", args.out / f"{stem}.md"
    if args.only and json_path.exists():
        old = json.loads(json_path.read_text())
        kept = [r for r in old.get("rows", []) if r.get("benchmark") not in names]
        report["rows"] = sorted(kept + rows, key=lambda r: SCRIPTS.index(r["benchmark"])
                                if r.get("benchmark") in SCRIPTS else len(SCRIPTS))
        report["scripts"] = {**{k: v for k, v in old.get("scripts", {}).items()
                                if k not in names}, **scripts}
    bc.save_json(json_path, report)
    atomic_write_bytes(md_path, markdown_report(report).encode())
    print(f"wrote {json_path} and {md_path} ({report['seconds']:.0f} s wall, "
          f"{report['cpu_s']:.0f} s CPU of the scripts)")

    readme = args.readme
    if readme is None and not (args.no_readme or args.quick or args.only):
        readme = ROOT / "README.md"
    if readme is not None and not args.no_readme:
        if backend != "cpu":
            print(f"not replacing the README table: this is a {backend} run (it is in "
                  f"{json_path.name})")
        else:
            try:
                shown = json_path.resolve().relative_to(readme.resolve().parent)
            except ValueError:
                shown = json_path
            block = "\n".join([machine_line(machine, args.quick) + f" Full results: "
                               f"`{shown}`.", "",
                               bc.format_table(report["rows"], markdown=True)])
            readme.write_text(replace_between_markers(readme.read_text(), block))
            print(f"replaced the benchmark table in {readme}")
    return 0 if all(v["returncode"] == 0 for v in scripts.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
