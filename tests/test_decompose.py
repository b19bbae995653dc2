"""The three-source decomposition: each arm against its own theory."""

import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate, stats

import jaxcollapse as jc
from jaxcollapse.theory import gaussian as tg

# jaxcollapse.decompose is the function (re-exported); the module holds the rest.
dc = importlib.import_module("jaxcollapse.decompose")
Z = 5.0  # |mc - theory| <= Z * se: two-sided false-failure rate 6e-7 per comparison
G, M, NPOP, CHAINS = 20, 100, 20_000, 400


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


def test_approximation_arm_follows_the_population_map():
    # With population data the arm is the deterministic map "fit by gradient descent
    # from the poor start" iterated on the previous fit. Finite N_pop adds the
    # statistical error at M = N_pop, about w2sq_mean(n, N_pop) (the fitter's
    # sensitivity to the data moments is at most 1); it is allowed twice as a floor.
    # N_pop = 10^6 costs nothing here: Gaussian generations draw exact statistics.
    npop = 10**6
    res = dc.decompose(jax.random.key(3), n_generations=G, n_population=npop,
                       n_chains=CHAINS, arms=("approximation",))
    m0, v0 = res.truth_mean, res.truth_var
    init = jnp.array([m0 + np.sqrt(v0), np.sqrt(v0) / 2])
    m, v, ref = m0, v0, [0.0]
    for _ in range(G):
        m, v = (float(a) for a in dc._sgd_fit(m, v, init, 0.5, 50))
        ref.append((m - m0) ** 2 + (np.sqrt(v) - np.sqrt(v0)) ** 2)
    mean, se = _mean_se(res.distance["approximation"])
    floor = 2 * np.maximum(np.asarray(tg.w2sq_mean(np.arange(G + 1), npop, v0)), 0) + 1e-12
    assert np.all(np.abs(mean - np.asarray(ref)) <= Z * se + floor)
    assert ref[-1] > 10 * ref[1]  # the fitter's bias compounds


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
    kw = dict(n_generations=3, n_samples=10, n_population=50, n_chains=2, arms=("all",))
    dc.decompose(jax.random.key(1), **kw)
    before = dc._run._cache_size()
    dc.decompose(jax.random.key(2), learning_rate=0.3, sgd_steps=7,
                 mixture=dc.Mixture([0.2, 0.8], [0.0, 1.0], [1.0, 2.0]), **kw)
    assert dc._run._cache_size() == before


@pytest.mark.parametrize("kwargs, err, match", [
    (dict(n_samples=1), ValueError, "n_samples must be >= 2"),
    (dict(learning_rate=-1.0), ValueError, "learning_rate must be a finite number > 0"),
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
