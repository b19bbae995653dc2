"""Collapse rates (theory/rates.py) against independent NumPy/scipy computations.

Monte Carlo comparisons use Z = 5 standard errors (false-failure rate about 6e-7 each).
"""

import numpy as np
import pytest
from scipy import stats

from jaxcollapse.theory import rates

Z = 5.0


def test_poisson_g_and_zero_probability_against_numpy():
    g = rates.poisson_g(np.arange(6))
    assert g[0] == np.inf and g[1] == 1.0
    np.testing.assert_allclose(g[2:], 1 - np.exp(-g[1:-1]), rtol=1e-15)
    assert abs(rates.poisson_g(2000) * 2000 - 2) < 0.02  # g_k ~ 2/k
    # independent simulation: n Lambda_{t+1} ~ Poisson(n Lambda_t)
    rng = np.random.default_rng(0)
    n, lam0, R = 15, 0.2, 200000
    lam = np.full(R, lam0)
    for k in range(1, 9):
        lam = rng.poisson(n * lam) / n
        p = np.mean(lam == 0)
        th = float(rates.poisson_zero_probability(k, n, lam0))
        assert abs(p - th) <= Z * np.sqrt(th * (1 - th) / R)
    assert float(rates.poisson_zero_probability(3, 10, 0.0)) == 1.0
    with pytest.raises(ValueError, match="lambda0"):
        rates.poisson_zero_probability(1, 10, -0.5)
    with pytest.raises(ValueError, match="k must"):
        rates.poisson_g(-1)


def _bernoulli_reference(k, n, p0):
    # the transition matrix of the count chain, written with scipy
    c = np.arange(n + 1)
    T = stats.binom.pmf(c[None, :], n, c[:, None] / n)
    law = stats.binom.pmf(c, n, p0)
    out = [law]
    for _ in range(k - 1):
        law = law @ T
        out.append(law)
    out = np.array(out)
    return 1 - out[:, 0] - out[:, n]


def test_bernoulli_exact_and_bounds():
    for n, p0 in ((5, 0.5), (30, 0.1), (60, 0.37)):
        ex = rates.bernoulli_active_exact(50, n, p0)
        np.testing.assert_allclose(ex[1:], _bernoulli_reference(50, n, p0), rtol=1e-9,
                                   atol=1e-14)
        lo, hi = rates.bernoulli_active_bounds(np.arange(51), n, p0)
        assert np.all(lo <= ex + 1e-12) and np.all(ex <= hi + 1e-12)
    # against a Monte Carlo of the loop itself
    rng = np.random.default_rng(1)
    n, p0, R = 20, 0.3, 100000
    p = np.full(R, p0)
    ex = rates.bernoulli_active_exact(15, n, p0)
    for k in range(1, 16):
        p = rng.binomial(n, p) / n
        if k in (1, 5, 15):
            mc = np.mean((p > 0) & (p < 1))
            assert abs(mc - ex[k]) <= Z * np.sqrt(ex[k] * (1 - ex[k]) / R) + 1e-12
    with pytest.raises(ValueError, match="p0"):
        rates.bernoulli_active_exact(3, 10, 1.5)


def test_gaussian_bound_dominates_exact_law():
    for n in (5, 20):
        for k in (5, 40, 150):
            for eps in (0.3, 0.8):
                ex = rates.gaussian_std_tail_exact(eps, k, n)
                assert ex <= float(rates.gaussian_std_tail_bound(eps, k, n)) + 1e-6
    # the exact law against an independent chi-square product (NumPy)
    rng = np.random.default_rng(2)
    n, k, R = 10, 30, 200000
    v = np.prod(rng.chisquare(n - 1, size=(R, k)) / (n - 1), axis=1)
    mc = np.mean(np.sqrt(v) > 0.7)
    ex = rates.gaussian_std_tail_exact(0.7, k, n)
    assert abs(mc - ex) <= Z * np.sqrt(ex * (1 - ex) / R) + 1e-6
    with pytest.raises(ValueError, match="eps"):
        rates.gaussian_std_tail_bound(0.0, 3, 10)


def test_unique_symbols():
    p = np.arange(1, 31) ** -1.2
    p /= p.sum()
    n = 40
    ex = rates.unique_symbols_exact(p, n, 25)
    np.testing.assert_allclose(ex[1], rates.unique_symbols_one_step(p, n), rtol=1e-10)
    np.testing.assert_allclose(ex[1], np.sum(1 - (1 - p) ** n), rtol=1e-10)
    lb = rates.unique_symbols_lower_bound(p, n, np.arange(26))
    assert np.all(lb <= ex + 1e-9)
    # Monte Carlo of the multinomial loop
    rng = np.random.default_rng(3)
    R = 4000
    q = np.broadcast_to(p, (R, p.size))
    for k in range(1, 26):
        q = np.array([rng.multinomial(n, qi) for qi in q]) / n
        if k in (1, 10, 25):
            u = np.sum(q > 0, axis=1)
            assert abs(u.mean() - ex[k]) <= Z * u.std(ddof=1) / np.sqrt(R)
