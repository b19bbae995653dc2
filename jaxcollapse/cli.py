"""The ``jaxcollapse`` command line.

``jaxcollapse run NAME [flags]`` runs one experiment. Every experiment module in
:data:`RUNNERS` defines ``DESCRIPTION`` (one line), ``EXAMPLES`` (help text),
``DEFAULTS`` (defaults of the shared flags), ``add_arguments(parser)`` for its own
flags and ``run(args) -> int``. Shared flags: ``--seed --chains --generations
--samples --regime --alpha --out --x64 --quick``; a shared flag that an experiment
does not use (:data:`NOT_USED`) is an error, not silently ignored.
The output folder is checked, marked and locked for the run
(:func:`jaxcollapse.experiments._common.output_folder`): a non-empty folder that
holds no jaxcollapse run needs ``--overwrite``, nothing the run did not write is
removed, and a second run on a folder in use is refused.
``jaxcollapse report DIR`` prints (``--plot FILE``: draws) a finished run;
``jaxcollapse figures`` and ``jaxcollapse bench`` run the figure scripts and the
benchmark suite of a source checkout. Bad arguments exit with code 2 and a
one-line message.

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

# Shared flags an experiment has no use for, with what to use instead. The learned
# generators run one model per seed and arm: their arms come from --alpha (human
# fractions) and --accumulate, their size from --preset.
NOT_USED: dict[str, dict[str, str]] = {
    "decompose": {"alpha": "decompose has no human-data mixing"},
    "categorical": {"alpha": "categorical runs replace or accumulate only"},
    "regression": {"alpha": "regression runs replace or accumulate only"},
    "lm": {"chains": "use --seeds", "samples": "the preset sets the data",
           "regime": "arms come from --alpha and --accumulate"},
    "vae": {"chains": "use --seeds", "samples": "the preset sets the data",
            "regime": "arms come from --alpha and --accumulate"},
}

# Experiments that run over several processes (jax.distributed; --coordinator,
# --num-processes, --process-id); the others refuse those flags.
MULTI_PROCESS = ("gaussian",)

EXAMPLES = """examples:
  jaxcollapse run gaussian                              # 4,096 chains x 1,000 generations
  jaxcollapse run gaussian --quick --out runs/g         # seconds
  jaxcollapse run kde --bandwidth silverman --regime mix --alpha 0.1
  jaxcollapse run lm --quick                            # the tiny LM preset, seconds
  jaxcollapse report runs/g                             # the table of a finished run
  jaxcollapse report runs/g --at 0 50 200 --plot g.png  # chosen generations, a figure
  jaxcollapse design weighted-fresh                     # the best loop design, +- SE
  jaxcollapse figures --quick                           # from a source checkout
  jaxcollapse bench --quick --only gaussian             # from a source checkout
"""


class UsageError(ValueError):
    """A bad command-line value; reported on one line with exit code 2.

    Example:
        >>> main(["run", "lm", "--chains", "4"])
        Traceback (most recent call last):
        ...
        SystemExit: 2
    """


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
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty --out that holds no jaxcollapse run (its "
                        "files are left alone; the run's own files are replaced)")
    p.add_argument("--x64", action="store_true", help="compute in float64")
    p.add_argument("--quick", action="store_true", help="a small, fast configuration")
    p.add_argument("--no-progress", "--quiet", action="store_true", dest="no_progress",
                   help="hide the progress bar (also hidden when stderr is not a terminal)")
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
    """The ``jaxcollapse`` argument parser (imports every experiment module).

    Example:
        >>> build_parser().parse_args(["report", "runs/g", "--at", "0", "10"]).at
        [0, 10]
    """
    parser = argparse.ArgumentParser(
        prog="jaxcollapse",
        description="Model collapse under recursive training: simulations beside theory.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EXAMPLES + "\nRun 'jaxcollapse run NAME --help' for an experiment's flags.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run_p = sub.add_parser("run", help="run an experiment",
                           description="Run one experiment; results go to --out as JSON "
                                       "and npz.",
                           epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    run_sub = run_p.add_subparsers(dest="experiment", required=True, metavar="NAME")
    for name, modname in RUNNERS.items():
        mod = importlib.import_module(modname)
        p = run_sub.add_parser(name, help=mod.DESCRIPTION, description=mod.DESCRIPTION,
                               epilog=getattr(mod, "EXAMPLES", None),
                               formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_shared(p, getattr(mod, "DEFAULTS", {}))
        mod.add_arguments(p)
        p.set_defaults(_runner=mod, _name=name, _parser=p)
    rep_p = sub.add_parser(
        "report", help="print (or plot) a finished run",
        description="Print the settings and the per-generation table (Monte Carlo beside "
                    "theory) of a directory written by 'jaxcollapse run NAME --out DIR'.",
        epilog="examples:\n  jaxcollapse report runs/gaussian\n"
               "  jaxcollapse report runs/gaussian --at 0 100 1000\n"
               "  jaxcollapse report runs/lm --plot lm.png        # needs matplotlib\n"
               "  jaxcollapse report runs/gaussian --format netcdf  # needs xarray\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    rep_p.add_argument("dir", metavar="DIR", help="a finished run directory")
    rep_p.add_argument("--at", type=int, nargs="+", default=None, metavar="GEN",
                       help="tabulate these generations from arrays.npz (mean and standard "
                            "error over chains) instead of the stored table")
    rep_p.add_argument("--plot", default=None, metavar="FILE",
                       help="also draw the metrics to FILE (.png, .pdf, .svg; needs the "
                            "'figures' extra: matplotlib)")
    rep_p.add_argument("--format", default=None, choices=("csv", "netcdf", "zarr"),
                       help="export the run instead of printing it: csv (long table), netcdf "
                            "or zarr (labelled arrays; needs the 'analysis' extra)")
    rep_p.add_argument("--output", default=None, metavar="FILE",
                       help="where --format writes (default DIR/results.csv, .nc or .zarr)")
    importlib.import_module("jaxcollapse.experiments.design").add_parser(sub)
    fig_p = sub.add_parser("figures", help="render the paper figures (from a source checkout)")
    fig_p.add_argument("--quick", action="store_true", help="small settings (minutes in all)")
    fig_p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                       help="figures to render (e.g. fig01)")
    fig_p.add_argument("--out", default=None, help="output directory")
    fig_p.add_argument("--seed", type=int, default=0)
    bench_p = sub.add_parser(
        "bench", help="run the benchmark suite (from a source checkout)",
        description="Run benchmarks/ of a source checkout (the current directory or the "
                    "one this package is installed from): python -m benchmarks. Other "
                    "flags of the suite (see python -m benchmarks --help) pass through.",
        epilog="examples:\n  jaxcollapse bench --quick\n"
               "  jaxcollapse bench --only gaussian kde --out /tmp/bench\n",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    bench_p.add_argument("--quick", action="store_true", help="small sizes (minutes in all)")
    bench_p.add_argument("--only", nargs="+", default=None, metavar="NAME",
                         help="benchmarks to run (e.g. gaussian kde)")
    bench_p.add_argument("--out", default=None, metavar="DIR",
                         help="where results go (default: the suite's own)")
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


def find_checkout(start=None):
    """The source checkout holding ``benchmarks/__main__.py``: ``start`` (default the
    current directory) or the folder this package was imported from; ``None`` if
    neither has it.

    Example:
        >>> import pathlib, tempfile
        >>> root = pathlib.Path(tempfile.mkdtemp()).resolve()
        >>> (root / "benchmarks").mkdir()
        >>> _ = (root / "benchmarks" / "__main__.py").write_text("def main(argv): return 0")
        >>> find_checkout(root) == root
        True
    """
    from pathlib import Path

    for root in (Path.cwd() if start is None else Path(start),
                 Path(__file__).resolve().parents[1]):
        if (root / "benchmarks" / "__main__.py").is_file():
            return root.resolve()
    return None


def _bench(args, extra: Sequence[str] = ()) -> int:
    root = find_checkout()
    if root is None:
        print("jaxcollapse bench: error: the benchmarks live in a source checkout "
              "(benchmarks/__main__.py); run from one or install with 'pip install -e .'",
              file=sys.stderr)
        return 2
    loaded = sys.modules.get("benchmarks")
    if loaded is not None and not str(getattr(loaded, "__file__", "")).startswith(str(root)):
        for name in [m for m in sys.modules if m == "benchmarks" or
                     m.startswith("benchmarks.")]:
            del sys.modules[name]  # another checkout's benchmarks: load this one's
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    suite = importlib.import_module("benchmarks.__main__")
    argv = ["--quick"] if args.quick else []
    argv += ["--only", *args.only] if args.only else []
    argv += ["--out", args.out] if args.out else []
    argv += list(extra)  # the suite's other flags (e.g. --timeout, --no-readme) pass through
    import inspect

    if "prog" in inspect.signature(suite.main).parameters:
        return int(suite.main(argv, prog="jaxcollapse bench") or 0)
    return int(suite.main(argv) or 0)


def _report(args) -> int:
    from pathlib import Path

    from jaxcollapse import _report as rp

    try:
        if args.format is not None or args.output is not None:
            print(f"export: {rp.export(args.dir, args.format, args.output)}")
            return 0
        kind, data = rp.load_run(args.dir)
        d = Path(args.dir)
        if kind == "summary":
            text = rp.report_summary(d, data, args.at)
        else:
            if args.at is not None:
                raise rp.ReportError("--at applies to Monte Carlo runs (summary.json); "
                                     "an lm/vae report shows every generation")
            text = rp.report_learned(d, data)
        print(text)
        if args.plot:
            if kind == "summary":
                rp.plot_summary(d, data, args.plot)
            else:
                rp.plot_learned(data, args.plot)
            print(f"plot: {args.plot}")
    except (rp.ReportError, OSError, ValueError, KeyError, TypeError, ImportError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        if isinstance(e, KeyError):
            msg = f"{args.dir} is not a complete jaxcollapse result (missing {msg})"
        print(f"jaxcollapse report: error: {msg}", file=sys.stderr)
        return 2
    return 0


def _check_shared(args) -> None:
    """Shared flags the experiment does not use, or contradictory ones, are errors."""
    p, name = args._parser, args._name
    given = {f for f in ("chains", "samples", "regime", "alpha")
             if getattr(args, f) != p.get_default(f)}
    for flag, why in NOT_USED.get(name, {}).items():
        if flag in given:
            raise UsageError(f"--{flag} does not apply to 'run {name}' ({why})")
    if name not in MULTI_PROCESS:
        for flag in ("coordinator", "num_processes", "process_id"):
            if getattr(args, flag, None) is not None:
                raise UsageError(f"--{flag.replace('_', '-')} does not apply to 'run {name}' "
                                 f"(multi-process runs: 'run {' / '.join(MULTI_PROCESS)}')")
    if name not in ("lm", "vae"):
        if "alpha" in given and args.regime != "mix":
            raise UsageError(f"--alpha applies to --regime mix only; got --regime "
                             f"{args.regime}")
        if args.chains < 1:
            raise UsageError(f"--chains must be >= 1; got {args.chains}")
        if args.generations < 1:
            raise UsageError(f"--generations must be >= 1; got {args.generations}")
        if args.samples < 1:
            raise UsageError(f"--samples must be >= 1; got {args.samples}")
    elif args.generations is not None and args.generations < 0:
        raise UsageError(f"--generations must be >= 0; got {args.generations}")
    if not -2**63 <= args.seed < 2**63:
        raise UsageError(f"--seed must be an integer in [-2**63, 2**63 - 1] (64 bits); got "
                         f"{args.seed}")
    human = getattr(args, "human", None)
    if human is not None:
        if human < 1:
            raise UsageError(f"--human must be >= 1 (the size of the human data set); got "
                             f"{human}")
        if args.regime != "mix":
            raise UsageError(f"--human applies to --regime mix only; got --regime "
                             f"{args.regime}")
    if args.alpha is not None and any(not 0.0 <= a <= 1.0 for a in args.alpha):
        raise UsageError(f"--alpha must lie in [0, 1]; got {args.alpha}")
    presets = getattr(args._runner, "PRESETS", None)
    if args.quick and presets is not None and "tiny" in presets:
        if args.preset not in (p.get_default("preset"), "tiny"):
            raise UsageError(f"--quick selects --preset tiny; it conflicts with --preset "
                             f"{args.preset}")
        args.preset = "tiny"


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit code (argparse errors exit with 2).

    Example:
        >>> main(["report", "/nonexistent/run"])
        2
    """
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and args.command != "bench":
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "figures":
        return _figures(args)
    if args.command == "bench":
        return _bench(args, extra)
    if args.command == "report":
        return _report(args)
    if args.command == "design":
        return importlib.import_module("jaxcollapse.experiments.design").main(args)
    if args.command == "run":
        if args.x64:
            import jax

            jax.config.update("jax_enable_x64", True)
        if args.out is None:
            args.out = f"runs/{args._name}"
        from jaxcollapse.experiments._common import output_folder

        try:
            _check_shared(args)
            with output_folder(args.out, args._name, overwrite=args.overwrite,
                               resume=bool(getattr(args, "resume", False)),
                               process_id=args.process_id,
                               num_processes=args.num_processes):
                return int(args._runner.run(args) or 0)
        except (UsageError, ValueError, TypeError, FileNotFoundError) as e:
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            print(f"jaxcollapse run {args._name}: error: {msg}", file=sys.stderr)
            raise SystemExit(2) from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
