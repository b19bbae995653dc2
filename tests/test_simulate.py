"""The generic simulator: regimes, exact vs samples paths, determinism, compilation,
bad input. Monte Carlo comparisons use Z = 5 standard errors (false-failure rate
~6e-7 each) and KS tests at p > 0.001 with fixed keys."""

import dataclasses
import importlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import jaxcollapse as jc
from jaxcollapse.theory import gaussian as tg

Z = 5.0
sim_mod = importlib.import_module("jaxcollapse.simulation._run")
EXACT = jc.Gaussian(dim=1, method="exact")
SAMPLES = jc.Gaussian(dim=1, method="samples")
P0 = EXACT.params()
HUMAN = SAMPLES.sample(jax.random.key(99), P0, 400)

M, G, C = 20, 30, 4000


def _run(family, regime, key=0, n_chains=C, **kw):
    return jc.simulate(jax.random.key(key), family, P0, n_generations=G, n_samples=M,
                       n_chains=n_chains, regime=regime, human_data=_human(regime),
                       metrics=["w2sq", "var_ratio", "mean_shift"], **kw)


def _human(regime):
    """The human rows for a regime that trains on them (others refuse them)."""
    return HUMAN if isinstance(regime, jc.regimes.Mix) else None


def _two_sample_mean_close(a, b, z=Z):
    a, b = np.asarray(a, float), np.asarray(b, float)
    se = np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    assert abs(a.mean() - b.mean()) <= z * se, (a.mean(), b.mean(), se)


# ---------------------------------------------------- exact and samples paths agree


@pytest.mark.parametrize("regime", ["replace", "accumulate", jc.mix(0.1),
                                    jc.mix(0.1, source="fresh")],
                         ids=["replace", "accumulate", "mix-fixed", "mix-fresh"])
def test_exact_and_samples_paths_agree_in_distribution(regime):
    ex = _run(EXACT, regime, key=1)
    sa = _run(SAMPLES, regime, key=2)
    for n in (1, 5, G):
        a = np.asarray(ex.metrics["var_ratio"][:, n])
        b = np.asarray(sa.metrics["var_ratio"][:, n])
        assert stats.ks_2samp(a, b).pvalue > 1e-3, (regime, n)
        _two_sample_mean_close(ex.metrics["w2sq"][:, n], sa.metrics["w2sq"][:, n])


def test_accumulate_bounded_replace_linear():
    """Gerstgrasser et al.: accumulating data keeps the error bounded."""
    kw = dict(n_generations=200, n_samples=100, n_chains=4000, metrics=["w2sq"])
    rep = jc.simulate(jax.random.key(5), EXACT, P0, regime="replace", **kw).metrics["w2sq"]
    acc = jc.simulate(jax.random.key(5), EXACT, P0, regime="accumulate", **kw).metrics["w2sq"]
    rep, acc = np.asarray(rep), np.asarray(acc)
    # replace follows the linear theory at moderate n / k
    for n in (10, 50):
        se = rep[:, n].std(ddof=1) / np.sqrt(rep.shape[0])
        assert abs(rep[:, n].mean() - float(tg.w2sq_mean(n, 100))) <= Z * se
    # accumulate: from generation 100 to 200 it barely moves, and stays far below replace
    growth = acc[:, 200] - acc[:, 100]
    se = growth.std(ddof=1) / np.sqrt(growth.size)
    assert abs(growth.mean()) <= Z * se + 1e-3
    assert acc[:, 200].mean() < 0.1 * rep[:, 200].mean()
    assert acc[:, 200].mean() < 3 * acc[:, 10].mean()


def test_mix_with_all_human_data_is_the_human_fit():
    res = jc.simulate(jax.random.key(0), SAMPLES, P0, n_generations=5, n_samples=50,
                      n_chains=3, regime=jc.mix(1.0), human_data=HUMAN)
    # fixed source: the same 50 human points every generation -> the same fit
    cov = np.asarray(res.params.cov[:, 1:, 0, 0])
    assert np.allclose(cov, cov[:, :1])


def test_mix_reduces_collapse():
    kw = dict(n_generations=100, n_samples=50, n_chains=2000, metrics=["w2sq"])
    rep = jc.simulate(jax.random.key(6), EXACT, P0, **kw).metrics["w2sq"][:, -1]
    mix = jc.simulate(jax.random.key(6), EXACT, P0, regime=jc.mix(0.1, "fresh"),
                      human_data=HUMAN, **kw).metrics["w2sq"][:, -1]
    assert float(mix.mean()) < 0.5 * float(rep.mean())


def test_accumulate_subsample_runs_and_lies_between():
    kw = dict(n_generations=40, n_samples=20, n_chains=2000, metrics=["w2sq"])
    sub = jc.simulate(jax.random.key(7), SAMPLES, P0, regime="accumulate-subsample", **kw)
    rep = jc.simulate(jax.random.key(7), SAMPLES, P0, regime="replace", **kw)
    acc = jc.simulate(jax.random.key(7), SAMPLES, P0, regime="accumulate", **kw)
    s, r, a = (float(x.metrics["w2sq"][:, -1].mean()) for x in (sub, rep, acc))
    assert a < s < r


# ----------------------------------------------------------- grid over alpha and M


def test_grid_over_alpha_equals_separate_runs():
    alphas = jnp.array([0.0, 0.1, 0.5])
    grid = jc.simulate_grid(jax.random.key(3), EXACT, P0, n_generations=10, n_samples=M,
                            n_chains=16, regime="mix", alpha=alphas, human_data=HUMAN,
                            metrics=["w2sq"])
    assert grid.metrics["w2sq"].shape == (3, 16, 11)
    for i, a in enumerate([0.0, 0.1, 0.5]):
        one = jc.simulate(jax.random.key(3), EXACT, P0, n_generations=10, n_samples=M,
                          n_chains=16, regime=jc.mix(a), human_data=HUMAN, metrics=["w2sq"])
        np.testing.assert_allclose(grid.metrics["w2sq"][i], one.metrics["w2sq"], rtol=1e-10)


def test_grid_over_sample_sizes_matches_theory():
    sizes = np.array([10, 40, 160])
    grid = jc.simulate_grid(jax.random.key(4), EXACT, P0, n_generations=10, n_samples=sizes,
                            n_chains=8000, metrics=["mean_shift"])
    ms = np.asarray(grid.metrics["mean_shift"][:, :, 10])
    se = ms.std(axis=1, ddof=1) / np.sqrt(ms.shape[1])
    assert np.all(np.abs(ms.mean(1) - 10 / sizes) <= Z * se)
    assert grid.n_samples.shape == (3, 11)


# -------------------------------------------------------------------- determinism


@dataclasses.dataclass(frozen=True)
class _WithoutNoiseHooks:
    """A family without the noise hooks: simulate draws inside each step instead
    (the exact path through ``stats_noise_at`` of the generation's counter)."""

    family: object

    def __getattr__(self, name):
        if name in ("sample_noise", "sample_from_noise", "stats_noise"):
            raise AttributeError(name)
        return getattr(self.family, name)


@pytest.mark.parametrize("family, regime", [(EXACT, "replace"), (EXACT, jc.mix(0.3)),
                                            (SAMPLES, "replace"), (SAMPLES, "accumulate"),
                                            (SAMPLES, jc.mix(0.3, source="fresh"))],
                         ids=["exact-replace", "exact-mix", "samples-replace",
                              "samples-accumulate", "samples-mix"])
def test_noise_blocks_give_the_numbers_of_per_step_draws(family, regime):
    # noise drawn for blocks of generations and all chains at once (noise hooks)
    # equals the draws each step would make; chunks of 7 cut across the blocks
    kw = dict(n_generations=11, n_samples=9, n_chains=5, regime=regime,
              human_data=_human(regime),
              metrics=["w2sq"])
    hooks = jc.simulate(jax.random.key(12), family, P0, **kw)
    plain = jc.simulate(jax.random.key(12), _WithoutNoiseHooks(family), P0, **kw)
    chunked = jc.simulate(jax.random.key(12), family, P0, chunk_size=7, **kw)
    for other in (plain, chunked):
        np.testing.assert_allclose(hooks.params.cov, other.params.cov, rtol=1e-13)
        np.testing.assert_allclose(hooks.params.mean, other.params.mean, rtol=1e-13,
                                   atol=1e-15)


def test_chain_results_do_not_depend_on_n_chains():
    a = _run(SAMPLES, jc.mix(0.1), n_chains=3, key=8)
    b = _run(SAMPLES, jc.mix(0.1), n_chains=7, key=8)
    np.testing.assert_array_equal(a.params.cov, b.params.cov[:3])
    c = _run(EXACT, "accumulate", n_chains=3, key=8)
    d = _run(EXACT, "accumulate", n_chains=5, key=8)
    np.testing.assert_array_equal(c.metrics["w2sq"], d.metrics["w2sq"][:3])


def test_same_key_same_result_and_different_key_differs():
    a = _run(EXACT, "replace", n_chains=4, key=9)
    b = _run(EXACT, "replace", n_chains=4, key=9)
    c = _run(EXACT, "replace", n_chains=4, key=10)
    np.testing.assert_array_equal(a.params.mean, b.params.mean)
    assert not np.array_equal(a.params.mean, c.params.mean)


@pytest.mark.parametrize("regime", ["replace", "accumulate", jc.mix(0.2, "fresh")],
                         ids=["replace", "accumulate", "mix-fresh"])
def test_chunked_equals_unchunked(regime):
    whole = _run(SAMPLES, regime, n_chains=4, key=11)
    seen = []
    parts = _run(SAMPLES, regime, n_chains=4, key=11, chunk_size=7,
                 on_chunk=lambda a, b, r: seen.append((a, b, r)))
    # the same keys and arithmetic; only the compiler's association of long sums
    # may differ between the two programs (a few ulp)
    np.testing.assert_allclose(whole.params.cov, parts.params.cov, rtol=1e-12)
    np.testing.assert_allclose(whole.metrics["w2sq"], parts.metrics["w2sq"], rtol=1e-9,
                               atol=1e-15)
    assert [(a, b) for a, b, _ in seen] == [(0, 8), (8, 15), (15, 22), (22, 29), (29, 31)]
    # the chunks handed to on_chunk tile the whole result
    cov = np.concatenate([np.asarray(r.params.cov) for _, _, r in seen], axis=1)
    np.testing.assert_array_equal(cov, parts.params.cov)
    n = np.concatenate([r.n_samples for _, _, r in seen])
    np.testing.assert_array_equal(n, parts.n_samples)


def test_second_call_with_new_values_does_not_recompile():
    kw = dict(n_generations=5, n_samples=12, n_chains=6, metrics=["w2sq"])
    jc.simulate(jax.random.key(0), EXACT, P0, **kw)
    before = sim_mod._run_jit._cache_size()
    p_new = EXACT.params(mean=[1.0], cov=[[2.5]])
    jc.simulate(jax.random.key(1), EXACT, p_new, **kw)
    jc.simulate(jax.random.key(2), EXACT, P0, **kw)
    assert sim_mod._run_jit._cache_size() == before
    # a new alpha value is a traced leaf of the regime: no recompilation while the
    # room for the human count round(alpha M), rounded up to a multiple of 4, stays
    # the same (here 3 and 4 of M = 12: room for 4 rows; a sweep is simulate_grid)
    jc.simulate(jax.random.key(0), EXACT, P0, regime=jc.mix(0.3), human_data=HUMAN, **kw)
    mid = sim_mod._run_jit._cache_size()
    jc.simulate(jax.random.key(0), EXACT, P0, regime=jc.mix(0.25), human_data=HUMAN, **kw)
    assert sim_mod._run_jit._cache_size() == mid


def test_result_layout():
    res = _run(EXACT, "replace", n_chains=5)
    assert res.n_chains == 5 and res.n_generations == G
    assert res.params.mean.shape == (5, G + 1, 1)
    assert res.params.cov.shape == (5, G + 1, 1, 1)
    assert res.degenerate.shape == (5, G + 1)
    np.testing.assert_array_equal(res.params.mean[:, 0], np.zeros((5, 1)))
    assert res.n_samples.tolist() == [0] + [M] * G
    assert np.all(np.asarray(res.metrics["w2sq"][:, 0]) == 0)


def test_float32_collapse_is_flagged_and_finite():
    fam = jc.Gaussian(dim=1, method="exact")
    p32 = fam.params(dtype=jnp.float32)
    res = jc.simulate(jax.random.key(0), fam, p32, n_generations=3000, n_samples=3,
                      n_chains=8)
    assert res.params.cov.dtype == jnp.float32
    assert bool(np.all(np.asarray(res.degenerate[:, -1])))
    for name, m in res.metrics.items():
        assert np.all(np.isfinite(np.asarray(m))), name
    assert np.all(np.isfinite(np.asarray(res.params.cov)))


def test_float32_collapse_multivariate_samples_path_is_finite():
    fam = jc.Gaussian(dim=2, method="samples")
    p32 = fam.params(dtype=jnp.float32)
    res = jc.simulate(jax.random.key(0), fam, p32, n_generations=1500, n_samples=4,
                      n_chains=4, save_params=False)
    assert bool(np.all(np.asarray(res.degenerate[:, -1])))
    for name, m in res.metrics.items():
        assert np.all(np.isfinite(np.asarray(m))), name


# ---------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(n_samples=1), ValueError, "n_samples must be >= 2"),
        (dict(n_generations=0), ValueError, "n_generations must be >= 1"),
        (dict(n_chains=0), ValueError, "n_chains must be >= 1"),
        (dict(n_chains=2.5), TypeError, "n_chains must be an integer"),
        (dict(n_samples=[10, 10]), ValueError, "length n_generations"),
        (dict(n_samples=10.5), TypeError, "n_samples must be an integer"),
        (dict(regime="shuffle"), ValueError, "regime must be one of"),
        (dict(regime="mix"), ValueError, "needs human_data"),
        (dict(metrics=["nope"]), ValueError, "unknown"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    base = dict(n_generations=3, n_samples=10, n_chains=2)
    base.update(kwargs)
    with pytest.raises(exc, match=match):
        jc.simulate(jax.random.key(0), EXACT, P0, **base)


def test_bad_alpha_and_params_and_key():
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        jc.mix(-0.1)
    with pytest.raises(ValueError, match=r"alpha must lie in \[0, 1\]"):
        jc.simulate_grid(jax.random.key(0), EXACT, P0, n_generations=2, n_samples=10,
                         n_chains=2, regime="mix", alpha=[0.1, 2.0], human_data=HUMAN)
    kw = dict(n_generations=2, n_samples=10, n_chains=2)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        jc.simulate(0, EXACT, P0, **kw)
    with pytest.raises(ValueError, match="positive definite"):
        jc.simulate(jax.random.key(0), EXACT, jc.GaussianParams(jnp.zeros(1), -jnp.eye(1)),
                    **kw)
    with pytest.raises(ValueError, match="finite"):
        jc.simulate(jax.random.key(0), EXACT,
                    jc.GaussianParams(jnp.array([jnp.nan]), jnp.eye(1)), **kw)
    with pytest.raises(ValueError, match="shape"):
        jc.simulate(jax.random.key(0), EXACT, jc.GaussianParams(jnp.zeros(2), jnp.eye(2)), **kw)
    with pytest.raises(ValueError, match="human_data must be finite"):
        jc.simulate(jax.random.key(0), EXACT, P0, regime=jc.mix(0.5),
                    human_data=jnp.array([[jnp.inf]] * 20), **kw)
    with pytest.raises(ValueError, match="human_data has 3 rows"):
        jc.simulate(jax.random.key(0), EXACT, P0, regime=jc.mix(0.5),
                    human_data=jnp.zeros((3, 1)), **kw)
    with pytest.raises(ValueError, match="accumulate-subsample"):
        jc.simulate(jax.random.key(0), EXACT, P0, regime="accumulate-subsample", **kw)
    with pytest.raises(TypeError, match="Family contract"):
        jc.simulate(jax.random.key(0), object(), P0, **kw)


def test_full_covariance_needs_more_samples_than_dimensions():
    fam = jc.Gaussian(dim=3)
    with pytest.raises(ValueError, match="n_samples must be >= 4"):
        jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=2, n_samples=3,
                    n_chains=2)


def _noisy_var(key, p, p0):
    # a keyed metric: its value shows which key each (chain, generation) got
    return p.cov[0, 0] + jax.random.uniform(key)


@pytest.mark.parametrize("family", [EXACT, SAMPLES], ids=["exact", "samples"])
def test_metrics_after_the_scan_equal_metrics_inside_it(family):
    # save_params=True evaluates metrics after the scan, False inside every step:
    # successive and keyed metrics must see the same references and keys either way,
    # whole or in chunks
    def step_w2(p, prev):
        return jc.families.gaussian.w2sq(p, prev)

    metrics = {"w2sq": jc.families.gaussian.w2sq, "step": jc.successive(step_w2),
               "noisy": jc.with_key(_noisy_var)}
    kw = dict(n_generations=9, n_samples=12, n_chains=4, metrics=metrics)
    ref = jc.simulate(jax.random.key(5), family, P0, save_params=True, **kw)
    for other in (jc.simulate(jax.random.key(5), family, P0, save_params=False, **kw),
                  jc.simulate(jax.random.key(5), family, P0, chunk_size=4, **kw),
                  jc.simulate(jax.random.key(5), family, P0, chunk_size=4, save_params=False,
                              **kw)):
        for name in metrics:
            np.testing.assert_allclose(other.metrics[name], ref.metrics[name], rtol=1e-12,
                                       atol=1e-15, err_msg=name)
        np.testing.assert_array_equal(other.degenerate, ref.degenerate)
    # the successive metric compares each generation with the one before
    p = ref.params
    prev = jax.tree.map(lambda x: jnp.concatenate([x[:, :1], x[:, :-1]], axis=1), p)
    want = jax.vmap(jax.vmap(step_w2))(p, prev)
    np.testing.assert_allclose(ref.metrics["step"], want, rtol=1e-12, atol=1e-15)
    assert np.all(np.asarray(ref.metrics["step"][:, 0]) == 0.0)


def test_marking_a_metric_never_changes_the_callers_function():
    # successive/with_key once set an attribute on the function they were given: marking a
    # family's shared default w2sq (as call_metric's doctest does) made every later
    # simulate in the process measure W2^2 against the previous generation. Both markers
    # now return a marked copy, the same one each time (no recompiles).
    w2 = EXACT.default_metrics()["w2sq"]
    s, k = jc.successive(w2), jc.with_key(_noisy_var)
    assert s is jc.successive(w2) and s is not w2 and s.successive
    assert not getattr(w2, "successive", False) and not getattr(_noisy_var, "needs_key", False)
    assert k.needs_key and jc.successive(k).needs_key and jc.successive(k).successive
    assert jc.successive(s) is s
    p0, p1 = EXACT.params(), EXACT.params(mean=[1.0])
    assert float(w2(p1, p0)) == 1.0 == float(s(p1, p0))
    # an unhashable callable is marked too, and left as it was
    class Unhashable:
        __hash__ = None

        def __call__(self, p, q):
            return w2(p, q)
    u = Unhashable()
    assert jc.successive(u).successive and not hasattr(u, "successive")
