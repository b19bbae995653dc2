"""Figures 4-8 render in --quick mode, write PNG/PDF/npz/JSON, and the data behind
them agree with the closed-form theory where one exists.

Monte Carlo means are compared with theory as |mean - theory| <= 5 SE (+ a float32
floor), the standard error estimated from the chains: a false failure has
probability ~6e-7 per comparison for a normal mean (a few hundred comparisons
here, so ~1e-4 per run). Means are only tested where the law is not heavy tailed
(small n / M, see THEORY.md section 2, testing note).
"""

import importlib
import json
import math
import sys

import jax
import numpy as np
import pytest
from test_figures import REPO, _render

import jaxcollapse as jc
from jaxcollapse.theory import discrete as td

pytest.importorskip("matplotlib")

Z = 5.0


def _close(mean, se, theory, floor=1e-6):
    mean, se, theory = (np.asarray(a, dtype=float) for a in (mean, se, theory))
    bad = np.abs(mean - theory) > Z * se + floor
    assert not bad.any(), (mean[bad], theory[bad], se[bad])


def _meta(out, name):
    return json.loads((out / f"{name}.json").read_text())


def _figure_module(name):
    path = str(REPO / "paper_figures")
    if path not in sys.path:
        sys.path.insert(0, path)
    return importlib.import_module(name)


@pytest.mark.slow
def test_figure_4_gmm(tmp_path):
    d = _render("fig04_gmm", tmp_path)
    meta = _meta(tmp_path, "fig04_gmm")
    G = meta["generations"]
    assert meta["snapshots"] == [g for g in (0, 50, 100, 150, 200, 350, 2000) if g <= G]
    assert np.all(np.abs(d["l2"][:, 0]) < 1e-6)  # generation 0 is p0 itself
    # the snapshot mixtures are those whose L2 distance is plotted (chain 0)
    for g in meta["snapshots"]:
        p = [d[f"snapshot_{g}_{k}"] for k in ("weights", "means", "covs")]
        l2 = jc.metrics.l2_mixtures(*p, *(d["snapshot_0_" + k] for k in
                                          ("weights", "means", "covs")))
        assert float(l2) == pytest.approx(float(d["l2"][0, g]), rel=1e-3, abs=1e-6)
    # the mixture's moments follow the exact Gaussian MLE recursion (n / M <= 0.2)
    gens = np.array([1, 10, 50, G])
    _close(d["trace_ratio_mean"][gens], d["trace_ratio_se"][gens],
           d["theory_trace_ratio"][gens])
    _close(d["mean_shift_mean"][gens], d["mean_shift_se"][gens],
           d["theory_mean_shift"][gens])


@pytest.mark.slow
def test_figure_5_kde(tmp_path):
    d = _render("fig05_kde", tmp_path)
    meta = _meta(tmp_path, "fig05_kde")
    G, M, h = meta["generations"], meta["M"], meta["fixed_bandwidth"]
    gens = np.array([1, 5, 10, G])
    for tag in ("fixed", "scott", "silverman"):
        _close(d[f"var_mean_{tag}"][gens], d[f"var_se_{tag}"][gens],
               d[f"theory_var_{tag}"][gens])
        # the modes wash out: the KDE moves away from the human distribution
        assert d[f"mmd2_mean_{tag}"][G] > d[f"mmd2_mean_{tag}"][0] + Z * d[f"mmd2_se_{tag}"][G]
    assert meta["fixed_point_ratio"] == pytest.approx((M - 1) * h**2 / meta["s0sq"])
    assert meta["growth_factor"]["scott"] == pytest.approx(1.148, abs=1e-3)


def test_figure_5_mmd_is_the_mixture_closed_form():
    fig = _figure_module("fig05_kde")
    kde = jc.KDE(dim=1, bandwidth="scott")
    x = jax.random.normal(jax.random.key(0), (20, 1)) * 1.5 + 0.3
    p = kde.params(x)
    _, human = fig.human_params()
    ref = jc.metrics.mmd2_mixtures(p.weights / p.weights.sum(), p.points,
                                   np.broadcast_to(p.bandwidth, (20, 1, 1)), *human,
                                   fig.LENGTHSCALE)
    assert float(fig.mmd2_to_human(p, p)) == pytest.approx(float(ref), rel=1e-6)


@pytest.mark.slow
def test_figure_6_categorical(tmp_path):
    d = _render("fig06_categorical", tmp_path)
    meta = _meta(tmp_path, "fig06_categorical")
    G, M, K = meta["generations"], meta["M"], meta["K"]
    p0 = np.asarray(jc.families.categorical.zipf(K, meta["zipf_beta"]).probs, np.float64)
    gens = np.array([1, 10, 50, G])
    for name in ("heterozygosity", "survivors", "lost_mass"):
        _close(d[f"{name}_mean"][gens], d[f"{name}_se"][gens], d[f"theory_{name}"][gens])
    # the exact multi-generation survival reduces to the one-step formulas at n = 1
    assert d["theory_survivors"][1] == pytest.approx(float(td.expected_survivors(p0, M)))
    assert d["theory_lost_mass"][1] == pytest.approx(float(td.expected_lost_mass(p0, M)))
    # accumulate: the support is frozen after generation 1
    acc = d["survivors_accumulate_mean"]
    assert np.all(acc[1:] == acc[1])
    _close(acc[1], d["survivors_accumulate_se"][1], d["theory_survivors_accumulate"][1])
    # unseen mass of the Zipf law, with and without a cut tail, at every T
    for tag in ["full"] + [f"cut{k}" for k in meta["tail"]["cuts"]]:
        _close(d[f"unseen_mean_{tag}"], d[f"unseen_se_{tag}"], d[f"theory_unseen_{tag}"])
        assert np.all(d[f"theory_unseen_{tag}"] >= d[f"tail_floor_{tag}"] - 1e-12)
    # the rank-100 cut has reached its plateau: only the floor is unseen
    assert d["unseen_mean_cut100"][-1] == pytest.approx(float(d["tail_floor_cut100"]), rel=1e-4)


@pytest.mark.slow
def test_figure_7_regression(tmp_path):
    d = _render("fig07_regression", tmp_path)
    meta = _meta(tmp_path, "fig07_regression")
    G = meta["generations"]
    gens = np.array([1, 10, G])
    for dim in meta["dims"]:
        for regime in ("replace", "accumulate"):
            _close(d[f"excess_mean_{regime}_d{dim}"][gens], d[f"excess_se_{regime}_d{dim}"][gens],
                   d[f"theory_{regime}_d{dim}"][gens])
        one = float(d[f"one_generation_d{dim}"])
        assert d[f"theory_replace_d{dim}"][G] == pytest.approx(G * one, rel=1e-5)
        assert d[f"theory_accumulate_d{dim}"][G] < math.pi**2 / 6 * one
        # replace has left the accumulate bound far behind by the last generation
        assert d[f"excess_mean_replace_d{dim}"][G] > 10 * math.pi**2 / 6 * one


@pytest.mark.slow
def test_figure_8_decomposition(tmp_path):
    d = _render("fig08_decomposition", tmp_path)
    meta = _meta(tmp_path, "fig08_decomposition")
    gens = np.array([1, 5, 10])  # n / M <= 0.1
    _close(d["statistical_mean"][gens], d["statistical_se"][gens],
           d["theory_statistical"][gens])
    # generation 1 of the expressivity arm is the moment match (N_pop draws from it)
    _close(d["expressivity_mean"][1], d["expressivity_se"][1], meta["best_gaussian_l2sq"])
    # the sweep over M: n / M <= 0.05 for the larger sizes
    big = np.asarray(d["sizes"]) >= 1000
    _close(d["M_statistical_mean"][big], d["M_statistical_se"][big],
           d["M_theory_statistical"][big])
    assert d["M_statistical_mean"][-1] < 0.1 * d["M_statistical_mean"][0]
