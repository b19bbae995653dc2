"""Loaders: published WikiText-2 counts, layouts, MNIST idx, digits, bad input."""

import gzip

import numpy as np
import pytest

from jaxcollapse.data import (
    EOS,
    UNK,
    build_vocab,
    default_corpus,
    load_digits,
    load_mnist,
    load_wikitext2,
    read_idx,
)


@pytest.fixture(scope="module")
def wikitext(shared_data):
    return load_wikitext2(shared_data / "wikitext-2")


def test_wikitext2_published_counts(wikitext):
    # Merity et al. (2016) / PyTorch word_language_model: tokens with one <eos> per line.
    assert (len(wikitext.train), len(wikitext.valid), len(wikitext.test)) == (
        2_088_628, 217_646, 245_569)
    assert len(wikitext.vocab) == 33_278
    assert wikitext.vocab.itos[0] == "the"
    # every held-out token is a training type; the <eos> count equals the line count
    eos = wikitext.vocab.stoi[EOS]
    assert int((wikitext.train == eos).sum()) == 36_718
    assert int((wikitext.test == eos).sum()) == 4_358
    words = (wikitext.vocab.decode(wikitext.test[:4]))
    assert words == [EOS, "=", "Robert", "<unk>"]


def test_wikitext2_raw_layout_and_vocab_cap(shared_data, wikitext):
    raw = load_wikitext2(shared_data / "wikitext-2-raw", max_train_tokens=1000)
    assert raw.name == "wikitext-2-raw"
    assert len(raw.train) == 1000 and len(raw.valid) == 217_646
    assert UNK in raw.vocab.stoi  # held-out words unseen in train need <unk>
    capped = load_wikitext2(shared_data / "wikitext-2", max_vocab=100)
    assert len(capped.vocab) == 100 and len(capped.train) == len(wikitext.train)
    assert capped.vocab.itos[:99] == wikitext.vocab.itos[:99] or UNK in capped.vocab.itos[:99]
    # capping maps exactly the rarer words to <unk>
    unk = capped.vocab.stoi[UNK]
    kept = {capped.vocab.stoi[w] for w in capped.vocab.itos}
    assert set(np.unique(capped.train).tolist()) <= kept
    n_rare = np.isin(wikitext.train, [wikitext.vocab.stoi[w] for w in wikitext.vocab.itos
                                      if w not in capped.vocab.stoi]).sum()
    n_unk_orig = (wikitext.train == wikitext.vocab.stoi[UNK]).sum()
    assert (capped.train == unk).sum() == n_rare + n_unk_orig


def test_tokens_layout(tmp_path):
    for s in ("train", "valid", "test"):
        (tmp_path / f"wiki.{s}.tokens").write_text(" a b \n \n c a\n")
    c = load_wikitext2(tmp_path)
    assert c.vocab.decode(c.train) == ["a", "b", EOS, EOS, "c", "a", EOS]
    assert c.vocab.itos == (EOS, "a", "b", "c")  # by frequency (3, 2, 1, 1), ties: first seen


def test_wikitext_bad_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_wikitext2(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="looked for: train.txt, valid.txt, test.txt"):
        load_wikitext2(tmp_path)
    for s in ("train", "valid", "test"):
        (tmp_path / f"{s}.txt").write_text("x y\n")
    (tmp_path / "valid.txt").write_text("  \n")
    with pytest.raises(ValueError, match="valid file is an empty file"):
        load_wikitext2(tmp_path)
    (tmp_path / "valid.txt").write_bytes(b"\x00\x01\x02binary")
    with pytest.raises(ValueError, match="not a text file"):
        load_wikitext2(tmp_path)
    (tmp_path / "valid.txt").write_bytes(b"\xff\xfe caf\xe9")
    with pytest.raises(ValueError, match="not UTF-8"):
        load_wikitext2(tmp_path)
    with pytest.raises(ValueError, match="max_size"):
        build_vocab([["a"]], max_size=1)


def test_default_corpus_is_labelled():
    c = default_corpus()
    assert "NOT WikiText-2" in c.name
    assert len(c.valid) > 1000 and len(c.test) > 1000
    assert c.vocab.stoi[EOS] < 10


def test_mnist_split(shared_data):
    m = load_mnist(shared_data / "mnist")
    assert m.train_x.shape == (8000, 28, 28) and m.test_x.shape == (2000, 28, 28)
    assert m.train_y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    counts = np.bincount(np.concatenate([m.train_y, m.test_y]), minlength=10)
    # published label counts of the official test split
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert m.train_x.min() == 0.0 and m.train_x.max() == 1.0
    assert m.train_x.dtype == np.float32


def test_idx_errors(tmp_path):
    p = tmp_path / "bad.gz"
    p.write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 5, 1, 2])))
    with pytest.raises(ValueError, match="payload has 2 bytes"):
        read_idx(p)
    p.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="bad magic"):
        read_idx(p)
    with pytest.raises(FileNotFoundError, match="lacks MNIST files"):
        load_mnist(tmp_path)


def test_digits():
    pytest.importorskip("sklearn")
    d = load_digits()
    assert d.train_x.shape == (1500, 8, 8) and d.test_x.shape == (297, 8, 8)
    assert 0.0 <= d.train_x.min() and d.train_x.max() == 1.0
    with pytest.raises(ValueError, match="n_test"):
        load_digits(n_test=0)


def test_hugging_face_layout_matches_text_files(tmp_path, monkeypatch):
    """A local Hugging Face copy (rows = lines) loads exactly as the text files do.
    The optional `datasets` package is stood in for by a stub reading our rows."""
    import sys
    import types

    from jaxcollapse.data import wikitext as wt

    texts = {"train": " = T = \n the cat sat \n \n a b the \n",
             "valid": " the cat \n", "test": " b a \n \n"}
    files = tmp_path / "files"
    files.mkdir()
    for s, t in texts.items():
        (files / f"{s}.txt").write_text(t)
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "dataset_dict.json").write_text('{"splits": ["train", "validation", "test"]}')
    rows = {"train": texts["train"].splitlines(keepends=True),
            "validation": texts["valid"].splitlines(keepends=True),
            "test": texts["test"].splitlines(keepends=True)}
    stub = types.SimpleNamespace(
        load_from_disk=lambda d: {k: {"text": v} for k, v in rows.items()})
    monkeypatch.setitem(sys.modules, "datasets", stub)
    a, b = wt.load_wikitext2(files), wt.load_wikitext2(hf)
    assert a.vocab.itos == b.vocab.itos
    for x, y in ((a.train, b.train), (a.valid, b.valid), (a.test, b.test)):
        np.testing.assert_array_equal(x, y)
    rows.pop("validation")
    with pytest.raises(FileNotFoundError, match="lacks split"):
        wt.load_wikitext2(hf)
    monkeypatch.setitem(sys.modules, "datasets", None)
    with pytest.raises(ImportError, match="optional 'datasets' package"):
        wt.load_wikitext2(hf)
