"""Fresh-design regression theory (theory/regression_mix.py): accumulate, human labels
and strong model collapse, against jc.simulate and independent NumPy simulations.

Monte Carlo comparisons use Z = 5 standard errors (false-failure rate about 6e-7 each).
"""

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.theory import regression as th
from jaxcollapse.theory import regression_mix as rm

Z = 5.0


def _within(mc, theory, label=""):
    mc = np.asarray(mc, float)
    se = mc.std(ddof=1) / np.sqrt(mc.size)
    assert abs(mc.mean() - theory) <= Z * se, (label, mc.mean(), theory, se)


def test_accumulate_fresh_design_against_simulate():
    # the case: d = 7, T = 40, n = 25, sigma^2 = 0.7 (fresh design each draw)
    fam = jc.LinearRegression(dim=7, noise=0.7**0.5)
    res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=25, n_samples=40,
                      n_chains=4000, regime="accumulate", metrics=["excess_risk"],
                      save_params=False)
    fresh = rm.excess_accumulate_fresh(np.arange(26), 7, 40, noise=0.7**0.5)
    for t in (1, 5, 25):
        _within(res.metrics["excess_risk"][:, t], fresh[t], t)
    fixed = float(th.excess_accumulate(25, 7, 40, noise=0.7**0.5))
    assert fresh[25] < fixed - 0.01  # the fixed-design formula does not apply
    # one generation: the two agree (E tr((X^T X)^-1) = d/(T - d - 1))
    np.testing.assert_allclose(fresh[1], float(th.excess_accumulate(1, 7, 40, 0.7**0.5)),
                               rtol=1e-12)


def test_shifted_gram_factor_against_numpy():
    rng = np.random.default_rng(0)
    for n, n2, d in ((20, 5, 3), (12, 6, 1), (15, 10, 4)):
        X = rng.normal(size=(20000, n, d))
        G = np.einsum("bni,bnj->bij", X, X)
        G2 = np.einsum("bni,bnj->bij", X[:, :n2], X[:, :n2])
        Gi = np.linalg.inv(G)
        v = np.einsum("bij,bjk,bkl,bli->b", G2, Gi, Gi, G2) / d
        _within(v, rm.shifted_gram_factor(n, n2, d), (n, n2, d))
    assert rm.shifted_gram_factor(10**6, 10**5, 3) == pytest.approx(0.01, rel=1e-4)


def test_strong_collapse_against_numpy():
    rng = np.random.default_rng(1)
    d, n, p2, sigma, R = 3, 30, 0.2, 0.5, 20000
    delta = np.array([1.0, -0.5, 2.0])
    n2 = round(p2 * n)
    X = rng.normal(size=(R, n, d))
    shift = np.zeros((n, d))
    shift[:n2] = delta
    y = np.einsum("rni,ni->rn", X, shift) + sigma * rng.normal(size=(R, n))  # w* = 0
    w = np.linalg.solve(np.einsum("rni,rnj->rij", X, X),
                        np.einsum("rni,rn->ri", X, y)[..., None])[..., 0]
    _within(np.sum(w**2, axis=1), float(rm.strong_collapse_excess(n, p2, delta, sigma)))
    big = rm.strong_collapse_excess([10**4, 10**7], p2, delta, sigma)
    np.testing.assert_allclose(big[-1], p2**2 * delta @ delta, rtol=1e-5)  # the floor
    with pytest.raises(ValueError, match="p2"):
        rm.strong_collapse_excess(n, 1.5, delta)
    with pytest.raises(ValueError, match="delta"):
        rm.strong_collapse_excess(n, 0.1, np.ones((2, 2)))


def test_mix_recursion_against_numpy():
    rng = np.random.default_rng(2)
    d, n, alpha, sigma, T, R = 2, 16, 0.25, 0.8, 6, 20000
    h = round(alpha * n)
    e = np.zeros((R, d))  # w* = 0; e is the fit
    for _ in range(T):
        X = rng.normal(size=(R, n, d))
        wlab = np.concatenate([np.zeros((R, h, d)), np.broadcast_to(e[:, None], (R, n - h, d))],
                              axis=1)
        y = np.einsum("rni,rni->rn", X, wlab) + sigma * rng.normal(size=(R, n))
        e = np.linalg.solve(np.einsum("rni,rnj->rij", X, X),
                            np.einsum("rni,rn->ri", X, y)[..., None])[..., 0]
    theory = rm.excess_mix_fresh(T, alpha, d, n, sigma)
    _within(np.sum(e**2, axis=1), theory[-1])
    long = rm.excess_mix_fresh(4000, alpha, d, n, sigma)
    np.testing.assert_allclose(rm.mix_stationary_excess(alpha, d, n, sigma), long[-1],
                               rtol=1e-10)
    it = rm.strong_collapse_iterative(3000, 10**5, 0.3, 2)
    np.testing.assert_allclose(it[-1] / it[1], 1 / (1 - 0.09), rtol=1e-3)
    with pytest.raises(ValueError, match="alpha"):
        rm.excess_mix_fresh(3, -0.1, 2, 16)
    with pytest.raises(ValueError, match="no human rows"):
        rm.mix_stationary_excess(0.0, 2, 16)
    with pytest.raises(ValueError, match="n_samples"):
        rm.excess_accumulate_fresh(3, 5, 6)
