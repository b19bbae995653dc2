"""Renders every figure (or some): ``python paper_figures/run_all.py [--quick]
[--only NAME ...] [--out DIR]``; also ``jaxcollapse figures``.

Each figure script runs in its own process, so one failing figure does not stop
the others; the exit code is the number of failures.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def figures() -> list[str]:
    """Names of the figure scripts, in order."""
    return sorted(p.stem for p in HERE.glob("fig[0-9][0-9]_*.py"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small settings (minutes in all)")
    ap.add_argument("--only", nargs="+", default=None, metavar="NAME",
                    help="figures to render (names or prefixes such as fig01)")
    ap.add_argument("--out", default=str(HERE / "out"))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    names = figures()
    if args.only:
        chosen = [n for n in names if any(n == o or n.startswith(o) for o in args.only)]
        unknown = [o for o in args.only if not any(n == o or n.startswith(o) for n in names)]
        if unknown:
            print(f"figures: error: unknown figure(s) {unknown}; available: {names}",
                  file=sys.stderr)
            return 2
        names = chosen
    failures = 0
    for name in names:
        cmd = [sys.executable, str(HERE / f"{name}.py"), "--out", args.out, "--seed",
               str(args.seed)] + (["--quick"] if args.quick else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd)
        status = "ok" if proc.returncode == 0 else f"FAILED ({proc.returncode})"
        print(f"[{name}] {status} in {time.perf_counter() - t0:.1f}s", flush=True)
        failures += proc.returncode != 0
    return failures


if __name__ == "__main__":
    sys.exit(main())
