"""Contract tests: every family of ``FAMILIES`` and every regime of ``REGIMES`` through
the one recursion: samples path, statistics path where declared, chunking, sharding
and chain independence. A new family or regime is covered without editing these
tests beyond one example line (and a missing example fails ``test_every_*_has_an_example``).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.families.base import DataSetFamily, NoiseStats, uses_exact_path

G, M, C = 4, 24, 3


def _gaussian():
    fam = jc.Gaussian(dim=2, method="exact")
    return fam, fam.params(mean=[0.5, -0.5])


def _categorical():
    return jc.Categorical(n_categories=12), jc.families.categorical.zipf(12, 1.1)


def _regression():
    fam = jc.LinearRegression(dim=3)
    return fam, fam.params(jnp.array([1.0, -1.0, 0.5]))


def _gmm():
    fam = jc.GMM(n_components=2, dim=1)
    return fam, fam.params([0.5, 0.5], [[-2.0], [2.0]], [[[1.0]], [[1.0]]])


def _kde():
    fam = jc.KDE(dim=1, bandwidth="scott")
    return fam, fam.params(jax.random.normal(jax.random.key(5), (17, 1)))


def _poisson():
    fam = jc.Poisson()
    return fam, fam.params(rate=3.0)


EXAMPLES = {"gaussian": _gaussian, "categorical": _categorical, "regression": _regression,
            "gmm": _gmm, "kde": _kde, "poisson": _poisson}

REGIME_EXAMPLES = {
    "replace": lambda: jc.replace(),
    "accumulate": lambda: jc.accumulate(),
    "accumulate-subsample": lambda: jc.accumulate_subsample(),
    "mix": lambda: jc.mix(0.25, "fresh"),
    "weighted-fresh": lambda: jc.weighted_fresh(0.4, 10),
}


def test_every_family_has_an_example():
    assert set(EXAMPLES) == set(jc.FAMILIES)


def test_every_regime_has_an_example():
    assert set(REGIME_EXAMPLES) == set(jc.REGIMES)
    for name, make in REGIME_EXAMPLES.items():
        assert make().name == name


def _human(fam, p0):
    if isinstance(fam, DataSetFamily):
        return fam.initial_data(p0)[0]
    return fam.sample(jax.random.key(7), p0, 60)


def _samples_variant(fam):
    """The same family on the samples path, where it has a switch."""
    if isinstance(fam, jc.Gaussian):
        return jc.Gaussian(dim=fam.dim, method="samples")
    return fam


def _run(fam, p0, regime, n_chains=C, **kw):
    human = _human(fam, p0) if regime.uses_human else None
    # save_params=True: the generic path (a family's fast runner has its own tests)
    return jc.simulate(jax.random.key(11), fam, p0, n_generations=G, n_samples=M,
                       n_chains=n_chains, regime=regime, human_data=human, save_params=True,
                       **kw)


def _equal(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _pools_statistics(fam, regime):
    """Whether the run pools the statistics of every generation's draws (accumulate on
    the statistics path, or on a samples path that fits through the draws' sums)."""
    return regime.name == "accumulate" and (uses_exact_path(fam)
                                            or isinstance(fam, NoiseStats))


def _check_contract(fam, p0, regime):
    """Finite results of the right shapes on every declared path; chunked equals
    whole; a chain's numbers do not depend on the chain count (bitwise)."""
    paths = [_samples_variant(fam)]
    if uses_exact_path(fam) and regime.stats_path:
        paths.append(fam)
    for f in dict.fromkeys(paths):  # one or two distinct paths
        whole = _run(f, p0, regime)
        for name, v in whole.metrics.items():
            assert v.shape == (C, G + 1), name
            assert np.all(np.isfinite(np.asarray(v)) | np.asarray(whole.degenerate)), name
        assert whole.n_samples.tolist() == [0] + [M] * G
        chunked = _run(f, p0, regime, chunk_size=3).metrics
        if _pools_statistics(f, regime):
            # pooled statistics (Chan's update, sums of products): XLA:CPU contracts a
            # multiply-add into one FMA or not depending on how it fuses the program,
            # which differs between scans of different lengths (1 ulp)
            for x, y in zip(jax.tree.leaves(whole.metrics), jax.tree.leaves(chunked),
                            strict=True):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-13,
                                           atol=1e-15)
        else:
            _equal(whole.metrics, chunked)
        # a chain's numbers do not depend on the chain count: bitwise for parametric
        # families; a data-set family's fit (weighted sums over its rows) may round
        # differently by 1 ulp when XLA vectorises another batch of chains
        few = _run(f, p0, regime, n_chains=2).metrics
        first = jax.tree.map(lambda a: a[:2], whole.metrics)
        if isinstance(f, DataSetFamily):
            for x, y in zip(jax.tree.leaves(first), jax.tree.leaves(few), strict=True):
                np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-14)
        else:
            _equal(first, few)


@pytest.mark.parametrize("fname", list(EXAMPLES))
def test_family_contract(fname):
    """Every family of FAMILIES through the recursion (replace and accumulate)."""
    fam, p0 = EXAMPLES[fname]()
    for regime in (jc.replace(), jc.accumulate()):
        _check_contract(fam, p0, regime)


@pytest.mark.parametrize("rname", list(REGIME_EXAMPLES))
def test_regime_contract(rname):
    """Every regime of REGIMES through the recursion (a 2-D Gaussian on both paths,
    and a data-set family on the samples path)."""
    regime = REGIME_EXAMPLES[rname]()
    for make in (_gaussian, _kde):
        fam, p0 = make()
        if rname == "weighted-fresh" and make is _kde:
            with pytest.raises(ValueError, match="needs a parametric family"):
                _run(fam, p0, regime)
            continue
        _check_contract(fam, p0, regime)


def test_human_data_with_a_regime_that_ignores_it_is_an_error():
    fam, p0 = _gaussian()
    with pytest.raises(ValueError, match="human_data"):
        jc.simulate(jax.random.key(0), fam, p0, n_generations=2, n_samples=10, n_chains=2,
                    regime="accumulate", human_data=fam.sample(jax.random.key(1), p0, 20))


def test_accumulate_samples_refused_on_statistics_path():
    fam, p0 = _gaussian()
    with pytest.raises(ValueError, match="samples path"):
        jc.simulate(jax.random.key(0), fam, p0, n_generations=2, n_samples=10, n_chains=2,
                    regime="accumulate-subsample")


@pytest.mark.parametrize("m", [5, 17, 40])
def test_kde_any_sample_size(m):
    """A data-set family sizes its own buffer: any n_samples works with any regime."""
    fam, p0 = _kde()
    for regime in (jc.replace(), jc.accumulate(), jc.mix(0.25)):
        human = fam.initial_data(p0)[0] if regime.uses_human else None
        res = jc.simulate(jax.random.key(1), fam, p0, n_generations=2, n_samples=m,
                          n_chains=2, regime=regime, human_data=human)
        assert np.all(np.isfinite(np.asarray(res.metrics["data_var"])))


def test_kde_accumulate_pool_starts_with_the_human_points():
    """Gerstgrasser's and Kazdan's accumulate keeps the real data in the pool."""
    fam, p0 = _kde()
    res = jc.simulate(jax.random.key(1), fam, p0, n_generations=3, n_samples=5, n_chains=1,
                      regime="accumulate")
    pts = np.asarray(res.params.points[0, 3])
    w = np.asarray(res.params.weights[0, 3])
    np.testing.assert_array_equal(pts[:17], np.asarray(p0.points))
    assert w[:17].tolist() == [1.0] * 17 and w.sum() == 17 + 3 * 5


def test_a_regime_class_instead_of_an_instance_is_an_error():
    fam, p0 = _gaussian()
    with pytest.raises(TypeError, match="regime must be a regime object"):
        jc.simulate(jax.random.key(0), fam, p0, n_generations=2, n_samples=10, n_chains=2,
                    regime=jc.regimes.Accumulate)
