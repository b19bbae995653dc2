"""The KDE family against scipy.stats.gaussian_kde, its sampler, edge cases, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

import jaxcollapse as jc
from jaxcollapse.families import kde as kde_mod

Q_TILE, P_TILE = 64, 48  # small tiles so that padding and several tiles are exercised


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    out = {}
    for d in (1, 2, 3):
        a = rng.normal(size=(d, d)) + 2 * np.eye(d)
        x = rng.normal(size=(211, d)) @ a.T + 1.0
        out[d] = (x, rng.uniform(0.1, 1.0, 211), rng.normal(size=(150, d)) * 4.0)
    return out


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("rule", ["scott", "silverman"])
@pytest.mark.parametrize("weighted", [False, True])
def test_matches_scipy(data, d, rule, weighted):
    x, w, q = data[d]
    w = w if weighted else None
    fam = jc.KDE(dim=d, bandwidth=rule, q_tile=Q_TILE, p_tile=P_TILE)
    p = fam.params(x, w)
    ref = stats.gaussian_kde(x.T, bw_method=rule, weights=w)
    np.testing.assert_allclose(p.bandwidth, ref.covariance, rtol=1e-6)
    np.testing.assert_allclose(fam.log_prob(p, q), ref.logpdf(q.T), rtol=1e-6)


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_sklearn_rules_match_kernel_density(data, d, rule):
    # scikit-learn's rules: isotropic factor^2 I, not scaled by the data covariance
    from sklearn.neighbors import KernelDensity

    x = data[d][0]
    # queries in the bulk: far out (the scipy test's queries) sklearn's tree sum
    # differs by up to 26 nats where ours matches scipy
    q = x[:60] + 0.3
    fam = jc.KDE(dim=d, bandwidth=f"{rule}-sklearn", q_tile=Q_TILE, p_tile=P_TILE)
    p = fam.params(x)
    ref = KernelDensity(bandwidth=rule).fit(x)
    np.testing.assert_allclose(p.bandwidth, ref.bandwidth_ ** 2 * np.eye(d), rtol=1e-6)
    np.testing.assert_allclose(fam.log_prob(p, q), ref.score_samples(q), rtol=1e-6)


def test_fixed_matrix_diagonal_bandwidths(data):
    x, _, q = data[2]
    h = np.array([[0.5, 0.1], [0.1, 0.3]])

    def ref_logpdf(hmat):
        lp = np.stack([stats.multivariate_normal(xi, hmat).logpdf(q) for xi in x])
        return logsumexp(lp, axis=0) - np.log(len(x))

    fam = jc.KDE(dim=2, bandwidth=h, q_tile=Q_TILE, p_tile=P_TILE)
    np.testing.assert_allclose(fam.log_prob(fam.params(x), q), ref_logpdf(h), rtol=1e-6)
    fam = jc.KDE(dim=2, bandwidth=0.4)
    p = fam.params(x)
    np.testing.assert_allclose(p.bandwidth, 0.16 * np.eye(2), rtol=1e-12)
    np.testing.assert_allclose(fam.log_prob(p, q), ref_logpdf(0.16 * np.eye(2)), rtol=1e-6)
    diag = jc.KDE(dim=2, bandwidth="scott", diagonal=True).params(x)
    ref = stats.gaussian_kde(x.T)
    np.testing.assert_allclose(diag.bandwidth, np.diag(np.diag(ref.covariance)), rtol=1e-6)


def test_cv_picks_best_leave_one_out_factor(data):
    x, _, _ = data[1]
    x = x[:80]
    grid = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
    p = jc.KDE(dim=1, bandwidth="cv", cv_grid=grid).params(x)
    cov = np.cov(x.T)
    scores = []
    for f in grid:
        s = np.sqrt(cov * f * f)
        lp = stats.norm.logpdf(x[:, 0][:, None], x[:, 0][None, :], s)
        np.fill_diagonal(lp, -np.inf)
        scores.append(np.sum(logsumexp(lp, axis=1) - np.log(len(x) - 1)))
    best = grid[int(np.argmax(scores))]
    assert best not in (grid[0], grid[-1])  # an interior optimum: the test can fail
    np.testing.assert_allclose(p.bandwidth, cov * best**2, rtol=1e-10)


def test_density_integrates_to_one_and_far_tails_are_finite():
    fam = jc.KDE(dim=1, bandwidth="silverman")
    x = np.array([-2.0, 0.0, 0.5, 3.0])
    p = fam.params(x)
    g = np.linspace(-15, 18, 6001)
    dens = np.exp(np.asarray(fam.log_prob(p, g[:, None])))
    assert abs(np.sum(dens) * (g[1] - g[0]) - 1.0) < 1e-6
    far = fam.log_prob(p, np.array([[1e4], [-1e4]]))
    ref = stats.gaussian_kde(x, "silverman").logpdf([1e4, -1e4])
    np.testing.assert_allclose(far, ref, rtol=1e-6)


def test_sampling_follows_the_kde_ks():
    """KS against the KDE's own CDF, sum_i w_i Phi((t - x_i)/h); fixed key, p > 0.001."""
    rng = np.random.default_rng(1)
    x = np.concatenate([rng.normal(-3, 0.5, 30), rng.normal(2, 1.0, 20)])
    w = rng.uniform(0.2, 1.0, 50)
    fam = jc.KDE(dim=1, bandwidth=0.4)
    p = fam.params(x, w)
    s = np.asarray(fam.sample(jax.random.key(2), p, 5000))[:, 0]
    wn = w / w.sum()
    cdf = lambda t: np.sum(wn * stats.norm.cdf((np.asarray(t)[:, None] - x) / 0.4), axis=1)
    assert stats.kstest(s, cdf).pvalue > 1e-3
    # zero-weight points are never picked
    p0 = fam.params(np.array([0.0, 100.0]), np.array([1.0, 0.0]))
    assert float(jnp.max(jnp.abs(fam.sample(jax.random.key(3), p0, 2000)))) < 5.0


def test_log_prob_does_not_recompile(data):
    x, _, q = data[2]
    fam = jc.KDE(dim=2)
    p = fam.params(x)
    fam.log_prob(p, q)
    before = kde_mod._logpdf_jit._cache_size()
    fam.log_prob(fam.params(x + 1.0), q * 2.0)
    assert kde_mod._logpdf_jit._cache_size() == before


def test_degenerate_data_stays_finite_and_is_flagged():
    fam = jc.KDE(dim=2, bandwidth="scott")
    x = jnp.ones((20, 2))
    p = fam.fit(None, x, jnp.ones(20))
    assert bool(fam.is_degenerate(p))
    assert bool(jnp.all(jnp.isfinite(fam.log_prob(p, jnp.zeros((3, 2))))))
    assert bool(jnp.all(jnp.isfinite(fam.sample(jax.random.key(0), p, 10))))
    assert not bool(fam.is_degenerate(fam.params(np.random.default_rng(0).normal(size=(20, 2)))))


def test_bad_inputs():
    for bad in (0.0, -1.0, np.nan, np.inf):
        with pytest.raises(ValueError, match="bandwidth must be finite and > 0"):
            jc.KDE(dim=1, bandwidth=bad)
    with pytest.raises(ValueError, match="positive definite"):
        jc.KDE(dim=2, bandwidth=[[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match=r"shape \(2, 2\)"):
        jc.KDE(dim=2, bandwidth=np.eye(3))
    with pytest.raises(ValueError, match="bandwidth must be one of"):
        jc.KDE(dim=1, bandwidth="plugin")
    with pytest.raises(ValueError, match="at least 3 points"):
        jc.KDE(dim=2, bandwidth="scott").params(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="data must be finite"):
        jc.KDE(dim=1).params(np.array([0.0, np.nan, 1.0]))
    with pytest.raises(ValueError, match="weights must be finite, >= 0"):
        jc.KDE(dim=1).params(np.array([0.0, 1.0, 2.0]), np.array([1.0, -1.0, 1.0]))
    fam = jc.KDE(dim=1)
    p = fam.params(np.array([0.0, 1.0, 2.0]))
    with pytest.raises(ValueError, match=r"x must have shape \(q, 1\)"):
        fam.log_prob(p, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="x must be finite"):
        fam.log_prob(p, np.array([[np.inf]]))
    with pytest.raises(ValueError, match="cv_grid"):
        jc.KDE(dim=1, bandwidth="cv", cv_grid=(0.5, -1.0))
    with pytest.raises(ValueError, match="params0.bandwidth must be finite and positive"):
        fam.check_params(jc.KDEParams(p.points, p.weights, -p.bandwidth))


def test_cli_run_kde(tmp_path, capsys):
    from jaxcollapse import cli, io

    out = tmp_path / "kde"
    rc = cli.main(["run", "kde", "--chains", "8", "--generations", "4", "--samples", "16",
                   "--bandwidth", "0.3", "--out", str(out), "--no-progress"])
    assert rc == 0
    table = io.load_json(out / "summary.json")["table"]
    assert table[0]["var_mean"] == pytest.approx(1.0) and table[-1]["theory_var"] is not None
    assert np.load(out / "arrays.npz")["metric_data_var"].shape == (8, 5)
    assert "KDE recursion" in capsys.readouterr().out
    for bad in (["--bandwidth", "-1"], ["--bandwidth", "plugin"]):
        with pytest.raises(SystemExit) as e:
            cli.main(["run", "kde", *bad, "--out", str(out)])
        assert e.value.code == 2
