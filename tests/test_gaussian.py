"""The Gaussian family: fit, log_prob and sufficient statistics against NumPy/scipy,
and the exact statistic sampler against sampling (KS tests, fixed keys, p > 0.001)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxcollapse as jc
from jaxcollapse.families.gaussian import cov_sqrt


def _spd(d, seed=0):
    a = np.random.default_rng(seed).standard_normal((d, d))
    return a @ a.T + 0.5 * np.eye(d)


@pytest.mark.parametrize("d, ddof", [(1, 1), (3, 0), (3, 1)])
def test_weighted_fit_equals_numpy_on_the_selected_rows(d, ddof):
    fam = jc.Gaussian(dim=d, ddof=ddof)
    x = np.random.default_rng(1).standard_normal((40, d)) * 2 + 1
    w = np.zeros(40)
    w[:25] = 1
    p = fam.fit(jax.random.key(0), jnp.asarray(x), jnp.asarray(w))
    np.testing.assert_allclose(p.mean, x[:25].mean(0), rtol=1e-10)
    np.testing.assert_allclose(p.cov, np.cov(x[:25].T, ddof=ddof).reshape(d, d), rtol=1e-10)


def test_log_prob_against_scipy():
    for d in (1, 3):
        fam = jc.Gaussian(dim=d)
        cov = _spd(d)
        p = fam.params(mean=np.arange(d, dtype=float), cov=cov)
        x = np.random.default_rng(2).standard_normal((7, d))
        ref = stats.multivariate_normal(np.arange(d), cov).logpdf(x)
        np.testing.assert_allclose(fam.log_prob(p, jnp.asarray(x)), ref, rtol=1e-6)


def test_pooled_statistics_equal_statistics_of_the_union():
    fam = jc.Gaussian(dim=2)
    x = jnp.asarray(np.random.default_rng(3).standard_normal((30, 2)))
    one = jnp.ones(30)
    a = fam.stats(x[:10], one[:10])
    b = fam.stats(x[10:], one[10:])
    ab = fam.add_stats(a, b)
    whole = fam.stats(x, one)
    for u, v in zip(ab, whole, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-10, atol=1e-12)
    empty = fam.stats(x, jnp.zeros(30))
    for u, v in zip(fam.add_stats(empty, a), a, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-12)


def test_sample_matches_moments():
    fam = jc.Gaussian(dim=2)
    cov = _spd(2, 4)
    p = fam.params(mean=[1.0, -1.0], cov=cov)
    x = np.asarray(fam.sample(jax.random.key(0), p, 50_000))
    se = np.sqrt(np.diag(cov) / 50_000)
    assert np.all(np.abs(x.mean(0) - [1.0, -1.0]) < 5 * se)
    np.testing.assert_allclose(np.cov(x.T), cov, rtol=0.05)


def _scatter_traces(fam, p, n, reps, exact):
    keys = jax.random.split(jax.random.key(7 if exact else 8), reps)
    if exact:
        st = jax.jit(jax.vmap(lambda k: fam.sample_stats(k, p, jnp.int32(n))))(keys)
    else:
        st = jax.jit(jax.vmap(lambda k: fam.stats(fam.sample(k, p, n), jnp.ones(n))))(keys)
    return np.asarray(jnp.trace(st.scatter, axis1=-2, axis2=-1)), np.asarray(st.mean[:, 0])


@pytest.mark.parametrize("d, n", [(1, 2), (1, 7), (3, 5), (3, 2)], ids=["1d-n2", "1d-n7",
                                                                         "3d-n5", "3d-singular"])
def test_exact_statistics_have_the_law_of_sampled_ones(d, n):
    fam = jc.Gaussian(dim=d)
    p = fam.params(mean=np.ones(d), cov=_spd(d, 5))
    tr_e, m_e = _scatter_traces(fam, p, n, 20_000, True)
    tr_s, m_s = _scatter_traces(fam, p, n, 20_000, False)
    assert stats.ks_2samp(tr_e, tr_s).pvalue > 1e-3
    assert stats.ks_2samp(m_e, m_s).pvalue > 1e-3


def test_exact_statistics_of_zero_and_one_draw():
    fam = jc.Gaussian(dim=2)
    p = fam.params()
    s0 = fam.sample_stats(jax.random.key(0), p, jnp.int32(0))
    assert float(s0.n) == 0 and np.all(np.asarray(s0.scatter) == 0)
    s1 = fam.sample_stats(jax.random.key(0), p, jnp.int32(1))
    assert float(s1.n) == 1 and np.all(np.asarray(s1.scatter) == 0)


def test_cov_sqrt_of_singular_covariance_is_finite():
    c = jnp.array([[1.0, 1.0], [1.0, 1.0]])
    a = cov_sqrt(c)
    assert np.all(np.isfinite(np.asarray(a)))
    np.testing.assert_allclose(a @ a.T, c, atol=1e-6)


def test_family_is_hashable_registered_and_validates():
    assert jc.FAMILIES["gaussian"] is jc.Gaussian
    assert hash(jc.Gaussian(dim=2)) == hash(jc.Gaussian(dim=2))
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        jc.Gaussian(dim=0)
    with pytest.raises(ValueError, match="ddof must be 0 or 1"):
        jc.Gaussian(ddof=2)
    with pytest.raises(ValueError, match="method must be one of"):
        jc.Gaussian(method="magic")
    fam = jc.Gaussian(dim=2)
    with pytest.raises(ValueError, match=r"data must have shape \(n, 2\)"):
        fam.check_data(jnp.zeros((5, 3)))
    with pytest.raises(ValueError, match="symmetric"):
        fam.params(cov=[[1.0, 0.5], [0.0, 1.0]])
    with pytest.raises(TypeError, match="GaussianParams"):
        fam.check_params("not params")
    assert fam.min_samples() == 3 and jc.Gaussian(dim=2, ddof=0).min_samples() == 2


@pytest.mark.parametrize("d", [1, 3])
def test_noise_hooks_compose_to_the_draws_and_batch_over_keys(d):
    fam = jc.Gaussian(dim=d)
    p = fam.params(mean=np.ones(d), cov=_spd(d, 6))
    keys = jax.random.split(jax.random.key(3), 6)
    n = jnp.array([0, 1, 2, 5, 9, 40])
    noise = jax.jit(fam.stats_noise, static_argnums=2)
    batched = noise(keys, n, p.mean.dtype)
    one = jax.vmap(lambda k, m: noise(k, m, p.mean.dtype))(keys, n)
    for u, v in zip(batched, one, strict=True):
        np.testing.assert_array_equal(u, v)
    via_noise = jax.vmap(lambda z, m: fam.stats_from_noise(p, z, m))(batched, n)
    direct = jax.vmap(lambda k, m: fam.sample_stats(k, p, m))(keys, n)
    for u, v in zip(via_noise, direct, strict=True):
        np.testing.assert_array_equal(u, v)
    z = fam.sample_noise(keys, 7, p.mean.dtype)
    np.testing.assert_array_equal(jax.vmap(lambda z: fam.sample_from_noise(p, z, 7))(z),
                                  jax.vmap(lambda k: fam.sample(k, p, 7))(keys))


@pytest.mark.parametrize("d", [1, 3])
def test_noise_sums_give_the_statistics_of_the_drawn_samples(d):
    # the samples path's shortcut: the fit to the first m samples, through the sums
    # of their normals, equals the fit to the samples (to rounding), per key
    fam = jc.Gaussian(dim=d)
    p = fam.params(mean=np.arange(d) + 3.0, cov=_spd(d, 7))
    keys = jax.random.split(jax.random.key(4), 5)
    n, m = 12, jnp.array([d + 1, 5, 7, 11, 12])
    noise = fam.sample_noise(keys, n, p.mean.dtype)

    def via_sums(z, m):
        return fam.stats_from_noise_stats(p, fam.sample_noise_stats(z, m), m)

    def direct(z, m):
        return fam.stats(fam.sample_from_noise(p, z, n), (jnp.arange(n) < m).astype(float))

    a = jax.jit(jax.vmap(via_sums))(noise, m)
    b = jax.vmap(direct)(noise, m)
    for u, v in zip(a, b, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


def test_float32_exact_statistics_have_the_law_of_sampled_ones():
    # the suite runs in float64; the float32 samplers (the default precision) too
    fam = jc.Gaussian(dim=1)
    p = fam.params(dtype=jnp.float32)
    keys = jax.random.split(jax.random.key(9), 20_000)
    ex = jax.jit(jax.vmap(lambda k: fam.sample_stats(k, p, jnp.int32(20))))(keys)
    sa = jax.jit(jax.vmap(lambda k: fam.stats(fam.sample(k, p, 20), jnp.ones(20, p.mean.dtype))))(
        jax.random.split(jax.random.key(10), 20_000))
    assert ex.scatter.dtype == jnp.float32 and sa.scatter.dtype == jnp.float32
    # KS against the chi-square law (scatter ~ chi2(19)) and the normal law of the mean
    for st in (ex, sa):
        assert stats.kstest(np.asarray(st.scatter[:, 0, 0]), stats.chi2(19).cdf).pvalue > 1e-3
        assert stats.kstest(np.asarray(st.mean[:, 0]) * np.sqrt(20), "norm").pvalue > 1e-3
