"""Figure 11 (sampling bias and decoding) renders in --quick mode and its data agree
with the exact theory. Means: |MC mean - theory| <= 5 SE (+ float floor), false-failure
rate ~6e-7 per comparison for a normal mean (about 40 comparisons). Medians: the
fraction of chains below the exact median is Binomial(C, 1/2)/C, so it lies within
5 sqrt(1/(4C)) of 1/2 (same rate)."""

import json

import numpy as np
import pytest
from test_figures import _render

from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import decoding as tdec

pytest.importorskip("matplotlib")

Z = 5.0


def _close(mean, se, theory, floor=1e-6):
    mean, se, theory = (np.asarray(a, dtype=float) for a in (mean, se, theory))
    bad = np.abs(mean - theory) > Z * se + floor
    assert not bad.any(), (mean[bad], theory[bad], se[bad])


@pytest.mark.slow  # a subprocess render: ~1 min of CPU (three compiled simulations)
def test_figure_11_bias(tmp_path):
    d = _render("fig11_bias", tmp_path)
    meta = json.loads((tmp_path / "fig11_bias.json").read_text())
    g = meta["gaussian"]
    at = np.array([1, g["generations"] // 4, g["generations"] // 2, g["generations"]])
    for lam in g["lams"]:
        tag = f"lam{lam:g}"
        # the sidecar's theory is theory.bias at this lambda, not the faithful loop's
        np.testing.assert_allclose(d[f"theory_var_mean_{tag}"][at], lam ** at, rtol=1e-5)
        np.testing.assert_allclose(d[f"theory_w2sq_{tag}"][at],
                                   np.asarray(tb.w2sq_mean(at, g["M"], lam)), rtol=1e-5)
        _close(d[f"w2sq_mean_{tag}"][at], d[f"w2sq_se_{tag}"][at],
               d[f"theory_w2sq_{tag}"][at])
        _close(d[f"var_mean_{tag}"][at], d[f"var_se_{tag}"][at],
               d[f"theory_var_mean_{tag}"][at])
        _close(d[f"var_below_theory_median_{tag}"][at], np.sqrt(0.25 / g["chains"]), 0.5)
    # a smaller lambda collapses faster: the median variance at the end is ordered
    ends = [d[f"var_median_lam{lam:g}"][-1] for lam in g["lams"]]
    assert ends[0] > ends[1] > ends[2]
    c = meta["categorical"]
    p0 = d["p0"]
    for tau in c["taus"]:
        tag = f"tau{tau:g}"
        # E[p_1] = q(p_0) exactly (category 1 of the law; every chain's p_1)
        q1 = np.asarray(tdec.temperature_map(p0, tau))
        _close(d[f"probs1_mean_{tag}"], d[f"probs1_se_{tag}"], q1)
        np.testing.assert_allclose(d[f"theory_entropy_{tag}"][1], tdec.entropy(q1), rtol=1e-6)
    tag = f"topp{c['top_p']:g}"
    _close(d[f"probs1_mean_{tag}"], d[f"probs1_se_{tag}"],
           np.asarray(tdec.top_p_map(p0, c["top_p"])))
    # heat death and cooling: tau > 1 gains entropy, tau < 1 loses it toward the mode
    assert d["entropy_mean_tau1.25"][-1] > d["entropy_mean_tau1.25"][0]
    assert d["entropy_mean_tau0.8"][-1] < 0.1 * d["entropy_mean_tau0.8"][0]
