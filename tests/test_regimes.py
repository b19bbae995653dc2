"""Regime objects: behaviour, validation, the fresh human subset's law, weighted fresh
data against its closed form. Monte Carlo bounds are Z = 5 standard errors
(false-failure rate ~6e-7 each); distribution tests use chi-square at p > 0.001."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxcollapse as jc
from jaxcollapse import random as jcr
from jaxcollapse import regimes as rg

Z = 5.0


def test_registry_and_factories():
    assert set(rg.REGIMES) == {"replace", "accumulate", "accumulate-subsample", "mix",
                               "weighted-fresh"}
    for name, cls in rg.REGIMES.items():
        assert cls.name == name and issubclass(cls, rg.Regime)
    assert rg.get_regime("weighted-fresh") == rg.WeightedFresh()


@pytest.mark.parametrize("bad,match", [
    (lambda: jc.mix(-0.1), "alpha must lie in"),
    (lambda: jc.mix(jnp.array([[0.1, 0.2]])), "alpha must be a fraction or a 1-D"),
    (lambda: jc.mix(0.1, weighting="soft"), "weighting must be one of"),
    (lambda: jc.mix([0.1, 1.2]), "alpha must lie in"),
    (lambda: jc.mix(0.1, "sometimes"), "source must be one of"),
    (lambda: jc.weighted_fresh(1.5, 10), "w must lie in"),
    (lambda: jc.weighted_fresh(0.5, 1), "n_real must be an integer >= 2"),
    (lambda: jc.weighted_fresh(0.5, 2.5), "n_real must be an integer >= 2"),
    (lambda: rg.get_regime("mix", alpha=float("nan")), "alpha must lie in"),
])
def test_bad_regimes_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        bad()


def test_subset_indices_is_a_uniform_ordered_subset():
    """All 5 * 4 = 20 ordered pairs from range(5) equally likely (chi-square)."""
    keys = jax.random.split(jax.random.key(3), 20000)
    idx = np.asarray(jax.vmap(lambda k: jcr.subset_indices(k, 5, 2))(keys))
    assert np.all(idx[:, 0] != idx[:, 1])
    pairs = list(itertools.permutations(range(5), 2))
    counts = np.array([np.sum((idx[:, 0] == a) & (idx[:, 1] == b)) for a, b in pairs])
    assert stats.chisquare(counts).pvalue > 1e-3
    # the long loop (k > 16) too: every element of a full "subset" appears once
    full = np.asarray(jcr.subset_indices(jax.random.key(0), 40, 40))
    assert sorted(full.tolist()) == list(range(40))
    with pytest.raises(ValueError, match="k must satisfy"):
        jcr.subset_indices(jax.random.key(0), 3, 4)


def test_subset_indices_prefix_does_not_depend_on_k_and_the_loop_is_uniform():
    """Step s draws from its own words, so the first j indices are the same for
    every k (mix sizes its human slots freely); the loop path (k > 32) is uniform."""
    key = jax.random.key(4)
    short = np.asarray(jcr.subset_indices(key, 100, 5))
    for k in (8, 32, 33, 60):  # straight-line steps, then the loop
        np.testing.assert_array_equal(np.asarray(jcr.subset_indices(key, 100, k))[:5], short)
        used = np.asarray(jcr.subset_indices(key, 100, k, n_used=5))
        np.testing.assert_array_equal(used[:5], short)
        assert np.all(used[5:] == 0)
    keys = jax.random.split(jax.random.key(5), 6000)
    idx = np.asarray(jax.vmap(lambda k: jcr.subset_indices(k, 60, 50))(keys))
    assert all(len(set(r.tolist())) == 50 for r in idx[:200])
    # entry 40 (a loop step) is uniform on range(60)
    assert stats.chisquare(np.bincount(idx[:, 40], minlength=60)).pvalue > 1e-3


def test_mix_fresh_has_the_law_of_a_fresh_subset():
    """The fresh human rows are a new uniform subset each generation: with alpha = 1
    and human rows 0..N-1, the fitted mean is the mean of a uniform M-subset, whose
    variance is s^2/M (N - M)/(N - 1) (finite-population correction)."""
    fam = jc.Gaussian(dim=1, method="exact")
    human = jnp.arange(30.0)[:, None]
    res = jc.simulate(jax.random.key(1), fam, fam.params(), n_generations=3, n_samples=10,
                      n_chains=3000, regime=jc.mix(1.0, "fresh"), human_data=human,
                      metrics=["mean_shift"])
    means = np.asarray(res.params.mean[:, 1:, 0])
    s2 = np.var(np.arange(30.0))
    want = s2 / 10 * (30 - 10) / (30 - 1)
    for g in range(3):
        m = means[:, g]
        se = np.sqrt(2 * want**2 / (m.size - 1))  # about the SE of a variance
        assert abs(m.mean() - 14.5) <= Z * np.sqrt(want / m.size)
        assert abs(m.var(ddof=1) - want) <= Z * se
    # generations differ (a fresh subset each time)
    assert np.mean(means[:, 0] != means[:, 1]) > 0.9


@pytest.mark.parametrize("w", [0.382, 0.618])
def test_weighted_fresh_mean_variance_matches_he_xu_cheng(w):
    """Stationary Var(mu_t) = (sigma^2 / n)[k (1 - w)^2 + w^2] / (1 - (1 - w)^2),
    k = n / M; minimised at the golden-ratio weight for k = 1."""
    fam = jc.Gaussian(dim=1, method="exact")
    M = n = 20
    res = jc.simulate(jax.random.key(5), fam, fam.params(), n_generations=40, n_samples=M,
                      n_chains=4000, regime=jc.weighted_fresh(w, n), metrics=["mean_shift"],
                      save_params=False)
    k = n / M
    want = (1.0 / n) * (k * (1 - w) ** 2 + w**2) / (1 - (1 - w) ** 2)
    x = np.asarray(res.metrics["mean_shift"][:, -1])
    assert abs(x.mean() - want) <= Z * x.std(ddof=1) / np.sqrt(x.size)


def test_weighted_fresh_grid_sweeps_w_in_one_program():
    fam = jc.Gaussian(dim=1, method="exact")
    w = jnp.array([0.0, 0.5, 1.0])
    res = jc.simulate_grid(jax.random.key(2), fam, fam.params(), n_generations=5,
                           n_samples=10, n_chains=4, regime=jc.weighted_fresh(w, 10))
    assert res.metrics["w2sq"].shape == (3, 4, 6)
    # w = 1 fits only the fresh draws: generation t does not depend on t - 1
    one = jc.simulate(jax.random.key(2), fam, fam.params(), n_generations=5, n_samples=10,
                      n_chains=4, regime=jc.weighted_fresh(1.0, 10))
    np.testing.assert_allclose(res.metrics["w2sq"][2], one.metrics["w2sq"], rtol=1e-12)


def test_accumulate_subsample_keeps_a_uniform_m_subset_of_the_live_pool():
    """Generation t = 2 of M = 4 on a pool of 3 x 4 rows (8 live): exactly 4 rows kept,
    each live row with probability 4/8 (5 SE), dead rows never, pairs uniform."""
    fam = jc.Gaussian(dim=1, method="samples")
    reg = rg.AccumulateSubsample()
    spec = rg.PoolSpec(fam, exact=False, n_max=4, n_generations=3)
    state = reg.init(spec, jax.random.key(0), fam.params(), None)
    state = dict(state, pool_w=state["pool_w"].at[:4].set(1.0))  # generation 1's rows
    syn = (jnp.ones((4, 1)), jnp.ones(4))

    def kept(key):
        gen = rg.Generation(jnp.int32(2), jnp.int32(4), key, syn, None, fam.params(),
                            lambda train: train[1], None)
        return reg.update(spec, state, gen)[0]

    w = np.asarray(jax.vmap(kept)(jax.random.split(jax.random.key(1), 4000)))
    assert np.all(w.sum(axis=1) == 4) and np.all(w[:, 8:] == 0)
    p = w[:, :8].mean(axis=0)
    assert np.all(np.abs(p - 0.5) <= Z * np.sqrt(0.25 / w.shape[0]))
    # all C(8, 4) = 70 subsets equally likely (chi-square)
    codes = w[:, :8].astype(int) @ (2 ** np.arange(8))
    counts = np.unique(codes, return_counts=True)[1]
    assert counts.size == 70 and stats.chisquare(counts).pvalue > 1e-3


@pytest.mark.parametrize("method", ["samples", "exact"])
@pytest.mark.parametrize("source", ["fixed", "fresh"])
def test_mix_room_for_human_rows_does_not_change_a_chain(method, source):
    """A grid over alpha = (0.1, 0.6) holds room for 32 human rows of M = 50, alpha =
    0.1 alone for 8: the chain's numbers at alpha = 0.1 are the same (each index of the
    human subset comes from its own counter). Bitwise, except the exact path's fresh
    rows, whose statistics are a weighted sum over the room: there the last bit may
    differ."""
    fam = jc.Gaussian(dim=1, method=method)
    p0 = fam.params()
    human = fam.sample(jax.random.key(9), p0, 200)
    kw = dict(n_generations=4, n_samples=50, n_chains=3, human_data=human,
              save_params=True)
    grid = jc.simulate_grid(jax.random.key(1), fam, p0,
                            regime=jc.mix(jnp.array([0.1, 0.6]), source), **kw)
    one = jc.simulate(jax.random.key(1), fam, p0, regime=jc.mix(0.1, source), **kw)
    for a, b in zip(jax.tree.leaves(grid.params), jax.tree.leaves(one.params), strict=True):
        if method == "exact" and source == "fresh":
            np.testing.assert_allclose(np.asarray(a)[0], np.asarray(b), rtol=1e-14)
        else:
            np.testing.assert_array_equal(np.asarray(a)[0], np.asarray(b))
