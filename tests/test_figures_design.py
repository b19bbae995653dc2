"""Figure 15 (the best human-data schedule under a budget) renders in --quick mode and
its data are right: the schedule spends the budget within [0, 1], and the Monte Carlo
mean shift of both schedules agrees with the exact moments of the relaxed mix
(|MC mean - theory| <= 5 SE, false-failure rate ~6e-7 per comparison, 18
comparisons)."""

import json

import numpy as np
import pytest
from test_figures import _render

pytest.importorskip("matplotlib")

Z = 5.0


@pytest.mark.slow  # a subprocess render: ~1 min of CPU (two compiled loops, 25 steps)
def test_figure_15_design(tmp_path):
    d = _render("fig15_design", tmp_path)
    meta = json.loads((tmp_path / "fig15_design.json").read_text())
    alpha = d["alpha"]
    assert alpha.shape == (meta["generations"],)
    assert np.all((alpha >= 0) & (alpha <= 1))
    np.testing.assert_allclose(alpha.sum(), meta["budget_rows"] / meta["M"], rtol=1e-9)
    np.testing.assert_allclose(d["alpha_constant"], alpha.mean(), rtol=1e-12)
    for tag in ("best", "constant"):
        mc, se = d[f"mean_shift_mean_{tag}"], d[f"mean_shift_se_{tag}"]
        th = d[f"theory_mean_shift_{tag}"]
        assert np.all(np.abs(mc - th) <= Z * se + 1e-12), (tag, mc, th, se)
    # the optimised schedule is no worse than the constant one on independent chains
    assert meta["gain"] > -Z * meta["gain_se"]
