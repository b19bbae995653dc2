"""Word-level text corpora: WikiText-2 and a vocabulary shared by every split.

Tokenisation follows the PyTorch ``word_language_model`` example, the reference for
published WikiText-2 perplexities: each line is split on whitespace and one
``<eos>`` is appended, so the tokenised WikiText-2 gives 2,088,628 / 217,646 /
245,569 train / valid / test tokens and a training vocabulary of 33,278 types.

References:
    Merity, Xiong, Bradbury, Socher. Pointer Sentinel Mixture Models,
    arXiv 1609.07843 (2016) (WikiText-2); Shumailov et al., Nature 631 (2024),
    THEORY.md section 8 (the recursive language-model protocol).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from jaxcollapse._validate import check_int, check_real

EOS = "<eos>"
UNK = "<unk>"

# (train, valid, test) file names of the layouts we accept, in the order tried.
LAYOUTS: tuple[tuple[str, str, str], ...] = (
    ("train.txt", "valid.txt", "test.txt"),
    ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"),
    ("wiki.train.raw", "wiki.valid.raw", "wiki.test.raw"),
)


@dataclasses.dataclass(frozen=True, eq=False)
class Vocabulary:
    """A word <-> id table. Ids are ordered by training frequency (ties: first seen).

    Attributes:
        itos: the words, ``itos[i]`` has id ``i``.

    Example:
        >>> v = build_vocab([["a", "b", "a"]])
        >>> v.itos, v.encode(["b", "a"]).tolist(), v.decode([0, 1])
        (('a', 'b'), [1, 0], ['a', 'b'])
    """

    itos: tuple[str, ...]

    def __post_init__(self):
        object.__setattr__(self, "stoi", {w: i for i, w in enumerate(self.itos)})

    def __len__(self) -> int:
        return len(self.itos)

    @property
    def fingerprint(self) -> str:
        """A short hash of the word list, stored in checkpoints to detect mismatches."""
        return hashlib.sha256("\n".join(self.itos).encode()).hexdigest()[:16]

    def encode(self, words: Iterable[str]) -> np.ndarray:
        """Maps words to int32 ids; unknown words map to ``<unk>`` if the vocabulary has it."""
        unk = self.stoi.get(UNK)
        ids = []
        for w in words:
            i = self.stoi.get(w, unk)
            if i is None:
                raise ValueError(f"word {w!r} is not in the vocabulary, which has no {UNK}")
            ids.append(i)
        return np.asarray(ids, dtype=np.int32)

    def decode(self, ids: Sequence[int]) -> list[str]:
        """Maps ids back to words."""
        return [self.itos[int(i)] for i in np.asarray(ids).reshape(-1)]


class _CorpusFields(NamedTuple):
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    vocab: Vocabulary
    name: str


class TextCorpus(_CorpusFields):
    """Three token streams (int32 arrays of ids) and their vocabulary.

    Attributes:
        train, valid, test: 1-D int32 token ids, ``<eos>`` at every line end.
        vocab: the :class:`Vocabulary` built from ``train``.
        name: where the text came from (printed in every report).

    Raises:
        TypeError, ValueError: on construction, naming the split, when a token stream
            is not a 1-D integer array or holds an id outside ``0..len(vocab) - 1``.

    Example:
        >>> v = build_vocab([["a", "b", "a"]])
        >>> c = TextCorpus(v.encode(["a", "b"]), v.encode(["b"]), v.encode(["a"]), v, "toy")
        >>> v.decode(c.train), c.name
        (['a', 'b'], 'toy')
        >>> TextCorpus(np.array([0, 2]), c.valid, c.test, v, "bad")
        Traceback (most recent call last):
        ...
        ValueError: TextCorpus train holds token id 2, outside the vocabulary of 2 types ...
    """

    __slots__ = ()

    def __new__(cls, train, valid, test, vocab, name):
        self = super().__new__(cls, train, valid, test, vocab, name)
        n = len(vocab)
        for split in ("train", "valid", "test"):
            ids = np.asarray(getattr(self, split))
            if ids.ndim != 1 or ids.dtype.kind not in "iu":
                raise TypeError(f"TextCorpus {split} must be a 1-D integer array of token "
                                f"ids; got {ids.dtype} of shape {ids.shape}")
            if ids.size and (int(ids.min()) < 0 or int(ids.max()) >= n):
                bad = int(ids.max()) if int(ids.max()) >= n else int(ids.min())
                raise ValueError(f"TextCorpus {split} holds token id {bad}, outside the "
                                 f"vocabulary of {n} types (ids 0..{n - 1}); encode the "
                                 f"text with the corpus's vocabulary")
        return self


def build_vocab(lines: Iterable[Sequence[str]], *, max_size: int | None = None,
                min_count: int = 1) -> Vocabulary:
    """Builds a vocabulary from tokenised lines, most frequent words first.

    Args:
        lines: iterable of token lists.
        max_size: keep at most this many types; the rest become ``<unk>``.
        min_count: words seen fewer times become ``<unk>``.

    Returns:
        A :class:`Vocabulary`; it contains ``<unk>`` only if some word was dropped
        or ``<unk>`` occurs in the text.

    Example:
        >>> build_vocab([["x", "y", "y", "z"]], max_size=2).itos
        ('y', '<unk>')
    """
    if max_size is not None:
        max_size = check_int(max_size, "max_size", minimum=2)  # a word and <unk>
    counts: collections.Counter = collections.Counter()
    for toks in lines:
        counts.update(toks)
    if not counts:
        raise ValueError("cannot build a vocabulary from empty text")
    # Counter preserves first-seen order, and sorted() is stable: ties keep it.
    words = sorted(counts, key=lambda w: -counts[w])
    kept = [w for w in words if counts[w] >= min_count or w in (EOS, UNK)]
    if max_size is not None and len(kept) > max_size:
        kept = kept[: max_size - (0 if UNK in kept[:max_size] else 1)]
    if len(kept) < len(words) and UNK not in kept:
        kept.append(UNK)
    return Vocabulary(tuple(kept))


def tokenize_lines(text: str) -> list[list[str]]:
    """Splits text into lines of whitespace tokens with ``<eos>`` at each line end.

    Example:
        >>> tokenize_lines(" = A = \\n \\nb c\\n")
        [['=', 'A', '=', '<eos>'], ['<eos>'], ['b', 'c', '<eos>']]
    """
    return [line.split() + [EOS] for line in text.splitlines()]


def read_text(path: str | os.PathLike, name: str = "path") -> str:
    """Reads a UTF-8 text file, raising ``ValueError`` if it is empty or not text.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "e.txt"
        >>> _ = p.write_bytes(b"")
        >>> read_text(p)
        Traceback (most recent call last):
        ...
        ValueError: path is an empty file: ...e.txt
    """
    path = Path(path)
    data = path.read_bytes()
    if not data.strip():
        raise ValueError(f"{name} is an empty file: {path}")
    if b"\x00" in data[:65536]:
        raise ValueError(f"{name} is not a text file (it contains NUL bytes): {path}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{name} is not UTF-8 text: {path} ({e.reason} at byte {e.start})") \
            from None


def find_split_files(directory: str | os.PathLike) -> tuple[Path, Path, Path]:
    """Finds the (train, valid, test) files of a WikiText-style directory.

    Raises:
        FileNotFoundError: naming the directory and every file name looked for.

    Example:
        >>> import tempfile
        >>> d = Path(tempfile.mkdtemp())
        >>> for n in ("wiki.train.tokens", "wiki.valid.tokens", "wiki.test.tokens"):
        ...     _ = (d / n).write_text("a b")
        >>> [p.name for p in find_split_files(d)]
        ['wiki.train.tokens', 'wiki.valid.tokens', 'wiki.test.tokens']
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"data directory does not exist: {d}")
    for names in LAYOUTS:
        paths = tuple(d / n for n in names)
        if all(p.is_file() for p in paths):
            return paths  # type: ignore[return-value]
    looked = "; ".join(", ".join(n) for n in LAYOUTS)
    raise FileNotFoundError(f"data directory {d} lacks the WikiText files; looked for: {looked}")


HF_SPLITS = ("train", "validation", "test")


def _hugging_face_splits(directory) -> tuple[list[str], bool]:
    """The three splits of a Hugging Face ``DatasetDict.save_to_disk`` copy of
    WikiText-2 (``Salesforce/wikitext``), read locally with the optional ``datasets``
    package: one row per line, as in the text files. Never touches the network."""
    try:
        import datasets
    except ImportError:
        raise ImportError(f"{directory} is a Hugging Face dataset folder; reading it needs "
                          f"the optional 'datasets' package (pip install datasets)") from None
    dd = datasets.load_from_disk(str(directory))
    missing = [s for s in HF_SPLITS if s not in dd]
    if missing:
        raise FileNotFoundError(f"Hugging Face dataset at {directory} lacks split(s) {missing}; "
                                f"looked for {HF_SPLITS}")
    texts = []
    for split in HF_SPLITS:
        rows = dd[split]["text"]
        if not rows:
            raise ValueError(f"{split} split of {directory} is empty")
        texts.append("\n".join(r.rstrip("\n") for r in rows) + "\n")
    raw = not any("<unk>" in r for r in dd["train"]["text"][:20000])
    return texts, raw


def _cap_unk_share(train_lines, test_lines, vocab: Vocabulary) -> float:
    """The share of test tokens a capped ``vocab`` maps to ``<unk>`` although the
    whole training split's vocabulary has them (the text's own ``<unk>`` and words
    never seen in training do not count: no cap would keep them).

    Example:
        >>> train = [["a", "a", "b", "a", "c"]]
        >>> v = build_vocab(train, max_size=2)  # "a" and <unk>
        >>> _cap_unk_share(train, [["a", "c", "b", "a"]], v)
        0.5
    """
    full = {w for line in train_lines for w in line}
    words = [w for line in test_lines for w in line]
    lost = sum(1 for w in words if w != UNK and w in full and w not in vocab.stoi)
    return lost / max(len(words), 1)


def _split_lines(directory):
    """(lines of each split, whether the layout is raw)."""
    if (Path(directory) / "dataset_dict.json").is_file():
        texts, raw = _hugging_face_splits(directory)
        return [tokenize_lines(t) for t in texts], raw
    paths = find_split_files(directory)
    return [tokenize_lines(read_text(p, f"{s} file")) for s, p in
            zip(("train", "valid", "test"), paths, strict=True)], paths[0].suffix == ".raw"


def cap_unk_share(directory: str | os.PathLike, vocab: Vocabulary) -> float:
    """The share of WikiText-2's test tokens that ``vocab`` (a capped vocabulary, e.g.
    ``load_wikitext2(directory, max_vocab=...).vocab``) maps to ``<unk>`` although the
    whole training split has them; the text's own ``<unk>`` tokens do not count.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for s, text in (("train", "a a b a c"), ("valid", "a"), ("test", "a c b a")):
        ...     _ = (d / f"{s}.txt").write_text(text)
        >>> round(cap_unk_share(d, load_wikitext2(d, max_vocab=3).vocab), 3)  # b, c lost
        0.4
        >>> cap_unk_share(d, ["a", "b"])
        Traceback (most recent call last):
        ...
        TypeError: vocab must be a Vocabulary (load_wikitext2(...).vocab); got list
    """
    if not isinstance(vocab, Vocabulary):
        raise TypeError(f"vocab must be a Vocabulary (load_wikitext2(...).vocab); got "
                        f"{type(vocab).__name__}")
    lines, _ = _split_lines(directory)
    return _cap_unk_share(lines[0], lines[2], vocab)


def load_wikitext2(directory: str | os.PathLike, *, max_vocab: int | None = None,
                   max_train_tokens: int | None = None,
                   max_unk_share: float | None = None) -> TextCorpus:
    """Loads WikiText-2 (tokenised or raw layout) as word-level token ids.

    The vocabulary is built from the *whole* training split (33,278 types for the
    tokenised version, ``<eos>`` included), unless ``max_vocab`` caps it (rarer words
    then become ``<unk>``; perplexities are no longer comparable with published ones).

    Args:
        directory: a folder with ``train.txt/valid.txt/test.txt``,
            ``wiki.{train,valid,test}.tokens`` or ``wiki.{train,valid,test}.raw``,
            or a local Hugging Face ``save_to_disk`` copy (``dataset_dict.json``;
            needs the optional ``datasets`` package).
        max_vocab: optional cap on the vocabulary size.
        max_train_tokens: optional: keep only the first this-many training tokens
            (the vocabulary is still built from the whole split).
        max_unk_share: optional: refuse a ``max_vocab`` that maps more than this share
            of the test tokens to ``<unk>`` (words of the training vocabulary dropped
            by the cap; the text's own ``<unk>`` tokens do not count; see
            :func:`cap_unk_share`).

    Returns:
        A :class:`TextCorpus`.

    Raises:
        FileNotFoundError: missing directory or files (the names looked for are listed).
        ValueError: an empty or non-text file; a cap over ``max_unk_share``.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for s in ("train", "valid", "test"):
        ...     _ = (d / f"{s}.txt").write_text(" = Title = \\n the cat sat \\n")
        >>> c = load_wikitext2(d)
        >>> len(c.train), len(c.vocab), c.vocab.decode(c.test[:4])
        (8, 6, ['=', 'Title', '=', '<eos>'])

    References:
        Merity et al., arXiv 1609.07843 (2016).
    """
    if max_vocab is not None:
        max_vocab = check_int(max_vocab, "max_vocab", minimum=2)
    if max_train_tokens is not None:
        max_train_tokens = check_int(max_train_tokens, "max_train_tokens", minimum=2)
    if max_unk_share is not None:
        max_unk_share = float(check_real(max_unk_share, "max_unk_share", minimum=0.0,
                                         maximum=1.0))
    lines, raw = _split_lines(directory)
    vocab = build_vocab(lines[0], max_size=max_vocab)
    if UNK not in vocab.stoi and any(w not in vocab.stoi for ls in lines[1:] for line in ls
                                     for w in line):
        # The raw layout has no <unk>: held-out words unseen in train need one.
        vocab = Vocabulary(vocab.itos + (UNK,))
    ids = [vocab.encode(w for line in ls for w in line) for ls in lines]
    if max_train_tokens is not None:
        if max_train_tokens < 2:
            raise ValueError(f"max_train_tokens must be >= 2; got {max_train_tokens}")
        ids[0] = ids[0][:max_train_tokens]
    name = "wikitext-2" + ("-raw" if raw else "")
    if max_vocab is not None and max_unk_share is not None:
        share = _cap_unk_share(lines[0], lines[2], vocab)
        if share > max_unk_share:
            raise ValueError(f"max_vocab={max_vocab} maps {share:.1%} of the test tokens to "
                             f"{UNK} (allowed: max_unk_share={max_unk_share:g}), and its "
                             f"perplexities cannot be set beside published ones; raise "
                             f"max_vocab, drop the cap (None; on the command line "
                             f"--max-vocab 0) or accept the share (max_unk_share=1.0; on "
                             f"the command line --allow-unk)")
    if max_vocab is not None:
        name += f" (vocab capped at {len(vocab)})"
    return TextCorpus(ids[0], ids[1], ids[2], vocab, name)
