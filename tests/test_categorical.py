"""Categorical family: exact samplers, fit, metrics, validation, simulate and the
shrinking-support Wright–Fisher runner."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats as st

import jaxcollapse as jc
from jaxcollapse.families import _counts
from jaxcollapse.families import categorical as cat
from jaxcollapse.families import wright_fisher as wf

Z = 5.0  # |mc - theory| <= Z * se: two-sided false-failure rate 6e-7 per comparison


def _chisq_p(counts, probs):
    """Chi-square goodness-of-fit p-value, pooling cells with expectation < 5."""
    counts = np.asarray(counts, float)
    exp = np.asarray(probs, float) * counts.sum()
    keep = exp >= 5
    o = np.r_[counts[keep], counts[~keep].sum()]
    e = np.r_[exp[keep], exp[~keep].sum()]
    if e[-1] < 5:
        o, e = o[:-1], e[:-1]
        e = e * o.sum() / e.sum()
    return st.chisquare(o, e).pvalue


@pytest.fixture(scope="module")
def binom_fn():
    return jax.jit(cat.binomial)


# (n, p) pairs covering inversion (n q < 10), BTRS, the p > 1/2 flip and the edges.
CASES = [(0, 0.3), (1, 0.5), (7, 0.99), (30, 0.2), (50, 0.19), (100, 0.5), (1000, 0.93),
         (10000, 0.001), (400, 0.0), (400, 1.0)]


def test_binomial_matches_scipy(binom_fn):
    reps = 40000
    n = jnp.asarray(np.repeat([c[0] for c in CASES], reps), jnp.float64)
    p = jnp.asarray(np.repeat([c[1] for c in CASES], reps), jnp.float64)
    k = np.asarray(binom_fn(jax.random.key(3), n, p)).reshape(len(CASES), reps)
    for (ni, pi), ki in zip(CASES, k, strict=True):
        assert np.all(ki == np.round(ki)) and ki.min() >= 0 and ki.max() <= ni
        if pi in (0.0, 1.0) or ni == 0:
            assert np.all(ki == ni * pi)
            continue
        obs = np.bincount(ki.astype(int), minlength=ni + 1)
        assert _chisq_p(obs, st.binom.pmf(np.arange(ni + 1), ni, pi)) > 1e-3, (ni, pi)


def test_multinomial_marginals_and_covariance():
    probs = jnp.array([0.4, 0.0, 0.25, 0.2, 0.1, 0.05])
    n, reps = 60, 20000
    c = np.asarray(jax.jit(cat.multinomial)(jax.random.key(4), jnp.full((reps,), n),
                                            jnp.broadcast_to(probs, (reps, 6))))
    assert np.all(c.sum(1) == n) and np.all(c[:, 1] == 0)
    for j in (0, 2, 3, 4, 5):
        obs = np.bincount(c[:, j].astype(int), minlength=n + 1)
        assert _chisq_p(obs, st.binom.pmf(np.arange(n + 1), n, float(probs[j]))) > 1e-3
    # Cov(c0, c2) = -n p0 p2; se from the chains' products.
    prod = (c[:, 0] - n * 0.4) * (c[:, 2] - n * 0.25)
    assert abs(prod.mean() + n * 0.4 * 0.25) <= Z * prod.std() / np.sqrt(reps)


def test_multinomial_traced_n_no_recompile():
    probs = jnp.array([0.5, 0.3, 0.2])
    traces = []

    @jax.jit
    def f(key, n):
        traces.append(1)
        return cat.multinomial(key, n, probs)

    assert f(jax.random.key(0), 0).tolist() == [0.0, 0.0, 0.0]
    c = f(jax.random.key(1), 17)
    assert float(c.sum()) == 17.0
    assert len(traces) == 1


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_binomial_vmapped_and_float32_match_scipy(dtype):
    # The two ways a batch reaches the kernel: one call over a large batch (the
    # one-pass draws, its stragglers gathered and finished by the exact loops) and
    # vmap over keys of one element each (the exact loops directly: how simulate
    # draws a chain's counts). Both dtypes (float32 takes one counter a try,
    # float64 two). Cases: inversion (n q < 10, p near 0 and 1), means just above
    # 10 (BTRS at its lowest acceptance) and large means, against scipy.
    cases = [(3, 0.5), (40, 0.02), (25, 0.97), (1000, 0.0099), (22, 0.5), (5000, 0.999),
             (100000, 0.3)]
    reps = 6000
    n = jnp.asarray(np.repeat([c[0] for c in cases], reps), dtype)
    p = jnp.asarray(np.repeat([c[1] for c in cases], reps), dtype)
    batch = jax.jit(cat.binomial)(jax.random.key(8), n, p)
    keys = jax.random.split(jax.random.key(9), n.shape[0])
    one = jax.jit(jax.vmap(cat.binomial))(keys, n, p)
    assert batch.dtype == dtype and one.dtype == dtype
    for k in (batch, one):
        for (ni, pi), ki in zip(cases, np.asarray(k).reshape(len(cases), reps), strict=True):
            assert np.all(ki == np.round(ki)) and ki.min() >= 0 and ki.max() <= ni
            lo, hi = st.binom.ppf([1e-9, 1 - 1e-9], ni, pi).astype(int)
            assert lo <= ki.min() and ki.max() <= hi, (ni, pi)
            obs = np.bincount(ki.astype(int) - lo, minlength=hi - lo + 1)
            pmf = st.binom.pmf(np.arange(lo, hi + 1), ni, pi)
            assert _chisq_p(obs, pmf / pmf.sum()) > 1e-3, (ni, pi, k is one)


def test_binomial_draw_depends_only_on_its_element():
    # Element i draws from counter words of (key, i): the other elements' (n, p) and
    # the path that finishes it (one pass, gathered stragglers, or the exact loops
    # from scratch, with any unrolling) do not change it.
    rng = np.random.default_rng(0)
    n = jnp.asarray(rng.integers(0, 200, 3000), jnp.float32)
    p = jnp.asarray(rng.uniform(0, 1, 3000), jnp.float32)
    key = jax.random.key(12)
    a = np.asarray(cat.binomial(key, n, p))
    b = np.asarray(cat.binomial(key, n.at[1:].set(57.0), p.at[1:].set(0.31)))
    assert a[0] == b[0] and np.any(a[1:] != b[1:])
    kw = jax.random.key_data(key)
    ids = jnp.arange(3000, dtype=jnp.uint32)
    q = jnp.minimum(p, 1 - p)
    fast = np.asarray(_counts._node_binomial((kw[0], kw[1]), ids, n, q))
    assert np.any(np.asarray(_counts._binomial((kw[0], kw[1]), ids, n, q, finish=False)) < 0)
    for unroll in ((_counts._INV_STEPS, _counts._BTRS_TRIES), (1, 1), _counts._LOOP_UNROLL):
        loops = _counts._binomial((kw[0], kw[1]), ids, n, q, unroll=unroll)
        np.testing.assert_array_equal(np.asarray(loops), fast)
    np.testing.assert_array_equal(np.where(p > 0.5, n - fast, fast), a)


def test_multinomial_category_is_binomial_of_fold_in_and_law_near_edges():
    # Category j's count is binomial(fold_in(key, j), what is left, its share of
    # what is left); and the counts follow the multinomial law where the first
    # category takes almost everything (its ratio near 1, BTRS after the flip),
    # the second a mean of 40 (BTRS) and the rest small means (inversion); batched
    # and vmapped over chains (simulate's way).
    probs = jnp.array([0.995, 0.004, 0.0008, 0.0002])
    n, reps = 10000, 20000
    key = jax.random.key(13)
    c0 = cat.multinomial(key, n, probs)
    first = cat.binomial(jax.random.fold_in(key, 0), n, probs[0] / probs.sum())
    second = cat.binomial(jax.random.fold_in(key, 1), n - first, probs[1] / probs[1:].sum())
    assert float(c0[0]) == float(first) and float(c0[1]) == float(second)
    batched = jax.jit(cat.multinomial)(jax.random.key(14), jnp.full((reps,), n),
                                       jnp.broadcast_to(probs, (reps, 4)))
    vmapped = jax.jit(jax.vmap(lambda k: cat.multinomial(k, n, probs)))(
        jax.random.split(jax.random.key(15), reps))
    for c in (np.asarray(batched), np.asarray(vmapped)):
        assert np.all(c.sum(1) == n)
        for j in range(4):
            pj = float(probs[j])
            lo, hi = st.binom.ppf([1e-9, 1 - 1e-9], n, pj).astype(int)
            assert lo <= c[:, j].min() and c[:, j].max() <= hi, j
            obs = np.bincount(c[:, j].astype(int) - lo, minlength=hi - lo + 1)
            pmf = st.binom.pmf(np.arange(lo, hi + 1), n, pj)
            assert _chisq_p(obs, pmf / pmf.sum()) > 1e-3, j


def test_exact_path_matches_sample_path():
    # The count of category 1 under sample_stats and under stats(sample): two-sample
    # chi-square test of homogeneity.
    fam = cat.Categorical(4)
    p = fam.params(jnp.array([0.1, 0.2, 0.3, 0.4]))
    m, reps = 25, 8000
    keys = jax.random.split(jax.random.key(5), reps)
    exact = jax.jit(jax.vmap(lambda k: fam.sample_stats(k, p, m)))(keys)
    ones = jnp.ones(m)
    sampled = jax.jit(jax.vmap(lambda k: fam.stats(fam.sample(k, p, m), ones)))(
        jax.random.split(jax.random.key(6), reps))
    a = np.bincount(np.asarray(exact[:, 1], int), minlength=m + 1)
    b = np.bincount(np.asarray(sampled[:, 1], int), minlength=m + 1)
    keep = (a + b) >= 10
    table = np.stack([np.r_[a[keep], a[~keep].sum()], np.r_[b[keep], b[~keep].sum()]])
    table = table[:, table.sum(0) > 0]
    assert st.chi2_contingency(table).pvalue > 1e-3
    assert np.all(np.asarray(exact).sum(1) == m)


def test_sample_distribution_and_lost_categories():
    fam = cat.Categorical(5)
    p = fam.params(jnp.array([0.5, 0.0, 0.3, 0.2, 0.0]))
    x = np.asarray(fam.sample(jax.random.key(7), p, 20000))
    obs = np.bincount(x, minlength=5)
    assert obs[1] == 0 and obs[4] == 0
    assert _chisq_p(obs[[0, 2, 3]], [0.5, 0.3, 0.2]) > 1e-3


def test_fit_is_weighted_frequency():
    fam = cat.Categorical(4)
    x = jnp.array([0, 1, 1, 3, 3, 3, 2])
    w = jnp.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    got = fam.fit(jax.random.key(0), x, w).probs
    ref = np.bincount(np.asarray(x), weights=np.asarray(w), minlength=4) / w.sum()
    np.testing.assert_allclose(got, ref, rtol=1e-12)
    zero = fam.stats(x, jnp.zeros(7))
    s = fam.stats(x, w)
    np.testing.assert_array_equal(fam.add_stats(zero, s), s)
    assert fam.fit_stats(zero).probs.tolist() == [0.0] * 4  # empty: flagged, not NaN
    assert bool(fam.is_degenerate(fam.fit_stats(zero)))
    assert float(fam.log_prob(fam.fit_stats(s), 2)) == pytest.approx(np.log(0.2))


def test_metrics_against_references():
    p0 = np.array([0.4, 0.3, 0.2, 0.1])
    p = np.array([0.5, 0.0, 0.5, 0.0])
    a, b = cat.CategoricalParams(jnp.asarray(p)), cat.CategoricalParams(jnp.asarray(p0))
    m = {name: float(fn(a, b)) for name, fn in cat.Categorical(4).default_metrics().items()}
    alive = p > 0
    p0s = p0[alive] / p0[alive].sum()
    np.testing.assert_allclose(m["kl"], st.entropy(p0s, p[alive]), rtol=1e-10)
    np.testing.assert_allclose(m["entropy"], st.entropy(p), rtol=1e-10)
    np.testing.assert_allclose(m["heterozygosity"], 1 - (p**2).sum(), rtol=1e-12)
    np.testing.assert_allclose(m["tv"], 0.5 * np.abs(p - p0).sum(), rtol=1e-12)
    np.testing.assert_allclose(m["lost_mass"], 0.4, rtol=1e-12)
    assert m["survivors"] == 2 and m["tail_rank"] == 3
    # Nothing lost: kl is the plain KL(p0 || p).
    q = np.array([0.25, 0.25, 0.25, 0.25])
    kl = float(cat.kl_surviving(cat.CategoricalParams(jnp.asarray(q)), b))
    np.testing.assert_allclose(kl, st.entropy(p0, q), rtol=1e-10)


def test_zipf_and_uniform():
    p = np.asarray(cat.zipf(100, 1.5).probs)
    ref = np.arange(1, 101) ** -1.5
    np.testing.assert_allclose(p, ref / ref.sum(), rtol=1e-12)
    assert cat.uniform(3).probs.shape == (3,)


@pytest.mark.parametrize("bad, match", [
    (np.array([0.5, -0.1, 0.6]), "must be >= 0"),
    (np.array([0.5, np.nan, 0.5]), "must be finite"),
    (np.array([0.5, 0.4, 0.05]), "must sum to 1"),
    (np.array([0.5, 0.5]), r"must have shape \(3,\)"),
])
def test_bad_probs(bad, match):
    with pytest.raises(ValueError, match=match):
        cat.Categorical(3).check_params(cat.CategoricalParams(bad))


def test_bad_arguments():
    with pytest.raises(ValueError, match="n_categories must be >= 2"):
        cat.Categorical(1)
    with pytest.raises(TypeError, match="n_categories must be an int"):
        cat.Categorical(2.5)
    with pytest.raises(ValueError, match="beta must be a finite number > 0"):
        cat.zipf(10, -1.0)
    with pytest.raises(ValueError, match="n_categories must be >= 2"):
        cat.uniform(1)
    fam = cat.Categorical(3)
    with pytest.raises(ValueError, match=r"human_data must lie in \[0, 3\)"):
        fam.check_data(np.array([0, 3]), "human_data")
    with pytest.raises(TypeError, match="integer category indices"):
        fam.check_data(np.array([0.5]))
    with pytest.raises(ValueError, match="regime must be 'replace' or 'accumulate'"):
        cat.wright_fisher(jax.random.key(0), cat.uniform(3), n_generations=1, n_samples=5,
                          n_chains=2, regime="mix")
    with pytest.raises(ValueError, match="n_samples must be an int >= 1"):
        cat.wright_fisher(jax.random.key(0), cat.uniform(3), n_generations=1, n_samples=0,
                          n_chains=2)
    with pytest.raises(ValueError, match="method must be one of"):
        cat.Categorical(3, method="fast")


# ---------------------------------------------------------------- through simulate

K_SIM, M_SIM, G_SIM, C_SIM = 6, 40, 12, 3000


@pytest.fixture(scope="module")
def sim_exact():
    fam = cat.Categorical(K_SIM)
    p0 = fam.params(jnp.array([0.3, 0.25, 0.2, 0.15, 0.07, 0.03]))
    return p0, jc.simulate(jax.random.key(11), fam, p0, n_generations=G_SIM,
                           n_samples=M_SIM, n_chains=C_SIM, save_params=False)


def test_simulate_heterozygosity_theory(sim_exact):
    from jaxcollapse.theory import discrete as th

    p0, res = sim_exact
    h = np.asarray(res.metrics["heterozygosity"])
    h0 = 1 - float(jnp.sum(p0.probs**2))
    theory = np.asarray(th.expected_heterozygosity(h0, M_SIM, np.arange(G_SIM + 1)))
    se = h.std(0) / np.sqrt(C_SIM)
    assert np.all(np.abs(h.mean(0) - theory) <= Z * se + 1e-12)
    assert res.metrics["kl"].shape == (C_SIM, G_SIM + 1)
    assert np.all(np.isfinite(np.asarray(res.metrics["kl"])))


def test_simulate_samples_path_agrees(sim_exact):
    # The samples path has the same law: compare mean heterozygosity at the last
    # generation (two-sample z test).
    p0, res = sim_exact
    fam = cat.Categorical(K_SIM, method="samples")
    res2 = jc.simulate(jax.random.key(12), fam, p0, n_generations=G_SIM, n_samples=M_SIM,
                       n_chains=C_SIM, save_params=False, metrics=["heterozygosity"])
    a = np.asarray(res.metrics["heterozygosity"][:, -1])
    b = np.asarray(res2.metrics["heterozygosity"][:, -1])
    assert abs(a.mean() - b.mean()) <= Z * np.sqrt(a.var() / C_SIM + b.var() / C_SIM)


def test_simulate_accumulate_and_mix_run():
    fam = cat.Categorical(3)
    p0 = fam.params(jnp.array([0.5, 0.3, 0.2]))
    human = fam.sample(jax.random.key(1), p0, 50)
    for regime in ("accumulate", jc.mix(0.5)):
        res = jc.simulate(jax.random.key(2), fam, p0, n_generations=3, n_samples=10,
                          n_chains=4, regime=regime,
                          human_data=human if regime != "accumulate" else None,
                          metrics=["survivors"], save_params=True)
        assert res.metrics["survivors"].shape == (4, 4)
        assert np.all(np.asarray(res.params.probs).sum(-1) == pytest.approx(1.0))


# ------------------------------------------------------------- Wright–Fisher runner

def test_wright_fisher_heterozygosity_and_one_step_loss():
    from jaxcollapse.theory import discrete as th

    # K = 400 >= 2M: generation 1 takes the inverse-CDF branch, later ones the
    # multinomial on a packed support.
    p0 = cat.zipf(400, 1.2)
    m, chains, gens = 100, 4000, 6
    res = cat.wright_fisher(jax.random.key(21), p0, n_generations=gens, n_samples=m,
                            n_chains=chains)
    assert res.capacity[1] < 400
    lost = np.asarray(res.metrics["lost_mass"][:, 1])
    assert abs(lost.mean() - float(th.expected_lost_mass(p0.probs, m))) <= \
        Z * lost.std() / np.sqrt(chains)
    surv = np.asarray(res.metrics["survivors"][:, 1])
    assert abs(surv.mean() - float(th.expected_survivors(p0.probs, m))) <= \
        Z * surv.std() / np.sqrt(chains)
    h = np.asarray(res.metrics["heterozygosity"])
    h0 = 1 - float(jnp.sum(p0.probs**2))
    theory = np.asarray(th.expected_heterozygosity(h0, m, np.arange(gens + 1)))
    assert np.all(np.abs(h.mean(0) - theory) <= Z * h.std(0) / np.sqrt(chains) + 1e-12)
    # Lost categories stay lost.
    s = np.asarray(res.metrics["survivors"])
    assert np.all(np.diff(s, axis=1) <= 0)


def test_cli_run_categorical(tmp_path, capsys):
    import json

    from jaxcollapse import cli

    code = cli.main(["run", "categorical", "--generations", "4", "--chains", "16",
                     "--categories", "30", "--samples", "20", "--out", str(tmp_path),
                     "--no-progress"])
    assert code == 0
    assert "tail rank" in capsys.readouterr().out
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["categories"] == 30
    assert np.load(tmp_path / "arrays.npz")["metric_survivors"].shape == (16, 5)
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "categorical", "--beta", "0", "--out", str(tmp_path),
                  "--no-progress"])
    assert e.value.code == 2
    assert "beta must be a finite number > 0" in capsys.readouterr().err


# ------------------------------------------- same key, same result, whatever n_chains


def _assert_first_chains_equal(a, b, n):
    for name in a:
        np.testing.assert_array_equal(np.asarray(a[name][:n]), np.asarray(b[name][:n]),
                                      err_msg=name)


@pytest.mark.parametrize("dtype, regime", [(jnp.float64, "replace"),
                                           (jnp.float32, "accumulate")])
def test_wright_fisher_chain_does_not_depend_on_n_chains(dtype, regime):
    # K < 2M: generation 1 takes the multinomial branch (the other test covers the
    # inverse-CDF one).
    p0 = cat.zipf(60, 1.1, dtype=dtype)
    kw = dict(n_generations=5, n_samples=40, regime=regime)
    a = cat.wright_fisher(jax.random.key(31), p0, n_chains=2, **kw)
    b = cat.wright_fisher(jax.random.key(31), p0, n_chains=7, **kw)
    assert a.metrics["entropy"].dtype == dtype
    _assert_first_chains_equal(a.metrics, b.metrics, 2)


def test_wright_fisher_chain_independent_of_shrinking_support():
    # Zipf over many categories, M well below K: the chains lose categories at
    # different rates, so the packed capacity (set by the chain with most survivors;
    # 128 or 256 after generation 1 here) differs between the two runs (2 and 20
    # chains: different padded chain counts too), and chain 0's slots sit in
    # different places.
    p0 = cat.zipf(2000, 1.1)
    kw = dict(n_generations=12, n_samples=250)
    a = cat.wright_fisher(jax.random.key(5), p0, n_chains=2, **kw)
    b = cat.wright_fisher(jax.random.key(5), p0, n_chains=20, **kw)
    surv = np.asarray(b.metrics["survivors"])
    assert len(np.unique(surv[:, -1])) > 1
    assert np.any(a.capacity != b.capacity)
    _assert_first_chains_equal(a.metrics, b.metrics, 2)


@pytest.mark.parametrize("method, regime", [("exact", "replace"), ("exact", "accumulate"),
                                            ("samples", "replace")])
def test_simulate_chain_does_not_depend_on_n_chains(method, regime):
    fam = cat.Categorical(30, method=method)
    p0 = fam.params(cat.zipf(30, 1.1).probs)
    kw = dict(n_generations=6, n_samples=15, regime=regime, save_params=True)
    a = jc.simulate(jax.random.key(32), fam, p0, n_chains=2, **kw)
    b = jc.simulate(jax.random.key(32), fam, p0, n_chains=7, **kw)
    np.testing.assert_array_equal(np.asarray(a.params.probs), np.asarray(b.params.probs[:2]))
    _assert_first_chains_equal(a.metrics, b.metrics, 2)
    assert len(np.unique(np.asarray(b.metrics["survivors"])[:, -1])) > 1


def test_wright_fisher_tree_counts_match_multinomial():
    # The tree sampler of wright_fisher on its own: every category's count against
    # Binomial(M, p_i) (chi-square), a covariance against -M p_i p_j, and integer
    # pools (later generations) against their frequencies. Means span inversion
    # (< 10) and BTRS, and some nodes go through the exact loops (stragglers).
    chains, m = 4096, 300
    p = np.array([0.42, 0.25, 0.0, 0.13, 0.1, 0.06, 0.03, 0.01])
    chain_kw = jax.random.key_data(
        jax.vmap(jax.random.fold_in, (None, 0))(jax.random.key(41), jnp.arange(chains)))
    pools = [jnp.broadcast_to(jnp.asarray(p, jnp.float32)[:, None], (8, chains)),
             jnp.broadcast_to(jnp.asarray(np.round(p * 1000), jnp.float32)[:, None],
                              (8, chains))]
    for pool in pools:
        c = np.asarray(wf._tree_counts(chain_kw, m, pool)).T
        probs = np.asarray(pool[:, 0]) / np.asarray(pool[:, 0]).sum()
        assert np.all(c.sum(1) == m) and np.all(c[:, 2] == 0)
        for j in (0, 1, 3, 4, 5, 6, 7):
            obs = np.bincount(c[:, j].astype(int), minlength=m + 1)
            assert _chisq_p(obs, st.binom.pmf(np.arange(m + 1), m, probs[j])) > 1e-3, j
        prod = (c[:, 0] - m * probs[0]) * (c[:, 3] - m * probs[3])
        assert abs(prod.mean() + m * probs[0] * probs[3]) <= Z * prod.std() / np.sqrt(chains)


def test_wright_fisher_node_binomial_matches_scipy():
    # The tree's binomial kernel on one chunk: 8192 chain keys x 8 (n, q) cases that
    # take the fast inversion, inversion stragglers (mean just below 10), BTRS with
    # its lowest acceptance (mean just above 10, many nodes finished by the exact
    # loops, in several batches) and large means; each case against scipy.
    cases = [(0, 0.3), (12, 0.5), (1000, 0.0099), (25, 0.45), (200, 0.5), (10000, 0.002),
             (10000, 0.5), (40, 0.0)]
    reps = 8192
    kd = jax.random.key_data(jax.random.split(jax.random.key(51), reps))
    kw = (kd[None, :, 0], kd[None, :, 1])
    ids = jnp.arange(len(cases), dtype=jnp.uint32)[:, None] * 32 + 3
    n = jnp.asarray(np.repeat([[c[0]] for c in cases], reps, 1), jnp.float32)
    q = jnp.asarray(np.repeat([[c[1]] for c in cases], reps, 1), jnp.float32)
    k = np.asarray(jax.jit(_counts._node_binomial)(kw, ids, n, q))
    for (ni, pi), ki in zip(cases, k, strict=True):
        assert np.all(ki == np.round(ki)) and ki.min() >= 0 and ki.max() <= ni
        if pi == 0.0 or ni == 0:
            assert np.all(ki == 0)
            continue
        obs = np.bincount(ki.astype(int), minlength=ni + 1)
        assert _chisq_p(obs, st.binom.pmf(np.arange(ni + 1), ni, pi)) > 1e-3, (ni, pi)


def test_simulate_runs_the_wright_fisher_runner_by_itself():
    """The issue's example: the generic call takes the live-support runner (no
    parameter history), equal in law to the generic path (KS at p > 0.001)."""
    from scipy import stats

    p0 = cat.zipf(200, 1.1)
    kw = dict(n_generations=6, n_samples=100, n_chains=400)
    fast = jc.simulate(jax.random.key(3), jc.Categorical(200), p0, **kw)
    slow = jc.simulate(jax.random.key(4), jc.Categorical(200), p0, save_params=False, **kw)
    assert fast.params is None and fast.metrics["survivors"].shape == (400, 7)
    for name in ("survivors", "heterozygosity"):
        a, b = np.asarray(fast.metrics[name][:, -1]), np.asarray(slow.metrics[name][:, -1])
        assert stats.ks_2samp(a, b).pvalue > 1e-3, name
    np.testing.assert_array_equal(np.asarray(fast.degenerate),
                                  np.asarray(fast.metrics["survivors"]) < 200)
    # one key, one result: options the runner cannot honour are refused, not rerouted
    with pytest.raises(ValueError, match="chunk_size is not supported"):
        jc.simulate(jax.random.key(3), jc.Categorical(200), p0, chunk_size=2, **kw)
