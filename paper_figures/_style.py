"""One style for every figure: sizes, colours, the theory-line style, and saving.

Every figure is written as PNG and PDF together with the data behind it (``.npz``
arrays and a JSON sidecar), so it can be restyled without rerunning.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

COLORS = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#F0E442",
          "#000000"]
THEORY = dict(color="black", linestyle="--", linewidth=1.4, zorder=5)
MC = dict(linewidth=1.8, alpha=0.95)
BAND_ALPHA = 0.18

plt.rcParams.update({
    "figure.dpi": 110, "savefig.dpi": 160, "font.size": 9, "axes.titlesize": 10,
    "axes.labelsize": 9, "legend.fontsize": 7.5, "xtick.labelsize": 8, "ytick.labelsize": 8,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
    "grid.alpha": 0.25, "legend.frameon": False,
})


def parser(doc: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=doc.strip().splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small settings (CI, previews)")
    p.add_argument("--out", default=str(REPO / "paper_figures" / "out"),
                   help="output directory (default: paper_figures/out)")
    p.add_argument("--seed", type=int, default=0)
    return p


def add_run_arguments(p: argparse.ArgumentParser, name: str, generations: str,
                      plural: bool = False) -> None:
    """``--generations``, ``--runs`` and ``--resume``: the flags of a figure that trains
    learned generators and checkpoints them (``plural``: one run per seed)."""
    run, whose = ("runs", "their") if plural else ("run", "its")
    p.add_argument("--generations", type=int, default=None,
                   help=f"generations after generation 0 (default: {generations})")
    p.add_argument("--runs", default=None,
                   help=f"checkpoints of the {run} (default: OUT/{name}_runs)")
    p.add_argument("--resume", action="store_true",
                   help=f"continue the {run} in --runs from {whose} checkpoints")


def run_settings(p: argparse.ArgumentParser, args, name: str,
                 protocol: dict) -> tuple[dict, Path]:
    """The protocol settings with ``--generations`` applied (a parser error unless >= 1)
    and the checkpoint folder (``--runs``, default ``OUT/NAME_runs``)."""
    protocol = dict(protocol)
    if args.generations is not None:
        if args.generations < 1:
            p.error(f"--generations must be >= 1; got {args.generations}")
        protocol["n_generations"] = args.generations
    return protocol, Path(args.runs) if args.runs else Path(args.out) / f"{name}_runs"


def stopwatch():
    """Starts a wall and a CPU clock; the function returned gives the time since then
    as ``dict(seconds=..., cpu_seconds=...)`` (0.1 s) for a figure's JSON sidecar."""
    t0, c0 = time.perf_counter(), time.process_time()
    return lambda: dict(seconds=round(time.perf_counter() - t0, 1),
                        cpu_seconds=round(time.process_time() - c0, 1))


def save(fig, name: str, out: str | Path, data: dict, meta: dict) -> list[Path]:
    """Writes ``name.png``, ``name.pdf``, ``name.npz`` (arrays) and ``name.json``."""
    from jaxcollapse.io import atomic_write_bytes, save_json, save_npz

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        import io

        buf = io.BytesIO()
        fig.savefig(buf, format=ext, bbox_inches="tight")
        paths.append(atomic_write_bytes(out / f"{name}.{ext}", buf.getvalue()))
    paths.append(save_npz(out / f"{name}.npz", {k: np.asarray(v) for k, v in data.items()}))
    paths.append(save_json(out / f"{name}.json", meta))
    plt.close(fig)
    print(f"wrote {', '.join(str(p) for p in paths)}")
    return paths


def load(out: str | Path, name: str):
    """The data and metadata behind a figure, for restyling."""
    out = Path(out)
    return dict(np.load(out / f"{name}.npz")), json.loads((out / f"{name}.json").read_text())
