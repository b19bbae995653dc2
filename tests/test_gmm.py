"""GMM by EM against scikit-learn, vmapping over chains, sampling, and collapse."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import jaxcollapse as jc
from jaxcollapse.families import gmm as gmm_mod


@pytest.fixture(scope="module")
def blobs():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(size=(300, 2)) + [-2.0, 0.0],
                           rng.normal(size=(200, 2)) * [0.5, 2.0] + [2.0, 1.0]])


def _sklearn(x, ct, w0, m0, c0, **kw):
    prec = np.linalg.inv(c0) if ct == "full" else 1.0 / np.diagonal(c0, axis1=1, axis2=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return GaussianMixture(len(w0), covariance_type=ct, weights_init=w0, means_init=m0,
                               precisions_init=prec, **kw).fit(x)


@pytest.mark.parametrize("ct", ["full", "diag"])
@pytest.mark.parametrize("tol,max_iter", [(0.0, 40), (1e-4, 200)])
def test_matches_sklearn(blobs, ct, tol, max_iter):
    x = blobs
    w0 = np.array([0.3, 0.7])
    m0 = x[[0, 400]]
    c0 = np.stack([np.eye(2) * 2.0, np.eye(2) * 0.5])
    sk = _sklearn(x, ct, w0, m0, c0, tol=tol, max_iter=max_iter, reg_covar=1e-4)
    fam = jc.GMM(2, 2, ct, reg_covar=1e-4, tol=tol, max_iter=max_iter)
    res = fam.em(jax.random.key(0), x, init=jc.GMMParams(w0, m0, c0))
    assert int(res.n_iter) == sk.n_iter_ and bool(res.converged) == sk.converged_
    if tol > 0:
        assert sk.n_iter_ < max_iter  # the tolerance, not the cap, stopped both
    skc = sk.covariances_ if ct == "full" else np.stack([np.diag(v) for v in sk.covariances_])
    np.testing.assert_allclose(fam.mean_log_likelihood(res.params, x), sk.score(x),
                               rtol=0, atol=1e-6)
    np.testing.assert_allclose(res.lower_bound, sk.lower_bound_, rtol=0, atol=1e-6)
    for got, ref in ((res.params.weights, sk.weights_), (res.params.means, sk.means_),
                     (res.params.covs, skc)):
        np.testing.assert_allclose(got, ref, rtol=0, atol=1e-4)
    np.testing.assert_allclose(fam.bic(res.params, x), sk.bic(x), rtol=1e-8)
    np.testing.assert_allclose(fam.responsibilities(res.params, x), sk.predict_proba(x),
                               rtol=0, atol=1e-8)
    np.testing.assert_allclose(fam.log_prob(res.params, x), sk.score_samples(x), rtol=1e-8)


def test_kmeanspp_start_finds_separated_clusters_and_vmaps(blobs):
    fam = jc.GMM(2, 2, max_iter=100, tol=1e-6)
    res = fam.em(jax.random.key(1), blobs)
    means = np.asarray(res.params.means)[np.argsort(np.asarray(res.params.means)[:, 0])]
    np.testing.assert_allclose(means, [[-2.0, 0.0], [2.0, 1.0]], atol=0.3)
    np.testing.assert_allclose(np.sort(np.asarray(res.params.weights)), [0.4, 0.6], atol=0.03)
    # vmap over chains: each chain is exactly its own fit (the while_loop masks
    # converged chains)
    xs = jnp.stack([jnp.asarray(blobs), jnp.asarray(blobs[::-1]) * 0.5, jnp.asarray(blobs) + 3])
    keys = jax.random.split(jax.random.key(2), 3)
    w = jnp.ones(blobs.shape[0])
    batched = jax.jit(jax.vmap(lambda k, x: fam.fit(k, x, w)))(keys, xs)
    for i in range(3):
        one = fam.em(keys[i], xs[i]).params  # the same k-means++ start and EM as fit
        for a, b in zip(batched, one, strict=True):
            np.testing.assert_allclose(a[i], b, rtol=1e-9, atol=1e-12)


def test_zero_weights_equal_dropping_rows(blobs):
    fam = jc.GMM(2, 2, tol=0.0, max_iter=15)
    init = jc.GMMParams(np.array([0.5, 0.5]), blobs[[0, 400]], np.stack([np.eye(2)] * 2))
    w = np.zeros(len(blobs))
    w[:350] = 1.0
    a = fam.em(None, blobs, w, init=init)
    b = fam.em(None, blobs[:350], init=init)
    for u, v in zip(a.params, b.params, strict=True):
        np.testing.assert_allclose(u, v, rtol=1e-9, atol=1e-12)


def test_em_does_not_recompile(blobs):
    fam = jc.GMM(2, 2, max_iter=5)
    fam.em(jax.random.key(0), blobs)
    before = gmm_mod._em_jit._cache_size()
    fam.em(jax.random.key(1), blobs * 2.0 + 1.0)
    assert gmm_mod._em_jit._cache_size() == before


def test_sampling_ks():
    """1-D mixture draws against the mixture CDF: KS with a fixed key, p > 0.001."""
    fam = jc.GMM(2, 1)
    p = fam.params([0.3, 0.7], [[-2.0], [1.0]], [[[0.25]], [[1.5]]])
    s = np.asarray(fam.sample(jax.random.key(4), p, 5000))[:, 0]
    cdf = lambda t: 0.3 * stats.norm.cdf(t, -2, 0.5) + 0.7 * stats.norm.cdf(t, 1, np.sqrt(1.5))
    assert stats.kstest(s, cdf).pvalue > 1e-3


def test_degenerate_component_is_finite_and_flagged():
    rng = np.random.default_rng(5)
    x = np.concatenate([np.full((50, 2), 3.0), rng.normal(size=(50, 2))])
    fam = jc.GMM(2, 2, reg_covar=1e-6)
    p = fam.fit(jax.random.key(0), jnp.asarray(x), jnp.ones(100))
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in p)
    k = int(np.argmax(np.asarray(p.means)[:, 0]))
    np.testing.assert_allclose(p.covs[k], 1e-6 * np.eye(2), rtol=1e-6, atol=1e-20)
    assert bool(fam.is_degenerate(p))
    assert bool(jnp.all(jnp.isfinite(fam.log_prob(p, jnp.asarray(x)))))
    # reg_covar = 0: still finite thanks to the working-precision ridge
    p0 = jc.GMM(2, 2, reg_covar=0.0).fit(jax.random.key(0), jnp.asarray(x), jnp.ones(100))
    assert all(bool(jnp.all(jnp.isfinite(a))) for a in p0)
    good = fam.fit(jax.random.key(0), jnp.asarray(rng.normal(size=(100, 2))), jnp.ones(100))
    assert not bool(fam.is_degenerate(good))


def test_bad_inputs(blobs):
    with pytest.raises(ValueError, match="n_components must be an integer >= 1; got 0"):
        jc.GMM(0, 2)
    with pytest.raises(ValueError, match="reg_covar must be a finite number >= 0; got -0.001"):
        jc.GMM(2, 2, reg_covar=-1e-3)
    with pytest.raises(ValueError, match="covariance_type"):
        jc.GMM(2, 2, covariance_type="tied")
    with pytest.raises(ValueError, match="n_components=5 must be <= the number of points"):
        jc.GMM(5, 2).em(jax.random.key(0), blobs[:4])
    with pytest.raises(ValueError, match=r"x must have shape \(n, 2\)"):
        jc.GMM(2, 2).em(jax.random.key(0), np.zeros((10, 3)))
    with pytest.raises(ValueError, match="x must be finite"):
        jc.GMM(2, 2).em(jax.random.key(0), np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="weights must be >= 0 and sum to 1"):
        jc.GMM(2, 1).params([0.5, 0.6], [[0.0], [1.0]], [[[1.0]], [[1.0]]])
    with pytest.raises(ValueError, match="positive definite"):
        jc.GMM(1, 1).params([1.0], [[0.0]], [[[0.0]]])


@pytest.mark.slow
def test_recursion_collapses_like_the_paper():
    """Shumailov's GMM experiment, small: component spreads shrink and the L2
    distance to generation 0 grows (variance of a fitted Gaussian drifts down by
    about 1/(points per component) per generation in log, THEORY.md section 2)."""
    fam = jc.GMM(2, 2, tol=1e-3, max_iter=30)
    p0 = fam.params([0.5, 0.5], [[-3.0, 0.0], [3.0, 0.0]], [np.eye(2), np.eye(2)])
    res = jc.simulate(jax.random.key(0), fam, p0, n_generations=60, n_samples=60, n_chains=48,
                      save_params=False)
    spread = np.stack([np.asarray(res.metrics["spread_0"]), np.asarray(res.metrics["spread_1"])])
    assert np.median(spread[:, :, -1]) < 0.75 * np.median(spread[:, :, 1])
    l2 = np.asarray(res.metrics["l2"])
    assert np.median(l2[:, -1]) > 2 * np.median(l2[:, 1])
    assert np.all(np.isfinite(l2)) and np.all(np.isfinite(np.asarray(res.metrics["mmd"])))


def test_cli_run_gmm(tmp_path, capsys):
    from jaxcollapse import cli, io

    out = tmp_path / "gmm"
    rc = cli.main(["run", "gmm", "--chains", "2", "--generations", "3", "--samples", "40",
                   "--max-iter", "5", "--snapshots", "0", "2", "--out", str(out),
                   "--no-progress"])
    assert rc == 0
    summary = io.load_json(out / "summary.json")
    assert [r["generation"] for r in summary["table"]] == [0, 2, 3]
    assert summary["table"][0]["l2_median"] == 0.0
    arrays = np.load(out / "arrays.npz")
    assert arrays["metric_l2"].shape == (2, 4)
    assert arrays["snapshot_3_means"].shape == (2, 2, 2)
    assert "GMM collapse" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "gmm", "--reg-covar", "-1", "--out", str(out)])
    assert e.value.code == 2
