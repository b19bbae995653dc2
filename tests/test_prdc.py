"""k-NN precision, recall, density and coverage (``jaxcollapse.metrics.prdc``).

Checked against the ``prdc`` package (Naeem et al.'s reference code, a dev extra) on
the same float64 data to rtol 1e-6, against closed forms (identical sets, disjoint
supports; for two samples of one law E density = 1 and E coverage =
1 - C(n-1, k) / C(n-1+m, k), by exchangeability), across devices (exactly: the
per-point counts are integers) and for clear errors on bad input.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _prdc_reference import FIELDS, reference
from _subproc import run_on_host_devices

import jaxcollapse as jc
from jaxcollapse import _knn

prdc_pkg = pytest.importorskip("prdc")


def values(r):
    return np.array([float(v) for v in r])


# tile 4: the selection takes lax.top_k of a whole tile (32 columns < 16 (k + 1));
# tile 16: 128 columns, the grouped search; None: one tile covers everything
@pytest.mark.parametrize("n, m, d, k, tile", [
    (37, 23, 2, 3, 4),
    (300, 250, 3, 5, 16),
    (250, 300, 8, 1, 16),
    (120, 90, 64, 7, None),
    (60, 61, 1, 58, 4),   # the largest k the package allows (its argpartition needs k + 1 < n)
])
def test_matches_the_prdc_package(n, m, d, k, tile):
    rng = np.random.default_rng(n + m + d)
    real = rng.normal(size=(n, d))
    fake = 1.3 * rng.normal(size=(m, d)) + 0.4
    ours = jc.metrics.prdc(real, fake, nearest_k=k, tile=tile)
    assert ours._fields == FIELDS
    assert all(v.dtype == jnp.float64 for v in ours)
    np.testing.assert_allclose(values(ours), reference(real, fake, k), rtol=1e-6, atol=1e-12)


def test_one_dimensional_input_and_largest_k():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=40), rng.normal(size=30) + 0.5
    np.testing.assert_allclose(values(jc.metrics.prdc(x, y, 5)),
                               reference(x[:, None], y[:, None], 5), rtol=1e-6)
    # k = min(n, m) - 1: every other point of the smaller set is inside each ball
    assert 0.0 <= float(jc.metrics.prdc(x, y, 29).coverage) <= 1.0


def test_identical_sets_give_exact_ones():
    # y = x: each point is in its own ball (distance 0 < radius) and, without ties,
    # exactly k points of a set lie strictly inside each ball, so density = 1 exactly
    x = np.random.default_rng(4).normal(size=(150, 4))
    for tile in (None, 16):
        np.testing.assert_allclose(values(jc.metrics.prdc(x, x, 4, tile=tile)), 1.0,
                                   rtol=1e-12)


def test_disjoint_supports_give_zeros():
    rng = np.random.default_rng(5)
    real = rng.uniform(size=(80, 3))
    fake = rng.uniform(size=(70, 3)) + 100.0
    np.testing.assert_array_equal(values(jc.metrics.prdc(real, fake, 5)), 0.0)


def test_same_law_density_and_coverage_expectations(key):
    # 300 replicates of n = m = 100 points in 2-D; |mean - theory| <= 5 SE fails by
    # chance with probability ~6e-7 per statistic
    n, k, reps = 100, 5, 300

    def one(kk):
        kr, kf = jax.random.split(kk)
        r = _knn.prdc_plain(jax.random.normal(kr, (n, 2)), jax.random.normal(kf, (n, 2)), k)
        return jnp.stack([r.density, r.coverage])

    out = np.asarray(jax.jit(jax.vmap(one))(jax.random.split(key, reps)))
    theory = [1.0, 1.0 - math.comb(n - 1, k) / math.comb(2 * n - 1, k)]
    se = out.std(0, ddof=1) / np.sqrt(reps)
    assert np.all(np.abs(out.mean(0) - theory) <= 5 * se), (out.mean(0), theory, se)


def test_float32_input_stays_float32_and_close_to_the_package():
    rng = np.random.default_rng(6)
    real = rng.normal(size=(200, 16)).astype(np.float32)
    fake = (1.2 * rng.normal(size=(200, 16))).astype(np.float32)
    ours = jc.metrics.prdc(real, fake, 5)
    assert ours.precision.dtype == jnp.float32
    # a comparison within float32 round-off of a radius may flip: at most one point
    np.testing.assert_allclose(values(ours), reference(real, fake, 5), atol=2 / 200 + 1e-6)


def test_no_recompile_for_new_values():
    rng = np.random.default_rng(7)
    args = [rng.normal(size=(50, 3)) for _ in range(4)]
    jc.metrics.prdc(args[0], args[1], 3)
    before = _knn._prdc_jit._cache_size()
    jc.metrics.prdc(args[2], args[3], 3)
    assert _knn._prdc_jit._cache_size() == before


@pytest.mark.parametrize("k, exc, match", [
    (0, ValueError, "nearest_k"), (-1, ValueError, "nearest_k"),
    (20, ValueError, r"nearest_k .*allowed 1\.\.19"), (25, ValueError, "nearest_k"),
    (2.0, TypeError, "nearest_k"), (True, TypeError, "nearest_k"),
])
def test_bad_nearest_k(k, exc, match):
    x = np.zeros((30, 2)) + np.arange(30)[:, None]
    with pytest.raises(exc, match=match):
        jc.metrics.prdc(x, x[:20], k)


def test_bad_features():
    x = np.random.default_rng(8).normal(size=(20, 3))
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="real must be finite"):
        jc.metrics.prdc(bad, x)
    with pytest.raises(ValueError, match="fake must be finite"):
        jc.metrics.prdc(x, np.where(bad == bad, bad, np.inf))
    with pytest.raises(ValueError, match="fake must have dimension 3"):
        jc.metrics.prdc(x, x[:, :2])
    with pytest.raises(ValueError, match=r"real must have shape \(n, d\)"):
        jc.metrics.prdc(x[None], x)
    with pytest.raises(ValueError, match="real must have shape"):
        jc.metrics.prdc(np.zeros((0, 3)), x)
    with pytest.raises(TypeError, match="fake must be real"):
        jc.metrics.prdc(x, x + 1j)
    with pytest.raises(ValueError, match="tile"):
        jc.metrics.prdc(x, x, tile=0)


def test_simulate_metric_for_kde(key):
    # (the GMM loop takes the same metric through `run gmm --prdc N`)
    gmm = jc.GMM(2, 2, max_iter=5)
    kde = jc.KDE(dim=1, bandwidth=0.3)
    kp0 = kde.params(np.random.default_rng(9).normal(size=40))
    for fam, params0 in ((kde, kp0),):
        met = jc.metrics.prdc_metric(fam, 60, 3)
        assert met is jc.metrics.prdc_metric(fam, 60, 3)
        res = jc.simulate(key, fam, params0, n_generations=2, n_samples=40, n_chains=2,
                          metrics={"prdc": met})
        v = np.asarray(res.metrics["prdc"])
        assert v.shape == (2, 3, 4)
        assert np.all(np.isfinite(v)) and np.all(v >= 0.0)
        assert np.all(v[..., [0, 1, 3]] <= 1.0)
    with pytest.raises(ValueError, match="n_points"):
        jc.metrics.prdc_metric(gmm, 1)
    with pytest.raises(ValueError, match="nearest_k"):
        jc.metrics.prdc_metric(gmm, 10, 10)
    with pytest.raises(TypeError, match="family"):
        jc.metrics.prdc_metric(object(), 10, 3)


def test_sharded_equals_one_device():
    # 8 host devices: 37 real and 23 fake points, tiles of 4 rows, so neither the
    # point counts nor the block counts are multiples of the device count
    run_on_host_devices("""
        import numpy as np
        import jaxcollapse as jc
        rng = np.random.default_rng(0)
        x, y = rng.normal(size=(37, 3)), rng.normal(size=(23, 3)) + 0.3
        one = [float(v) for v in jc.metrics.prdc(x, y, 3, tile=4, devices=1)]
        mesh = jax.make_mesh((8,), ("data",))
        for kw in (dict(), dict(devices=3), dict(mesh=mesh)):
            many = [float(v) for v in jc.metrics.prdc(x, y, 3, tile=4, **kw)]
            assert many == one, (kw, many, one)
        big = rng.normal(size=(300, 2))
        assert ([float(v) for v in jc.metrics.prdc(big, big[::-1] + 0.1, 5, tile=16)]
                == [float(v) for v in jc.metrics.prdc(big, big[::-1] + 0.1, 5, tile=16,
                                                      devices=1)])
    """)
