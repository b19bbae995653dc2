"""theory/bias_mix.py: the Gaussian loop under mix(alpha, source) with sampling bias.

Against closed forms it must reduce to (mixing at lam = 1, bias under replace, the
biased fresh-data loop of bias_fresh with an infinite pool), and against jc.simulate
with ``step=jc.steps.sampling_bias(lam)``: |mc - theory| <= Z * se with Z = 5 (a false
failure has probability about 6e-7 per comparison under a normal approximation).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import bias_mix as tbm
from jaxcollapse.theory import mixing

Z = 5.0
M, N_GEN, N_POOL = 30, 8, 120
ALPHAS, LAMS = (0.1, 0.3), (0.8, 0.95)


@pytest.mark.parametrize("source", ["fresh", "fixed"])
@pytest.mark.parametrize("ddof", [0, 1])
def test_lam_one_is_mix_moments_exactly(source, ddof):
    kw = dict(source=source, human_mean=[0.3, -0.2], human_cov=[[1.5, 0.2], [0.2, 0.7]],
              mean0=[0.0, 0.1], cov0=np.eye(2), n_pool=50, ddof=ddof)
    a = tbm.bias_mix_moments(12, 20, np.array([0.0, 0.15, 0.5, 1.0]), 1.0, **kw)
    b = mixing.mix_moments(12, 20, np.array([0.0, 0.15, 0.5, 1.0]), **kw)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)
    st_a = tbm.bias_mix_stationary(20, 0.15, 1.0, **kw)
    st_b = mixing.mix_stationary(20, 0.15, **kw)
    for x, y in zip(st_a, st_b, strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("ddof", [0, 1])
def test_no_human_rows_is_the_replace_loop_with_bias(ddof):
    r = tbm.bias_mix_moments(10, 25, 0.0, 0.85, ddof=ddof)
    n = np.arange(11)
    np.testing.assert_allclose(r.cov[:, 0, 0], tb.cov_mean_factor(n, 25, 0.85, ddof),
                               rtol=1e-12)
    np.testing.assert_allclose(r.mean_shift, tb.mean_shift(n, 25, 0.85, 1.0, ddof),
                               rtol=1e-12, atol=1e-15)
    st = tbm.bias_mix_stationary(25, 0.0, 0.85, ddof=ddof)
    long = tbm.bias_mix_moments(3000, 25, 0.0, 0.85, ddof=ddof)
    np.testing.assert_allclose(st.mean_shift, long.mean_shift[-1], rtol=1e-12)
    np.testing.assert_allclose(st.cov, 0.0, atol=0.0)


def test_fresh_with_an_infinite_pool_is_the_biased_fresh_data_loop():
    # bias_fresh: n_r fresh human draws from N(mu0, s0^2) and n_s biased synthetic ones
    n_r, n_s, lam, mu0, s0 = 6, 14, 0.9, 0.4, 1.7
    x = np.asarray(tb.fresh_moments(20, n_r, n_s, lam, mu0, s0, start=(0.0, 1.0)))
    r = tbm.bias_mix_moments(20, n_r + n_s, n_r / (n_r + n_s), lam, source="fresh",
                             human_mean=mu0, human_cov=s0, mean0=0.0, cov0=1.0)
    np.testing.assert_allclose(r.mean[:, 0], x[:, 0], rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(r.second[:, 0, 0], x[:, 1], rtol=1e-10)
    np.testing.assert_allclose(r.cov[:, 0, 0], x[:, 2], rtol=1e-10)
    st = tbm.bias_mix_stationary(n_r + n_s, n_r / (n_r + n_s), lam, source="fresh",
                                 human_mean=mu0, human_cov=s0)
    fp = np.asarray(tb.fresh_fixed_point(n_r, n_s, lam, mu0, s0))
    np.testing.assert_allclose([st.mean[0], st.second[0, 0], st.cov[0, 0]], fp, rtol=1e-10)


@pytest.mark.parametrize("source", ["fresh", "fixed"])
def test_stationary_is_the_limit(source):
    kw = dict(source=source, human_mean=[0.2, -0.1], human_cov=np.diag([1.0, 2.0]),
              n_pool=60, mean0=[0.0, 0.0], cov0=np.eye(2))
    long = tbm.bias_mix_moments(2000, 30, 0.2, 0.9, **kw)
    st = tbm.bias_mix_stationary(30, 0.2, 0.9, **kw)
    np.testing.assert_allclose(st.mean_shift, long.mean_shift[-1], rtol=1e-9)
    np.testing.assert_allclose(st.cov, long.cov[-1], rtol=1e-9, atol=1e-12)
    # the bias shrinks the stationary covariance below the unbiased loop's
    assert np.all(np.diag(st.cov) < np.diag(mixing.mix_stationary(30, 0.2, **kw).cov))


def _pool(seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(N_POOL, 1)) * 1.3 + 0.3
    return x, x.mean(0), np.cov(x.T, ddof=0).reshape(1, 1)


def _var00(params, params0):
    return params.cov[..., 0, 0]


@pytest.mark.parametrize("source", [
    "fresh",
    # ~8 s of CPU; tests/test_cli_verify.py checks source "fixed" through the command line
    pytest.param("fixed", marks=pytest.mark.slow)])
def test_moments_match_simulate_with_the_sampling_bias_step(source):
    x, m, S = _pool()
    fam = jc.Gaussian(dim=1, method="exact")
    # one program: grid point i runs alpha ALPHAS[i] with bias LAMS[i]
    res = jc.simulate_grid(jax.random.key(5), fam, fam.params(), n_generations=N_GEN,
                           n_samples=M, n_chains=3000, regime=jc.mix(0.1, source),
                           alpha=jnp.array(ALPHAS), human_data=x,
                           step=jc.steps.sampling_bias(jnp.array(LAMS)),
                           metrics={"ms": jc.families.gaussian.mean_shift, "v": _var00})
    for i, (a, lam) in enumerate(zip(ALPHAS, LAMS, strict=True)):
        th = tbm.bias_mix_moments(N_GEN, M, a, lam, source=source, human_mean=m,
                                  human_cov=S, mean0=0.0, cov0=1.0, n_pool=N_POOL)
        unbiased = mixing.mix_moments(N_GEN, M, a, source=source, human_mean=m,
                                      human_cov=S, mean0=0.0, cov0=1.0, n_pool=N_POOL)
        for t in (1, 3, N_GEN):
            for name, theory in (("ms", th.mean_shift[t]), ("v", th.cov[t, 0, 0])):
                mc = np.asarray(res.metrics[name][i, :, t], float)
                se = mc.std(ddof=1) / np.sqrt(mc.size)
                assert abs(mc.mean() - theory) <= Z * se + 1e-12, (a, lam, t, name,
                                                                   mc.mean(), theory, se)
        # the test can tell the bias apart: the unbiased theory is far off by t = N_GEN
        v = np.asarray(res.metrics["v"][i, :, N_GEN], float)
        assert abs(v.mean() - unbiased.cov[N_GEN, 0, 0]) > Z * v.std() / np.sqrt(v.size)


def test_bad_input():
    with pytest.raises(ValueError, match="lam must be in"):
        tbm.bias_mix_moments(3, 10, 0.1, 0.0)
    with pytest.raises(ValueError, match="lam must be in"):
        tbm.bias_mix_stationary(10, 0.1, float("nan"))
    with pytest.raises(ValueError, match="lam must be a scalar"):
        tbm.bias_mix_moments(3, 10, 0.1, np.array([0.5, 0.9]))
    with pytest.raises(ValueError, match="alpha must lie in"):
        tbm.bias_mix_moments(3, 10, -0.1, 0.9)
    with pytest.raises(ValueError, match="source must be one of"):
        tbm.bias_mix_moments(3, 10, 0.1, 0.9, source="pool")
    with pytest.raises(ValueError, match="no limit"):
        tbm.bias_mix_stationary(10, 0.0, 1.0)
