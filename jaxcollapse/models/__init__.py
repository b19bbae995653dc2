"""Flax networks for the learned-generator experiments: a transformer LM and a VAE."""

from jaxcollapse.models.generate import beam_search, sample
from jaxcollapse.models.train import (
    EvalResult,
    TrainState,
    data_parallel,
    evaluate,
    init_state,
    loss_fn,
    make_optimizer,
    make_train_step,
    sample_windows,
    sequence_perplexity,
    train_step,
)
from jaxcollapse.models.transformer import (
    PRESETS,
    KVCache,
    Transformer,
    TransformerConfig,
    apply,
    init_params,
    preset,
)

__all__ = [
    "PRESETS",
    "EvalResult",
    "KVCache",
    "TrainState",
    "Transformer",
    "TransformerConfig",
    "apply",
    "beam_search",
    "data_parallel",
    "evaluate",
    "init_params",
    "init_state",
    "loss_fn",
    "make_optimizer",
    "make_train_step",
    "preset",
    "sample",
    "sample_windows",
    "sequence_perplexity",
    "train_step",
]
