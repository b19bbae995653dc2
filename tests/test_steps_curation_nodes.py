"""The curation step's quadrature size: the fewest nodes that meet the stated error
bound (theory.curation.nodes_for) still give the exact law of a kept draw, checked
against enumeration of every tuple of candidates (float64)."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxcollapse import steps
from jaxcollapse.theory import curation as tc

_FACTOR = jax.jit(tc._factor, static_argnums=(2, 3))  # one compile a case, not one an op


def _enumerate(p, r, k):
    """p(x) H_p(x) by summing over all (k - 1)-tuples of the other candidates."""
    n = len(p)
    e = np.exp(r - r.max())
    kept = np.zeros(n)
    for others in itertools.product(range(n), repeat=k - 1):
        w = np.prod(p[list(others)])
        s = e[list(others)].sum()
        kept += w * p * k * e / (e + s)
    return kept


@pytest.mark.parametrize("k, span", [(2, 0.5), (3, 3.0), (5, 3.0), (5, 60.0)])
def test_nodes_for_meets_the_bound_against_enumeration(k, span):
    rng = np.random.default_rng(k * 100 + int(span))
    p = rng.dirichlet(np.ones(4))
    r = np.sort(rng.uniform(0.0, 1.0, 4))
    r = (r - r.min()) / (r.max() - r.min()) * span
    n = tc.nodes_for(span, k)
    assert n < tc.N_NODES or span > 20.0  # cheaper than the fixed 1024 where it can be
    got = np.asarray(jnp.asarray(p) * _FACTOR(jnp.asarray(p), jnp.asarray(r), float(k), n))
    # the bound: 3e-17 absolute; the rest is float64 rounding of ~n-term sums
    np.testing.assert_allclose(got, _enumerate(p, r, k), rtol=0, atol=1e-13)


def test_the_step_uses_the_bound_by_default():
    r = jnp.linspace(0.0, 3.0, 10)
    assert steps.curate(r, 4).n_nodes == tc.nodes_for(3.0, 4) < 400
    assert steps.curate(r, 4, n_nodes=64).n_nodes == 64
    assert steps.curate(lambda x: 0.0 * x, 4).n_nodes == tc.N_NODES
    with pytest.raises(ValueError, match="n_nodes must be an integer >= 16"):
        steps.curate(r, 4, n_nodes=8)
    # more candidates or a wider reward range need more nodes (the span grows)
    assert tc.nodes_for(3.0, 1000) > tc.nodes_for(3.0, 4)
    assert tc.nodes_for(30.0, 4) > tc.nodes_for(3.0, 4)


def test_float32_uses_the_float32_bound():
    """In float32 the step takes the float32 bound's node count (about 3.5x fewer), and
    its law still agrees with the float64 law to float32 rounding."""
    from jaxcollapse.families.categorical import Categorical, CategoricalParams

    k, n = 4, 50
    rng = np.random.default_rng(11)
    p = rng.dirichlet(np.ones(n))
    r = np.linspace(0.0, 3.0, n)
    step = steps.curate(jnp.asarray(r), k)
    assert step.nodes(jnp.float64) == tc.nodes_for(3.0, k) == step.n_nodes
    assert step.nodes(jnp.float32) == tc.nodes_for(3.0, k, jnp.float32) < step.n_nodes / 3
    fam = Categorical(n)
    want = np.asarray(step.law(fam, CategoricalParams(jnp.asarray(p))).probs)
    np.testing.assert_allclose(want, _enumerate_k4(p, r), rtol=0, atol=1e-13)
    got = step.law(fam, CategoricalParams(jnp.asarray(p, jnp.float32))).probs
    assert got.dtype == jnp.float32
    # the quadrature's float32 bound is 3e-8; rounding of the sums adds a few ulp
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=1e-5, atol=3e-8)
    # a node count given by hand is used in both dtypes
    assert steps.curate(jnp.asarray(r), k, n_nodes=64).nodes(jnp.float32) == 64


def _enumerate_k4(p, r):
    """p H_p for k = 4 from the closed form over the others' reward sum: exact by
    enumerating the multiset of the 3 other candidates (n^3 terms)."""
    e = np.exp(r - r.max())
    s = (e[:, None, None] + e[None, :, None] + e[None, None, :])
    w = p[:, None, None] * p[None, :, None] * p[None, None, :]
    return p * 4 * e * np.sum(w[None] / (e[:, None, None, None] + s[None]), axis=(1, 2, 3))
