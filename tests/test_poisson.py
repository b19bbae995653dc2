"""The Poisson family: contract, exact path against its collapse law, errors.

Monte Carlo comparisons use Z = 5 standard errors (false-failure rate about 6e-7 each).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxcollapse as jc
from jaxcollapse.families.base import ExactFamily, Family
from jaxcollapse.theory import rates

Z = 5.0


def test_contract_and_registry():
    fam = jc.Poisson()
    assert isinstance(fam, Family) and isinstance(fam, ExactFamily)
    assert jc.FAMILIES["poisson"] is jc.Poisson
    assert set(fam.default_metrics()) == {"rate", "rate_error", "extinct"}
    assert bool(fam.is_degenerate(fam.params(rate=0.0)))
    assert not bool(fam.is_degenerate(fam.params(rate=0.1)))


def test_fit_stats_and_log_prob_against_scipy(key):
    fam = jc.Poisson()
    x = jnp.array([0, 3, 5, 1])
    w = jnp.array([1.0, 1.0, 0.0, 1.0])
    assert float(fam.fit(key, x, w).rate) == pytest.approx(4 / 3, rel=1e-12)
    st = fam.add_stats(fam.stats(x[:2], w[:2]), fam.stats(x[2:], w[2:]))
    assert float(fam.fit_stats(st).rate) == pytest.approx(4 / 3, rel=1e-12)
    p = fam.params(rate=2.5)
    np.testing.assert_allclose(fam.log_prob(p, jnp.arange(6)), stats.poisson.logpmf(
        np.arange(6), 2.5), rtol=1e-10)
    assert float(fam.log_prob(fam.params(rate=0.0), jnp.array(0))) == 0.0
    assert float(fam.log_prob(fam.params(rate=0.0), jnp.array(2))) == -np.inf


def test_sample_stats_law(key):
    # the sum of M draws is Poisson(M lambda): chi-square goodness of fit
    fam = jc.Poisson()
    keys = jax.random.split(key, 4000)
    tot = np.asarray(jax.vmap(lambda k: fam.sample_stats(k, fam.params(rate=0.3), 10).total
                              )(keys)).astype(int)
    ks = np.arange(8)
    obs = np.array([np.sum(tot == k) for k in ks[:-1]] + [np.sum(tot >= ks[-1])])
    exp = np.append(stats.poisson.pmf(ks[:-1], 3.0), stats.poisson.sf(ks[-2], 3.0)) * 4000
    assert stats.chisquare(obs, exp).pvalue > 1e-3
    x = np.asarray(fam.sample(key, fam.params(rate=0.3), 5000))
    assert abs(x.mean() - 0.3) < Z * np.sqrt(0.3 / 5000)


def test_exact_path_extinction_matches_theory():
    fam = jc.Poisson()
    n, lam0, R = 20, 0.1, 20000
    res = jc.simulate(jax.random.key(1), fam, fam.params(rate=lam0), n_generations=8,
                      n_samples=n, n_chains=R, save_params=False, metrics=["extinct"])
    p = np.asarray(res.metrics["extinct"]).mean(0)
    th = rates.poisson_zero_probability(np.arange(9), n, lam0)
    assert p[0] == 0.0
    for k in (1, 3, 8):
        assert abs(p[k] - th[k]) <= Z * np.sqrt(th[k] * (1 - th[k]) / R)


def test_bad_input():
    fam = jc.Poisson()
    with pytest.raises(ValueError, match="rate"):
        fam.params(rate=-1.0)
    with pytest.raises(ValueError, match="rate"):
        fam.params(rate=np.nan)
    with pytest.raises(ValueError, match="method"):
        jc.Poisson(method="fast")
    with pytest.raises(TypeError, match="integer"):
        fam.check_data(np.array([0.5]))
    with pytest.raises(ValueError, match=">= 0"):
        fam.check_data(np.array([-1]))
