"""Bad input to ``jaxcollapse.kernels`` and ``jaxcollapse.metrics`` is refused before
tracing with a message naming the argument (issue 13), and the edge cases that are
not errors give what the docs say."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcollapse import _kernel_inputs as ki
from jaxcollapse import kernels as kn
from jaxcollapse import metrics as mt

X = np.random.default_rng(0).normal(size=(6, 2))
Y = np.random.default_rng(1).normal(size=(5, 2))


@pytest.mark.parametrize("ell", [0.0, -1.0, np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("call", [
    lambda ell: kn.gram(X, Y, "rbf", ell),
    lambda ell: kn.kernel_sum(X, Y, "rbf", ell),
    lambda ell: kn.rbf(X[0], Y[0], ell),
    lambda ell: kn.matern32(X[0], Y[0], ell),
    lambda ell: mt.mmd2(X, Y, "rbf", ell),
    lambda ell: mt.mmd2_gaussians(np.zeros(1), np.eye(1), np.ones(1), np.eye(1), ell),
])
def test_bad_lengthscale_values(call, ell):
    with pytest.raises(ValueError, match="lengthscale must be finite and > 0"):
        call(ell)


def test_lengthscale_must_be_a_real_scalar():
    for call in (lambda ell: kn.gram(X, Y, "rbf", ell),
                 lambda ell: kn.kernel_sum(X, None, "laplace", ell),
                 lambda ell: kn.rbf(X, Y[:1], ell),
                 lambda ell: mt.mmd2(X, Y, "rbf", ell)):
        with pytest.raises(ValueError, match=r"lengthscale must be a scalar .*shape \(2,\)"):
            call(np.array([1.0, 2.0]))
        with pytest.raises(TypeError, match="lengthscale must be real"):
            call(1.0 + 0.5j)


def test_traced_lengthscale_still_works():
    f = jax.jit(lambda ell: kn.kernel_sum(X, Y, "rbf", ell))
    np.testing.assert_allclose(f(0.7), kn.gram(X, Y, "rbf", 0.7).sum(), rtol=1e-12)


def test_empty_and_mismatched_points():
    for call in (kn.gram, kn.kernel_sum, mt.mmd2):
        with pytest.raises(ValueError, match=r"x must have shape \(n, d\) with n, d >= 1"):
            call(np.zeros((0, 2)), Y)
        with pytest.raises(ValueError, match=r"y must have shape \(n, d\) with n, d >= 1"):
            call(X, np.zeros((4, 0)))
        with pytest.raises(ValueError, match="y must have dimension 2 to match"):
            call(X, np.zeros((4, 3)))
        with pytest.raises(ValueError, match=r"x must have shape \(n, d\)"):
            call(np.zeros((2, 2, 2)), Y)
    with pytest.raises(ValueError, match="x and y must be points"):
        kn.rbf(np.zeros(3), np.zeros(2))


def test_nan_rows_refused_in_gram_as_in_mmd2():
    bad = X.copy()
    bad[2] = np.nan
    for call in (kn.gram, kn.kernel_sum, mt.mmd2):
        with pytest.raises(ValueError, match="x must be finite; got NaN or inf in 1 of 6 rows"):
            call(bad, Y)
        with pytest.raises(ValueError, match="y must be finite"):
            call(X, np.where(np.arange(6)[:, None] == 0, np.inf, X))


def test_complex_input_refused():
    for call in (kn.gram, kn.kernel_sum, mt.mmd2, mt.rkhs_distance, mt.median_heuristic):
        with pytest.raises(TypeError, match="x must be real; got complex128"):
            call(X + 1j, Y)
    with pytest.raises(TypeError, match="y must be real"):
        kn.rbf(X[0], Y[0] * 1j)
    with pytest.raises(TypeError, match="cov1 must be real"):
        mt.mmd2_gaussians(np.zeros(1), np.eye(1) * 1j, np.zeros(1), np.eye(1))


def test_integer_points_are_floats():
    xi = np.arange(6).reshape(3, 2)
    np.testing.assert_allclose(kn.gram(xi, xi), kn.gram(xi.astype(float), xi.astype(float)))


def test_gaussians_with_a_covariance_that_is_not_psd():
    m = np.zeros(2)
    with pytest.raises(ValueError, match="cov1 must be positive semi-definite; got a smallest "
                                         "eigenvalue -1"):
        mt.mmd2_gaussians(m, -np.eye(2), m, np.eye(2))
    with pytest.raises(ValueError, match="cov2 must be positive semi-definite"):
        mt.mmd2_gaussians(m, np.eye(2), m, np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="cov2 must be symmetric"):
        mt.mmd2_gaussians(m, np.eye(2), m, np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="cov1 must be positive semi-definite"):
        mt.rbf_expectation(m, -np.eye(2), m, np.eye(2))
    with pytest.raises(ValueError, match=r"mean1 must be \(\.\.\., d\) and cov1"):
        mt.mmd2_gaussians(m, np.eye(3), m, np.eye(2))
    with pytest.raises(ValueError, match="mean1 and cov1 must be finite"):
        mt.mmd2_gaussians(m + np.nan, np.eye(2), m, np.eye(2))
    # a point mass (cov 0) is positive semi-definite: allowed, and MMD^2 >= 0
    assert float(mt.mmd2_gaussians(m, np.zeros((2, 2)), m + 1.0, np.eye(2))) > 0.0
    # round-off below zero is tolerated
    c = np.array([[1.0, 1.0], [1.0, 1.0]]) - 1e-15 * np.eye(2)
    assert float(mt.mmd2_gaussians(m, c, m, c)) == pytest.approx(0.0, abs=1e-12)


def _mix(w, k=2):
    return (np.asarray(w, float), np.arange(k, dtype=float)[:, None],
            np.stack([np.eye(1)] * k))


def test_mixture_weights_and_covariances():
    good = _mix([0.5, 0.5])
    for fn in (mt.mmd2_mixtures, mt.l2_mixtures):
        with pytest.raises(ValueError, match=r"w1 must sum to 1 \(within 1e-05\); got sum 1.2"):
            fn(*_mix([0.6, 0.6]), *good)
        with pytest.raises(ValueError, match="w2 must be finite and >= 0"):
            fn(*good, *_mix([1.5, -0.5]))
        with pytest.raises(ValueError, match=r"w1, means1, covs1 must have shapes"):
            fn(np.ones(3) / 3, *good[1:], *good)
        with pytest.raises(ValueError, match="covs2 must be positive"):
            fn(*good, good[0], good[1], -good[2])
        with pytest.raises(ValueError, match="the two mixtures must have one dimension"):
            fn(*good, good[0], np.zeros((2, 2)), np.stack([np.eye(2)] * 2))
    # l2 needs definite covariances (its Gaussian densities); MMD allows a point mass
    point = (good[0], good[1], np.zeros((2, 1, 1)))
    with pytest.raises(ValueError, match="covs1 must be positive definite"):
        mt.l2_mixtures(*point, *good)
    assert float(mt.mmd2_mixtures(*point, *good)) > 0.0
    # a sum within the tolerance is accepted (float32 round-off of a normalisation)
    w = np.full(3, 1 / 3, np.float32)
    assert np.isfinite(float(mt.mmd2_mixtures(*_mix(w, 3), *_mix(w, 3))))


def test_median_heuristic_on_identical_and_mostly_identical_points():
    with pytest.raises(ValueError, match="median_heuristic needs two distinct points; all 4"):
        mt.median_heuristic(np.ones((4, 2)))
    # 4 of 5 points equal: 6 of the 10 distances are 0, the median would be 0; the
    # documented fallback is the mean of the non-zero distances (here all 5.0)
    z = np.array([[0.0, 0.0]] * 4 + [[3.0, 4.0]])
    assert float(mt.median_heuristic(z)) == pytest.approx(5.0)
    # only the first max_points are used, so they decide
    with pytest.raises(ValueError, match="max_points=2"):
        mt.median_heuristic(np.array([[1.0], [1.0], [2.0]]), max_points=2)


def test_permutation_test_key():
    with pytest.raises(TypeError, match="key must be a JAX PRNG key .*got int 0"):
        mt.permutation_test(0, X, Y)
    with pytest.raises(ValueError, match=r"key must be a single PRNG key"):
        mt.permutation_test(jax.random.split(jax.random.key(0), 2), X, Y)
    legacy = jax.random.PRNGKey(0)  # a uint32[2] key is still accepted
    assert mt.permutation_test(legacy, X, Y, n_permutations=9).null.shape == (9,)


def test_gram_too_large_refused_before_allocating():
    # 10^5 x 10^5 points: the check reads only the shapes (no data is touched)
    big = jax.ShapeDtypeStruct((10**5, 2), jnp.float64)
    with pytest.raises(ValueError, match=r"gram of 100,000 x 100,000 points needs 74\.5 GiB"
                                         r".*kernel_sum or metrics\.mmd2"):
        ki.check_gram_memory(big.shape[0], big.shape[0], big.dtype)
    x = np.zeros((10**5, 1))
    x[:, 0] = np.arange(10**5)
    with pytest.raises(ValueError, match="needs 74.5 GiB"):
        kn.gram(x, x)
