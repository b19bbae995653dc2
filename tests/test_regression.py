"""LinearRegression family: fit against scikit-learn, exact statistics, simulate and the
fixed-design runner against THEORY.md section 5."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.linear_model import LinearRegression as SkOLS
from sklearn.linear_model import Ridge as SkRidge

import jaxcollapse as jc
from jaxcollapse.families import regression as reg
from jaxcollapse.theory import regression as th

Z = 5.0  # |mc - theory| <= Z * se: two-sided false-failure rate 6e-7 per comparison
D, T, G = 10, 100, 50


@pytest.fixture(scope="module")
def design():
    return jax.random.normal(jax.random.key(100), (T, D))


@pytest.fixture(scope="module")
def w_star():
    return jnp.linspace(-1.0, 1.0, D)


def _close(mc, theory):
    mc = np.asarray(mc)
    se = mc.std(0) / np.sqrt(mc.shape[0])
    return np.abs(mc.mean(0) - np.asarray(theory)) <= Z * se + 1e-12


@pytest.mark.parametrize("ridge", [0.0, 3.0])
def test_fit_matches_sklearn(ridge):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 4)), rng.normal(size=40)
    w = (rng.uniform(size=40) > 0.3).astype(float)
    fam = reg.LinearRegression(dim=4, ridge=ridge)
    got = fam.fit(jax.random.key(0), (jnp.asarray(x), jnp.asarray(y)), jnp.asarray(w)).w
    sk = (SkRidge(alpha=ridge, fit_intercept=False) if ridge else
          SkOLS(fit_intercept=False)).fit(x, y, sample_weight=w)
    np.testing.assert_allclose(got, sk.coef_, rtol=1e-6, atol=1e-10)


def test_stats_identity_and_rank_deficient_fit():
    fam = reg.LinearRegression(dim=3)
    x, y = jnp.ones((4, 3)), jnp.ones(4)
    zero = fam.stats((x, y), jnp.zeros(4))
    s = fam.stats((x, y), jnp.ones(4))
    for a, b in zip(fam.add_stats(zero, s), s, strict=True):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    w = fam.fit_stats(s).w  # XᵀX has rank 1: the minimum-norm solution, finite
    np.testing.assert_allclose(w, np.full(3, 1 / 3), rtol=1e-10)
    assert not bool(fam.is_degenerate(fam.fit_stats(s)))


def test_fixed_sample_stats_law(design, w_star):
    # Xᵀy of one relabelling: mean XᵀX w, covariance σ² XᵀX (checked on two entries).
    fam = reg.LinearRegression(dim=D, noise=0.5, n_design=T)
    p = fam.params(w_star, design)
    keys = jax.random.split(jax.random.key(1), 4000)
    st = jax.jit(jax.vmap(lambda k: fam.sample_stats(k, p, T)))(keys)
    gram = np.asarray(design.T @ design)
    np.testing.assert_allclose(st.xtx[0], gram, rtol=1e-10)
    xty = np.asarray(st.xty)
    assert np.all(_close(xty, gram @ np.asarray(w_star)))
    dev = xty - gram @ np.asarray(w_star)
    prod = dev[:, 0] * dev[:, 1]
    assert abs(prod.mean() - 0.25 * gram[0, 1]) <= Z * prod.std() / np.sqrt(len(prod))
    # n = 2T counts every row twice; n = 0 gives empty statistics.
    s2 = fam.sample_stats(jax.random.key(2), p, 2 * T)
    np.testing.assert_allclose(s2.xtx, 2 * gram, rtol=1e-10)
    s0 = fam.sample_stats(jax.random.key(2), p, 0)
    assert float(jnp.abs(s0.xtx).max()) == 0.0 and float(jnp.abs(s0.xty).max()) == 0.0


def test_fresh_sample_stats_wishart_mean():
    fam = reg.LinearRegression(dim=3, noise=1.0)
    p = fam.params(jnp.array([1.0, 0.0, -1.0]))
    keys = jax.random.split(jax.random.key(3), 2000)
    draw = jax.jit(jax.vmap(lambda k, n: fam.sample_stats(k, p, n), in_axes=(0, None)))
    for n in (2, 20):  # n < d (singular) and n > d (Bartlett); one compiled program
        xtx = np.asarray(draw(keys, n).xtx).reshape(len(keys), -1)
        assert np.all(_close(xtx, (n * np.eye(3)).ravel())), n


# ----------------------------------------------------------------------- simulate


@pytest.fixture(scope="module")
def fixed_family():
    return reg.LinearRegression(dim=D, noise=1.0, n_design=T)


@pytest.mark.parametrize("regime", ["replace", "accumulate"])
def test_simulate_fixed_design_theory(regime, fixed_family, design, w_star):
    p0 = fixed_family.params(w_star, design)
    res = jc.simulate(jax.random.key(4), fixed_family, p0, n_generations=G, n_samples=T,
                      n_chains=1500, regime=regime, save_params=False)
    n = np.arange(G + 1)
    f = th.excess_replace_fixed if regime == "replace" else th.excess_accumulate_fixed
    assert np.all(_close(res.metrics["excess_risk"], f(n, design)))


def test_simulate_samples_path_agrees(fixed_family, design, w_star):
    fam = reg.LinearRegression(dim=D, noise=1.0, n_design=T, method="samples")
    p0 = fam.params(w_star, design)
    res = jc.simulate(jax.random.key(5), fam, p0, n_generations=5, n_samples=T,
                      n_chains=1500, save_params=False, metrics=["excess_risk"])
    assert np.all(_close(res.metrics["excess_risk"],
                         th.excess_replace_fixed(np.arange(6), design)))


def test_simulate_fresh_design_replace(w_star):
    # With a new design every generation the design-averaged formula is exact.
    fam = reg.LinearRegression(dim=D, noise=1.0)
    res = jc.simulate(jax.random.key(6), fam, fam.params(w_star), n_generations=20,
                      n_samples=T, n_chains=1000, save_params=False, metrics=["excess_risk"])
    assert np.all(_close(res.metrics["excess_risk"], th.excess_replace(np.arange(21), D, T)))


# ------------------------------------------------------------- fixed-design runner


@pytest.mark.parametrize("regime", ["replace", "accumulate"])
def test_runner_matches_theory_and_does_not_recompile(regime, fixed_family, design, w_star):
    p0 = fixed_family.params(w_star, design)
    before = reg._fixed_design_run._cache_size()
    res = reg.simulate_fixed_design(jax.random.key(7), fixed_family, p0, n_generations=G,
                                    n_chains=4000, regime=regime)
    f = th.excess_replace_fixed if regime == "replace" else th.excess_accumulate_fixed
    assert np.all(_close(res.excess_risk, f(np.arange(G + 1), design)))
    # New values, same shapes: no new compilation.
    p1 = fixed_family.params(2 * w_star, design * 1.1)
    reg.simulate_fixed_design(jax.random.key(8), fixed_family, p1, n_generations=G,
                              n_chains=4000, regime=regime)
    assert reg._fixed_design_run._cache_size() == before + 1


@pytest.mark.parametrize("regime", ["replace", "accumulate"])
def test_simulate_takes_the_fixed_design_runner_by_itself(regime, fixed_family, design,
                                                          w_star):
    """Issue 12's one entry point: a fixed design on the exact path with the default
    ``save_params`` runs the O(d) runner (no parameter history), equal in law to the
    generic path: both means within Z standard errors of THEORY.md section 5, and
    ``step_change`` under replace at its closed form σ² tr((XᵀX)⁻¹) (each generation
    adds fresh noise to the fit of the previous labels)."""
    p0 = fixed_family.params(w_star, design)
    kw = dict(n_generations=G, n_samples=T, regime=regime)
    res = jc.simulate(jax.random.key(4), fixed_family, p0, n_chains=1500, **kw)
    assert res.params is None and res.metrics["excess_risk"].shape == (1500, G + 1)
    f = th.excess_replace_fixed if regime == "replace" else th.excess_accumulate_fixed
    assert np.all(_close(res.metrics["excess_risk"], f(np.arange(G + 1), design)))
    if regime == "replace":
        one = float(th.inverse_gram_trace(design))
        assert np.all(_close(res.metrics["step_change"][:, 1:], np.full(G, one)))
    assert not np.any(np.asarray(res.degenerate))
    # a chain's numbers do not depend on the chain count: the same draws (its own
    # keys), but the d-sum of a batch of 3 chains may round differently from one of
    # 1,500 (seen: 1 ulp)
    few = jc.simulate(jax.random.key(4), fixed_family, p0, n_chains=3, **kw)
    for name, v in few.metrics.items():
        np.testing.assert_allclose(np.asarray(v), np.asarray(res.metrics[name])[:3],
                                   rtol=1e-13, atol=1e-15)
    # another sample size, or a parameter history, takes the generic path
    assert jc.simulate(jax.random.key(4), fixed_family, p0, n_chains=2, n_generations=2,
                       n_samples=T // 2).params is not None


def test_runner_ridge_replace_and_weights(design, w_star):
    fam = reg.LinearRegression(dim=D, ridge=20.0, noise=1.0, n_design=T)
    p0 = fam.params(w_star, design)
    res = reg.simulate_fixed_design(jax.random.key(9), fam, p0, n_generations=G,
                                    n_chains=4000, return_w=True)
    theory = th.excess_ridge_replace_fixed(np.arange(G + 1), design, w_star, ridge=20.0)
    assert np.all(_close(res.excess_risk, theory))
    np.testing.assert_allclose(jnp.sum((res.w - w_star) ** 2, -1), res.excess_risk,
                               rtol=1e-8, atol=1e-12)


def test_bad_inputs(design, w_star):
    with pytest.raises(ValueError, match="ridge must be a finite number >= 0"):
        reg.LinearRegression(dim=2, ridge=-1.0)
    with pytest.raises(ValueError, match="dim must be an integer >= 1"):
        reg.LinearRegression(dim=0)
    fam = reg.LinearRegression(dim=D, n_design=T)
    bad = np.asarray(design).copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="params0.design must be finite"):
        fam.params(w_star, bad)
    with pytest.raises(ValueError, match=r"params0.design must have shape \(100, 10\)"):
        fam.params(w_star, design[:50])
    with pytest.raises(ValueError, match=r"y must have shape \(5,\) to match X"):
        fam.check_data((jnp.ones((5, D)), jnp.ones(4)))
    with pytest.raises(ValueError, match="data must be finite"):
        fam.check_data((jnp.ones((5, D)), jnp.full(5, jnp.nan)))
    with pytest.raises(ValueError, match="regime must be 'replace' or 'accumulate'"):
        reg.simulate_fixed_design(jax.random.key(0), fam, fam.params(w_star, design),
                                  n_generations=2, n_chains=2, regime="mix")
    with pytest.raises(ValueError, match="fixed design"):
        reg.simulate_fixed_design(jax.random.key(0), reg.LinearRegression(dim=D),
                                  reg.LinearRegression(dim=D).params(w_star),
                                  n_generations=2, n_chains=2)


def test_cli_run_regression(tmp_path, capsys):
    import json

    from jaxcollapse import cli

    code = cli.main(["run", "regression", "--generations", "5", "--chains", "64",
                     "--dim", "3", "--samples", "20", "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    assert "theory(X)" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["table"][-1]["generation"] == 5 and "theory_this_design" in \
        summary["table"][-1]
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "regression", "--ridge", "-1", "--out", str(tmp_path),
                  "--no-progress"])
    assert e.value.code == 2
    assert "ridge must be a finite number >= 0" in capsys.readouterr().err
