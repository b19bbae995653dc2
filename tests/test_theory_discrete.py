"""jaxcollapse.theory.discrete: formulas against numpy and Monte Carlo."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import jaxcollapse as jc
from jaxcollapse.families import categorical as cat
from jaxcollapse.theory import discrete as th

Z = 5.0  # |mc - theory| <= Z * se: two-sided false-failure rate 6e-7 per comparison


def test_one_generation_formulas_against_numpy():
    p = np.asarray(cat.zipf(500, 1.3).probs)
    m = 200
    np.testing.assert_allclose(th.survival_probability(p, m), 1 - (1 - p) ** m, rtol=1e-12)
    np.testing.assert_allclose(th.expected_survivors(p, m), np.sum(1 - (1 - p) ** m),
                               rtol=1e-12)
    np.testing.assert_allclose(th.expected_lost_mass(p, m), np.sum(p * (1 - p) ** m),
                               rtol=1e-12)
    ts = np.array([0, 1, 10, 1000])
    np.testing.assert_allclose(th.unseen_mass(p, ts), [np.sum(p * (1 - p) ** t) for t in ts],
                               rtol=1e-12)
    np.testing.assert_allclose(th.tail_floor(p, 10), p[10:].sum(), rtol=1e-12)
    assert float(th.tail_floor(p, 500)) == 0.0
    np.testing.assert_allclose(th.expected_heterozygosity(0.3, 10, np.arange(3)),
                               0.3 * 0.9 ** np.arange(3), rtol=1e-12)
    np.testing.assert_allclose(th.fixation_probabilities(p), p, rtol=0)


def test_tail_floor_power_law():
    # Σ_{i>k} p_i ≍ k^-(β-1): the log-log slope over k in [10, 1000] for K = 10^6.
    # Asymptotic law: the finite-k correction is O(1/k); tolerance 0.02 stated a priori.
    p = cat.zipf(10**6, 2.0).probs
    k = np.array([10, 30, 100, 300, 1000])
    slope = np.polyfit(np.log(k), np.log(np.asarray(th.tail_floor(p, k))), 1)[0]
    assert abs(slope - th.tail_floor_exponent(2.0)) < 0.02


def test_unseen_mass_exponent_monte_carlo():
    # U(T) measured from T Zipf(2) draws (K = 10^5) on a log-log grid. The exact
    # finite-K curve has slope -0.4994 on this grid (asymptotic bias < 0.002); the
    # Monte Carlo slope's standard error comes from 8 independent batches of chains.
    beta, k, batches, per = 2.0, 10**5, 8, 40
    fam = cat.Categorical(k)
    p = fam.params(cat.zipf(k, beta).probs)
    grid = [100, 300, 1000, 3000, 10000]

    def unseen(key, t):
        seen = jnp.zeros(k, bool).at[fam.sample(key, p, t)].set(True)
        return jnp.sum(jnp.where(seen, 0.0, p.probs))

    slopes = []
    for b in range(batches):
        u = [float(jax.vmap(lambda kk, t=t: unseen(kk, t))(
            jax.random.split(jax.random.fold_in(jax.random.key(30 + b), t), per)).mean())
            for t in grid]
        slopes.append(np.polyfit(np.log(grid), np.log(u), 1)[0])
    slopes = np.asarray(slopes)
    se = slopes.std(ddof=1) / np.sqrt(batches)
    assert abs(slopes.mean() - th.unseen_mass_exponent(beta)) <= Z * se + 0.002


@pytest.fixture(scope="module")
def fixation_runs():
    # Categorical(3) for both: p0 with a zero entry is a two-category chain.
    fam = cat.Categorical(3)
    m, gens, chains = 20, 250, 3000
    out = {}
    for name, probs in (("two", [0.2, 0.8, 0.0]), ("three", [0.5, 0.3, 0.2])):
        res = jc.simulate(jax.random.key(40 + len(name)), fam, fam.params(jnp.array(probs)),
                          n_generations=gens, n_samples=m, n_chains=chains,
                          metrics=["survivors"], save_params=True)
        out[name] = (np.asarray(probs), np.asarray(res.metrics["survivors"]),
                     np.asarray(res.params.probs[:, -1]))
    return m, out


def test_fixation_probabilities(fixation_runs):
    _, out = fixation_runs
    p0, surv, final = out["three"]
    assert np.all(surv[:, -1] == 1)  # every chain absorbed (P(not) ~ e^-10 a chain)
    winners = np.bincount(np.argmax(final, -1), minlength=3)
    assert st.chisquare(winners, p0 * winners.sum()).pvalue > 1e-3


def test_fixation_time_exact_and_diffusion(fixation_runs):
    m, out = fixation_runs
    p0, surv, _ = out["two"]
    t_fix = np.argmax(surv == 1, axis=1).astype(float)
    exact = float(th.fixation_time_exact(4, m))
    assert abs(t_fix.mean() - exact) <= Z * t_fix.std() / np.sqrt(len(t_fix))
    # Diffusion vs the exact chain: relative error O(1/M) (about 1.5/M here).
    for mm in (20, 100):
        ex = float(th.fixation_time_exact(mm // 2, mm))
        approx = float(th.expected_fixation_time(jnp.array([0.5, 0.5]), mm))
        assert abs(approx - ex) / ex < 3.0 / mm
    # Three categories: Littler's extension is a diffusion approximation too; allow
    # the same O(1/M) relative error on top of the Monte Carlo error.
    p0, surv, _ = out["three"]
    t_fix = np.argmax(surv == 1, axis=1).astype(float)
    approx = float(th.expected_fixation_time(p0, m))
    assert abs(t_fix.mean() - approx) <= Z * t_fix.std() / np.sqrt(len(t_fix)) + \
        3.0 / m * approx


@pytest.mark.parametrize("fn, args", [
    (th.expected_survivors, ([0.5, -0.1, 0.6], 5)),
    (th.expected_lost_mass, ([0.5, np.inf, 0.5], 5)),
    (th.unseen_mass, ([0.5, 0.4], 5)),
    (th.fixation_probabilities, ([1.0],)),
])
def test_bad_probabilities(fn, args):
    with pytest.raises(ValueError, match="probs must"):
        fn(*args)


def test_bad_parameters():
    with pytest.raises(ValueError, match="beta must be > 1"):
        th.unseen_mass_exponent(0.8)
    with pytest.raises(ValueError, match="beta must be > 1"):
        th.tail_floor_exponent(1.0)
    with pytest.raises(ValueError, match="beta must be a finite number"):
        th.unseen_mass_exponent(float("nan"))
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        th.expected_lost_mass([0.5, 0.5], 0)
    with pytest.raises(ValueError, match="count0 must be <= n_samples"):
        th.fixation_time_exact(30, 20)
