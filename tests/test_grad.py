"""Derivatives through the recursion (issue 17): jax.grad / jvp / jacfwd of functions
of ``simulate``'s metrics with respect to loop parameters and params0, against the
derivatives of the closed forms (within the estimator's own Monte Carlo standard
error) and against central finite differences under common random numbers.

Per-chain derivatives come from forward mode (one ``jax.jvp`` gives the tangent of
every chain), so each comparison has its own standard error. Every comparison uses
z = 5: a false failure has probability ~6e-7 per comparison (about 25 here).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import steps
from jaxcollapse.families.gmm import GMMParams
from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import decoding
from jaxcollapse.theory import mixing as tm
from jaxcollapse.theory.mixing_relaxed import relaxed_moments

Z = 5.0
EXACT = jc.Gaussian(dim=1, method="exact")
SAMPLES = jc.Gaussian(dim=1, method="samples")
# one size for the sampling-bias tests, so that they share compiled programs
N, M_, C_ = 8, 20, 2048


def _per_chain(family, metric, n, *, M=20, C=2048, key=0, params0=None, **kw):
    """theta -> the chain values of ``metric`` at generation n (a function of kw's
    builder)."""
    def f(theta):
        extra = {k: v(theta) for k, v in kw.items()}
        p0 = params0(theta) if callable(params0) else (
            family.params() if params0 is None else params0)
        res = jc.simulate(jax.random.key(key), family, p0, n_generations=n, n_samples=M,
                          n_chains=C, save_params=False, **extra)
        return res.metrics[metric][:, n]
    return f


def _tangent(f, theta):
    value, t = jax.jvp(f, (jnp.asarray(theta, jnp.float64),), (jnp.ones((), jnp.float64),))
    t = np.asarray(t)
    return np.asarray(value), t.mean(), t.std(ddof=1) / np.sqrt(t.size)


def _fd(fun, x, h=1e-5):
    return (fun(x + h) - fun(x - h)) / (2 * h)


@pytest.mark.parametrize("family", [EXACT, SAMPLES], ids=["exact", "samples"])
def test_sampling_bias_gradient_is_the_derivative_of_the_closed_form(family):
    # E W2^2 at generation n under sampling bias lambda (THEORY.md section 9)
    n, M, lam = N, M_, 0.9
    f = _per_chain(family, "w2sq", n, M=M, C=C_, step=lambda x: steps.sampling_bias(x))
    _, mean, se = _tangent(f, lam)
    want = _fd(lambda x: float(tb.w2sq_mean(n, M, x)), lam)
    assert abs(mean - want) <= Z * se, (mean, want, se)


def test_reverse_mode_equals_forward_mode_and_finite_differences_under_common_numbers():
    n, lam = N, 0.85
    f = _per_chain(EXACT, "w2sq", n, M=M_, C=C_, step=lambda x: steps.sampling_bias(x))
    g = jax.grad(lambda x: f(x).mean())(lam)
    _, mean, _ = _tangent(f, lam)
    np.testing.assert_allclose(g, mean, rtol=1e-10)
    # the same key: the chain values are smooth in lambda, the difference quotient
    # converges to the pathwise derivative (O(h^2))
    fd = _fd(lambda x: float(f(x).mean()), lam, 1e-4)
    np.testing.assert_allclose(g, fd, rtol=1e-5)


def test_weighted_fresh_gradient_is_the_derivative_of_the_stationary_variance():
    # E(mu_n - mu_0)^2 is stationary after ~1/w^2 generations; k = n_real / M = 1
    n, M, w = 40, 20, 0.5
    f = _per_chain(EXACT, "mean_shift", n, M=M, C=4096,
                   regime=lambda x: jc.weighted_fresh(x, M))
    value, mean, se = _tangent(f, w)
    want = _fd(lambda x: float(tm.weighted_mean_variance(x, M, M)), w)
    assert abs(mean - want) <= Z * se + 1e-3 * abs(want), (mean, want, se)


@pytest.mark.parametrize("source", ["fresh", "fixed"])
def test_relaxed_mix_gradient_is_the_derivative_of_its_exact_moments(source):
    n, M, a, n_pool = 10, 20, 0.3, 60
    human = EXACT.sample(jax.random.key(7), EXACT.params(), n_pool)
    hm, hv = float(human.mean()), float(human.var())

    def closed(x, field):
        r = relaxed_moments(n, M, x, source=source, human_mean=hm, human_cov=hv,
                            mean0=0.0, cov0=1.0, n_pool=n_pool)
        return float(np.ravel(getattr(r, field)[n])[0])

    for metric, field in (("mean_shift", "mean_shift"), ("var_ratio", "cov")):
        f = _per_chain(EXACT, metric, n, M=M, C=4096, human_data=lambda x: human,
                       regime=lambda x, s=source: jc.mix(x, s, weighting="relaxed"))
        value, mean, se = _tangent(f, a)
        assert abs(value.mean() - closed(a, field)) <= Z * value.std() / np.sqrt(value.size)
        want = _fd(lambda x, fld=field: closed(x, fld), a)
        assert abs(mean - want) <= Z * se, (metric, mean, want, se)


def test_a_schedule_of_human_fractions_has_a_gradient_per_generation():
    n, M, C, n_pool = 6, 20, 2048, 40
    human = EXACT.sample(jax.random.key(8), EXACT.params(), n_pool)
    hm, hv = float(human.mean()), float(human.var())
    sched = jnp.linspace(0.4, 0.1, n)
    f = _per_chain(EXACT, "mean_shift", n, M=M, C=C, human_data=lambda x: human,
                   regime=lambda x: jc.mix(x, "fresh", weighting="relaxed"))
    jac = np.asarray(jax.jacfwd(f)(sched))  # (chains, generations)
    mean, se = jac.mean(0), jac.std(0, ddof=1) / np.sqrt(C)

    def closed(s):
        return float(relaxed_moments(n, M, s, human_mean=hm, human_cov=hv, mean0=0.0,
                                     cov0=1.0, n_pool=n_pool).mean_shift[n])

    base = np.asarray(sched)
    want = np.array([_fd(lambda x, i=i: closed(np.where(np.arange(n) == i, x, base)),
                         base[i]) for i in range(n)])
    assert np.all(np.abs(mean - want) <= Z * se), (mean, want, se)
    assert want[-1] < want[0] < 0  # later human data counts more at generation n


def test_kde_fixed_bandwidth_gradient_is_the_derivative_of_the_diffusion():
    # E s_{t+1}^2 = (1 - 1/M)(s_t^2 + h^2) (THEORY.md section 6)
    kde = jc.KDE(dim=1, bandwidth="params0")
    M, n, h = 20, 6, 0.3
    x0 = jax.random.normal(jax.random.key(3), (M, 1))
    s0 = float(jnp.var(x0))
    f = _per_chain(kde, "data_var", n, M=M, C=1024,
                   params0=lambda x: kde.params(x0, bandwidth=(x * x)[None, None]))
    value, mean, se = _tangent(f, h)
    a = 1 - 1 / M
    geo = sum(a**i for i in range(1, n + 1))
    assert abs(value.mean() - (a**n * s0 + h * h * geo) / s0) <= Z * value.std() / np.sqrt(1024)
    assert abs(mean - 2 * h * geo / s0) <= Z * se, (mean, 2 * h * geo / s0, se)


def test_categorical_temperature_gradient_by_the_score_function():
    # one generation: E p_1 = q_tau(p_0) exactly (THEORY.md section 9), so
    # d/dtau E p_1[0] = d/dtau q_tau(p_0)[0]
    fam = jc.Categorical(5)
    p0 = fam.params(jnp.array([0.4, 0.3, 0.15, 0.1, 0.05]))
    f = _per_chain(fam, "top", 1, M=30, C=2048, params0=p0,
                   step=lambda x: steps.temperature(x),
                   metrics=lambda x: {"top": lambda p, q: p.probs[0]})
    value, mean, se = _tangent(f, 0.8)
    want = float(jax.grad(lambda t: decoding.temperature_map(p0.probs, t)[0])(0.8))
    assert abs(value.mean() - float(decoding.temperature_map(p0.probs, 0.8)[0])) < 0.01
    assert abs(mean - want) <= Z * se, (mean, want, se)
    # with a zero-probability category the derivative stays finite
    p1 = fam.params(jnp.array([0.5, 0.5, 0.0, 0.0, 0.0]))
    g = jax.grad(lambda x: _per_chain(fam, "top", 2, M=10, C=8, params0=p1,
                                      step=lambda y: steps.temperature(y),
                                      metrics=lambda y: {"top": lambda p, q: p.probs[0]}
                                      )(x).mean())(0.9)
    assert np.isfinite(g)


def test_categorical_verifier_and_poisson_rate_by_the_score_function():
    # one generation of a verifier with rates (tpr, fpr) on a Categorical: E p_1 is the
    # kept law (THEORY.md section 10), so d/dtpr E p_1[0] is the law's derivative
    fam = jc.Categorical(4)
    p0 = fam.params(jnp.array([0.4, 0.3, 0.2, 0.1]))
    f = _per_chain(fam, "top", 1, M=30, C=2048, params0=p0,
                   step=lambda a: steps.verify(tpr=a, fpr=0.2),
                   metrics=lambda a: {"top": lambda p, q: p.probs[0]})
    _, mean, se = _tangent(f, 0.9)
    want = float(jax.grad(lambda a: steps.verify(tpr=a, fpr=0.2).law(fam, p0).probs[0])(0.9))
    assert abs(mean - want) <= Z * se, (mean, want, se)
    # Poisson: the refitted rate is a martingale, d/dlambda_0 E Lambda_n = 1
    poi = jc.Poisson()
    f = _per_chain(poi, "rate", 3, M=20, C=2048, params0=lambda r: poi.params(rate=r),
                   metrics=lambda r: {"rate": lambda p, q: p.rate})
    _, mean, se = _tangent(f, 2.0)
    assert abs(mean - 1.0) <= Z * se, (mean, se)


def test_gaussian_initial_covariance_gradient_equals_finite_differences():
    f = _per_chain(EXACT, "w2sq", 5, C=64, params0=lambda s: EXACT.params(cov=[[s]]))
    g = jax.grad(lambda s: f(s).mean())(2.0)
    fd = _fd(lambda s: float(f(s).mean()), 2.0, 1e-4)
    np.testing.assert_allclose(g, fd, rtol=1e-5)


GMM = jc.GMM(n_components=2, dim=1, tol=1e-10, max_iter=500)


def _mixture_mean(p, q):
    # EM at convergence keeps the weighted sample mean: sum_k w_k mu_k = mean(x)
    return jnp.sum(p.weights * p.means[:, 0])


def _gmm_per_chain(theta, C, key=0):
    w0, mu1 = theta[0], theta[1]
    p0 = GMMParams(jnp.stack([w0, 1 - w0]), jnp.stack([jnp.array([-2.0]), mu1[None]]),
                   jnp.ones((2, 1, 1)))
    res = jc.simulate(jax.random.key(key), GMM, p0, n_generations=1, n_samples=40,
                      n_chains=C, save_params=False, metrics={"mean": _mixture_mean})
    return res.metrics["mean"][:, 1]


def test_gmm_gradients_pathwise_in_the_means_score_function_in_the_weights():
    # E[mixture mean of generation 1] = w0 (-2) + (1 - w0) mu1: d/dw0 = -2 - mu1 (the
    # weights enter through the discrete component draw: score function, leave-one-out
    # baseline), d/dmu1 = 1 - w0 (pathwise through the draws and EM's implicit
    # derivative)
    # (reverse mode through EM's implicit derivative: test_design's GMM-free loops and
    # the EM fixed point's own doctest-sized check below)
    C, theta = 1024, jnp.array([0.3, 2.0])
    jac = np.asarray(jax.jacfwd(lambda t: _gmm_per_chain(t, C))(theta))
    mean, se = jac.mean(0), jac.std(0, ddof=1) / np.sqrt(C)
    want = np.array([-2.0 - 2.0, 1 - 0.3])
    assert np.all(np.abs(mean - want) <= Z * se), (mean, want, se)


def test_em_implicit_derivative_equals_finite_differences_in_both_modes():
    # at convergence the fixed point's derivative is the limit of the iteration's
    x = jnp.concatenate([jax.random.normal(jax.random.key(1), (30, 1)) - 3.0,
                         jax.random.normal(jax.random.key(2), (30, 1)) + 3.0])

    tight = jc.GMM(n_components=2, dim=1, tol=1e-14, max_iter=5000)

    def f(s):
        p = tight.fit(jax.random.key(0), x * s, jnp.ones(60))
        return jnp.sum(p.means ** 2) + jnp.sum(p.covs) + p.weights[0] ** 2

    g = jax.grad(f)(1.0)
    _, t = jax.jvp(f, (1.0,), (1.0,))
    np.testing.assert_allclose(g, t, rtol=1e-10)
    np.testing.assert_allclose(g, _fd(lambda s: float(f(s)), 1.0, 1e-5), rtol=1e-5)


def test_traced_runs_equal_untraced_runs():
    # the rematerialised scan under a trace computes what the plain run computes
    kw = dict(n_generations=N, n_samples=M_, n_chains=C_, save_params=False)
    plain = jc.simulate(jax.random.key(1), EXACT, EXACT.params(),
                        step=steps.sampling_bias(0.8), **kw).metrics["w2sq"]
    traced = jax.jit(lambda x: jc.simulate(jax.random.key(1), EXACT, EXACT.params(),
                                           step=steps.sampling_bias(x), **kw
                                           ).metrics["w2sq"])(0.8)
    assert traced.shape == (C_, N + 1)
    np.testing.assert_allclose(traced, plain, rtol=1e-12, atol=1e-15)


def test_differentiating_what_has_no_derivative_is_refused():
    human = EXACT.sample(jax.random.key(1), EXACT.params(), 40)

    def count(a):
        return jc.simulate(jax.random.key(0), EXACT, EXACT.params(), n_generations=3,
                           n_samples=20, n_chains=4, regime=jc.mix(a), human_data=human,
                           save_params=False).metrics["w2sq"].sum()

    with pytest.raises(ValueError, match="weighting='relaxed'"):
        jax.grad(count)(0.3)

    def chunked(x):
        return jc.simulate(jax.random.key(0), EXACT, EXACT.params(), n_generations=4,
                           n_samples=20, n_chains=4, step=steps.sampling_bias(x),
                           chunk_size=2).metrics["w2sq"].sum()

    with pytest.raises(ValueError, match="chunk_size=2 runs on the host"):
        jax.grad(chunked)(0.9)
    for name in ("n_samples", "n_generations", "n_chains"):
        def counted(m, name=name):
            kw = dict(n_samples=20, n_generations=3, n_chains=4, save_params=False)
            kw[name] = m
            return jc.simulate(jax.random.key(0), EXACT, EXACT.params(), **kw
                               ).metrics["w2sq"].sum()

        with pytest.raises(TypeError, match=f"{name} is static"):
            jax.grad(counted)(20.0)

    def region(hi):
        return jc.simulate(jax.random.key(0), SAMPLES, SAMPLES.params(), n_generations=2,
                           n_samples=20, n_chains=4, save_params=False,
                           step=steps.verify(region=(-1.0, hi))).metrics["w2sq"].sum()

    assert np.isfinite(jax.jit(region)(1.5))  # traced without a derivative: fine
    with pytest.raises(ValueError, match="'verify' selects among the draws"):
        jax.grad(region)(1.5)
    fam = jc.Categorical(3)
    with pytest.raises(ValueError, match="pass save_params=False"):
        jax.grad(lambda t: jc.simulate(
            jax.random.key(0), fam, fam.params(jnp.ones(3) / 3), n_generations=2,
            n_samples=10, n_chains=2, step=steps.temperature(t)
        ).metrics["entropy"].sum())(0.9)
    with pytest.raises(ValueError, match=r"shape \(n_generations,\) = \(3,\)"):
        jc.simulate(jax.random.key(0), EXACT, EXACT.params(), n_generations=3,
                    n_samples=20, n_chains=2, regime=jc.mix([0.1, 0.2]), human_data=human)


def test_a_new_loop_value_reuses_the_compiled_program_and_outer_jit_takes_concrete_params():
    # the static configuration holds the regime's and steps' structure, not their values
    from jaxcollapse.simulation._run import _run_jit

    kw = dict(n_generations=3, n_samples=20, n_chains=4)
    jc.simulate(jax.random.key(0), EXACT, EXACT.params(), regime=jc.weighted_fresh(0.5, 20),
                **kw)
    before = _run_jit._cache_size()
    for w in (0.6, 0.7):
        jc.simulate(jax.random.key(0), EXACT, EXACT.params(), regime=jc.weighted_fresh(w, 20),
                    **kw)
    assert _run_jit._cache_size() == before
    # a concrete params0 built outside an outer jit is still checked on the host
    p0 = EXACT.params()
    out = jax.jit(lambda lam: jc.simulate(jax.random.key(0), EXACT, p0, save_params=False,
                                          step=steps.sampling_bias(lam), **kw
                                          ).metrics["w2sq"])(0.9)
    assert out.shape == (4, 4) and np.all(np.isfinite(out))


def test_bad_relaxed_mix_and_kde_bandwidth_input_is_refused():
    from jaxcollapse.theory.mixing_relaxed import relaxed_stationary

    x0 = jnp.zeros((4, 1)).at[:, 0].set(jnp.arange(4.0))
    with pytest.raises(ValueError, match="bandwidth= .* only with, the rule"):
        jc.KDE(dim=1).params(x0, bandwidth=jnp.eye(1))
    with pytest.raises(ValueError, match="bandwidth= .* only with, the rule"):
        jc.KDE(dim=1, bandwidth="params0").params(x0)
    with pytest.raises(ValueError, match="params0.bandwidth must be finite"):
        jc.KDE(dim=1, bandwidth="params0").params(x0, bandwidth=-jnp.eye(1))
    with pytest.raises(ValueError, match=r"shape \(n_generations,\) = \(3,\)"):
        relaxed_moments(3, 10, [0.1, 0.2])
    with pytest.raises(ValueError, match="alpha must lie in"):
        relaxed_moments(2, 10, 1.5)
    with pytest.raises(ValueError, match="alpha must be > 0"):
        relaxed_stationary(10, 0.0)
