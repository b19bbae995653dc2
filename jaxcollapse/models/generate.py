"""Batched text generation: sampling and beam search with a key/value cache.

The prompt is run once through :meth:`Transformer.prefill`, then one token a
step is decoded under ``lax.scan`` reading and writing the cache, so a step costs
O(context) instead of a full forward pass. ``use_cache=False`` recomputes the
full forward pass every step (the reference the cached path must equal).

Sampling supports temperature, top-k, top-p (nucleus) and a CTRL-style
repetition penalty; :func:`beam_search` is the fixed-length n-way beam search the
seed study used (5 beams). ``temperature``, ``top_p`` and the penalty are traced,
so changing them does not recompile; shapes, ``top_k``, ``n_beams``, the config and
whether top-p is on at all (``top_p < 1``) are static.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8 (5-way beam search
    continuations of 64-token prompts); Holtzman et al., The Curious Case of Neural
    Text Degeneration, ICLR 2020 (top-p); Keskar et al., CTRL, arXiv 1909.05858
    (repetition penalty).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse.models.transformer import KVCache, Transformer, TransformerConfig


def _check(config: TransformerConfig, prompts, n_new: int):
    shape = np.shape(prompts)
    if len(shape) != 2 or shape[1] < 1:
        raise ValueError(f"prompts must have shape (batch, prompt_len >= 1); got {shape}")
    if not isinstance(n_new, int | np.integer) or n_new < 1:
        raise ValueError(f"n_new must be a positive integer; got {n_new!r}")
    if shape[1] + n_new > config.max_len:
        raise ValueError(f"prompt length {shape[1]} + n_new {n_new} exceeds the model's "
                         f"context max_len={config.max_len}")


def _penalize(logits, seen, penalty):
    # CTRL: divide positive logits of already-seen tokens by the penalty, multiply
    # negative ones, so a seen token always becomes less likely.
    pen = jnp.where(logits > 0, logits / penalty, logits * penalty)
    return jnp.where(seen, pen, logits)


def _filter(logits, top_k: int, top_p, nucleus: bool):
    neg = jnp.finfo(logits.dtype).min
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, neg, logits)
    if not nucleus:  # the sort + cumsum over the vocabulary is costly to compile and run
        return logits
    srt = jnp.sort(logits, axis=-1)[..., ::-1]
    cum = jnp.cumsum(jax.nn.softmax(srt, axis=-1), axis=-1)
    # Keep the smallest prefix whose mass reaches top_p (always the top token).
    n_keep = jnp.sum(cum - jax.nn.softmax(srt, axis=-1) < top_p, axis=-1, keepdims=True)
    cutoff = jnp.take_along_axis(srt, jnp.maximum(n_keep, 1) - 1, axis=-1)
    # top_p = 1 keeps everything (rounding in the cumulative sum must not cut the tail).
    return jnp.where((logits < cutoff) & (top_p < 1), neg, logits)


def _seen(prompts, vocab_size):
    b = prompts.shape[0]
    return jnp.zeros((b, vocab_size), bool).at[jnp.arange(b)[:, None], prompts].set(True)


@functools.partial(jax.jit,
                   static_argnames=("config", "n_new", "top_k", "nucleus", "use_cache"))
def _sample(key, params, config, prompts, n_new, temperature, top_k, top_p, penalty,
            nucleus, use_cache):
    model = Transformer(config)
    b, p = prompts.shape
    keys = jax.random.split(key, n_new)
    seen0 = _seen(prompts, config.vocab_size)

    def pick(k, logits, seen):
        logits = _penalize(logits, seen, penalty) / temperature
        logits = _filter(logits, top_k, top_p, nucleus)
        tok = jax.random.categorical(k, logits, axis=-1).astype(prompts.dtype)
        return tok, seen.at[jnp.arange(b), tok].set(True)

    if use_cache:
        logits, cache = model.apply(params, prompts, method=Transformer.prefill)

        def step(carry, xs):
            last, cache, seen = carry
            k, pos = xs
            tok, seen = pick(k, last, seen)
            logits, cache = model.apply(params, tok, cache, pos, method=Transformer.decode)
            return (logits, cache, seen), tok

        init = (logits[:, -1], cache, seen0)
        _, toks = jax.lax.scan(step, init, (keys, p + jnp.arange(n_new)))
        return toks.T

    buf = jnp.concatenate([prompts, jnp.zeros((b, n_new), prompts.dtype)], axis=1)

    def step_nc(carry, xs):
        buf, seen = carry
        k, pos = xs
        logits = model.apply(params, buf)  # full recomputation; causal, so padding is ignored
        last = jax.lax.dynamic_index_in_dim(logits, pos - 1, axis=1, keepdims=False)
        tok, seen = pick(k, last, seen)
        buf = jax.lax.dynamic_update_index_in_dim(buf, tok, pos, axis=1)
        return (buf, seen), tok

    _, toks = jax.lax.scan(step_nc, (buf, seen0), (keys, p + jnp.arange(n_new)))
    return toks.T


def sample(key: jax.Array, params, config: TransformerConfig, prompts, n_new: int, *,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
           repetition_penalty: float = 1.0, use_cache: bool = True) -> jax.Array:
    """Samples ``n_new`` tokens after each prompt.

    Args:
        key: PRNG key.
        params: model parameters.
        config: the model's :class:`TransformerConfig`.
        prompts: ``(B, P)`` int token ids; ``P + n_new <= config.max_len``.
        n_new: tokens to generate.
        temperature: > 0; logits are divided by it.
        top_k: keep the k most likely tokens (0: all). ``top_k=1`` is greedy.
        top_p: keep the smallest set of tokens with probability >= top_p, in (0, 1].
        repetition_penalty: >= 1; 1 disables it.
        use_cache: decode with the key/value cache (False: recompute every step).

    Returns:
        ``(B, n_new)`` token ids.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxcollapse.models.transformer import preset, init_params
        >>> cfg = preset("tiny", 30)
        >>> p = init_params(jax.random.key(0), cfg)
        >>> sample(jax.random.key(1), p, cfg, jnp.zeros((2, 4), int), 5, top_k=10).shape
        (2, 5)
        >>> sample(jax.random.key(1), p, cfg, jnp.zeros((2, 4), int), 5, temperature=0.0)
        Traceback (most recent call last):
        ...
        ValueError: temperature must be > 0 (use top_k=1 for greedy decoding); got 0.0

    References:
        Holtzman et al., ICLR 2020; Keskar et al., arXiv 1909.05858.
    """
    _check(config, prompts, n_new)
    if not np.isfinite(temperature) or temperature <= 0:
        raise ValueError(f"temperature must be > 0 (use top_k=1 for greedy decoding); "
                         f"got {temperature}")
    if not isinstance(top_k, int | np.integer) or not 0 <= top_k <= config.vocab_size:
        raise ValueError(f"top_k must be an integer in [0, {config.vocab_size}]; got {top_k!r}")
    if not 0 < top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1]; got {top_p}")
    if not repetition_penalty >= 1:
        raise ValueError(f"repetition_penalty must be >= 1; got {repetition_penalty}")
    dt = jnp.dtype(config.dtype)
    return _sample(key, params, config, jnp.asarray(prompts), int(n_new),
                   jnp.asarray(temperature, dt), int(top_k), jnp.asarray(top_p, dt),
                   jnp.asarray(repetition_penalty, dt), bool(top_p < 1), bool(use_cache))


@functools.partial(jax.jit, static_argnames=("config", "n_new", "n_beams"))
def _beam(params, config, prompts, n_new, n_beams, penalty):
    model = Transformer(config)
    b, p = prompts.shape
    v = config.vocab_size
    logits, cache = model.apply(params, prompts, method=Transformer.prefill)
    rep = lambda x: jnp.repeat(x, n_beams, axis=0)  # (B, ...) -> (B * K, ...)
    cache = KVCache(jnp.repeat(cache.k, n_beams, axis=1), jnp.repeat(cache.v, n_beams, axis=1))
    last = rep(logits[:, -1])
    seen = rep(_seen(prompts, v))
    # Only beam 0 is live at the start, so the first step does not pick K copies (with
    # K > V some beams start dead at -inf and can only be chosen after every live one).
    score = jnp.tile(jnp.where(jnp.arange(n_beams) == 0, 0.0, -jnp.inf), (b, 1))
    hist = jnp.zeros((b, n_beams, n_new), prompts.dtype)

    def step(carry, pos):
        last, cache, seen, score, hist = carry
        lp = jax.nn.log_softmax(_penalize(last, seen, penalty), axis=-1).reshape(b, n_beams, v)
        cand = (score[..., None] + lp).reshape(b, n_beams * v)
        score, idx = jax.lax.top_k(cand, n_beams)
        beam, tok = idx // v, (idx % v).astype(prompts.dtype)
        flat = (jnp.arange(b)[:, None] * n_beams + beam).reshape(-1)
        cache = KVCache(cache.k[:, flat], cache.v[:, flat])
        hist = jnp.take_along_axis(hist, beam[..., None], axis=1)
        hist = jax.lax.dynamic_update_index_in_dim(hist, tok, pos - p, axis=2)
        seen = seen[flat].at[jnp.arange(b * n_beams), tok.reshape(-1)].set(True)
        last, cache = model.apply(params, tok.reshape(-1), cache, pos,
                                  method=Transformer.decode)
        return (last, cache, seen, score, hist), None

    (_, _, _, score, hist), _ = jax.lax.scan(step, (last, cache, seen, score, hist),
                                            p + jnp.arange(n_new))
    return hist[:, 0], score[:, 0]


def beam_search(params, config: TransformerConfig, prompts, n_new: int, *, n_beams: int = 5,
                repetition_penalty: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """Fixed-length beam search: the most likely continuation found with ``n_beams`` beams.

    Every hypothesis has exactly ``n_new`` tokens, so no length normalisation is
    needed. With one beam it is greedy decoding.

    Args:
        params: model parameters.
        config: the model's configuration.
        prompts: ``(B, P)`` token ids, ``P + n_new <= config.max_len``.
        n_new: tokens to generate.
        n_beams: beams per prompt (>= 1); the seed study used 5.
        repetition_penalty: >= 1 (applied to the log-probabilities' logits).

    Returns:
        ``(tokens (B, n_new), log_prob (B,))`` of the best beam.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxcollapse.models.transformer import preset, init_params
        >>> cfg = preset("tiny", 30)
        >>> p = init_params(jax.random.key(0), cfg)
        >>> toks, lp = beam_search(p, cfg, jnp.zeros((2, 4), int), 6, n_beams=3)
        >>> toks.shape, lp.shape
        ((2, 6), (2,))
        >>> beam_search(p, cfg, jnp.zeros((2, 4), int), 6, n_beams=0)
        Traceback (most recent call last):
        ...
        ValueError: n_beams must be an integer >= 1; got 0

    References:
        Shumailov et al., Nature 631 (2024), THEORY.md section 8.
    """
    _check(config, prompts, n_new)
    if not isinstance(n_beams, int | np.integer) or n_beams < 1:
        raise ValueError(f"n_beams must be an integer >= 1; got {n_beams!r}")
    if not repetition_penalty >= 1:
        raise ValueError(f"repetition_penalty must be >= 1; got {repetition_penalty}")
    return _beam(params, config, jnp.asarray(prompts), int(n_new), int(n_beams),
                 jnp.asarray(repetition_penalty, jnp.dtype(config.dtype)))
