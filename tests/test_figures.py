"""The paper figures render in --quick mode, write PNG/PDF/npz/JSON, and the data
behind them agrees with the theory where it should."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jaxcollapse.theory import gaussian as tg

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("matplotlib")


def _render(name, out):
    proc = subprocess.run([sys.executable, str(REPO / "paper_figures" / "run_all.py"),
                           "--quick", "--only", name, "--out", str(out)],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for ext in ("png", "pdf", "npz", "json"):
        assert (out / f"{name}.{ext}").stat().st_size > 0
    return dict(np.load(out / f"{name}.npz"))


@pytest.mark.slow
def test_figure_1_gaussian_matches_theory(tmp_path):
    d = _render("fig01_gaussian_1d", tmp_path)
    gens = d["generations"]
    # E W2^2: the Monte Carlo mean within 5 standard errors of theory (false-failure
    # rate ~6e-7 per comparison) at three generations, for the two larger sizes
    for M in (1000, 10000):
        for g in (10, 50, gens[-1]):
            w, se = d[f"w2sq_mean_M{M}"][g], d[f"w2sq_se_M{M}"][g]
            assert abs(w - float(tg.w2sq_mean(g, M))) <= 5 * se
    # the superlinear schedule stays bounded: it has converged by the end
    s = d["theory_w2sq_superlinear"]
    assert abs(s[-1] - s[len(s) // 2]) < 0.05 * s[-1]


def test_unknown_figure_is_an_error(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "paper_figures" / "run_all.py"),
                           "--only", "fig99", "--out", str(tmp_path)], capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "unknown figure" in proc.stderr
