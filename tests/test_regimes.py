"""Regime objects: behaviour, validation, the fresh human subset's law, weighted fresh
data against its closed form. Monte Carlo bounds are Z = 5 standard errors
(false-failure rate ~6e-7 each); distribution tests use chi-square at p > 0.001."""

import dataclasses
import itertools
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxcollapse as jc
from jaxcollapse import random as jcr
from jaxcollapse import regimes as rg
from jaxcollapse.simulation import _setup as prepare_mod

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


@pytest.mark.parametrize(("w", "method"), [(0.382, "exact"), (0.618, "exact"),
                                           (0.618, "samples")])
def test_weighted_fresh_mean_variance_matches_he_xu_cheng(w, method):
    """Stationary Var(mu_t) = (sigma^2 / n)[k (1 - w)^2 + w^2] / (1 - (1 - w)^2),
    k = n / M; minimised at the golden-ratio weight for k = 1. On the samples path the
    fresh draws come as their statistics' exact law (the synthetic ones as the sums of
    their normals)."""
    fam = jc.Gaussian(dim=1, method=method)
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
    """Generation t = 2 of M = 4: the pool holds generation 1's four rows and takes four
    more, one of them dead (weight 0): exactly 4 of the 7 live rows kept, each with
    probability 4/7 (5 SE), the dead row never, all C(7, 4) = 35 subsets uniform."""
    fam = jc.Gaussian(dim=1, method="samples")
    reg = rg.AccumulateSubsample()
    spec = rg.PoolSpec(fam, exact=False, n_max=4, n_generations=3)
    state = reg.init(spec, jax.random.key(0), fam.params(), None)
    first = jnp.arange(4.0)[:, None]
    pool = state["pool"].at[:4].set(first)
    state = dict(state, pool=pool, n_live=jnp.int32(4))  # generation 1's rows
    syn = (jnp.arange(4.0, 8.0)[:, None], jnp.array([1.0, 0.0, 1.0, 1.0]))  # row 5 dead

    def kept(key):
        gen = rg.Generation(jnp.int32(2), jnp.int32(4), key, syn, None, fam.params(),
                            lambda train: jnp.zeros(8).at[train[0][:, 0].astype(int)]
                            .add(train[1]), None)
        params, new = reg.update(spec, state, gen)
        return params, new["n_live"], new["scratch"]

    w, n_live, scratch = jax.vmap(kept)(jax.random.split(jax.random.key(1), 4000))
    w = np.asarray(w)
    assert np.all(np.asarray(n_live) == 7) and np.asarray(scratch).max() == 0
    assert np.all(w.sum(axis=1) == 4) and np.all(w[:, 5] == 0) and set(np.unique(w)) <= {0, 1}
    live = [0, 1, 2, 3, 4, 6, 7]
    p = w[:, live].mean(axis=0)
    assert np.all(np.abs(p - 4 / 7) <= Z * np.sqrt(4 / 7 * 3 / 7 / w.shape[0]))
    codes = w[:, live].astype(int) @ (2 ** np.arange(7))
    counts = np.unique(codes, return_counts=True)[1]
    assert counts.size == 35 and stats.chisquare(counts).pvalue > 1e-3


def test_accumulate_subsample_keeps_every_live_row_or_all_but_one_uniformly():
    """n_live <= m keeps every live row (and no dead one); n_live = m + 1 (the
    rejection's longest case, 4 of 5) leaves out each of the 5 live rows with
    probability 1/5 (chi-square, fixed key: false failure 0.001)."""
    fam = jc.Gaussian(dim=1, method="samples")
    reg = rg.AccumulateSubsample()
    spec = rg.PoolSpec(fam, exact=False, n_max=4, n_generations=3)
    state = reg.init(spec, jax.random.key(0), fam.params(), None)

    def kept(key, n_before, w_new, m=4):
        pool = state["pool"].at[:n_before].set(jnp.arange(n_before, dtype=float)[:, None])
        st = dict(state, pool=pool, n_live=jnp.int32(n_before))
        syn = (jnp.arange(n_before, n_before + 4.0)[:, None], w_new)
        gen = rg.Generation(jnp.int32(2), jnp.int32(m), key, syn, None, fam.params(),
                            lambda train: jnp.zeros(8).at[train[0][:, 0].astype(int)]
                            .add(train[1]), None)
        params, new = reg.update(spec, st, gen)
        return params, new["scratch"]

    keys = jax.random.split(jax.random.key(2), 5000)
    # row 0 live before, new rows 2 and 3 live (1 and 4 dead): 3 <= m = 4, all kept
    w, scratch = jax.vmap(lambda k: kept(k, 1, jnp.array([0.0, 1.0, 1.0, 0.0])))(keys[:50])
    assert np.asarray(w).tolist() == [[1, 0, 1, 1, 0, 0, 0, 0]] * 50  # rows 0, 2, 3
    assert np.asarray(scratch).max() == 0
    # m = 3 of the 3 live rows, the schedule's m below n_max: all kept
    w, _ = jax.vmap(lambda k: kept(k, 1, jnp.array([0.0, 1.0, 1.0, 0.0]), 3))(keys[:50])
    assert np.asarray(w).tolist() == [[1, 0, 1, 1, 0, 0, 0, 0]] * 50  # rows 0, 2, 3
    # 1 before, all 4 new live: 4 of 5
    w, scratch = jax.vmap(lambda k: kept(k, 1, jnp.ones(4)))(keys)
    w = np.asarray(w)
    assert np.all(w.sum(axis=1) == 4) and np.all(w[:, 5:] == 0)
    assert np.asarray(scratch).max() == 0
    assert stats.chisquare(np.bincount(np.argmin(w[:, :5], axis=1), minlength=5)
                           ).pvalue > 1e-3


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class _RowPool(rg.Accumulate):
    """Accumulate with its buffer of rows on the samples path (the algorithm before
    the draws' statistics were pooled)."""

    pools_stats: ClassVar[bool] = False


@pytest.mark.parametrize("dim", [1, 3])
def test_accumulate_pools_the_draws_statistics_on_the_gaussian_samples_path(dim, monkeypatch):
    """The same draws fitted through their pooled statistics and through the buffer of
    every row: equal to rounding (the recursion is stable, so rounding stays small);
    the pooled run needs no row buffer, so a pool far above the memory limit runs."""
    fam = jc.Gaussian(dim=dim, method="samples")
    p0 = fam.params(mean=np.linspace(-1.0, 1.0, dim))
    kw = dict(n_generations=12, n_samples=30, n_chains=4, save_params=True)
    pooled = jc.simulate(jax.random.key(3), fam, p0, regime=jc.accumulate(), **kw)
    rows = jc.simulate(jax.random.key(3), fam, p0, regime=_RowPool(), **kw)
    np.testing.assert_allclose(pooled.params.mean, rows.params.mean, rtol=1e-10,
                               atol=1e-12)
    np.testing.assert_allclose(pooled.params.cov, rows.params.cov, rtol=1e-10)
    # with a row budget of 1 KiB the buffer of rows is refused, the pooled run is not
    monkeypatch.setattr(prepare_mod, "_POOL_LIMIT_BYTES", 1024)
    kw = dict(kw, n_chains=2)
    with pytest.raises(ValueError, match="accumulated pool needs"):
        jc.simulate(jax.random.key(0), fam, p0, regime=_RowPool(), **kw)
    pooled = jc.simulate(jax.random.key(0), fam, p0, regime=jc.accumulate(), **kw)
    assert np.isfinite(np.asarray(pooled.metrics["w2sq"])).all()


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
