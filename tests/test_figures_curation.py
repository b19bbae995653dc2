"""Figure 12 (curation and verification) renders in --quick mode and its data agree
with the exact theory: |MC mean - theory| <= 5 SE (false-failure rate ~6e-7 per
comparison for a normal mean; about 60 comparisons here)."""

import json

import numpy as np
import pytest
from test_figures import _render

from jaxcollapse.theory import curation as tc

pytest.importorskip("matplotlib")

Z = 5.0


def _close(mean, se, theory):
    mean, se, theory = (np.asarray(a, dtype=float) for a in (mean, se, theory))
    bad = np.abs(mean - theory) > Z * se + 1e-6
    assert not bad.any(), (mean[bad], theory[bad], se[bad])


@pytest.mark.slow
def test_figure_12_curation(tmp_path):
    d = _render("fig12_curation", tmp_path)
    meta = json.loads((tmp_path / "fig12_curation.json").read_text())
    n_cat = meta["n_categories"]
    p0, r = np.full(n_cat, 1.0 / n_cat), d["reward"]
    for k in (2, 4):
        for eta in (1.0, 0.9):
            tag = f"K{k}_eta{eta:g}"
            # generation 1 is exactly the curated law in expectation
            _close(d[f"probs1_mean_{tag}"], d[f"probs1_se_{tag}"],
                   tc.curated_law(p0, r, k, eta, p0))
            _close(d[f"reward_mean_{tag}"][1], d[f"reward_se_{tag}"][1],
                   d[f"theory_reward_{tag}"][1])
        # with eta = 1 the expected reward rises every generation (Monte Carlo)
        assert np.all(np.diff(d[f"reward_mean_K{k}_eta1"]) > 0)
    for tag in ("a0.9_b0.3", "a0.7_b0.5", "a0.6_b0.6"):
        # the exact law of q_t is known: its standard deviation gives the SE (the
        # chains' own SE is 0 once every chain has fixed at q = 1)
        se = d[f"theory_q_sd_{tag}"] / np.sqrt(meta["chains"])
        _close(d[f"q_mean_{tag}"], se, d[f"theory_q_{tag}"])
