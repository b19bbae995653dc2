"""Damaged or inconsistent data files are refused before any training, naming the file."""

import gzip

import numpy as np
import pytest

from jaxcollapse.data import TextCorpus, build_vocab, load_mnist, read_idx


def _idx(shape, payload: bytes, ndim=None) -> bytes:
    ndim = len(shape) if ndim is None else ndim
    head = bytes([0, 0, 8, ndim]) + b"".join(int(s).to_bytes(4, "big") for s in shape)
    return head + payload


def _mnist(d, n_images=8_010, n_labels=None, labels=None, gz=True):
    n_labels = n_images if n_labels is None else n_labels
    x = _idx((n_images, 2, 2), bytes(4 * n_images))
    y = _idx((n_labels,), bytes(labels if labels is not None else
                                [i % 10 for i in range(n_labels)]))
    for name, raw in (("t10k-images-idx3-ubyte", x), ("t10k-labels-idx1-ubyte", y)):
        if gz:
            (d / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (d / name).write_bytes(raw)


def test_a_good_folder_loads(tmp_path):
    _mnist(tmp_path)
    d = load_mnist(tmp_path)
    assert d.train_x.shape == (8000, 2, 2) and d.test_x.shape == (10, 2, 2)


@pytest.mark.parametrize("damage, message", [
    (lambda raw: raw[: len(raw) // 2], "is a damaged gzip file"),
    (lambda raw: raw[:10] + b"\x00garbage after the gzip magic" * 3, "is a damaged gzip file"),
    (lambda raw: gzip.compress(_idx((), b"", ndim=0)), "gives 0 dimensions"),
    (lambda raw: gzip.compress(bytes([0, 0, 8, 3, 0, 0])), "header is cut short"),
    (lambda raw: gzip.compress(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"ab"),
     "payload has 2 bytes"),
])
def test_damaged_idx_files_name_the_file(tmp_path, damage, message):
    _mnist(tmp_path)
    f = tmp_path / "t10k-images-idx3-ubyte.gz"
    f.write_bytes(damage(f.read_bytes()))
    with pytest.raises(ValueError, match=message) as e:
        load_mnist(tmp_path)
    assert str(f) in str(e.value)


@pytest.mark.parametrize("kw, message, which", [
    (dict(n_labels=8_000), "holds 8000 labels but", "labels"),
    (dict(labels=[3] * 8_009 + [10]), "labels must lie in 0..9; found 10", "labels"),
    (dict(n_images=100), "the test split\nwould be empty", "images"),
])
def test_inconsistent_files_name_the_file(tmp_path, kw, message, which):
    _mnist(tmp_path, **kw)
    with pytest.raises(ValueError) as e:
        load_mnist(tmp_path)
    text = " ".join(str(e.value).split())
    assert " ".join(message.split()) in text
    stem = "t10k-labels-idx1-ubyte" if which == "labels" else "t10k-images-idx3-ubyte"
    assert stem in text


def test_images_that_are_not_3d_are_refused(tmp_path):
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(_idx((8_010,), bytes(8_010)))
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(_idx((8_010,), bytes(8_010)))
    with pytest.raises(ValueError, match="images must have 3 dimensions"):
        load_mnist(tmp_path)


def test_read_idx_of_a_plain_file(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(_idx((2, 3), bytes(range(6))))
    np.testing.assert_array_equal(read_idx(p), np.arange(6).reshape(2, 3))


def test_token_ids_outside_the_vocabulary_are_refused():
    v = build_vocab([["a", "b", "c"]])
    good = np.array([0, 1, 2], np.int32)
    assert TextCorpus(good, good, good, v, "ok").name == "ok"
    with pytest.raises(ValueError, match="TextCorpus valid holds token id 3, outside the "
                                         "vocabulary of 3 types"):
        TextCorpus(good, np.array([3]), good, v, "bad")
    with pytest.raises(ValueError, match="TextCorpus test holds token id -1"):
        TextCorpus(good, good, np.array([-1, 0]), v, "bad")
    with pytest.raises(TypeError, match="TextCorpus train must be a 1-D integer array"):
        TextCorpus(good.astype(float), good, good, v, "bad")
    with pytest.raises(TypeError, match="TextCorpus train must be a 1-D integer array"):
        TextCorpus(good[None], good, good, v, "bad")
