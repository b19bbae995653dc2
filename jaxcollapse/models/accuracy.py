"""Next-token accuracy that measures something: top-1 and top-5 on targets that
are not ``<unk>``, the ``<unk>`` share among targets and predictions, and
accuracy by frequency band of the target word (head, torso, tail by training-set
rank), so the loss of the tails (THEORY.md section 4) shows in accuracy as it
does in the unigram statistics.

With a capped vocabulary, plain accuracy mostly counts ``<unk>`` predicted for
``<unk>``: a model that always predicts ``<unk>`` scores the ``<unk>`` share of
the test tokens (0.254 on WikiText-2 with 2,048 words).

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8; Dohmatob et al.,
    ICML 2024 (tails, THEORY.md section 4).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcollapse._fusion import top_k_indices
from jaxcollapse.models.train import EvalResult, _padded_eval_blocks
from jaxcollapse.models.transformer import TransformerConfig, apply

BANDS = ("head", "torso", "tail")


def frequency_bands(train_counts: np.ndarray, cuts: tuple[float, float] = (0.5, 0.9)
                    ) -> np.ndarray:
    """The band of every type by training-set rank: ``0`` (head) for the most
    frequent types that carry the first ``cuts[0]`` of the training tokens, ``1``
    (torso) up to ``cuts[1]``, ``2`` (tail) for the rest (types never seen too).

    Args:
        train_counts: ``(V,)`` token counts of the training text.
        cuts: cumulative-mass boundaries, ``0 < cuts[0] < cuts[1] < 1``.

    Returns:
        ``(V,)`` int band per type.

    Example:
        >>> frequency_bands(np.array([50, 30, 10, 6, 4, 0])).tolist()
        [0, 1, 1, 2, 2, 2]
    """
    c = np.asarray(train_counts, np.float64)
    if c.ndim != 1 or c.sum() <= 0 or np.any(c < 0):
        raise ValueError("train_counts must be a 1-D array of non-negative counts, not all 0")
    if not 0 < cuts[0] < cuts[1] < 1:
        raise ValueError(f"cuts must satisfy 0 < cuts[0] < cuts[1] < 1; got {cuts}")
    order = np.argsort(-c, kind="stable")
    before = np.cumsum(c[order]) - c[order]  # mass of the more frequent types
    band = np.where(before < cuts[0] * c.sum(), 0, np.where(before < cuts[1] * c.sum(), 1, 2))
    band[c[order] == 0] = 2
    out = np.empty(len(c), np.int64)
    out[order] = band
    return out


def accuracy_stats(targets: np.ndarray, top1: np.ndarray, in_top5: np.ndarray, *,
                   unk_id: int | None, bands: np.ndarray) -> dict:
    """Accuracies from per-token predictions.

    Args:
        targets: ``(N,)`` target ids.
        top1: ``(N,)`` the model's most likely token at each position.
        in_top5: ``(N,)`` bool: the target is among the five most likely tokens.
        unk_id: the ``<unk>`` id (``None``: the vocabulary has none).
        bands: ``(V,)`` from :func:`frequency_bands`.

    Returns:
        ``top1_known`` and ``top5_known`` (accuracy on targets that are not
        ``<unk>``), ``unk_targets`` and ``unk_predictions`` (shares),
        ``top1_head``/``top1_torso``/``top1_tail`` (top-1 accuracy on the known
        targets of each band; ``None`` for an empty band) and ``band_tokens``
        (known targets per band).

    Example:
        >>> s = accuracy_stats(np.array([0, 1, 2, 2]), np.array([0, 0, 2, 0]),
        ...                    np.array([1, 1, 1, 0], bool), unk_id=0,
        ...                    bands=np.array([0, 0, 2]))
        >>> s["top1_known"], s["unk_targets"], s["unk_predictions"], s["top1_tail"]
        (0.3333333333333333, 0.25, 0.75, 0.5)
    """
    t, p, k5 = (np.asarray(a).reshape(-1) for a in (targets, top1, in_top5))
    known = np.ones(len(t), bool) if unk_id is None else t != unk_id
    hit = (p == t) & known
    n_known = int(known.sum())
    out = dict(top1_known=float(hit.sum() / n_known) if n_known else None,
               top5_known=float((k5 & known).sum() / n_known) if n_known else None,
               unk_targets=0.0 if unk_id is None else float((~known).mean()),
               unk_predictions=0.0 if unk_id is None else float((p == unk_id).mean()))
    tb = np.asarray(bands)[t]
    counts = []
    for b, name in enumerate(BANDS):
        m = known & (tb == b)
        counts.append(int(m.sum()))
        out[f"top1_{name}"] = float(hit[m].mean()) if m.any() else None
    out["band_tokens"] = counts
    return out


@functools.partial(jax.jit, static_argnames=("config",))
def _predict(params, config, inputs, targets):
    logits = apply(params, config, inputs)
    logits = logits.astype(jnp.promote_types(logits.dtype, jnp.float32))
    top5 = top_k_indices(logits, 5)  # kept apart from the comparison (_fusion)
    # the same fused NLL as evaluate's (token_nll), from the same logits
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
    return top5[..., 0], jnp.any(top5 == targets[..., None], axis=-1), nll


def scored_predictions(params, config: TransformerConfig, stream: np.ndarray, *,
                       seq_len: int | None = None, batch_size: int = 32):
    """``(result, targets, top1, in_top5)``: :func:`~jaxcollapse.models.train.evaluate`'s
    :class:`~jaxcollapse.models.train.EvalResult` and :func:`predictions`' arrays from
    one forward pass over ``stream`` (one pass instead of two over a test split).

    Example:
        >>> import jax
        >>> from jaxcollapse.models import evaluate, init_state, make_optimizer, preset
        >>> cfg = preset("tiny", 20)
        >>> p = init_state(jax.random.key(0), cfg, make_optimizer()).params
        >>> r, t, top1, k5 = scored_predictions(p, cfg, np.arange(50) % 20, seq_len=16)
        >>> e = evaluate(p, cfg, np.arange(50) % 20, seq_len=16)
        >>> r.n_tokens == e.n_tokens == len(t), r.n_correct == e.n_correct
        (True, True)
        >>> bool(abs(r.perplexity - e.perplexity) < 1e-4 * e.perplexity)
        True
    """
    inputs, targets_p, weights, nb = _padded_eval_blocks(stream, config, seq_len,
                                                        batch_size)
    padded = len(inputs)
    top1, k5, nll = [], [], []
    for s in range(0, padded, batch_size):
        out = _predict(params, config, inputs[s:s + batch_size], targets_p[s:s + batch_size])
        for acc, a in zip((top1, k5, nll), out, strict=True):
            acc.append(np.asarray(a))
    keep = np.asarray(weights[:nb], bool)
    top1, k5, nll = (np.concatenate(a)[:nb][keep] for a in (top1, k5, nll))
    targets = np.asarray(targets_p[:nb])[keep]
    result = EvalResult(float(np.sum(nll, dtype=np.float64)), int(len(targets)),
                        int(np.sum(top1 == targets)))
    return result, targets, top1, k5


def predictions(params, config: TransformerConfig, stream: np.ndarray, *,
                seq_len: int | None = None, batch_size: int = 32):
    """``(targets, top1, in_top5)`` for every next-token position of ``stream``,
    scored in blocks of ``seq_len`` as :func:`~jaxcollapse.models.train.evaluate`.

    Example:
        >>> import jax
        >>> from jaxcollapse.models import init_state, make_optimizer, preset
        >>> cfg = preset("tiny", 20)
        >>> p = init_state(jax.random.key(0), cfg, make_optimizer()).params
        >>> t, top1, k5 = predictions(p, cfg, np.arange(50) % 20, seq_len=16)
        >>> t.shape, bool(np.all((top1 == t) <= k5))
        ((49,), True)
    """
    return scored_predictions(params, config, stream, seq_len=seq_len,
                              batch_size=batch_size)[1:]
