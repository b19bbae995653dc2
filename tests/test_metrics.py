"""MMD estimators, closed forms, the permutation test, embeddings and L2 distances."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import cdist, pdist

from jaxcollapse import kernels as kn
from jaxcollapse import metrics as mt

# P = N(0, I), Q = N(MU, diag(1, 2)) in 2-D, RBF lengthscale 1
MU = np.array([0.5, 0.0])
COV_Q = np.diag([1.0, 2.0])
ELL = 1.0


def _exact_terms():
    kxx = float(mt.rbf_expectation(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2), ELL))
    kyy = float(mt.rbf_expectation(MU, COV_Q, MU, COV_Q, ELL))
    kxy = float(mt.rbf_expectation(np.zeros(2), np.eye(2), MU, COV_Q, ELL))
    return kxx, kyy, kxy


@pytest.fixture(scope="module")
def draws():
    """R independent pairs of samples of size N from P and Q (one batch)."""
    r, n = 300, 40
    rng = np.random.default_rng(0)
    x = rng.normal(size=(r, n, 2))
    y = MU + rng.normal(size=(r, n, 2)) @ np.sqrt(COV_Q)
    return x, y


def _numpy_mmd(x, y, ell, estimator):
    kxx = np.exp(-cdist(x, x, "sqeuclidean") / (2 * ell**2))
    kyy = np.exp(-cdist(y, y, "sqeuclidean") / (2 * ell**2))
    kxy = np.exp(-cdist(x, y, "sqeuclidean") / (2 * ell**2))
    n, m = len(x), len(y)
    if estimator == "biased":
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    return ((kxx.sum() - n) / (n * (n - 1)) + (kyy.sum() - m) / (m * (m - 1))
            - 2 * kxy.mean())


@pytest.mark.parametrize("estimator", ["biased", "unbiased"])
def test_mmd2_matches_numpy(estimator):
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(61, 3)), rng.normal(size=(45, 3)) + 0.3
    got = mt.mmd2(x, y, "rbf", 1.3, estimator=estimator, tile=7)
    np.testing.assert_allclose(got, _numpy_mmd(x, y, 1.3, estimator), rtol=1e-10)


def test_linear_estimator_matches_definition():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(21, 2)), rng.normal(size=(21, 2))
    h = 10
    k = lambda a, b: np.exp(-np.sum((a - b) ** 2, -1) / 2)
    ref = np.mean(k(x[:h], x[h:2 * h]) + k(y[:h], y[h:2 * h]) - k(x[:h], y[h:2 * h])
                  - k(x[h:2 * h], y[:h]))
    np.testing.assert_allclose(mt.mmd2(x, y, estimator="linear"), ref, rtol=1e-10)


def test_estimators_against_closed_form(draws):
    """Unbiased and linear estimators: mean within z SE of the exact MMD^2; the biased
    one's mean matches its exact expectation mmd^2 + (1 - Ekxx)/n + (1 - Ekyy)/m.
    z = 4.5: two-sided false-failure rate about 7e-6 per check."""
    x, y = draws
    kxx, kyy, kxy = _exact_terms()
    exact = kxx + kyy - 2 * kxy
    np.testing.assert_allclose(exact, float(mt.mmd2_gaussians(np.zeros(2), np.eye(2), MU,
                                                              COV_Q, ELL)), rtol=1e-12)
    n = x.shape[1]
    expected = {"unbiased": exact, "linear": exact,
                "biased": exact + (1 - kxx) / n + (1 - kyy) / n}
    for est, target in expected.items():
        vals = np.array([float(mt.mmd2(xi, yi, "rbf", ELL, estimator=est))
                         for xi, yi in zip(x, y, strict=True)])
        se = vals.std(ddof=1) / np.sqrt(len(vals))
        assert abs(vals.mean() - target) <= 4.5 * se, (est, vals.mean(), target, se)
    # the biased estimator converges: its bias shrinks like 1/n
    big = np.random.default_rng(9)
    xb = big.normal(size=(4000, 2))
    yb = MU + big.normal(size=(4000, 2)) @ np.sqrt(COV_Q)
    v = float(mt.mmd2(xb, yb, estimator="biased"))
    assert abs(v - exact) < 0.25 * exact


def test_mmd2_no_recompile():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(30, 2))
    mt.mmd2(x, y, "rbf", 1.0)
    before = mt._mmd2_jit._cache_size()
    mt.mmd2(x + 1.0, y, "rbf", 2.0)
    assert mt._mmd2_jit._cache_size() == before


def test_mixture_forms_reduce_and_agree():
    m1, c1 = np.array([0.3, -1.0]), np.array([[1.0, 0.3], [0.3, 0.5]])
    m2, c2 = np.array([1.0, 0.0]), np.array([[0.4, 0.0], [0.0, 2.0]])
    single = mt.mmd2_mixtures(np.ones(1), m1[None], c1[None], np.ones(1), m2[None], c2[None],
                              0.7)
    np.testing.assert_allclose(single, mt.mmd2_gaussians(m1, c1, m2, c2, 0.7), rtol=1e-12)
    # a mixture against the same mixture with components split in two: distance 0
    w = np.array([0.3, 0.7])
    means, covs = np.stack([m1, m2]), np.stack([c1, c2])
    dup_w = np.array([0.15, 0.15, 0.7])
    dup_m, dup_c = means[[0, 0, 1]], covs[[0, 0, 1]]
    assert abs(float(mt.mmd2_mixtures(w, means, covs, dup_w, dup_m, dup_c))) < 1e-12
    assert abs(float(mt.l2_mixtures(w, means, covs, dup_w, dup_m, dup_c))) < 1e-12


def test_l2_mixtures_against_grid_integration():
    w1, w2 = np.array([0.4, 0.6]), np.array([1.0])
    m1 = np.array([[-1.0, 0.0], [1.5, 0.5]])
    c1 = np.array([[[0.5, 0.1], [0.1, 0.3]], [[0.4, 0.0], [0.0, 0.8]]])
    m2, c2 = np.array([[0.2, 0.1]]), np.array([[[1.5, 0.2], [0.2, 1.0]]])
    g = np.linspace(-7, 7, 561)
    xx, yy = np.meshgrid(g, g, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], -1)

    def dens(w, m, c):
        return sum(wi * stats.multivariate_normal(mi, ci).pdf(pts)
                   for wi, mi, ci in zip(w, m, c, strict=True))

    h = g[1] - g[0]
    ref = np.sum((dens(w1, m1, c1) - dens(w2, m2, c2)) ** 2) * h * h
    np.testing.assert_allclose(mt.l2_mixtures(w1, m1, c1, w2, m2, c2), ref, rtol=1e-6)


def test_median_heuristic_matches_numpy():
    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(40, 2)), rng.normal(size=(25, 2)) + 1
    ref = np.median(pdist(np.concatenate([x, y])))
    np.testing.assert_allclose(mt.median_heuristic(x, y), ref, rtol=1e-10)
    np.testing.assert_allclose(mt.median_heuristic(x, y, max_points=30),
                               np.median(pdist(x[:30])), rtol=1e-10)


def test_permutation_null_is_exact():
    rng = np.random.default_rng(7)
    x, y = rng.normal(size=(12, 2)), rng.normal(size=(9, 2))
    key = jax.random.key(3)
    res = mt.permutation_test(key, x, y, "laplace", 1.5, n_permutations=20)
    z = np.concatenate([x, y])
    perms = jax.vmap(lambda k: jax.random.permutation(k, 21))(jax.random.split(key, 20))
    ref = [float(mt.mmd2(z[np.asarray(p)[:12]], z[np.asarray(p)[12:]], "laplace", 1.5))
           for p in perms]
    np.testing.assert_allclose(res.null, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(res.statistic, mt.mmd2(x, y, "laplace", 1.5), rtol=1e-10)
    assert float(res.p_value) == (1 + np.sum(np.array(ref) >= float(res.statistic))) / 21


def test_permutation_calibration_and_power():
    """Under the null, p-values of 200 independent tests are uniform (KS p > 0.001;
    p-values live on a grid of 1/100, so the KS test is slightly conservative).
    Under a shift of one standard deviation with n = 40 the power is near 1."""
    rng = np.random.default_rng(8)
    keys = jax.random.split(jax.random.key(11), 220)
    ps = []
    for i in range(200):
        x, y = rng.normal(size=(40, 1)), rng.normal(size=(40, 1))
        ps.append(float(mt.permutation_test(keys[i], x, y, n_permutations=99).p_value))
    ps = np.array(ps)
    assert stats.kstest(ps, "uniform").pvalue > 1e-3
    # the level: P(p <= 0.05) = 0.05; a binomial(200, 0.05) stays below 25 w.p. 1 - 1e-6
    assert np.sum(ps <= 0.05) <= 25
    power = [float(mt.permutation_test(keys[200 + i], rng.normal(size=(40, 1)),
                                       rng.normal(size=(40, 1)) + 1.0,
                                       n_permutations=99).p_value) <= 0.05 for i in range(20)]
    assert sum(power) >= 17


def test_mean_embedding_and_rkhs_distance():
    rng = np.random.default_rng(10)
    x, y = rng.normal(size=(30, 2)), rng.normal(size=(20, 2))
    grid = rng.normal(size=(7, 2))
    w = rng.uniform(size=30)
    ref = np.exp(-cdist(grid, x, "sqeuclidean") / (2 * 0.8**2)) @ (w / w.sum())
    np.testing.assert_allclose(mt.mean_embedding(x, grid, "rbf", 0.8, w), ref, rtol=1e-10)
    np.testing.assert_allclose(mt.rkhs_distance(x, y, "rbf", 0.8) ** 2,
                               mt.mmd2(x, y, "rbf", 0.8, estimator="biased"), rtol=1e-9)
    metric = mt.successive_rkhs(0.8)
    assert metric is mt.successive_rkhs(0.8) and metric.successive

    class P:  # any params with points and weights
        def __init__(self, points):
            self.points, self.weights = jnp.asarray(points), jnp.ones(len(points))

    np.testing.assert_allclose(metric(P(x), P(y)), mt.rkhs_distance(x, y, "rbf", 0.8),
                               rtol=1e-10)


def test_bad_inputs():
    x = np.zeros((5, 2))
    with pytest.raises(ValueError, match="estimator must be one of"):
        mt.mmd2(x, x, estimator="quadratic")
    with pytest.raises(ValueError, match="dimension 2"):
        mt.mmd2(x, np.zeros((5, 3)))
    with pytest.raises(ValueError, match="y must be finite"):
        mt.mmd2(x, np.full((5, 2), np.inf))
    with pytest.raises(ValueError, match="lengthscale must be finite and > 0; got -1.0"):
        mt.mmd2(x, x, lengthscale=-1.0)
    with pytest.raises(ValueError, match="len\\(x\\) == len\\(y\\)"):
        mt.mmd2(x, np.zeros((4, 2)), estimator="linear")
    with pytest.raises(ValueError, match=">= 2 points"):
        mt.mmd2(x[:1], x)
    with pytest.raises(ValueError, match="n_permutations"):
        mt.permutation_test(jax.random.key(0), x, x, n_permutations=0)
    with pytest.raises(ValueError, match="kernel must be one of"):
        mt.mean_embedding(x, x, "cosine")
    assert isinstance(kn.KERNELS, dict)
