"""Exactness of the samplers in jaxcollapse.random (KS tests against scipy with fixed
keys, p > 0.001 each) and the properties the simulator relies on: the hash equals
JAX's, and arrays of keys give element for element what vmap over the keys gives."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxcollapse import random as jcr

N = 20_000

# one compiled sampler for every shape parameter: a traced `a` does not recompile
_gamma = jax.jit(jcr.gamma, static_argnums=2)
_chisquare = jax.jit(jcr.chisquare, static_argnums=2)
_normal = jax.jit(jcr.normal, static_argnums=(1, 2))


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("a", [0.05, 0.5, 1.0, 1.5, 4.5, 49.5, 5000.0])
def test_gamma_ks(a, dtype):
    x = np.asarray(_gamma(jax.random.key(11), jnp.asarray(a, dtype), (N,)))
    assert x.dtype == dtype
    assert np.all(np.isfinite(x)) and np.all(x >= 0)
    # values below the smallest normal number are flushed to 0 (1.3% of Gamma(0.05)
    # in float32): the law to test against puts that mass at 0
    tiny = np.finfo(dtype).tiny
    law = stats.gamma(a)
    # fixed key: a false failure at p < 0.001 has probability 0.001 per case
    assert stats.kstest(x, lambda t: law.cdf(np.maximum(t, tiny))).pvalue > 1e-3
    lx = np.asarray(jax.jit(jcr.log_gamma_variate, static_argnums=2)(
        jax.random.key(12), jnp.asarray(a, dtype), (N,)), np.float64)
    assert stats.kstest(lx, lambda t: law.cdf(np.exp(t))).pvalue > 1e-3


@pytest.mark.parametrize("df", [1.0, 2.0, 9.0, 99.0])
def test_chisquare_ks(df):
    x = np.asarray(_chisquare(jax.random.key(3), jnp.asarray(df), (N,)))
    assert stats.kstest(x, stats.chi2(df).cdf).pvalue > 1e-3


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_normal_and_uniform_ks(dtype):
    z = np.asarray(_normal(jax.random.key(4), (2 * N,), dtype))
    assert z.dtype == dtype
    assert stats.kstest(z[0::2], "norm").pvalue > 1e-3  # real parts of the pairs
    assert stats.kstest(z[1::2], "norm").pvalue > 1e-3  # imaginary parts
    # the two normals of a pair are independent: |z1| vs |z2| rank correlation ~ 0
    # (se 1/sqrt(N); 4.5 se)
    assert abs(stats.spearmanr(np.abs(z[0::2]), np.abs(z[1::2]))[0]) < 4.5 / np.sqrt(N)
    u = np.asarray(jax.jit(jcr.uniform, static_argnums=(1, 2))(jax.random.key(4), (N,), dtype))
    assert np.all((u > 0) & (u < 1)) and stats.kstest(u, "uniform").pvalue > 1e-3


def test_normal_tails_match_the_normal_law():
    # 2e6 draws: the tail counts beyond 3 and 4 sd against their binomial sd (5 sd)
    z = np.asarray(_normal(jax.random.key(6), (2_000_000,), jnp.float32))
    for c in (3.0, 4.0):
        p = 2 * stats.norm.sf(c)
        assert abs((np.abs(z) > c).mean() - p) < 5 * np.sqrt(p / z.size)


def test_hash_and_fold_in_equal_jax():
    keys = jax.random.split(jax.random.key(0), 1000)
    data = jnp.arange(1000) * 7919
    ours = jax.random.key_data(jax.jit(jcr.fold_in)(keys, data))
    ref = jax.vmap(lambda k, d: jax.random.key_data(jax.random.fold_in(k, d)))(keys, data)
    np.testing.assert_array_equal(ours, ref)
    w = jcr.bits(jax.random.key(1), (7,))
    ref = jnp.concatenate([jax.random.key_data(jax.random.fold_in(jax.random.key(1), i))
                           for i in range(4)])[:7]
    np.testing.assert_array_equal(w, ref)


def test_arrays_of_keys_equal_vmap_and_do_not_depend_on_batching():
    # shape 1: ~5% of first candidates are rejected, so the fallback runs
    keys = jax.random.split(jax.random.key(2), 3000)
    a = jnp.linspace(0.3, 3.0, 3000)
    batched = jax.jit(jcr.gamma)(keys, a)
    one_by_one = jax.jit(jax.vmap(jcr.gamma))(keys, a)
    np.testing.assert_array_equal(batched, one_by_one)
    np.testing.assert_array_equal(batched[:77], jax.jit(jcr.gamma)(keys[:77], a[:77]))
    z = jax.jit(jcr.normal, static_argnums=1)(keys[:5], (3,))
    np.testing.assert_array_equal(z, jax.vmap(lambda k: jcr.normal(k, (3,)))(keys[:5]))
    # normals (stream 0) and gamma candidates (streams 1, 2, ...) of one key differ
    g = jcr.gamma(keys[:5], 1.0)
    assert not np.any(np.asarray(jcr.normal(keys[:5])) == np.asarray(g))


def test_gamma_vmapped_shapes_and_zero_shape():
    a = jnp.array([0.0, 0.5, 2.0, 30.0])
    x = jax.jit(jax.vmap(lambda k: jcr.gamma(k, a)))(jax.random.split(jax.random.key(0), 5000))
    assert x.shape == (5000, 4)
    assert np.all(np.asarray(x[:, 0]) == 0.0)
    # each column has the right mean within 5 standard errors (var of Gamma(a) is a)
    m = np.asarray(x[:, 1:]).mean(0)
    se = np.sqrt(np.asarray(a[1:]) / 5000)
    assert np.all(np.abs(m - np.asarray(a[1:])) < 5 * se)


def test_log_gamma_tiny_shape_is_finite():
    lg = jax.jit(jcr.log_gamma_variate)(jax.random.key(0), jnp.full((1000,), 1e-3))
    assert np.all(np.isfinite(np.asarray(lg)))


def test_fallback_rounds_are_exact():
    # With shape 1 the acceptance rate is lowest (~0.95); over 2e5 draws the
    # fallback runs many passes; the law must still be exact.
    x = np.asarray(_gamma(jax.random.key(5), jnp.asarray(1.0, jnp.float32), (200_000,)))
    assert stats.kstest(x, stats.expon().cdf).pvalue > 1e-3


_normal_gamma = jax.jit(jcr.normal_gamma)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("a", [0.3, 1.0, 4.5, 49.5])
def test_normal_gamma_laws_and_independence(a, dtype):
    # one key, counters 0..N-1 (as simulate draws generations): both marginals exact
    # (shape 1 rejects ~5% of first candidates, so the fallback runs), and the pair
    # independent although the normal and the first candidate share a Box-Muller pair
    z, g = _normal_gamma(jax.random.key(21), jnp.asarray(a, dtype),
                         jnp.arange(N, dtype=jnp.uint32))
    z, g = np.asarray(z), np.asarray(g)
    assert z.dtype == dtype and g.dtype == dtype
    assert stats.kstest(z, "norm").pvalue > 1e-3
    tiny = np.finfo(dtype).tiny
    assert stats.kstest(g, lambda t: stats.gamma(a).cdf(np.maximum(t, tiny))).pvalue > 1e-3
    # rank correlations of g with z and with |z| ~ 0 (se 1/sqrt(N); 4.5 se)
    for x in (z, np.abs(z)):
        assert abs(stats.spearmanr(x, g)[0]) < 4.5 / np.sqrt(N)


def test_normal_gamma_batches_like_single_draws():
    # counters and keys broadcast; an element is the same whatever else is drawn
    keys = jax.random.split(jax.random.key(3), 7)
    t = jnp.arange(1, 6, dtype=jnp.uint32)[:, None]
    a = jnp.full((5, 1), 1.0, jnp.float32)
    z, g = _normal_gamma(keys[None, :], a, t)
    assert z.shape == g.shape == (5, 7)
    z1, g1 = _normal_gamma(keys[4], jnp.float32(1.0), jnp.uint32(3))
    assert z[2, 4] == z1 and g[2, 4] == g1
    # different counters under one key differ; a = 0 gives 0
    assert len(np.unique(np.asarray(z[:, 0]))) == 5
    assert float(_normal_gamma(keys[0], jnp.float32(0.0), jnp.uint32(1))[1]) == 0.0


def test_bad_dtype_and_key():
    with pytest.raises(ValueError, match="dtype must be float32 or float64"):
        jcr.normal(jax.random.key(0), (3,), jnp.int32)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        jcr.normal(np.zeros(2, np.uint32), (3,))


def test_split_in_fusible_operations_equals_jax_split():
    from jaxcollapse.simulation._chain import _split2
    keys = jax.random.split(jax.random.key(8), 50)
    ours = jax.vmap(lambda k: jnp.stack([jax.random.key_data(x) for x in _split2(k)]))(keys)
    ref = jax.vmap(lambda k: jax.random.key_data(jax.random.split(k)))(keys)
    np.testing.assert_array_equal(ours, ref)


def test_normal_gamma_bad_input():
    key = jax.random.key(0)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        jcr.normal_gamma(np.zeros(2, np.uint32), 1.0)
    with pytest.raises(ValueError, match="a must be >= 0"):
        jcr.normal_gamma(key, -1.0)
    with pytest.raises(ValueError, match="a must be >= 0"):
        jcr.normal_gamma(key, jnp.array([1.0, jnp.nan]))
    with pytest.raises(ValueError, match="index must hold non-negative 32-bit integers"):
        jcr.normal_gamma(key, 1.0, -3)
    with pytest.raises(ValueError, match="index must hold non-negative 32-bit integers"):
        jcr.normal_gamma(key, 1.0, 0.5)
    with pytest.raises(ValueError, match="do not broadcast together"):
        jcr.normal_gamma(jax.random.split(key, 3), jnp.ones(4))


_distinct = jax.jit(jcr.distinct_indices, static_argnums=2)


def test_distinct_indices_are_a_uniform_ordered_subset():
    """All 5 * 4 = 20 ordered pairs from range(5) equally likely (chi-square, fixed
    key: false failure 0.001); the slot past ``count`` is 0 and the table comes back
    zeroed."""
    keys = jax.random.split(jax.random.key(21), 20000)
    table = jcr.distinct_scratch(8, 3)
    idx, tables = _distinct(keys, jnp.int32(5), 3, table, 2)
    idx = np.asarray(idx)
    assert np.all(idx[:, 0] != idx[:, 1]) and np.all(idx[:, 2] == 0)
    assert np.asarray(tables).max() == 0
    pairs = list(itertools.permutations(range(5), 2))
    counts = np.array([np.sum((idx[:, 0] == a) & (idx[:, 1] == b)) for a, b in pairs])
    assert counts.min() > 0 and stats.chisquare(counts).pvalue > 1e-3


def test_distinct_indices_near_n_and_over_many_batches_stay_uniform():
    """count close to n (5 of 6: many batches, the loop) and count = k = 100 of n = 150
    (a first batch of 112 candidates, then the loop): every subset or index equally
    likely, every slot uniform, the table zeroed."""
    keys = jax.random.split(jax.random.key(22), 12000)
    idx, tables = _distinct(keys, jnp.int32(6), 5, jcr.distinct_scratch(6, 5), 5)
    idx = np.asarray(idx)
    assert np.all(np.sort(idx, axis=1)[:, 1:] != np.sort(idx, axis=1)[:, :-1])
    assert np.asarray(tables).max() == 0
    missing = 15 - idx.sum(axis=1)  # the one index left out
    assert stats.chisquare(np.bincount(missing, minlength=6)).pvalue > 1e-3
    for slot in (0, 4):
        assert stats.chisquare(np.bincount(idx[:, slot], minlength=6)).pvalue > 1e-3

    keys = jax.random.split(jax.random.key(23), 3000)
    idx, tables = _distinct(keys, jnp.int32(150), 100, jcr.distinct_scratch(200, 100), 100)
    idx = np.asarray(idx)
    assert np.asarray(tables).max() == 0
    s = np.sort(idx, axis=1)
    assert np.all(s[:, 1:] != s[:, :-1]) and s.max() < 150
    # each index kept with probability 2/3: 5 SE (false failure about 1e-4 over 150)
    p = np.bincount(idx.ravel(), minlength=150) / idx.shape[0]
    assert np.all(np.abs(p - 2 / 3) <= 5 * np.sqrt(2 / 3 / 3 / idx.shape[0]))
    assert stats.chisquare(np.bincount(idx[:, 99], minlength=150)).pvalue > 1e-3


def test_distinct_indices_counts_batching_and_one_program():
    """count 0 gives zeros; count above n is clamped to n; an array of keys (n and
    count per key) gives what each key gives alone; a new n or count reuses the
    compiled program."""
    key = jax.random.key(24)
    table = jcr.distinct_scratch(50, 8)
    f = jax.jit(jcr.distinct_indices, static_argnums=2)
    assert np.asarray(f(key, jnp.int32(40), 8, table, 0)[0]).tolist() == [0] * 8
    idx = np.asarray(f(key, jnp.int32(3), 8, table, 8)[0])
    assert sorted(idx[:3].tolist()) == [0, 1, 2] and np.all(idx[3:] == 0)
    keys = jax.random.split(key, 4)
    ns, counts = jnp.array([50, 9, 20, 2]), jnp.array([8, 8, 3, 1])
    many = np.asarray(f(keys, ns, 8, table, counts)[0])
    for i in range(4):
        alone = np.asarray(f(keys[i], ns[i], 8, table, counts[i])[0])
        np.testing.assert_array_equal(many[i], alone)
    before = f._cache_size()
    f(key, jnp.int32(17), 8, table, 5)
    assert f._cache_size() == before
    # uint16 stamps once a batch no longer fits in a byte
    assert jcr.distinct_scratch(10, 300).dtype == jnp.uint16


def test_distinct_indices_bad_input():
    table = jcr.distinct_scratch(10, 4)
    with pytest.raises(ValueError, match="n must be at most the scratch table's length 10"):
        jcr.distinct_indices(jax.random.key(0), 11, 4, table)
    with pytest.raises(ValueError, match="scratch must be distinct_scratch"):
        jcr.distinct_indices(jax.random.key(0), 5, 4, jnp.zeros(10, jnp.int32))
    with pytest.raises(ValueError, match="k must be >= 0"):
        jcr.distinct_indices(jax.random.key(0), 5, -1, table)
    with pytest.raises(ValueError, match="size must be >= 1"):
        jcr.distinct_scratch(0, 4)
