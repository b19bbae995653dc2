"""jaxcollapse.steps.bias and theory.decoding: decoding maps against a NumPy reference,
the categorical loop against E[p_{t+1} | p_t] = q(p_t) and the deterministic map, the
step contract (pytree leaves, static k, check), and errors.

Monte Carlo comparisons: |MC mean - theory| <= Z * SE with SE from the chains, Z = 5
(false failure ~6e-7 per comparison; ~150 comparisons here, < 1e-4 in all; fixed keys).
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.families import categorical as cat
from jaxcollapse.steps import bias as sb
from jaxcollapse.theory import decoding as td

Z = 5.0


# ------------------------------------------------------------- NumPy references


def np_top_k(p, k):
    order = np.argsort(-p, kind="stable")
    q = np.zeros_like(p)
    q[order[:k]] = p[order[:k]]
    return q / q.sum()


def np_top_p(p, mass):
    order = np.argsort(-p, kind="stable")
    q = np.zeros_like(p)
    total = 0.0
    for i in order:  # smallest prefix of the ranking with mass >= p
        q[i] = p[i]
        total += p[i]
        if total >= mass:
            break
    return q / q.sum()


def np_temperature(p, tau):
    w = np.where(p > 0, p, 0.0) ** (1.0 / tau)
    return w / w.sum()


def random_probs(rng, k, ties=True, zeros=True):
    p = rng.dirichlet(np.full(k, 0.5))
    if ties:
        p[1:4] = p[1]  # exact ties
    if zeros:
        p[-2:] = 0.0
    return p / p.sum()


def test_maps_against_numpy():
    rng = np.random.default_rng(0)
    for _ in range(6):
        p = random_probs(rng, 12)
        for k in (1, 2, 4, 12):
            np.testing.assert_allclose(td.top_k_map(p, k), np_top_k(p, k), rtol=1e-12)
        for mass in (0.05, 0.5, 0.9, 0.999, 1.0):
            np.testing.assert_allclose(td.top_p_map(p, mass), np_top_p(p, mass), rtol=1e-12)
        for tau in (0.3, 1.0, 2.5):
            np.testing.assert_allclose(td.temperature_map(p, tau), np_temperature(p, tau),
                                       rtol=1e-6)
    # ties by index: the lower index ranks first
    assert td.top_k_map([0.25, 0.25, 0.25, 0.25], 2).tolist() == [0.5, 0.5, 0.0, 0.0]
    assert td.top_p_map([0.25, 0.25, 0.25, 0.25], 0.5).tolist() == [0.5, 0.5, 0.0, 0.0]
    # batched over a leading axis
    ps = np.stack([random_probs(rng, 6) for _ in range(3)])
    np.testing.assert_allclose(td.top_p_map(ps, 0.7), [np_top_p(q, 0.7) for q in ps])


def test_temperature_path_closed_form_and_limits():
    p0 = np.asarray(cat.zipf(30, 1.2).probs)
    for tau in (0.7, 1.4):
        closed = np.asarray(td.temperature_path(p0, tau, 8))
        it = np.asarray(td.deterministic_path(p0, 8, tau=tau))
        np.testing.assert_allclose(closed, it, rtol=1e-9, atol=1e-300)
        np.testing.assert_allclose(closed[3], np_temperature(p0, tau**3), rtol=1e-9)
    # tau < 1: the modes; tau > 1: uniform on the support
    p = np.array([0.3, 0.1, 0.3, 0.3, 0.0])
    np.testing.assert_allclose(td.temperature_path(p, 0.5, 60)[-1], [1 / 3, 0, 1 / 3, 1 / 3, 0],
                               atol=1e-9)
    np.testing.assert_allclose(td.temperature_limit(p, 0.5), [1 / 3, 0, 1 / 3, 1 / 3, 0])
    np.testing.assert_allclose(td.temperature_path(p, 2.0, 60)[-1], [0.25] * 4 + [0],
                               atol=1e-9)
    np.testing.assert_allclose(td.temperature_limit(p, 2.0), [0.25] * 4 + [0])
    # entropy falls under tau < 1 and rises under tau > 1; nothing is lost either way
    h_cold = np.asarray(td.entropy(td.temperature_path(p0, 0.7, 10)))
    h_hot = np.asarray(td.entropy(td.temperature_path(p0, 1.4, 10)))
    assert np.all(np.diff(h_cold) < 0) and np.all(np.diff(h_hot) > 0)
    assert float(td.lost_mass(td.temperature_path(p0, 0.7, 10)[-1], p0)) == 0.0


def test_truncation_limit_is_reached_and_fixed():
    rng = np.random.default_rng(1)
    for _ in range(10):
        p = random_probs(rng, 10, ties=False)
        for mass in (0.3, 0.6, 0.9):
            lim = np.asarray(td.truncation_limit(p, p=mass))
            np.testing.assert_allclose(np_top_p(lim, mass), lim, rtol=1e-12)  # a fixed point
            path = np.asarray(td.deterministic_path(p, 10, p=mass))
            lost = np.asarray(td.lost_mass(path, p))
            assert np.all(np.diff(lost) >= 0)  # truncation only removes categories
        np.testing.assert_allclose(td.truncation_limit(p, k=3), np_top_k(p, 3), rtol=1e-12)


# ------------------------------------------------------------- the categorical loop


@functools.partial(jax.jit, static_argnames=("family", "m", "n_chains", "exact"))
def one_generation(key, family, probs, steps, *, m, n_chains, exact):
    """Refitted probabilities after one generation of every chain, (n_chains, K)."""
    params = jc.CategoricalParams(probs)
    for step in steps:
        params = step.law(family, params)

    def chain(k):
        if exact:
            return family.fit_stats(family.sample_stats(k, params, m)).probs
        return family.fit(k, family.sample(k, params, m), jnp.ones((m,))).probs

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_chains))
    return jax.vmap(chain)(keys)


K, M, C = 20, 30, 4_000


def test_each_step_law_is_its_map():
    fam = jc.Categorical(K)
    p = cat.zipf(K, 1.1).probs
    pp = fam.params(p)
    np.testing.assert_allclose(sb.temperature(0.7).law(fam, pp).probs,
                               np_temperature(np.asarray(p), 0.7), rtol=1e-9)
    np.testing.assert_allclose(sb.top_k(5).law(fam, pp).probs, np_top_k(np.asarray(p), 5),
                               rtol=1e-12)
    np.testing.assert_allclose(sb.top_p(0.8).law(fam, pp).probs,
                               np_top_p(np.asarray(p), 0.8), rtol=1e-12)


@pytest.mark.parametrize("exact", [True, False], ids=["exact", "samples"])
def test_one_step_expectation_is_q(exact):
    # E[p_{t+1} | p_t] = q(p_t) for the composed decoder, per category, on both paths
    steps = (sb.temperature(1.5), sb.top_k(8), sb.top_p(0.9))
    fam = jc.Categorical(K, method="exact" if exact else "samples")
    p = cat.zipf(K, 1.1).probs
    q = np.asarray(td.decode_map(p, *_decode_args(steps)))
    assert 0 < np.sum(q > 0) < 8  # both truncations bite
    out = np.asarray(one_generation(jax.random.key(3), fam, p, steps, m=M, n_chains=C,
                                    exact=exact))
    se = out.std(0, ddof=1) / np.sqrt(C)
    assert np.all(np.abs(out.mean(0) - q) <= Z * se + 1e-12), (out.mean(0), q)
    assert np.all(out[:, q == 0] == 0)  # truncated categories are never drawn


def _decode_args(steps):
    tau, k, p = 1.0, None, None
    for s in steps:
        if isinstance(s, sb.Temperature):
            tau = float(s.tau)
        elif isinstance(s, sb.TopK):
            k = s.k
        else:
            p = float(s.p)
    return tau, k, p


@functools.partial(jax.jit, static_argnames=("family", "m", "n_gen", "n_chains"))
def categorical_loop(key, family, probs, step, *, m, n_gen, n_chains):
    def chain(ckey):
        def gen(params, t):
            k = jax.random.fold_in(ckey, t)
            new = family.fit_stats(family.sample_stats(k, step.law(family, params), m))
            return new, new.probs
        return jax.lax.scan(gen, jc.CategoricalParams(probs), jnp.arange(n_gen))[1]

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_chains))
    return jax.vmap(chain)(keys)


@pytest.mark.parametrize("step", [sb.temperature(0.8), sb.temperature(1.3), sb.top_p(0.9)],
                         ids=["cold", "hot", "top_p"])
def test_large_m_follows_the_deterministic_map(step):
    # M = 10^7: the chains' spread is ~1e-4 and the bias of the nonlinear map is O(1/M);
    # the floor K/M bounds that bias (curvature of q times Var p_t, Var p_t <= 1/M)
    fam, m, g, c = jc.Categorical(K), 10**7, 6, 16
    p0 = cat.zipf(K, 1.1).probs
    out = np.asarray(categorical_loop(jax.random.key(4), fam, p0, step, m=m, n_gen=g,
                                      n_chains=c))
    args = _decode_args((step,))
    path = np.asarray(td.deterministic_path(p0, g, *args))[1:]
    se = out.std(0, ddof=1) / np.sqrt(c)
    assert np.all(np.abs(out.mean(0) - path) <= Z * se + K / m)
    h = np.asarray(jax.vmap(td.entropy)(jnp.asarray(out)))
    h_path = np.asarray(td.entropy(path))
    assert np.all(np.abs(h.mean(0) - h_path) <= Z * h.std(0, ddof=1) / np.sqrt(c) + K / m)
    lost = np.asarray(td.lost_mass(out, p0))
    np.testing.assert_array_equal(lost, np.broadcast_to(td.lost_mass(path, p0), lost.shape))


# ------------------------------------------------------------- the step contract


def test_sampling_bias_laws_for_every_family():
    step = sb.sampling_bias(0.5)
    g = jc.Gaussian(dim=2)
    p = g.params(cov=[[2.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(step.law(g, p).cov, 0.5 * np.asarray(p.cov))
    np.testing.assert_array_equal(step.law(g, p).mean, p.mean)
    gmm = jc.GMM(2, 1)
    pg = gmm.params([0.3, 0.7], [[-1.0], [1.0]], [[[1.0]], [[4.0]]])
    lg = step.law(gmm, pg)
    np.testing.assert_allclose(lg.covs, 0.5 * np.asarray(pg.covs))
    np.testing.assert_array_equal(lg.means, pg.means)
    kde = jc.KDE(dim=1, bandwidth=0.4)
    pk = kde.params(jnp.array([0.0, 1.0, 2.0]))
    np.testing.assert_allclose(step.law(kde, pk).bandwidth, 0.5 * 0.16)
    for s in (step, sb.temperature(0.5), sb.top_k(2), sb.top_p(0.5)):
        assert s.n_candidates == 1
    assert sb.temperature(0.5).law(g, p) is None  # not expressible: decided by type
    assert step.law(jc.Categorical(3), jc.Categorical(3).params()) is None


def test_float32_params_keep_their_dtype():
    g = jc.Gaussian(dim=1)
    p = g.params(dtype=jnp.float32)
    assert sb.sampling_bias(0.9).law(g, p).cov.dtype == jnp.float32
    c = jc.Categorical(3)
    pc = jc.CategoricalParams(jnp.array([0.2, 0.3, 0.5], jnp.float32))
    for s in (sb.temperature(0.5), sb.top_p(0.5), sb.top_k(2)):
        assert s.law(c, pc).probs.dtype == jnp.float32


def test_steps_are_pytrees_with_traced_leaves_and_static_k():
    assert len(jax.tree.leaves(sb.sampling_bias(0.9))) == 1
    assert jax.tree.leaves(sb.top_k(3)) == []
    assert jax.tree.structure(sb.top_k(3)) != jax.tree.structure(sb.top_k(4))
    g = jc.Gaussian(dim=1)
    p0 = g.params()

    @jax.jit
    @chex.assert_max_traces(n=1)
    def var_after(step):
        return step.law(g, p0).cov[0, 0]

    for lam in (0.9, 0.5, 0.2):  # new values, no retrace
        np.testing.assert_allclose(var_after(sb.sampling_bias(lam)), lam)
    # a grid of lam is a leading axis of the leaf: vmap over steps
    grid = sb.sampling_bias(jnp.array([0.2, 0.5, 1.0]))
    np.testing.assert_allclose(jax.vmap(var_after)(grid), [0.2, 0.5, 1.0])
    # differentiable in tau
    c = jc.Categorical(3)
    pc = c.params(jnp.array([0.2, 0.3, 0.5]))
    dq = jax.grad(lambda t: sb.temperature(t).law(c, pc).probs[2])(1.0)
    assert float(dq) < 0  # a hotter sampler gives the mode less mass


def test_check_refuses_the_wrong_family():
    with pytest.raises(TypeError, match="sampling_bias acts on Gaussian, GMM or KDE"):
        sb.sampling_bias(0.9).check(jc.Categorical(3))
    for s, name in ((sb.temperature(0.5), "temperature"), (sb.top_k(2), "top_k"),
                    (sb.top_p(0.5), "top_p")):
        with pytest.raises(TypeError, match=f"{name} acts on Categorical"):
            s.check(jc.Gaussian())
        s.check(jc.Categorical(3))
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, K = 3\]; got 4"):
        sb.top_k(4).check(jc.Categorical(3))
    sb.sampling_bias(0.9).check(jc.KDE())
    sb.sampling_bias(0.9).check(jc.GMM(2, 1))


def test_bad_factory_input():
    for bad in (0.0, -1.0, 1.5, float("nan"), float("inf"), [0.5, 1.2]):
        with pytest.raises(ValueError, match=r"lam must be in \(0, 1\]"):
            sb.sampling_bias(bad)
    with pytest.raises(ValueError, match="lam > 1 is refused"):
        sb.sampling_bias(2.0)
    for bad in (0.0, -0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="tau must be a finite number > 0"):
            sb.temperature(bad)
    for bad in (0, -1, 2.5, True, "3"):
        with pytest.raises(ValueError, match="k must be an integer"):
            sb.top_k(bad)
    for bad in (0.0, 1.0001, -0.2, float("nan")):
        with pytest.raises(ValueError, match=r"p must be in \(0, 1\]"):
            sb.top_p(bad)
    for bad in ("0.5", None, True):
        with pytest.raises(TypeError, match="lam must be a number"):
            sb.sampling_bias(bad)
    with pytest.raises(ValueError, match="tau"):
        td.temperature_path([0.5, 0.5], 0.0, 3)


@pytest.mark.parametrize("method", ["exact", "samples"])
def test_simulate_with_sampling_bias_matches_the_variance_law(method):
    """jc.simulate(..., step=sampling_bias(lam)): E sigma_n^2 = lam^n sigma_0^2 on both
    paths (Z = 5 standard errors; false-failure rate ~6e-7)."""
    from jaxcollapse.theory import bias as tb

    fam = jc.Gaussian(dim=1, method=method)
    lam, n, m = 0.9, 6, 30
    res = jc.simulate(jax.random.key(4), fam, fam.params(), n_generations=n, n_samples=m,
                      n_chains=3000, step=jc.steps.sampling_bias(lam), metrics=["var_ratio"],
                      save_params=False)
    v = np.asarray(res.metrics["var_ratio"][:, -1])
    want = float(tb.variance_mean(n, m, lam))
    assert abs(v.mean() - want) <= 5 * v.std(ddof=1) / np.sqrt(v.size)
    assert abs(want - lam**n) < 1e-12


def test_simulate_grid_sweeps_the_temperature():
    fam = jc.Categorical(20)
    p0 = jc.families.categorical.zipf(20, 1.1)
    res = jc.simulate_grid(jax.random.key(1), fam, p0, n_generations=3, n_samples=50,
                           n_chains=8, step=jc.steps.temperature(jnp.array([0.5, 1.0, 2.0])))
    ent = np.asarray(res.metrics["entropy"][:, :, -1].mean(1))
    assert res.metrics["entropy"].shape == (3, 8, 4)
    assert ent[0] < ent[1] < ent[2]  # cold sampling concentrates, hot flattens
