"""Figures 13-14 render in --quick mode, and their Monte Carlo agrees with the theory
drawn beside it (|mean - theory| <= 5 SE: ~6e-7 false-failure rate per comparison)."""

import numpy as np
import pytest
from test_figures import _render

pytest.importorskip("matplotlib")

Z = 5.0


@pytest.mark.slow
def test_figure_14_strong_collapse(tmp_path):
    d = _render("fig14_strong_collapse", tmp_path)
    for p2 in (0.0, 0.001, 0.01, 0.1):
        m, se, th = d[f"mc_mean_p{p2}"], d[f"mc_se_p{p2}"], d[f"theory_at_mc_p{p2}"]
        assert np.all(np.abs(m - th) <= Z * se), (p2, m, th, se)
    assert abs(d["theory_p0.1"][-1] - 0.01) < 0.001  # the floor p2^2 |Delta|^2


@pytest.mark.slow
def test_figure_13_real_data(tmp_path):
    d = _render("fig13_real_data", tmp_path)
    for source in ("fresh", "fixed"):
        m, se = d[f"ms_mean_{source}"], d[f"ms_se_{source}"]
        th = d[f"ms_theory_at_alphas_{source}"]
        assert np.all(np.abs(m - th) <= Z * se), (source, m, th, se)
