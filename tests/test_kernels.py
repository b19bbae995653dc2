"""Kernels and tiled Gram matrices against scikit-learn / numpy references."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.gaussian_process.kernels import RBF, Matern

from jaxcollapse import kernels as kn


@pytest.fixture(scope="module")
def pts():
    rng = np.random.default_rng(0)
    return rng.normal(size=(37, 3)), rng.normal(size=(23, 3)) * 2.0


def _references(x, y, ell):
    r = cdist(x, y)
    return {
        "rbf": RBF(length_scale=ell)(x, y),
        "laplace": Matern(length_scale=ell, nu=0.5)(x, y),
        "matern32": Matern(length_scale=ell, nu=1.5)(x, y),
        "imq": 1.0 / np.sqrt(1.0 + (r / ell) ** 2),
    }


@pytest.mark.parametrize("name", list(kn.KERNELS))
def test_kernels_match_references(pts, name):
    x, y = pts
    ell = 1.7
    ref = _references(x, y, ell)[name]
    k = kn.KERNELS[name]
    pair = k(x[:, None, :], y[None, :, :], ell)
    np.testing.assert_allclose(pair, ref, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(kn.gram(jnp.asarray(x), jnp.asarray(y), name, ell, tile=5), ref,
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(kn.kernel_sum(jnp.asarray(x), jnp.asarray(y), name, ell, tile=8),
                               ref.sum(), rtol=1e-10)


def test_gram_tiles_agree(pts):
    x, y = map(jnp.asarray, pts)
    full = kn.gram(x, y, "rbf", 0.9, tile=None)
    for tile in (1, 4, 36, 37, 100):
        # the tile shape only changes how XLA vectorises the products: a few ulps
        np.testing.assert_allclose(kn.gram(x, y, "rbf", 0.9, tile=tile), full, rtol=1e-13,
                                   atol=1e-15)


def test_sq_dist_is_guarded_against_round_off():
    # near-duplicate points far from the origin: the matrix-product form cancels
    x = jnp.asarray(1e8 + np.random.default_rng(1).normal(size=(50, 2)) * 1e-8)
    d2 = kn.sq_dist(x, x)
    assert bool(jnp.all(d2 >= 0))
    assert bool(jnp.all(jnp.isfinite(kn.gram(x, x, "laplace", 1.0))))


def test_lengthscale_is_traced_no_recompile(pts):
    x, y = map(jnp.asarray, pts)
    traces = []

    @jax.jit
    def f(ell):
        traces.append(1)
        return kn.kernel_sum(x, y, "rbf", ell)

    a, b = f(1.0), f(2.0)
    assert len(traces) == 1
    assert float(a) < float(b)  # a longer lengthscale gives larger kernel values


def test_bad_inputs():
    with pytest.raises(ValueError, match="kernel must be one of"):
        kn.get_kernel("cosine")
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="lengthscale must be finite and > 0"):
            kn.check_lengthscale(bad)
    with pytest.raises(ValueError, match="x must be finite"):
        kn.check_points(np.array([[np.nan]]), "x")
    with pytest.raises(ValueError, match="dimension 2"):
        kn.check_points(np.zeros((3, 1)), "y", dim=2)


@pytest.mark.parametrize("n,tile", [(1, 1), (6, 2), (7, 2), (8, 2), (37, 5), (37, 64)])
def test_sum_with_y_none_is_the_gram_sum(n, tile):
    # y=None means y = x; tiles that do not divide n are padded and masked
    x = jnp.asarray(np.random.default_rng(n).normal(size=(n, 2)))
    ref = float(jnp.sum(kn.gram(x, x, "imq", 0.7)))
    np.testing.assert_allclose(kn.kernel_sum(x, None, "imq", 0.7, tile=tile), ref, rtol=1e-12)
    np.testing.assert_allclose(kn.kernel_sum(x, x, "imq", 0.7, tile=tile), ref,
                               rtol=1e-12)


@pytest.mark.parametrize("name", list(kn.KERNELS))
def test_symmetric_sums_far_from_the_origin_against_scipy(name):
    # half the tiles, padding rows at infinite distance, centring against the
    # round-off of the product form, coincident points exactly at distance 0
    x = np.random.default_rng(5).normal(size=(37, 2)) + 1e4
    ref = _references(x, x, 0.9)[name].sum()
    np.testing.assert_allclose(kn.kernel_sum(x, None, name, 0.9, tile=5), ref, rtol=1e-12)
    np.testing.assert_allclose(kn.kernel_sum(x, x, name, 0.9, tile=5), ref, rtol=1e-12)
