"""Closed forms of jaxcollapse.theory.gaussian against Monte Carlo from simulate.

Every comparison is |MC mean - theory| <= Z * SE, with SE estimated from the
chains. With Z = 5 a single comparison fails falsely with probability ~6e-7;
this file makes ~60 comparisons, so the suite's false-failure rate is < 1e-4.
Keys are fixed, so a failure is reproducible, never flaky.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import jaxcollapse as jc
from jaxcollapse.theory import gaussian as tg

Z = 5.0


def assert_mc(samples, theory, axis=0, z=Z, floor=1e-12):
    samples = np.asarray(samples, float)
    mean = samples.mean(axis)
    se = samples.std(axis, ddof=1) / np.sqrt(samples.shape[axis])
    theory = np.asarray(theory, float)
    assert np.all(np.abs(mean - theory) <= z * se + floor), (mean, theory, se)


def assert_fraction(hits, p, z=Z):
    """A fraction of Bernoulli(p) outcomes over chains, binomial standard error."""
    hits = np.asarray(hits)
    n = hits.shape[0]
    frac = hits.mean(0)
    se = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(frac - p) <= z * se + 1e-12), (frac, p)


# ------------------------------------------------------------- shared simulations
M1, G1, C1 = 100, 200, 20_000


@pytest.fixture(scope="module")
def unbiased_1d():
    fam = jc.Gaussian(dim=1, ddof=1, method="exact")
    return jc.simulate(jax.random.key(1), fam, fam.params(), n_generations=G1, n_samples=M1,
                       n_chains=C1, metrics=["w2sq", "mean_shift", "var_ratio"])


M2, G2, C2 = 20, 60, 20_000


@pytest.fixture(scope="module")
def mle_1d():
    fam = jc.Gaussian(dim=1, ddof=0, method="exact")
    p0 = fam.params(mean=[2.0], cov=[[3.0]])
    return jc.simulate(jax.random.key(2), fam, p0, n_generations=G2, n_samples=M2,
                       n_chains=C2, metrics=["w2sq", "mean_shift", "var_ratio"])


M3, G3, C3, D3 = 10, 20, 20_000, 3
COV3 = np.array([[2.0, 0.5, 0.0], [0.5, 1.0, 0.3], [0.0, 0.3, 0.5]])


@pytest.fixture(scope="module", params=[(1, "exact"), (0, "samples")])
def mv_3d(request):
    ddof, method = request.param
    fam = jc.Gaussian(dim=D3, ddof=ddof, method=method)
    res = jc.simulate(jax.random.key(3), fam, fam.params(cov=COV3), n_generations=G3,
                      n_samples=M3, n_chains=C3, metrics=["logdet_ratio", "mean_shift"])
    return ddof, res


# ---------------------------------------------------------------- one dimension


def test_variance_is_a_martingale_at_small_n(unbiased_1d):
    n = np.array([1, 5, 20])
    assert_mc(unbiased_1d.metrics["var_ratio"][:, n], tg.variance_mean(n, M1))


def test_std_mean(unbiased_1d):
    n = np.array([1, 20, 50])
    s = np.sqrt(np.asarray(unbiased_1d.params.cov[:, n, 0, 0]))
    assert_mc(s, tg.std_mean(n, M1))


def test_log_variance_mean_and_var_at_large_n(unbiased_1d):
    n = np.array([20, 100, 200])
    L = np.log(np.asarray(unbiased_1d.metrics["var_ratio"][:, n]))
    assert_mc(L, tg.log_variance_mean(n, M1))
    # variance: mean of squared deviations; its SE from the chains' fourth moment
    dev2 = (L - L.mean(0)) ** 2
    assert_mc(dev2 * C1 / (C1 - 1), tg.log_variance_var(n, M1))


def test_variance_quantiles_and_tail_probability(unbiased_1d):
    n = 200
    v = np.asarray(unbiased_1d.metrics["var_ratio"][:, n])
    for q in (0.01, 0.1, 0.5, 0.9, 0.99):
        assert_fraction(v[:, None] < tg.variance_quantile(q, n, M1), q)
    for eps in (0.05, 0.5):
        p = float(tg.prob_variance_below(eps, n, M1))
        assert_fraction((v < eps)[:, None], p)
    # the median collapses like exp(-n/k)
    assert abs(np.log(tg.variance_quantile(0.5, n, M1)) + n / (M1 - 1)) < 0.05


def test_mean_shift_and_w2(unbiased_1d):
    n = np.array([5, 20, 50])
    assert_mc(unbiased_1d.metrics["mean_shift"][:, n], tg.mean_shift(n, M1))
    assert_mc(unbiased_1d.metrics["w2sq"][:, n], tg.w2sq_mean(n, M1))
    # large-M approximation (3/2) n / M of THEORY.md
    assert np.allclose(tg.w2sq_mean(n, 10_000), 1.5 * n / 10_000, rtol=1e-3)


def test_draw_variance(unbiased_1d):
    n = np.array([10, 50])
    mu = np.asarray(unbiased_1d.params.mean[:, n, 0])
    var = np.asarray(unbiased_1d.params.cov[:, n, 0, 0])
    x = mu + np.sqrt(var) * np.random.default_rng(0).standard_normal(mu.shape)
    assert_mc(x**2, tg.draw_variance(n, M1))  # E x = 0, so Var x = E x^2


def test_mle_variants(mle_1d):
    n = np.array([1, 10, 60])
    assert_mc(mle_1d.metrics["var_ratio"][:, n], tg.variance_mean(n, M2, 1.0, ddof=0))
    assert_mc(mle_1d.metrics["mean_shift"][:, n], tg.mean_shift(n, M2, 3.0, ddof=0))
    L = np.log(np.asarray(mle_1d.metrics["var_ratio"][:, n]))
    assert_mc(L, tg.log_variance_mean(n, M2, ddof=0))
    assert_mc(mle_1d.metrics["w2sq"][:, np.array([1, 10])],
              tg.w2sq_mean(np.array([1, 10]), M2, 3.0, ddof=0))


def test_c4_closed_form():
    M = np.array([2, 5, 30])
    k = M - 1
    c4 = np.sqrt(2 / k) * np.exp(special.gammaln(M / 2) - special.gammaln(k / 2))
    np.testing.assert_allclose(tg.std_factor(M), c4, rtol=1e-12)


# ----------------------------------------------------------------- schedules


def test_schedule_forms_reduce_to_constant():
    n = np.arange(0, 6)
    for ddof in (0, 1):
        np.testing.assert_allclose(tg.w2sq_mean_schedule(np.full(5, 50), ddof=ddof),
                                   tg.w2sq_mean(n, 50, ddof=ddof), rtol=1e-10)
        np.testing.assert_allclose(tg.mean_shift_schedule(np.full(5, 50), ddof=ddof),
                                   tg.mean_shift(n, 50, ddof=ddof), rtol=1e-10, atol=1e-15)


def test_superlinear_schedule_keeps_w2_bounded():
    sched = jc.schedule("power", 2000, 10, power=2.0)
    w = np.asarray(tg.w2sq_mean_schedule(sched))
    # sum 1/M_i and prod c4(M_i) converge: the tail adds < 1e-3 after generation 1000
    assert abs(w[-1] - w[1000]) < 1e-3 and w[-1] < 1.0
    lin = np.asarray(tg.w2sq_mean_schedule(np.full(2000, 10)))
    assert lin[-1] > 10 * w[-1]


def test_schedule_against_monte_carlo():
    fam = jc.Gaussian(dim=1, method="exact")
    sched = jc.schedule("linear", 30, 10, rate=10)
    res = jc.simulate(jax.random.key(4), fam, fam.params(), n_generations=30,
                      n_samples=sched, n_chains=20_000, metrics=["mean_shift", "w2sq"])
    assert_mc(res.metrics["mean_shift"][:, 1:], tg.mean_shift_schedule(sched)[1:])
    idx = np.array([1, 10, 30])
    assert_mc(res.metrics["w2sq"][:, idx], tg.w2sq_mean_schedule(sched)[idx])


# ---------------------------------------------------------------- d dimensions


def test_multivariate_cov_logdet_and_mean(mv_3d):
    ddof, res = mv_3d
    n = np.array([1, 5, 20])
    cov = np.asarray(res.params.cov[:, n])  # (C, 3, 3, 3)
    factor = np.asarray(tg.cov_mean_factor(n, M3, ddof))
    for i, j in [(0, 0), (0, 1), (1, 2), (2, 2)]:
        assert_mc(cov[:, :, i, j], factor * COV3[i, j])
    ld0 = np.linalg.slogdet(COV3)[1]
    assert_mc(res.metrics["logdet_ratio"][:, n], tg.logdet_mean(n, M3, D3, 0.0, ddof))
    assert_mc(res.metrics["mean_shift"][:, n], tg.mean_shift_mv(n, M3, np.trace(COV3), ddof))
    assert np.isfinite(ld0)


def test_logdet_drift_is_sum_of_digammas():
    M, d = 50, 4
    expect = sum(special.digamma((M - j) / 2) for j in range(1, d + 1)) + d * np.log(2) \
        - d * np.log(M - 1)
    np.testing.assert_allclose(tg.logdet_drift(M, d), expect, rtol=1e-10)
    # in one dimension it is the log-variance drift
    np.testing.assert_allclose(tg.logdet_drift(M, 1), tg.log_variance_mean(1, M), rtol=1e-12)


# ------------------------------------------------------- distances between Gaussians


def _random_spd(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T + 0.5 * np.eye(d)


def test_w2_and_kl_against_scipy():
    rng = np.random.default_rng(0)
    from scipy.linalg import sqrtm

    for d in (1, 2, 5):
        m1, m2 = rng.standard_normal(d), rng.standard_normal(d)
        s1, s2 = _random_spd(rng, d), _random_spd(rng, d)
        r2 = np.real(sqrtm(s2))
        w2 = np.sum((m1 - m2) ** 2) + np.trace(s1 + s2 - 2 * np.real(sqrtm(r2 @ s1 @ r2)))
        np.testing.assert_allclose(tg.w2sq(m1, s1, m2, s2), w2, rtol=1e-6)
        inv2 = np.linalg.inv(s2)
        klv = 0.5 * (np.trace(inv2 @ s1) + (m2 - m1) @ inv2 @ (m2 - m1) - d
                     + np.linalg.slogdet(s2)[1] - np.linalg.slogdet(s1)[1])
        np.testing.assert_allclose(tg.kl(m1, s1, m2, s2), klv, rtol=1e-6)


def test_kl_matches_numerical_integration_1d():
    m1, s1, m2, s2 = 0.3, 0.7, -0.5, 1.9
    p, q = stats.norm(m1, np.sqrt(s1)), stats.norm(m2, np.sqrt(s2))
    x = np.linspace(-15, 15, 200_001)
    integrand = p.pdf(x) * (p.logpdf(x) - q.logpdf(x))
    num = np.trapezoid(integrand, x)
    got = float(tg.kl(jnp.array([m1]), jnp.array([[s1]]), jnp.array([m2]), jnp.array([[s2]])))
    np.testing.assert_allclose(got, num, rtol=1e-6)


def test_bad_ddof():
    with pytest.raises(ValueError, match="ddof"):
        tg.variance_mean(1, 10, ddof=2)
