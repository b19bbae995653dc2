"""KV-cached generation equals uncached; beam search; sampling distributions; errors."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from scipy.special import log_softmax, softmax

from jaxcollapse.models import apply, beam_search, init_params, preset, sample
from jaxcollapse.models import generate as gen_mod

V = 12


@pytest.fixture(scope="module")
def model():
    """A tiny float64 model whose random weights are scaled up so that next-token
    distributions are far from uniform (the comparisons below then mean something)."""
    cfg = preset("tiny", V, dtype="float64", max_len=16)
    params = init_params(jax.random.key(0), cfg)
    params = jax.tree.map(lambda x: x * 8.0 if x.ndim == 2 else x, params)
    prompts = jax.random.randint(jax.random.key(1), (6, 5), 0, V)
    return cfg, params, prompts


def _seq_logprob(params, cfg, prompts, cont):
    seq = np.concatenate([np.asarray(prompts), np.asarray(cont)], axis=1)
    lp = log_softmax(np.asarray(apply(params, cfg, jnp.asarray(seq[:, :-1]))), axis=-1)
    p = prompts.shape[1]
    return np.take_along_axis(lp[:, p - 1:], seq[:, p:, None], axis=-1)[..., 0].sum(1)


@pytest.mark.parametrize("kw", [dict(), dict(temperature=0.7, top_k=5),
                                dict(top_p=0.8, repetition_penalty=1.5)])
def test_cached_equals_uncached(model, kw):
    cfg, params, prompts = model
    a = sample(jax.random.key(2), params, cfg, prompts, 10, use_cache=True, **kw)
    b = sample(jax.random.key(2), params, cfg, prompts, 10, use_cache=False, **kw)
    np.testing.assert_array_equal(a, b)
    assert len(np.unique(np.asarray(a))) > 3  # not a degenerate constant output


def test_cached_decode_logits_equal_full_forward(model):
    cfg, params, prompts = model
    from jaxcollapse.models import Transformer

    m = Transformer(cfg)
    seq = jnp.concatenate([prompts, prompts[:, :3]], axis=1)
    full = m.apply(params, seq)
    logits, cache = m.apply(params, prompts, method=Transformer.prefill)
    np.testing.assert_allclose(logits, full[:, :5], rtol=1e-10, atol=1e-12)
    for i in range(3):
        step, cache = m.apply(params, seq[:, 5 + i], cache, 5 + i, method=Transformer.decode)
        np.testing.assert_allclose(step, full[:, 5 + i], rtol=1e-10, atol=1e-12)


def test_beam_one_is_greedy(model):
    cfg, params, prompts = model
    greedy = sample(jax.random.key(3), params, cfg, prompts, 8, top_k=1)
    toks, lp = beam_search(params, cfg, prompts, 8, n_beams=1)
    np.testing.assert_array_equal(toks, greedy)
    np.testing.assert_allclose(lp, _seq_logprob(params, cfg, prompts, toks), rtol=1e-9)


def test_wide_beam_is_exact_argmax(model):
    """With V^(n-1) beams nothing is pruned: beam search finds the most likely
    3-token continuation, checked by enumerating all V^3 of them."""
    cfg, params, prompts = model
    toks, lp = beam_search(params, cfg, prompts[:2], 3, n_beams=V * V)
    allc = np.array(list(itertools.product(range(V), repeat=3)))
    pr = np.repeat(np.asarray(prompts[:2]), len(allc), axis=0)
    scores = _seq_logprob(params, cfg, pr, np.tile(allc, (2, 1))).reshape(2, -1)
    for b in range(2):
        np.testing.assert_array_equal(toks[b], allc[scores[b].argmax()])
        np.testing.assert_allclose(lp[b], scores[b].max(), rtol=1e-9)
    # 5 beams: the reported score is the model's log-probability of the output
    t5, lp5 = beam_search(params, cfg, prompts, 6, n_beams=5)
    np.testing.assert_allclose(lp5, _seq_logprob(params, cfg, prompts, t5), rtol=1e-9)


def test_sampling_distribution_chi_square(model):
    """First sampled token ~ softmax(logits / T) restricted to the top k.
    Fixed key; p > 0.001 (false failure rate 1e-3 for a correct sampler)."""
    cfg, params, prompts = model
    n, temp, k = 4000, 0.7, 5
    pr = jnp.repeat(prompts[:1], n, axis=0)
    first = np.asarray(sample(jax.random.key(4), params, cfg, pr, 1, temperature=temp,
                              top_k=k))[:, 0]
    logits = np.asarray(apply(params, cfg, prompts[:1]))[0, -1] / temp
    top = np.argsort(logits)[::-1][:k]
    assert set(first.tolist()) <= set(top.tolist())
    p = softmax(logits[top])
    counts = np.array([(first == t).sum() for t in top])
    keep = p * n >= 5
    exp = p[keep] * n * counts[keep].sum() / (p[keep] * n).sum()
    assert stats.chisquare(counts[keep], exp).pvalue > 1e-3


def test_no_recompile_on_new_values(model):
    cfg, params, prompts = model
    sample(jax.random.key(5), params, cfg, prompts, 4, temperature=0.9)
    before = gen_mod._sample._cache_size()
    sample(jax.random.key(6), params, cfg, prompts + 1, 4, temperature=1.3,
           repetition_penalty=1.2)
    assert gen_mod._sample._cache_size() == before


def test_generation_errors(model):
    cfg, params, prompts = model
    with pytest.raises(ValueError, match="temperature must be > 0"):
        sample(jax.random.key(0), params, cfg, prompts, 3, temperature=-1.0)
    with pytest.raises(ValueError, match="exceeds the model's context max_len=16"):
        sample(jax.random.key(0), params, cfg, prompts, 12)
    with pytest.raises(ValueError, match="exceeds the model's context"):
        beam_search(params, cfg, prompts, 12)
    with pytest.raises(ValueError, match="n_beams must be an integer >= 1"):
        beam_search(params, cfg, prompts, 3, n_beams=0)
    with pytest.raises(ValueError, match="top_p"):
        sample(jax.random.key(0), params, cfg, prompts, 3, top_p=0.0)
    with pytest.raises(ValueError, match="prompts must have shape"):
        sample(jax.random.key(0), params, cfg, prompts[0], 3)
    with pytest.raises(ValueError, match="repetition_penalty"):
        sample(jax.random.key(0), params, cfg, prompts, 3, repetition_penalty=0.5)
