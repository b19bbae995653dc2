"""A decoder-only transformer language model (pre-norm, causal, tied embeddings).

The network is a Flax ``linen`` module built from a frozen, hashable
:class:`TransformerConfig`. Besides the full causal forward pass
(:meth:`Transformer.__call__`) it offers a *prefill* that also returns the
key/value cache of a prompt and a one-token *decode* step that reads and writes
that cache, which :mod:`jaxcollapse.models.generate` scans over.

There is no dropout: training is deterministic given the key, which keeps
``--resume`` bit-identical and the recursive protocol free of extra noise.

References:
    Vaswani et al., Attention Is All You Need (2017); Radford et al., Language
    Models are Unsupervised Multitask Learners (2019) (pre-norm, tied embeddings);
    Shumailov et al., Nature 631 (2024), THEORY.md section 8.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Static hyperparameters of :class:`Transformer` (hashable, so jit-static).

    Attributes:
        vocab_size: number of token types V.
        d_model: width d.
        n_layers: number of blocks.
        n_heads: attention heads (``d_model % n_heads == 0``).
        d_ff: hidden width of the MLP.
        max_len: context length (positions), the longest prompt + continuation.
        dtype: ``"float32"`` or ``"float64"``: parameters and computation.

    Example:
        >>> c = TransformerConfig(vocab_size=100, d_model=32, n_heads=2, max_len=16)
        >>> c.head_dim, c.n_params > 0
        (16, True)
    """

    vocab_size: int
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    d_ff: int = 512
    max_len: int = 128
    dtype: str = "float32"

    def __post_init__(self):
        for f in ("vocab_size", "d_model", "n_layers", "n_heads", "d_ff", "max_len"):
            v = getattr(self, f)
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{f} must be a positive integer; got {v!r}")
        if self.d_model % self.n_heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by n_heads "
                             f"({self.n_heads})")
        if self.dtype not in ("float32", "float64", "bfloat16"):
            raise ValueError(f"dtype must be 'float32', 'float64' or 'bfloat16'; "
                             f"got {self.dtype!r}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def n_params(self) -> int:
        """Number of parameters (embeddings counted once: they are tied)."""
        d, f, L = self.d_model, self.d_ff, self.n_layers
        block = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d
        return self.vocab_size * d + self.max_len * d + L * block + 2 * d

    def flops_per_token(self, seq_len: int | None = None) -> float:
        """Forward matmul FLOPs per token (2 per multiply-add), attention included."""
        t = self.max_len if seq_len is None else seq_len
        d, f, L = self.d_model, self.d_ff, self.n_layers
        per_layer = 2 * (4 * d * d + 2 * d * f) + 2 * 2 * t * d / 2  # causal: half of QK^T, AV
        return L * per_layer + 2 * d * self.vocab_size


PRESETS: dict[str, dict] = {
    # tests: compiles in seconds.
    "tiny": dict(d_model=32, n_layers=1, n_heads=2, d_ff=64, max_len=32),
    # CPU, minutes per generation on a WikiText-2 subset.
    "small": dict(d_model=128, n_layers=2, n_heads=4, d_ff=512, max_len=128),
    # GPU scale: ~42M parameters with the 33,278-word WikiText-2 vocabulary.
    "base": dict(d_model=512, n_layers=8, n_heads=8, d_ff=2048, max_len=256),
}


def preset(name: str, vocab_size: int, **overrides) -> TransformerConfig:
    """A named configuration (``tiny``, ``small``, ``base``) for a vocabulary size.

    Example:
        >>> c = preset("base", 33278)
        >>> c.d_model, round(c.n_params / 1e6)
        (512, 42)
        >>> preset("huge", 10)
        Traceback (most recent call last):
        ...
        ValueError: preset must be one of ['tiny', 'small', 'base']; got 'huge'
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {list(PRESETS)}; got {name!r}")
    return TransformerConfig(vocab_size=vocab_size, **{**PRESETS[name], **overrides})


class KVCache(NamedTuple):
    """Keys and values of every layer: ``(n_layers, batch, max_len, n_heads, head_dim)``.

    Example:
        >>> import jax.numpy as jnp
        >>> c = preset("tiny", 50)
        >>> shape = (c.n_layers, 2, c.max_len, c.n_heads, c.head_dim)
        >>> KVCache(jnp.zeros(shape), jnp.zeros(shape)).k.shape
        (1, 2, 32, 2, 16)
    """

    k: jax.Array
    v: jax.Array


def _dtype(config: TransformerConfig):
    return jnp.dtype(config.dtype)


class Block(nn.Module):
    """One pre-norm block: x + attn(LN(x)), then x + MLP(LN(x)).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = preset("tiny", 50)
        >>> x = jnp.ones((2, 5, cfg.d_model))
        >>> blk = Block(cfg)
        >>> out, (k, v) = blk.apply(blk.init(jax.random.key(0), x), x)  # and its keys, values
        >>> out.shape, k.shape
        ((2, 5, 32), (2, 5, 2, 16))
    """

    config: TransformerConfig

    def setup(self):
        c, dt = self.config, _dtype(self.config)
        dense = lambda n, name: nn.Dense(n, dtype=dt, param_dtype=dt, name=name,
                                         kernel_init=nn.initializers.normal(0.02))
        self.ln1 = nn.LayerNorm(dtype=dt, param_dtype=dt)
        self.ln2 = nn.LayerNorm(dtype=dt, param_dtype=dt)
        self.qkv = dense(3 * c.d_model, "qkv")
        self.proj = dense(c.d_model, "proj")
        self.up = dense(c.d_ff, "up")
        self.down = dense(c.d_model, "down")

    def _split(self, h):
        c = self.config
        q, k, v = jnp.split(self.qkv(h), 3, axis=-1)
        shape = h.shape[:-1] + (c.n_heads, c.head_dim)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def _attend(self, q, k, v, mask):
        # q: (B, Tq, H, D); k, v: (B, Tk, H, D); mask broadcastable to (B, H, Tq, Tk).
        s = jnp.einsum("bqhd,bkhd->bhqk", q, k) / jnp.sqrt(q.shape[-1]).astype(q.dtype)
        s = jnp.where(mask, s, jnp.finfo(s.dtype).min)
        p = jax.nn.softmax(s.astype(jnp.float32) if s.dtype == jnp.bfloat16 else s, axis=-1)
        o = jnp.einsum("bhqk,bkhd->bqhd", p.astype(v.dtype), v)
        return self.proj(o.reshape(o.shape[:2] + (-1,)))

    def _mlp(self, x):
        return x + self.down(nn.gelu(self.up(self.ln2(x))))

    def __call__(self, x):
        """Full causal pass. Returns the output and this layer's (k, v)."""
        q, k, v = self._split(self.ln1(x))
        t = x.shape[1]
        mask = jnp.tril(jnp.ones((t, t), bool))[None, None]
        x = x + self._attend(q, k, v, mask)
        return self._mlp(x), (k, v)

    def decode(self, x, k_cache, v_cache, pos):
        """One token at position ``pos``: x (B, 1, d); caches (B, max_len, H, D)."""
        q, k, v = self._split(self.ln1(x))
        k_cache = jax.lax.dynamic_update_slice_in_dim(k_cache, k, pos, axis=1)
        v_cache = jax.lax.dynamic_update_slice_in_dim(v_cache, v, pos, axis=1)
        mask = (jnp.arange(k_cache.shape[1]) <= pos)[None, None, None]
        x = x + self._attend(q, k_cache, v_cache, mask)
        return self._mlp(x), k_cache, v_cache


class Transformer(nn.Module):
    """Decoder-only transformer LM with learned positions and tied embeddings.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = preset("tiny", vocab_size=50)
        >>> model = Transformer(cfg)
        >>> params = model.init(jax.random.key(0), jnp.zeros((1, 8), jnp.int32))
        >>> model.apply(params, jnp.zeros((2, 8), jnp.int32)).shape
        (2, 8, 50)

    References:
        Vaswani et al. (2017); Radford et al. (2019).
    """

    config: TransformerConfig

    def setup(self):
        c, dt = self.config, _dtype(self.config)
        self.embed = nn.Embed(c.vocab_size, c.d_model, dtype=dt, param_dtype=dt,
                              embedding_init=nn.initializers.normal(0.02))
        self.pos = self.param("pos", nn.initializers.normal(0.01), (c.max_len, c.d_model), dt)
        self.blocks = [Block(c, name=f"block_{i}") for i in range(c.n_layers)]
        self.ln_f = nn.LayerNorm(dtype=dt, param_dtype=dt)

    def _logits(self, x):
        return self.embed.attend(self.ln_f(x))

    def __call__(self, tokens):
        """Logits ``(B, T, V)`` for tokens ``(B, T)``, T <= max_len."""
        return self.prefill(tokens)[0]

    def prefill(self, tokens):
        """Logits ``(B, T, V)`` and the :class:`KVCache` of positions 0..T-1."""
        t = tokens.shape[1]
        x = self.embed(tokens) + self.pos[:t]
        ks, vs = [], []
        for b in self.blocks:
            x, (k, v) = b(x)
            ks.append(k)
            vs.append(v)
        pad = ((0, 0), (0, 0), (0, self.config.max_len - t), (0, 0), (0, 0))
        cache = KVCache(jnp.pad(jnp.stack(ks), pad), jnp.pad(jnp.stack(vs), pad))
        return self._logits(x), cache

    def decode(self, token, cache: KVCache, pos):
        """Logits ``(B, V)`` for ``token`` ``(B,)`` at position ``pos``, and the new cache."""
        x = self.embed(token[:, None]) + jax.lax.dynamic_slice_in_dim(self.pos, pos, 1)[None]
        ks, vs = [], []
        for i, b in enumerate(self.blocks):
            x, k, v = b.decode(x, cache.k[i], cache.v[i], pos)
            ks.append(k)
            vs.append(v)
        return self._logits(x)[:, 0], KVCache(jnp.stack(ks), jnp.stack(vs))


def init_params(key: jax.Array, config: TransformerConfig):
    """Initial parameters of :class:`Transformer` for ``config``.

    Example:
        >>> import jax
        >>> p = init_params(jax.random.key(0), preset("tiny", 50))
        >>> sum(x.size for x in jax.tree.leaves(p)) == preset("tiny", 50).n_params
        True
    """
    dummy = jnp.zeros((1, config.max_len), jnp.int32)
    return Transformer(config).init(key, dummy)


def apply(params, config: TransformerConfig, tokens: jax.Array) -> jax.Array:
    """Logits ``(B, T, V)`` of the causal forward pass (not jitted; jit the caller).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = preset("tiny", 50)
        >>> apply(init_params(jax.random.key(0), cfg), cfg, jnp.zeros((3, 5), int)).shape
        (3, 5, 50)
    """
    return Transformer(config).apply(params, tokens)
