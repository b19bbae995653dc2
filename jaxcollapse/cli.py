"""The ``jaxcollapse`` command line.

``jaxcollapse run NAME [flags]`` runs one experiment. Every experiment module in
:data:`RUNNERS` defines ``DESCRIPTION`` (one line), ``EXAMPLES`` (help text),
``DEFAULTS`` (defaults of the shared flags), ``add_arguments(parser)`` for its own
flags and ``run(args) -> int``. Shared flags: ``--seed --chains --generations
--samples --regime --alpha --out --x64 --quick``. Bad arguments exit with code 2
and a one-line message.

Example:
    >>> main(["run", "gaussian", "--samples", "1"])
    Traceback (most recent call last):
    ...
    SystemExit: 2
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# name -> module implementing the runner (imported lazily so --help stays fast).
RUNNERS: dict[str, str] = {
    "gaussian": "jaxcollapse.experiments.gaussian",
    "kde": "jaxcollapse.experiments.kde",
    "gmm": "jaxcollapse.experiments.gmm",
    "categorical": "jaxcollapse.experiments.categorical",
    "regression": "jaxcollapse.experiments.regression",
    "decompose": "jaxcollapse.experiments.decompose",
    "lm": "jaxcollapse.experiments.lm",
    "vae": "jaxcollapse.experiments.vae",
}

SHARED_FLAGS = ("seed", "chains", "generations", "samples", "regime", "alpha", "out")


class UsageError(ValueError):
    """A bad command-line value; reported on one line with exit code 2."""


def _add_shared(p: argparse.ArgumentParser, defaults: dict) -> None:
    p.add_argument("--seed", type=int, default=defaults.get("seed", 0),
                   help="PRNG seed (default: %(default)s)")
    p.add_argument("--chains", type=int, default=defaults.get("chains", 1024),
                   help="independent chains (default: %(default)s)")
    p.add_argument("--generations", type=int, default=defaults.get("generations", 100),
                   help="generations after generation 0 (default: %(default)s)")
    p.add_argument("--samples", type=int, default=defaults.get("samples", 100),
                   help="training-set size M per generation (default: %(default)s)")
    p.add_argument("--regime", default=defaults.get("regime", "replace"),
                   choices=defaults.get("regimes",
                                        ["replace", "accumulate", "accumulate-subsample",
                                         "mix"]),
                   help="data regime (default: %(default)s)")
    p.add_argument("--alpha", type=float, nargs="+", default=defaults.get("alpha", [0.1]),
                   help="human-data fraction(s) for --regime mix (default: %(default)s)")
    p.add_argument("--out", default=defaults.get("out", None),
                   help="output directory for JSON/npz results (default: runs/<name>)")
    p.add_argument("--x64", action="store_true", help="compute in float64")
    p.add_argument("--quick", action="store_true", help="a small, fast configuration")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--coordinator", default=None, metavar="HOST:PORT",
                   help="multi-process run: process 0's coordinator address "
                        "(or $JAXCOLLAPSE_COORDINATOR)")
    p.add_argument("--num-processes", type=int, default=None, metavar="N",
                   help="multi-process run: number of processes (or "
                        "$JAXCOLLAPSE_NUM_PROCESSES)")
    p.add_argument("--process-id", type=int, default=None, metavar="I",
                   help="multi-process run: this process's id in 0..N-1 (or "
                        "$JAXCOLLAPSE_PROCESS_ID)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="jaxcollapse",
        description="Model collapse under recursive training: simulations beside theory.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run 'jaxcollapse run NAME --help' for an experiment's flags and examples.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run an experiment")
    run_sub = run_p.add_subparsers(dest="experiment", required=True, metavar="NAME")
    for name, modname in RUNNERS.items():
        mod = importlib.import_module(modname)
        p = run_sub.add_parser(name, help=mod.DESCRIPTION, description=mod.DESCRIPTION,
                               epilog=getattr(mod, "EXAMPLES", None),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_shared(p, getattr(mod, "DEFAULTS", {}))
        mod.add_arguments(p)
        p.set_defaults(_runner=mod, _name=name)
    fig_p = sub.add_parser("figures", help="render the paper figures (from a source checkout)")
    fig_p.add_argument("--quick", action="store_true", help="small settings (minutes in all)")
    fig_p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                       help="figures to render (e.g. fig01)")
    fig_p.add_argument("--out", default=None, help="output directory")
    fig_p.add_argument("--seed", type=int, default=0)
    return parser


def _figures(args) -> int:
    import subprocess
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "paper_figures" / "run_all.py"
    if not script.exists():
        print("jaxcollapse figures: error: the figure scripts live in a source checkout "
              "(paper_figures/); install with 'pip install -e .' from one", file=sys.stderr)
        return 2
    cmd = [sys.executable, str(script), "--seed", str(args.seed)]
    cmd += ["--quick"] if args.quick else []
    cmd += ["--only", *args.only] if args.only else []
    cmd += ["--out", args.out] if args.out else []
    return subprocess.run(cmd).returncode


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "figures":
        return _figures(args)
    if args.command == "run":
        if args.x64:
            import jax

            jax.config.update("jax_enable_x64", True)
        if args.out is None:
            args.out = f"runs/{args._name}"
        try:
            return int(args._runner.run(args) or 0)
        except (UsageError, ValueError, TypeError, FileNotFoundError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"jaxcollapse run {args._name}: error: {msg}", file=sys.stderr)
            raise SystemExit(2) from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
