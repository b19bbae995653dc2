"""``simulate(..., truth=(family, params))``: generation 1 trains on the truth's draws.

Monte Carlo comparisons use Z = 5 standard errors (two-sided false-failure rate
~6e-7 each)."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc

Z = 5.0
run_mod = importlib.import_module("jaxcollapse.simulation._run")
EXACT = jc.Gaussian(dim=1, method="exact")
SAMPLES = jc.Gaussian(dim=1, method="samples")
GMM = jc.GMM(2, 1)
TRUTH = GMM.params([0.3, 0.7], [[-2.0], [1.0]], [[[0.5]], [[2.0]]])
# the truth's moments: mean sum w mu, variance sum w (s² + mu²) - mean²
MEAN = 0.3 * -2.0 + 0.7 * 1.0
VAR = 0.3 * (0.5 + 4.0) + 0.7 * (2.0 + 1.0) - MEAN**2
# its fourth central moment, for the variance of the unbiased sample variance
_MU4 = sum(w * (3 * s**2 + 6 * s * (m - MEAN) ** 2 + (m - MEAN) ** 4)
           for w, m, s in ((0.3, -2.0, 0.5), (0.7, 1.0, 2.0)))
P0 = EXACT.params()


def _sim(family, key=0, n_chains=2000, n_samples=50, **kw):
    return jc.simulate(jax.random.key(key), family, P0, n_generations=3,
                       n_samples=n_samples, n_chains=n_chains, truth=(GMM, TRUTH),
                       metrics=["w2sq"], **kw)


@pytest.fixture(scope="module")
def exact():
    return _sim(EXACT)


def test_generation_1_fits_the_truths_draws(exact):
    # The unbiased Gaussian fit to M draws of the mixture: its mean has mean MEAN and
    # variance VAR / M; its variance has mean VAR and variance (mu4 - VAR² (M - 3) /
    # (M - 1)) / M. Each chain mean within Z standard errors of that law's.
    m = 50
    mean = np.asarray(exact.params.mean[:, 1, 0])
    var = np.asarray(exact.params.cov[:, 1, 0, 0])
    n = mean.size
    assert abs(mean.mean() - MEAN) <= Z * np.sqrt(VAR / m / n)
    var_var = (_MU4 - VAR**2 * (m - 3) / (m - 1)) / m
    assert abs(var.mean() - VAR) <= Z * np.sqrt(var_var / n)
    # the sample variance of the fitted means is the law's VAR / M, within its own SE
    # (chi-square with n - 1 degrees of freedom: relative SE sqrt(2 / (n - 1)))
    assert abs(mean.var(ddof=1) / (VAR / m) - 1) <= Z * np.sqrt(2 / (n - 1))
    # generation 0 is params0 itself, not the truth
    np.testing.assert_array_equal(exact.params.mean[:, 0, 0], 0.0)
    np.testing.assert_array_equal(exact.params.cov[:, 0, 0, 0], 1.0)


def test_later_generations_draw_from_the_fit(exact):
    # Generation 2 draws from generation 1's Gaussian (replace): given it, the
    # fitted mean is unbiased, so the mean shift from generation 1 averages zero
    # with variance E[var_1] / M.
    d = np.asarray(exact.params.mean[:, 2, 0] - exact.params.mean[:, 1, 0])
    se = np.sqrt(np.asarray(exact.params.cov[:, 1, 0, 0]).mean() / 50 / d.size)
    assert abs(d.mean()) <= Z * se


def test_paths_share_generation_1(exact):
    # The truth's draws do not depend on the path: the statistics path takes the
    # statistics of the same rows that the samples path fits.
    s = _sim(SAMPLES)
    np.testing.assert_allclose(s.params.mean[:, 1], exact.params.mean[:, 1], rtol=1e-9,
                               atol=1e-12)
    np.testing.assert_allclose(s.params.cov[:, 1], exact.params.cov[:, 1], rtol=1e-9)


@pytest.mark.parametrize("family", [EXACT, SAMPLES])
def test_chain_independence_and_chunking(family):
    a = _sim(family, n_chains=3)
    b = _sim(family, n_chains=5)
    c = _sim(family, n_chains=5, chunk_size=2)
    for x, y in ((a.params, b.params), (b.params, c.params)):
        jax.tree.map(lambda u, v: np.testing.assert_array_equal(u, v[:u.shape[0]]), x, y)


def test_accumulate_pools_the_truths_draws():
    # Accumulate's pool starts with generation 1's draws: generation 2 fits M truth
    # draws and M draws of generation 1, whose mean is unbiased for generation 1's,
    # so the pooled mean averages the truth's mean (its SE from the chains).
    r = _sim(EXACT, regime="accumulate")
    m2 = np.asarray(r.params.mean[:, 2, 0])
    assert abs(m2.mean() - MEAN) <= Z * m2.std(ddof=1) / np.sqrt(m2.size)


def test_new_truth_values_do_not_recompile():
    kw = dict(n_chains=4, n_samples=10)
    _sim(EXACT, **kw)
    before = run_mod._run_jit._cache_size()
    other = GMM.params([0.5, 0.5], [[0.0], [3.0]], [[[1.0]], [[0.2]]])
    jc.simulate(jax.random.key(1), EXACT, P0, n_generations=3, n_samples=10, n_chains=4,
                truth=(GMM, other), metrics=["w2sq"])
    assert run_mod._run_jit._cache_size() == before


def test_float32_truth_takes_the_runs_dtype():
    with jax.enable_x64(False):
        p0 = EXACT.params(dtype=jnp.float32)
        # a float64 truth as a float32 user holds one: NumPy arrays (TRUTH holds JAX
        # float64 arrays, made with x64 on, which no x32 program can)
        truth = jc.GMMParams(np.array([0.3, 0.7]), np.array([[-2.0], [1.0]]),
                             np.array([[[0.5]], [[2.0]]]))
        assert truth.weights.dtype == np.float64
        r = jc.simulate(jax.random.key(0), EXACT, p0, n_generations=2, n_samples=10,
                        n_chains=2, truth=(GMM, truth))
    assert r.params.mean.dtype == np.float32


@pytest.mark.parametrize("truth, kw, err, match", [
    (GMM, {}, TypeError, r"truth must be a pair \(family, params\)"),
    ((object(), TRUTH), {}, TypeError, r"truth\[0\] must be a family"),
    ((GMM, jc.GMMParams(np.array([1.0, 0.0]), np.array([[0.0], [1.0]]),
                         np.array([[[1.0]], [[-1.0]]]))), {}, ValueError,
     r"truth\[1\] must be valid parameters of GMM.*positive definite"),
    ((jc.GMM(2, 2), jc.GMM(2, 2).params([0.5, 0.5], [[0.0, 0.0], [1.0, 1.0]],
                                        [np.eye(2), np.eye(2)])), {}, ValueError,
     r"truth's draws must be rows of the fitted family's form.*\(2,\).*\(1,\)"),
    ((GMM, TRUTH), dict(regime=jc.weighted_fresh(0.5, 10)), ValueError,
     "draws fresh human data from params0"),
])
def test_bad_truth(truth, kw, err, match):
    with pytest.raises(err, match=match):
        jc.simulate(jax.random.key(0), EXACT, P0, n_generations=2, n_samples=10, n_chains=2,
                    truth=truth, **kw)
