"""The KDE recursion: closed forms of THEORY.md section 6 against simulate."""

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.theory import kde as tk

Z = 4.5  # two-sided normal tail 6.8e-6 per comparison; about 1e-4 over all checks here


def test_closed_forms():
    assert tk.fixed_point_var(10, 0.5) == pytest.approx(9 * 0.25)
    # the recursion one step at a time
    v = [1.3]
    for _ in range(5):
        v.append(tk.one_step_var(v[-1], 12, 0.4**2))
    np.testing.assert_allclose(tk.expected_var_fixed(np.arange(6), 12, 0.4, 1.3), v,
                               rtol=1e-12)
    np.testing.assert_allclose(tk.expected_var_fixed(10_000, 12, 0.4, 1.3),
                               tk.fixed_point_var(12, 0.4), rtol=1e-9)
    assert tk.growth_factor(100, 1, "scott") == pytest.approx(0.99 + 100 ** -0.4)
    assert tk.growth_factor(100, 2, "silverman") == pytest.approx(0.99 + 100 ** (-1 / 3))
    with pytest.raises(ValueError, match="rule must be one of"):
        tk.growth_factor(100, 1, "plugin")
    with pytest.raises(ValueError, match="M must be an integer >= 2"):
        tk.expected_var_fixed(1, 1, 0.5, 1.0)
    with pytest.raises(ValueError, match="h must be > 0"):
        tk.expected_var_fixed(1, 10, 0.0, 1.0)


def _run(bandwidth, m, gens, chains, dim=1, seed=0):
    fam = jc.KDE(dim=dim, bandwidth=bandwidth)
    x0 = np.random.default_rng(seed).normal(size=(m, dim))
    p0 = fam.params(x0)
    res = jc.simulate(jax.random.key(seed), fam, p0, n_generations=gens, n_samples=m,
                      n_chains=chains, save_params=False, metrics=["data_var",
                                                                   "rkhs_successive"])
    s0 = np.sum(np.var(x0, axis=0))
    return np.asarray(res.metrics["data_var"]) * s0, s0, res


def _check(mc, theory):
    mean = mc.mean(0)
    se = mc.std(0, ddof=1) / np.sqrt(mc.shape[0])
    assert np.all(np.abs(mean[1:] - theory[1:]) <= Z * se[1:]), (mean, theory, se)


def test_fixed_bandwidth_recursion_matches_theory():
    m, h = 20, 0.3
    v, s0, res = _run(h, m, 8, 2000)
    _check(v, tk.expected_var_fixed(np.arange(9), m, h, s0))
    assert not bool(res.degenerate.any())
    succ = np.asarray(res.metrics["rkhs_successive"])
    assert np.all(succ[:, 0] == 0) and np.all(succ[:, 1:] > 0)


@pytest.mark.parametrize("rule", ["scott", "silverman"])
def test_rule_recursion_grows_as_theory(rule):
    """E[S_n] = g^n S_0; few generations so that the chain mean is still reliable
    (THEORY.md section 2's testing note on log-normal-like products)."""
    m = 20
    v, s0, _ = _run(rule, m, 5, 2000, seed=1)
    _check(v, tk.expected_var_rule(np.arange(6), m, s0, 1, rule))


def test_scott_two_dimensions():
    m = 30
    v, s0, _ = _run("scott", m, 4, 1500, dim=2, seed=2)
    # data_var is tr(S_n) / tr(S_0): each coordinate grows by g in expectation
    _check(v, tk.expected_var_rule(np.arange(5), m, s0, 2, "scott"))


def test_fixed_bandwidth_reaches_the_fixed_point():
    """After 120 generations a^n = 0.9^120 ~ 3e-6: E[s_n^2] is (M - 1) h^2 (diffusion,
    not collapse)."""
    m, h = 10, 0.5
    v, s0, _ = _run(h, m, 120, 1500, seed=3)
    theory = tk.expected_var_fixed(np.arange(121), m, h, s0)
    assert abs(theory[-1] - tk.fixed_point_var(m, h)) < 1e-4
    last = v[:, -20:].mean(1)  # average over the last generations of each chain
    se = last.std(ddof=1) / np.sqrt(len(last))
    assert abs(last.mean() - theory[-20:].mean()) <= Z * se
