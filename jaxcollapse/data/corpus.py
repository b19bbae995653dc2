"""The embedded default corpus: CPython's help-topic text (``pydoc_data.topics``).

``jaxcollapse run lm`` uses it when no data directory is given, so the command
works with no download. It is *not* WikiText-2 and every report says so; its
perplexities are not comparable with published WikiText-2 results.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8 (the protocol it feeds).
"""

from __future__ import annotations

import re

from jaxcollapse.data.wikitext import EOS, TextCorpus, build_vocab

NAME = "pydoc-topics (CPython help text; NOT WikiText-2)"
_WORD = re.compile(r"\w+|[^\w\s]")


def default_corpus(*, min_count: int = 3) -> TextCorpus:
    """The CPython help topics as a word-level corpus split 80/10/10 by topic.

    Words (runs of letters/digits) and punctuation marks are tokens; ``<eos>`` ends
    each non-blank line; as in WikiText-2, words seen fewer than ``min_count`` times
    in train become ``<unk>``. Topics are assigned to splits in a fixed order
    (every 10th topic to valid, the next to test), so the split is reproducible.

    Returns:
        A :class:`~jaxcollapse.data.TextCorpus` named ``NAME``.

    Example:
        >>> c = default_corpus()
        >>> c.name.startswith("pydoc-topics"), len(c.train) > 50_000
        (True, True)
    """
    from pydoc_data.topics import topics

    splits: list[list[list[str]]] = [[], [], []]
    for i, k in enumerate(sorted(topics)):
        which = 1 if i % 10 == 0 else 2 if i % 10 == 1 else 0
        for line in topics[k].splitlines():
            toks = _WORD.findall(line)
            if toks:
                splits[which].append(toks + [EOS])
    vocab = build_vocab(splits[0], min_count=min_count)
    ids = [vocab.encode(w for line in s for w in line) for s in splits]
    return TextCorpus(ids[0], ids[1], ids[2], vocab, NAME)


__all__ = ["NAME", "default_corpus"]
