"""The three-source decomposition: each arm against its own theory."""


import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import jaxcollapse as jc

# jaxcollapse.decompose is the function (re-exported); the module holds the rest.
from jaxcollapse import decomposition as dc
from jaxcollapse.decomposition import ARMS
from jaxcollapse.theory import gaussian as tg

Z = 5.0  # |mc - theory| <= Z * se: two-sided false-failure rate 6e-7 per comparison
G, M, NPOP, CHAINS = 20, 100, 20_000, 400
NBIG = 10**6


@pytest.fixture(scope="module")
def result():
    assert jc.decompose is dc.decompose
    return dc.decompose(jax.random.key(0), n_generations=G, n_samples=M, n_population=NPOP,
                        n_chains=CHAINS)


def _mean_se(x):
    x = np.asarray(x)
    return x.mean(0), x.std(0) / np.sqrt(x.shape[0])


def test_statistical_arm_matches_gaussian_w2_theory(result):
    # THEORY.md section 2: E W2² = n σ²/M + 2σ²(1 - c4(M)^n); n/k <= 0.2 here, where
    # the chain mean of W2² has a reliable standard error.
    mean, se = _mean_se(result.distance["statistical"])
    theory = np.asarray(tg.w2sq_mean(np.arange(G + 1), M, result.truth_var))
    assert np.all(np.abs(mean - theory) <= Z * se + 1e-12)
    assert result.metric["statistical"] == "w2sq"


def test_expressivity_arm_sits_at_the_best_gaussian(result):
    # Generation 1 lands on the moment-matched Gaussian and stays there; with
    # population-sized data the drift adds O(n / N_pop) relative error (<= 0.1%
    # of the distance by generation 20), allowed as a floor.
    mix = dc.Mixture([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    best = float(dc.gaussian_l2sq(mix, *dc.mixture_moments(mix)))
    mean, se = _mean_se(result.distance["expressivity"][:, 1:])
    assert np.all(np.abs(mean - best) <= Z * se + 1e-3 * best)
    # The same distance for a much larger M: expressivity error does not vanish.
    assert best > 0.03


@pytest.fixture(scope="module")
def population():
    # Both Gaussian-truth arms on N = 10^6 draws a generation: they differ only in
    # the fitter. N = 10^6 costs nothing: Gaussian generations draw exact statistics.
    return dc.decompose(jax.random.key(3), n_generations=G, n_samples=NBIG,
                        n_population=NBIG, n_chains=CHAINS,
                        arms=("approximation", "statistical"))


def test_approximation_arm_follows_the_population_map(population):
    # With population data the arm is the deterministic map "fit by gradient descent
    # from the poor start" iterated on the previous fit. Finite N_pop adds the
    # statistical error at M = N_pop, about w2sq_mean(n, N_pop) (the fitter's
    # sensitivity to the data moments is at most 1); it is allowed twice as a floor.
    res = population
    m0, v0 = res.truth_mean, res.truth_var
    init = jnp.array([m0 + np.sqrt(v0), np.sqrt(v0) / 2])
    m, v, ref = m0, v0, [0.0]
    for _ in range(G):
        m, v = (float(a) for a in dc._sgd_fit(m, v, init, 0.5, 50))
        ref.append((m - m0) ** 2 + (np.sqrt(v) - np.sqrt(v0)) ** 2)
    mean, se = _mean_se(res.distance["approximation"])
    floor = 2 * np.maximum(np.asarray(tg.w2sq_mean(np.arange(G + 1), NBIG, v0)), 0) + 1e-12
    assert np.all(np.abs(mean - np.asarray(ref)) <= Z * se + floor)
    assert ref[-1] > 10 * ref[1]  # the fitter's bias compounds


def test_approximation_error_exceeds_the_statistical_error(population):
    # The same data size, the same Gaussian truth: the gradient fitter stops short of
    # the MLE (the curvature-bounded step converges geometrically, never in one
    # step), so its arm is strictly further from p0 than the exact fit's, at every
    # generation, by more than Z standard errors of the difference.
    a, sa = _mean_se(population.distance["approximation"][:, 1:])
    s, ss = _mean_se(population.distance["statistical"][:, 1:])
    assert np.all(a - s > Z * np.hypot(sa, ss)), (a - s, np.hypot(sa, ss))


def test_float32_small_m_chains_stay_finite():
    # Plain gradient descent (mean step lr (m - mu)/s²) diverged to NaN here: the
    # M = 10 chains of the "all" arm collapse below s² = lr/2, where that step
    # overshoots (62 of these 256 chains; float64 diverges as well).
    with jax.enable_x64(False):
        res = dc.decompose(jax.random.key(5), n_generations=50, n_samples=10,
                           n_population=1000, n_chains=256)
    for arm, v in res.distance.items():
        v = np.asarray(v)
        assert v.dtype == np.float32, arm
        assert np.isfinite(v).all(), (arm, int((~np.isfinite(v).all(1)).sum()))
    # the unstable regime is reached, not avoided: most chains of the "all" arm end
    # with a fitted variance < lr/2 = 0.25, i.e. ∫q² = 1/sqrt(4π var) > 0.56
    assert np.median(np.asarray(res.distance["all"])[:, -1]) > 1 / np.sqrt(np.pi)


@pytest.mark.parametrize("lr", [0.1, 0.5, 1.0, 1.9])
def test_sgd_fit_is_stable_for_any_data_variance(lr):
    # The bounded step never increases the mean error and moves log s by <= lr a
    # step, whatever the data variance (1e-12 is far below the lr/2 where plain
    # descent diverges); with enough steps it reaches the MLE (checked for var <= 1:
    # above, plain descent with mean factor 1 - lr/s² a step needs ~ s²/lr steps).
    var = jnp.asarray(np.logspace(-12, 3, 16))
    for mean in (-10.0, 0.3, 10.0):
        for steps in (50, 2000):
            mu, v = jax.vmap(lambda w, s=steps, m=mean: dc._sgd_fit(
                m, w, jnp.array([1.0, 0.5]), lr, s))(var)
            mu, v = np.asarray(mu), np.asarray(v)
            assert np.isfinite(mu).all() and np.isfinite(v).all()
            assert np.all(np.abs(mu - mean) <= abs(1.0 - mean))
            assert np.all(np.abs(np.log(v / 0.25)) <= 2 * lr * steps + 1e-9)
        small = np.asarray(var) <= 1
        np.testing.assert_allclose(mu[small], mean, rtol=1e-9)
        np.testing.assert_allclose(v[small], var[small], rtol=1e-6)


def test_all_arm_is_worse_than_expressivity_alone(result):
    a, sa = _mean_se(result.distance["all"][:, -1])
    e, se = _mean_se(result.distance["expressivity"][:, -1])
    assert a - e > Z * np.hypot(sa, se)


def test_gaussian_l2sq_against_quadrature():
    mix = dc.Mixture([0.3, 0.7], [-1.0, 2.0], [0.5, 1.5])
    mean, var = 0.4, 2.0

    def integrand(x):
        p = 0.3 * stats.norm.pdf(x, -1, 0.5) + 0.7 * stats.norm.pdf(x, 2, 1.5)
        return (p - stats.norm.pdf(x, mean, np.sqrt(var))) ** 2

    ref = integrate.quad(integrand, -30, 30, epsabs=1e-14, epsrel=1e-12, limit=200)[0]
    np.testing.assert_allclose(dc.gaussian_l2sq(mix, mean, var), ref, rtol=1e-6)
    m, v = dc.mixture_moments(mix)
    np.testing.assert_allclose([m, v], [0.3 * -1 + 0.7 * 2,
                                        0.3 * (0.25 + 1) + 0.7 * (2.25 + 4) - 1.1**2],
                               rtol=1e-12)


def test_new_values_do_not_recompile():
    # The arms run through simulate; the truth (the mixture and its moment-matched
    # Gaussian) is traced, and the fitter's start is relative to it, so a new key and
    # a new mixture reuse the programs. (sgd_steps and learning_rate are the
    # GradientGaussian family's static hyperparameters: a new value compiles.)
    run_mod = importlib.import_module("jaxcollapse.simulation._run")
    kw = dict(n_generations=3, n_samples=10, n_population=50, n_chains=2, arms=ARMS)
    dc.decompose(jax.random.key(1), **kw)
    before = run_mod._run_jit._cache_size(), dc._distance._cache_size()
    dc.decompose(jax.random.key(2), mixture=dc.Mixture([0.2, 0.8], [0.0, 1.0], [1.0, 2.0]),
                 **kw)
    assert (run_mod._run_jit._cache_size(), dc._distance._cache_size()) == before


def test_a_chain_does_not_depend_on_the_chain_count():
    kw = dict(n_generations=4, n_samples=10, n_population=200)
    a = dc.decompose(jax.random.key(4), n_chains=3, **kw)
    b = dc.decompose(jax.random.key(4), n_chains=7, **kw)
    for arm in ARMS:
        np.testing.assert_array_equal(a.distance[arm], b.distance[arm][:3], err_msg=arm)


def test_gradient_gaussian_is_the_imperfect_fitter():
    # simulate's fit of the family is _sgd_fit of the training data's mean and MLE
    # variance from the start (mean0 + a std0, b std0) of generation 0
    fam = dc.GradientGaussian(steps=7, learning_rate=0.3, start=(0.5, 2.0))
    p0 = fam.params(mean=[1.0], cov=[[4.0]])
    st = fam.stats(jnp.array([[0.0], [1.0], [5.0]]), jnp.ones(3))
    got = fam.from_params0(p0, fam.fit_stats(st))
    m, v = dc._sgd_fit(2.0, 14 / 3, jnp.array([1.0 + 0.5 * 2.0, 2.0 * 2.0]), 0.3, 7)
    np.testing.assert_allclose([got.mean[0], got.cov[0, 0]], [m, v], rtol=1e-12)
    for kw, match in ((dict(dim=2), "one-dimensional on the exact path"),
                      (dict(method="samples"), "one-dimensional on the exact path"),
                      (dict(steps=0), "steps must be >= 1"),
                      (dict(learning_rate=2.0), r"learning_rate must be .* in \(0, 2\)"),
                      (dict(start=(0.0, 0.0)), r"start must be a tuple \(a, b\)")):
        with pytest.raises(ValueError, match=match):
            dc.GradientGaussian(**kw)


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(n_samples=1), ValueError, "n_samples must be >= 2"),
    (dict(learning_rate=-1.0), ValueError, r"learning_rate must be a finite number in \(0, 2\)"),
    (dict(learning_rate=2.5), ValueError, r"learning_rate must be a finite number in \(0, 2\)"),
    (dict(arms=("bogus",)), ValueError, "arms must be a non-empty subset"),
    (dict(mixture=dc.Mixture([0.5, 0.6], [0, 1], [1, 1])), ValueError, "sum to 1"),
    (dict(mixture=dc.Mixture([0.5, 0.5], [0, 1], [1, -1])), ValueError, "stds must be > 0"),
    (dict(sgd_init=(0.0, 0.0)), ValueError, "sgd_init must be"),
    (dict(n_chains=2.5), TypeError, "n_chains must be an integer"),
])
def test_bad_inputs(kwargs, err, match):
    with pytest.raises(err, match=match):
        dc.decompose(jax.random.key(0), n_generations=2, **kwargs)


def test_cli_run_decompose(result, tmp_path, capsys):
    import json

    from jaxcollapse import cli

    # The shapes of the `result` fixture: the compiled program is reused.
    code = cli.main(["run", "decompose", "--generations", str(G), "--chains", str(CHAINS),
                     "--population", str(NPOP), "--samples", str(M), "--out", str(tmp_path),
                     "--no-progress"])
    assert code == 0
    assert "expressivity" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["metric"]["all"] == "l2sq"
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "decompose", "--samples", "1", "--out", str(tmp_path),
                  "--no-progress"])
    assert e.value.code == 2
    assert "n_samples must be >= 2" in capsys.readouterr().err
