"""Data loaders for the learned-generator experiments (WikiText-2, MNIST, digits)."""

from jaxcollapse.data.corpus import default_corpus
from jaxcollapse.data.mnist import ImageData, load_digits, load_mnist, read_idx
from jaxcollapse.data.wikitext import (
    EOS,
    UNK,
    TextCorpus,
    Vocabulary,
    build_vocab,
    load_wikitext2,
    tokenize_lines,
)

__all__ = [
    "EOS",
    "UNK",
    "ImageData",
    "TextCorpus",
    "Vocabulary",
    "build_vocab",
    "default_corpus",
    "load_digits",
    "load_mnist",
    "load_wikitext2",
    "read_idx",
    "tokenize_lines",
]
