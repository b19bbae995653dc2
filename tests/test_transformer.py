"""The tiny transformer LM: it learns, exact perplexity/accuracy, no recompilation."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import log_softmax

from jaxcollapse.data import load_wikitext2
from jaxcollapse.models import (
    TransformerConfig,
    apply,
    evaluate,
    init_state,
    make_optimizer,
    make_train_step,
    preset,
    sample_windows,
    sequence_perplexity,
)
from jaxcollapse.models import train as train_mod

STEPS = 300


@pytest.fixture(scope="module")
def trained(shared_data):
    """The tiny model trained for STEPS steps on a 30k-token WikiText-2 slice."""
    corpus = load_wikitext2(shared_data / "wikitext-2", max_train_tokens=30_000,
                            max_vocab=2_000)
    cfg = preset("tiny", len(corpus.vocab))
    tx = make_optimizer(1e-2, total_steps=STEPS, warmup_steps=30)
    step = make_train_step(cfg, tx)
    state = init_state(jax.random.key(0), cfg, tx)
    keys = jax.random.split(jax.random.key(1), STEPS)
    losses = []
    for i in range(STEPS):
        state, loss = step(state, sample_windows(keys[i], corpus.train, 16, cfg.max_len + 1))
        losses.append(loss)
    return corpus, cfg, state, np.asarray(losses), step


def test_tiny_lm_learns(trained):
    corpus, cfg, state, losses, _ = trained
    log_v = math.log(cfg.vocab_size)
    assert abs(losses[0] - log_v) < 0.5  # starts near uniform
    assert losses[-20:].mean() < log_v - 2.5  # well below log(vocab) = 7.6
    # Beyond unigram statistics: held-out perplexity beats the smoothed unigram model
    # of the same training slice (which ignores context).
    counts = np.bincount(corpus.train, minlength=cfg.vocab_size) + 0.5
    held = corpus.valid[:8192]
    unigram_ppl = math.exp(-np.log(counts / counts.sum())[held[1:]].mean())
    r = evaluate(state.params, cfg, held)
    assert r.n_tokens == len(held) - 1
    assert r.perplexity < 0.95 * unigram_ppl


def test_train_step_does_not_recompile(trained):
    corpus, cfg, state, _, step = trained
    assert step._cache_size() == 1  # STEPS calls with new batches: one compilation


def test_perplexity_equals_independent_nll(trained):
    """exp(mean NLL) recomputed with scipy from the logits of every block, float64."""
    corpus, cfg32, state, _, _ = trained
    cfg = TransformerConfig(**{**cfg32.__dict__, "dtype": "float64"})
    params = jax.tree.map(lambda x: x.astype(jnp.float64), state.params)
    stream = corpus.test[:1001]  # 1000 targets: 31 full blocks of 32 and one of 8
    r = evaluate(params, cfg, stream, batch_size=8)
    nll, correct, n = 0.0, 0, 0
    t = cfg.max_len
    full = (len(stream) - 1) // t * t
    for x, y in ((stream[:full].reshape(-1, t), stream[1:full + 1].reshape(-1, t)),
                 (stream[full:-1][None], stream[full + 1:][None])):
        logits = np.asarray(apply(params, cfg, jnp.asarray(x)))
        lp = log_softmax(logits, axis=-1)
        nll -= np.take_along_axis(lp, y[..., None], axis=-1).sum()
        correct += int((logits.argmax(-1) == y).sum())
        n += y.size
    assert r.n_tokens == n == 1000
    np.testing.assert_allclose(r.nll_sum, nll, rtol=1e-6)
    np.testing.assert_allclose(r.perplexity, math.exp(nll / n), rtol=1e-6)
    assert r.n_correct == correct and r.accuracy == correct / n
    # evaluating another stream of the same block shapes does not recompile
    before = train_mod._eval_batch._cache_size()
    evaluate(params, cfg, corpus.valid[:700], batch_size=8)
    assert train_mod._eval_batch._cache_size() == before


def test_sequence_perplexity_scores_only_the_continuation(trained):
    corpus, cfg, state, _, _ = trained
    seqs = corpus.valid[:4 * 20].reshape(4, 20)
    got = sequence_perplexity(state.params, cfg, seqs, start=10, batch_size=4)
    logits = np.asarray(apply(state.params, cfg, jnp.asarray(seqs[:, :-1])), np.float64)
    lp = log_softmax(logits, axis=-1)
    tok = np.take_along_axis(lp, seqs[:, 1:, None], axis=-1)[..., 0]
    np.testing.assert_allclose(got, np.exp(-tok[:, 9:].mean(1)), rtol=1e-4)  # float32


def test_bad_configs():
    with pytest.raises(ValueError, match="divisible by n_heads"):
        TransformerConfig(vocab_size=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="vocab_size must be a positive integer"):
        TransformerConfig(vocab_size=0)
    with pytest.raises(ValueError, match="dtype"):
        TransformerConfig(vocab_size=5, dtype="int8")
    with pytest.raises(ValueError, match="learning_rate"):
        make_optimizer(0.0)
    cfg = preset("tiny", 10)
    with pytest.raises(ValueError, match="seq_len must be in"):
        evaluate(None, cfg, np.arange(100) % 10, seq_len=cfg.max_len + 1)
    with pytest.raises(ValueError, match="exceed the model's context"):
        sequence_perplexity(None, cfg, np.zeros((2, cfg.max_len + 2), int))
    with pytest.raises(ValueError, match="fewer than the window length"):
        sample_windows(jax.random.key(0), np.arange(5), 2, 9)
