"""Theory of mixing in human data (theory/mixing.py) against jc.simulate and NumPy.

Monte Carlo checks use |mc - theory| <= Z * se with Z = 5 (false-failure rate about
6e-7 per comparison under a normal approximation); chain counts are small enough that
the whole file stays within a few seconds of compiled work.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.theory import discrete, mixing
from jaxcollapse.theory._mixing_wf import _count_laws

Z = 5.0
ALPHAS = (0.01, 0.1, 0.5)
M, N_GEN, N_POOL = 50, 10, 200


def _var00(params, params0):
    return params.cov[..., 0, 0]


def _het(params, params0):
    return 1.0 - jnp.sum(params.probs**2, axis=-1)


def _within(mc, theory, label=""):
    mc = np.asarray(mc, float)
    se = mc.std(ddof=1) / np.sqrt(mc.size)
    assert abs(mc.mean() - theory) <= Z * se + 1e-12, (label, mc.mean(), theory, se)


def _pool(d, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_POOL, d)) * np.arange(1, d + 1) + 0.3
    return x, x.mean(0), np.cov(x.T, ddof=0).reshape(d, d)


_RUNS = {}


def _gaussian_run(d, source):
    # one compiled program per (d, source), shared by the tests that use it
    if (d, source) not in _RUNS:
        x, m, S = _pool(d)
        fam = jc.Gaussian(dim=d, method="exact")
        res = jc.simulate_grid(jax.random.key(3), fam, fam.params(), n_generations=N_GEN,
                               n_samples=M, n_chains=3000, regime=jc.mix(0.1, source),
                               alpha=jnp.array(ALPHAS), human_data=x,
                               metrics={"ms": jc.families.gaussian.mean_shift, "v": _var00,
                                        "w2sq": jc.families.gaussian.w2sq})
        _RUNS[d, source] = (res, m, S)
    return _RUNS[d, source]


@pytest.mark.parametrize("d,source", [
    (1, "fresh"), (1, "fixed"),
    pytest.param(2, "fresh", marks=pytest.mark.slow),
    pytest.param(2, "fixed", marks=pytest.mark.slow)])
def test_gaussian_mix_moments_match_simulate(d, source):
    res, m, S = _gaussian_run(d, source)
    th = mixing.mix_moments(N_GEN, M, np.array(ALPHAS), source=source, human_mean=m,
                            human_cov=S, mean0=np.zeros(d), cov0=np.eye(d), n_pool=N_POOL)
    for i, a in enumerate(ALPHAS):
        for t in (1, 4, N_GEN):
            _within(res.metrics["ms"][i, :, t], th.mean_shift[i, t], (a, t, "ms"))
            _within(res.metrics["v"][i, :, t], th.cov[i, t, 0, 0], (a, t, "v"))


def test_fresh_recursion_equals_theory_md_section_11():
    # THEORY.md 11's 1-D recursion written out literally (infinite pool)
    Mi, h, mm, s2 = 40, 6, 0.4, 1.7
    s = Mi - h
    e1, e2, v = 0.0, 0.0, 1.0
    out = mixing.mix_moments(30, Mi, h / Mi, human_mean=mm, human_cov=s2, mean0=0.0,
                             cov0=1.0)
    for t in range(30):
        v, e2, e1 = ((h - 1) * s2 + (s - 1) * v + (h * s / Mi) * (
            s2 / h + mm**2 - 2 * mm * e1 + e2 + v / s)) / (Mi - 1), \
            (h / Mi) ** 2 * (s2 / h + mm**2) + 2 * (h / Mi) * (s / Mi) * mm * e1 + \
            (s / Mi) ** 2 * (e2 + v / s), (h * mm + s * e1) / Mi
        np.testing.assert_allclose(out.mean[t + 1, 0], e1, rtol=1e-12)
        np.testing.assert_allclose(out.second[t + 1, 0, 0], e2, rtol=1e-12)
        np.testing.assert_allclose(out.cov[t + 1, 0, 0], v, rtol=1e-12)


@pytest.mark.parametrize("source", ["fresh", "fixed"])
def test_stationary_is_the_limit(source):
    kw = dict(source=source, human_mean=[0.2, -0.1], human_cov=np.diag([1.0, 2.0]),
              n_pool=60, mean0=[0.0, 0.0], cov0=np.eye(2))
    long = mixing.mix_moments(2000, 30, 0.2, **kw)
    st = mixing.mix_stationary(30, 0.2, **kw)
    np.testing.assert_allclose(st.mean_shift, long.mean_shift[-1], rtol=1e-9)
    np.testing.assert_allclose(st.cov, long.cov[-1], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(st.second, long.second[-1], rtol=1e-9, atol=1e-12)


def test_replace_limit_is_the_known_formula():
    r = mixing.mix_moments(7, 20, 0.0)
    np.testing.assert_allclose(r.mean_shift, np.arange(8) / 20, rtol=1e-12)
    np.testing.assert_allclose(r.cov[:, 0, 0], 1.0, rtol=1e-12)


def test_w2_bound_and_approximation_against_simulate():
    res, m, S = _gaussian_run(1, "fresh")
    for i, a in enumerate(ALPHAS):
        w = mixing.w2sq_mix(N_GEN, M, a, human_mean=float(m[0]), human_var=float(S[0, 0]),
                            mean0=0.0, var0=1.0, n_pool=N_POOL)
        mc = np.asarray(res.metrics["w2sq"][i, :, N_GEN])
        se = mc.std(ddof=1) / np.sqrt(mc.size)
        assert w.lower[N_GEN] <= mc.mean() + Z * se  # a true lower bound
        # the approximation's documented accuracy: within 5% (measured: under 2%)
        assert abs(w.approx[N_GEN] - mc.mean()) <= Z * se + 0.05 * mc.mean(), (a, w, mc.mean())


def test_smallest_alpha():
    a = mixing.smallest_alpha(0.05, 100, 100)
    h = round(a * 100)
    errs = mixing.mix_moments(100, 100, np.array([h - 1, h])).mean_shift[:, 100]
    assert errs[1] <= 0.05 < errs[0]
    with pytest.raises(ValueError, match="target"):
        mixing.smallest_alpha(-1.0, 10, 100)
    # a biased pool (|m - mu_0|^2 = 1): no alpha reaches 0.05 at generation 10
    with pytest.raises(ValueError, match="unreachable"):
        mixing.smallest_alpha(0.05, 10, 100, human_mean=1.0, mean0=0.0)
    assert mixing.smallest_alpha(0.3, 10, 100, metric="w2sq") <= 0.1


def test_bad_input():
    with pytest.raises(ValueError, match="alpha"):
        mixing.mix_moments(3, 10, -0.1)
    with pytest.raises(ValueError, match="source"):
        mixing.mix_moments(3, 10, 0.1, source="stale")
    with pytest.raises(ValueError, match="no fixed point"):
        mixing.mix_stationary(10, 0.01)
    with pytest.raises(ValueError, match="n_pool"):
        mixing.mix_moments(3, 10, 0.5, n_pool=3)
    with pytest.raises(ValueError, match="w must"):
        mixing.weighted_mean_variance(1.5, 10, 10)
    with pytest.raises(ValueError, match="k must"):
        mixing.optimal_weight(-2.0)
    with pytest.raises(ValueError, match="alpha"):
        mixing.wf_mix_moments(3, 10, 2.0, [0.5, 0.5])


# ----------------------------------------------------------------- categorical


@pytest.mark.parametrize("source", ["fresh", pytest.param("fixed", marks=pytest.mark.slow)])
def test_categorical_mix_against_simulate(source):
    rng = np.random.default_rng(2)
    p0 = np.array([0.4, 0.3, 0.2, 0.07, 0.03])
    pool = rng.choice(5, size=N_POOL, p=p0).astype(np.int32)
    q = np.bincount(pool, minlength=5) / N_POOL
    fam = jc.Categorical(5)
    res = jc.simulate_grid(jax.random.key(7), fam, fam.params(p0), n_generations=N_GEN,
                           n_samples=20, n_chains=3000, regime=jc.mix(0.1, source),
                           alpha=jnp.array(ALPHAS), human_data=pool,
                           metrics={"het": _het, "surv": jc.families.categorical.survivors})
    for i, a in enumerate(ALPHAS):
        mom = mixing.wf_mix_moments(N_GEN, 20, a, p0, pool_probs=q, n_pool=N_POOL,
                                    source=source)
        surv = mixing.wf_mix_survivors(N_GEN, 20, a, p0, pool_probs=q, n_pool=N_POOL,
                                       source=source)
        for t in (1, 5, N_GEN):
            _within(res.metrics["het"][i, :, t], mom.heterozygosity[t], (a, t, "het"))
            _within(res.metrics["surv"][i, :, t], surv[t], (a, t, "surv"))


def test_wf_moments_exact_checks():
    p0 = np.array([0.5, 0.3, 0.2])
    # alpha = 0 is neutral Wright-Fisher: E H_t = (1 - 1/M)^t H_0
    r = mixing.wf_mix_moments(6, 9, 0.0, p0)
    np.testing.assert_allclose(r.heterozygosity,
                               (1 - np.sum(p0**2)) * (1 - 1 / 9) ** np.arange(7), rtol=1e-12)
    s = mixing.wf_mix_survivors(1, 9, 0.0, p0)
    np.testing.assert_allclose(s[1], float(discrete.expected_survivors(p0, 9)), rtol=1e-12)
    # the count chains give the same E sum p^2 as the moment recursion (mix, fixed)
    laws = [_count_laws(p, p, 12, 3, None, 4, True) for p in p0]
    c = np.arange(13) / 12
    hom = sum(law @ c**2 for law in laws)
    r = mixing.wf_mix_moments(4, 12, 0.25, p0, source="fixed")
    np.testing.assert_allclose(hom, r.homozygosity[1:], rtol=1e-10)
    for source in ("fresh", "fixed"):
        st = mixing.wf_mix_stationary(12, 0.25, p0, source=source, n_pool=40)
        lg = mixing.wf_mix_moments(3000, 12, 0.25, p0, source=source, n_pool=40)
        np.testing.assert_allclose(st.homozygosity, lg.homozygosity[-1], rtol=1e-9)


# ---------------------------------------------------------- weighted fresh data


def test_weighted_formulas():
    k = np.array([0.25, 1.0, 4.0])
    w = mixing.optimal_weight(k)
    np.testing.assert_allclose(w[1], (np.sqrt(5) - 1) / 2, rtol=1e-12)
    grid = np.linspace(0.001, 1, 20000)
    for ki, wi in zip(k, w, strict=True):
        n = int(ki * 40)
        v = mixing.weighted_mean_variance(grid, n, 40)
        assert abs(grid[np.argmin(v)] - wi) < 1e-3
    long = mixing.weighted_fresh_moments(3000, 0.3, 20, 40, cov0=2.0)
    np.testing.assert_allclose(long.mean_shift[-1],
                               mixing.weighted_mean_variance(0.3, 20, 40, 2.0), rtol=1e-9)


@pytest.mark.parametrize("d", [1, 2])
def test_weighted_moments_against_numpy(d):
    # an independent NumPy simulation of the weighted loop (the regime itself is
    # integrated in simulate elsewhere)
    rng = np.random.default_rng(11)
    w, n, Mi, T, R = 0.4, 8, 12, 6, 40000
    S0 = np.eye(d) if d == 1 else np.array([[1.0, 0.3], [0.3, 0.5]])
    L = np.linalg.cholesky(S0)
    mu = np.zeros((R, d))
    cov = np.broadcast_to(S0, (R, d, d)).copy()
    for _ in range(T):
        A = np.linalg.cholesky(cov + 1e-300 * np.eye(d))
        syn = mu[:, None] + np.einsum("rij,rnj->rni", A, rng.normal(size=(R, Mi, d)))
        real = np.einsum("ij,rnj->rni", L, rng.normal(size=(R, n, d)))

        def fit(x):
            mm = x.mean(1)
            xc = x - mm[:, None]
            return mm, np.einsum("rni,rnj->rij", xc, xc) / (x.shape[1] - 1)

        (ms, cs), (mr, cr) = fit(syn), fit(real)
        mu, cov = (1 - w) * ms + w * mr, (1 - w) * cs + w * cr
    th = mixing.weighted_fresh_moments(T, w, n, Mi, cov0=S0)
    _within(np.sum(mu**2, axis=1), th.mean_shift[-1], "mean")
    _within(np.sum((cov - S0) ** 2, axis=(1, 2)), th.cov_error[-1], "cov")
    _within(cov[:, 0, 0], th.cov[-1, 0, 0], "E cov")
