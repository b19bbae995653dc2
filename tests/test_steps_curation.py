"""jaxcollapse.steps.curate / verify: Monte Carlo of the loop against the exact theory.

Until ``simulate(..., step=...)`` lands, the loop is a tiny reference scan: a step whose
``law`` exists is sampled from its law; otherwise ``n_candidates * M`` draws go through
``select`` and the family fits the kept rows with their weights.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcollapse.families.categorical import Categorical, CategoricalParams
from jaxcollapse.families.gaussian import Gaussian, GaussianParams
from jaxcollapse.steps import curate, verify
from jaxcollapse.theory import curation as th
from jaxcollapse.theory import verification as tv

Z = 5.0  # |mc - theory| <= Z * se: two-sided false-failure rate 6e-7 per comparison


@functools.partial(jax.jit, static_argnames=("family", "m", "n_gen", "n_chains"))
def _loop(key, step, params0, *, family, m, n_gen, n_chains):
    """Chains x generations of: params -> (law or candidates + select) -> fit. The step
    is a traced argument, so steps that differ only in their leaves share one compile."""

    def one_gen(params, key):
        k_draw, k_sel, k_fit = jax.random.split(key, 3)
        law = step.law(family, params)
        if law is not None:
            draws, w = family.sample(k_draw, law, m), jnp.ones((m,))
        else:
            n = step.n_candidates * m
            cand = family.sample(k_draw, params, n)
            draws, w = step.select(k_sel, family, params, cand, jnp.ones((n,)))
        new = family.fit(k_fit, draws, w)
        return new, (new, jnp.sum(w))

    def chain(key):
        _, (ps, kept) = jax.lax.scan(one_gen, params0, jax.random.split(key, n_gen))
        return ps, kept

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_chains))
    return jax.vmap(chain)(keys)


def _close(mc, theory, axis=0):
    mc = np.asarray(mc)
    mean, se = mc.mean(axis), mc.std(axis, ddof=1) / np.sqrt(mc.shape[axis])
    assert np.all(np.abs(mean - np.asarray(theory)) <= Z * se + 1e-12), (mean, theory, se)


P0 = np.array([0.2, 0.5, 0.3])
R = np.array([0.3, -1.2, 2.0])
REF = np.array([0.25, 0.25, 0.5])


@pytest.fixture(scope="module")
def categorical_runs():
    fam = Categorical(3)
    p0 = CategoricalParams(jnp.asarray(P0))
    # eta = 1 with a reference has the same structure as eta = 0.7: one compile
    pure = curate(jnp.asarray(R), k=4, eta=1.0, reference=REF)
    mixed = curate(jnp.asarray(R), k=4, eta=0.7, reference=REF)
    key = jax.random.key(3)
    kw = dict(family=fam, m=50, n_gen=4, n_chains=2000)
    a = _loop(key, pure, p0, **kw)[0].probs
    fp = th.curation_fixed_point(P0, R, 4, 0.7, REF)
    b = _loop(key, mixed, CategoricalParams(fp), **kw)[0].probs
    return pure, mixed, fp, np.asarray(a), np.asarray(b)


def test_categorical_curation_exact_law_every_generation(categorical_runs):
    pure, _, _, ps, _ = categorical_runs
    _close(ps[:, 0], th.curated_law(P0, R, 4))
    # E[p_{t+1}] = E[map(p_t)] at every generation (conditional expectation, exact)
    mapped = np.asarray(jax.jit(jax.vmap(jax.vmap(lambda p: pure.law(
        Categorical(3), CategoricalParams(p)).probs)))(jnp.asarray(ps[:, :-1])))
    _close(ps[:, 1:] - mapped, 0.0)
    # the expected reward rises every generation (Ferbach et al., Theorem 2.1)
    rew = ps @ R
    gain = np.diff(np.concatenate([np.full((ps.shape[0], 1), P0 @ R), rew], 1), axis=1)
    mean, se = gain.mean(0), gain.std(0, ddof=1) / np.sqrt(gain.shape[0])
    assert np.all(mean > Z * se)
    ent = -np.sum(np.where(ps > 0, ps * np.log(np.where(ps > 0, ps, 1)), 0), -1)
    d_ent = np.diff(ent, axis=1)
    assert np.all(d_ent.mean(0) < -Z * d_ent.std(0, ddof=1) / np.sqrt(d_ent.shape[0]))


def test_categorical_curation_fixed_point_with_reference(categorical_runs):
    _, mixed, fp, _, ps = categorical_runs
    # started at the fixed point of the exact map, one generation stays there in mean
    _close(ps[:, 0], fp)
    np.testing.assert_allclose(mixed.law(Categorical(3), CategoricalParams(fp)).probs, fp,
                               rtol=1e-9)


def test_categorical_verifier():
    fam = Categorical(2)
    q0, a, b, m = 0.3, 0.8, 0.3, 40
    step = verify(tpr=a, fpr=b)
    ps = np.asarray(_loop(jax.random.key(5), step, CategoricalParams(jnp.array([q0, 1 - q0])),
                          family=fam, m=m, n_gen=3, n_chains=3000)[0].probs)[..., 0]
    f1 = float(tv.verifier_kept_accuracy(q0, a, b))
    _close(ps[:, 0], f1)  # E q_1 = a q/(a q + b(1-q)) for finite M
    _close(ps[:, 0] ** 2, f1**2 + f1 * (1 - f1) / m)  # Binomial(M, f) / M
    _close(ps[:, 1:] - np.asarray(tv.verifier_kept_accuracy(ps[:, :-1], a, b)), 0.0)
    # the exact finite-M law over generations
    pmf = np.asarray(tv.verifier_q_distribution(q0, a, b, m, 3))
    _close(ps[:, 2], pmf[3] @ (np.arange(m + 1) / m))


def _gauss(mu, var):
    return GaussianParams(jnp.array([mu]), jnp.array([[var]]))


def _quadratic(x):
    return -0.5 * jnp.sum((x - 2.0) ** 2)


def test_gaussian_curation():
    # reward -beta (x - c)^2 with beta = 0.5, c = 2; K = 4; M = 32 kept draws
    fam = Gaussian(dim=1)
    k, m, eta = 4, 32, 0.75
    ref = _gauss(-1.0, 0.5)
    step = curate(_quadratic, k=k, eta=1.0, reference=ref)
    assert step.law(fam, _gauss(0.0, 1.0)) is None and step.n_candidates == k
    kw = dict(family=fam, m=m, n_gen=1, n_chains=2000)
    ps, kept = _loop(jax.random.key(7), step, _gauss(0.0, 1.0), **kw)
    mt, vt = th.curated_gaussian_moments(0.0, 1.0, 0.5, 2.0, k, n_x=1001, n_nodes=1024)
    _close(ps.mean[:, 0, 0], mt)
    _close(ps.cov[:, 0, 0, 0], vt)  # unbiased fit of M iid kept draws
    assert np.all(np.asarray(kept) == m)
    # a share 1 - eta from the reference: the first round((1 - eta) M) rows
    mixed = curate(_quadratic, k=k, eta=eta, reference=ref)
    ps, _ = _loop(jax.random.key(8), mixed, _gauss(0.0, 1.0), **kw)
    n_ref = round((1 - eta) * m)
    _close(ps.mean[:, 0, 0], (n_ref * -1.0 + (m - n_ref) * float(mt)) / m)


def test_gaussian_verifier_one_step():
    fam = Gaussian(dim=1)
    c, a, m = 1.0, 0.8, 40
    step = verify(region=(c, a))
    assert step.law(fam, _gauss(0.0, 1.0)) is None and step.n_candidates == 1
    ps, kept = _loop(jax.random.key(9), step, _gauss(0.0, 1.0), family=fam, m=m, n_gen=1,
                     n_chains=2000)
    t = tv.truncated_normal_moments(0.0, 1.0, c, a)
    kept = np.asarray(kept)[:, 0]
    # P(fewer than 2 kept) = (1-acc)^40 + ... < 1e-6: all chains fit >= 2 kept draws
    assert kept.min() >= 2
    _close(kept / m, t.acceptance)
    _close(ps.mean[:, 0, 0], t.mean)
    _close(ps.cov[:, 0, 0, 0], t.var)


def test_steps_are_pytrees_with_traced_parameters():
    step = curate(jnp.asarray(R), k=3, eta=0.5, reference=REF)
    leaves = jax.tree.leaves(step)
    assert len(leaves) == 3  # reward, eta, reference; k is static
    law = jax.jit(lambda s, p: s.law(Categorical(3), p))
    out = law(step, CategoricalParams(jnp.asarray(P0)))
    np.testing.assert_allclose(out.probs, th.curated_law(P0, R, 3, 0.5, REF), rtol=1e-10)
    v = verify(tpr=0.9, fpr=0.2)
    assert len(jax.tree.leaves(v)) == 2
    # gradient of the exact law with respect to the traced eta
    g = jax.grad(lambda e: curate(jnp.asarray(R), 3, e, REF).law(
        Categorical(3), CategoricalParams(jnp.asarray(P0))).probs[2])(0.5)
    kept = th.curated_law(P0, R, 3)
    np.testing.assert_allclose(g, kept[2] - REF[2], rtol=1e-8)


def test_bad_input():
    cat3, g1 = Categorical(3), Gaussian(dim=1)
    with pytest.raises(ValueError, match="k must be >= 2"):
        curate(R, k=1)
    with pytest.raises(TypeError, match="k must be"):
        curate(R, k=math.inf)
    with pytest.raises(ValueError, match="eta"):
        curate(R, k=2, eta=1.2, reference=REF)
    with pytest.raises(ValueError, match="reference is required"):
        curate(R, k=2, eta=0.5)
    with pytest.raises(ValueError, match="reward must be finite"):
        curate([0.0, np.inf, 1.0], k=2)
    with pytest.raises(ValueError, match="reward must have shape"):
        curate(R[:2], k=2).check(cat3)
    with pytest.raises(TypeError, match="reward must be a function"):
        curate(R, k=2).check(g1)
    with pytest.raises(ValueError, match="reward must return a scalar"):
        curate(lambda x: x, k=2).check(Gaussian(dim=2))
    with pytest.raises(ValueError, match="reward must return finite"):
        curate(lambda x: jnp.log(jnp.sum(x)), k=2).check(g1)
    with pytest.raises(ValueError, match="tpr"):
        verify(tpr=1.1, fpr=0.1)
    with pytest.raises(ValueError, match="fpr"):
        verify(tpr=0.9, fpr=-0.1)
    with pytest.raises(ValueError, match="tpr and fpr"):
        verify(tpr=0.0, fpr=0.0)
    with pytest.raises(ValueError, match="half_width"):
        verify(region=(0.0, -1.0))
    with pytest.raises(TypeError, match="Categorical"):
        verify(tpr=0.9, fpr=0.1).check(g1)
    with pytest.raises(TypeError, match="points"):
        verify(region=(0.0, 1.0)).check(cat3)
    # a callable reward on a Categorical is evaluated on the category indices
    step = curate(lambda i: jnp.asarray(R)[i], k=2)
    step.check(cat3)
    np.testing.assert_allclose(step.law(cat3, CategoricalParams(jnp.asarray(P0))).probs,
                               th.curated_law(P0, R, 2), rtol=1e-10)


def test_simulate_categorical_curation_follows_the_exact_law():
    """jc.simulate(..., step=curate(...)) on a Categorical: the mean refitted law after
    one generation is p0 H_{p0} (Z = 5 standard errors per category)."""
    import jaxcollapse as jc
    from jaxcollapse.theory import curation as tc

    fam = jc.Categorical(6)
    p0 = fam.params(jnp.array([0.3, 0.25, 0.2, 0.12, 0.08, 0.05]))
    reward = jnp.array([0.0, 0.5, 1.0, 1.5, 2.0, 2.5])
    res = jc.simulate(jax.random.key(3), fam, p0, n_generations=1, n_samples=40,
                      n_chains=4000, step=jc.steps.curate(reward, 4), save_params=True)
    p1 = np.asarray(res.params.probs[:, 1])
    want = np.asarray(tc.curated_law(p0.probs, reward, 4))
    se = p1.std(0, ddof=1) / np.sqrt(p1.shape[0])
    assert np.all(np.abs(p1.mean(0) - want) <= 5 * se + 1e-12)


def test_simulate_gaussian_verifier_keeps_the_region():
    """A Gaussian verifier on the samples path: every kept draw lies in the region, so
    each refitted mean does too; an exact family is refused (select needs samples)."""
    import jaxcollapse as jc

    fam = jc.Gaussian(dim=1, method="samples")
    res = jc.simulate(jax.random.key(2), fam, fam.params(), n_generations=2, n_samples=50,
                      n_chains=64, step=jc.steps.verify(region=(0.5, 1.0)), save_params=True)
    mean = np.asarray(res.params.mean[:, 1:, 0])
    assert np.all((mean >= -0.5) & (mean <= 1.5))
    with pytest.raises(ValueError, match="samples path"):
        jc.simulate(jax.random.key(2), jc.Gaussian(dim=1, method="exact"),
                    fam.params(), n_generations=2, n_samples=50, n_chains=4,
                    step=jc.steps.verify(region=(0.5, 1.0)))


def test_select_chooses_by_softmax_over_the_valid_candidates():
    """Curate.select keeps candidate j of a group with probability e^{r_j} / Σ e^{r_l}
    over its valid candidates (a zero weight or a non-finite reward is never chosen), a
    group with no valid candidate gets weight 0, and the same key gives the same rows."""
    fam = Gaussian(dim=1)
    k, n = 5, 40_000
    # candidate j of every group has the value (= reward) r[j]; column 1 has weight 0,
    # column 3 a non-finite reward; the last group is wholly invalid
    r = np.array([0.3, 5.0, -1.2, np.inf, 1.0])
    x = jnp.asarray(np.tile(r, n)[:, None])
    w = np.tile([1.0, 0.0, 1.0, 1.0, 1.0], n)
    w[-k:] = 0.0
    step = curate(lambda v: v[0], k=k)
    sel = jax.jit(lambda key: step.select(key, fam, None, x, jnp.asarray(w)))
    kept, kw = sel(jax.random.key(5))
    kept, kw = np.asarray(kept[:, 0]), np.asarray(kw)
    assert kw[:-1].min() == 1.0 and kw[-1] == 0.0
    valid = np.array([0, 2, 4])
    want = np.exp(r[valid]) / np.exp(r[valid]).sum()
    got = np.array([(kept[:-1] == r[j]).mean() for j in valid])
    assert np.isclose(got.sum(), 1.0)  # no invalid candidate is ever kept
    se = np.sqrt(want * (1 - want) / (n - 1))
    assert np.all(np.abs(got - want) <= Z * se), (got, want, se)
    np.testing.assert_array_equal(np.asarray(sel(jax.random.key(5))[0][:, 0]), kept)
    # a reward range far beyond float32's exponent keeps the best candidate only
    huge = curate(lambda v: 1e4 * v[0], k=k)
    kept = np.asarray(huge.select(jax.random.key(6), fam, None, x[:-k], jnp.asarray(w[:-k]))[0])
    assert np.all(kept == 1.0)
