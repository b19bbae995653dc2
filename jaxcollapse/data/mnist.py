"""Image data: MNIST from idx ``.gz`` files, and scikit-learn's 8x8 digits.

The shared data folder holds only the official MNIST *test* split (10,000
images). :func:`load_mnist` carves a train/test split from it: the first 8,000
images train, the last 2,000 test (the official file is in no particular class
order, so both parts hold every digit). With the full MNIST (``train-*`` files
present too) the official 60,000 / 10,000 split is used instead.

References:
    LeCun, Cortes, Burges, the MNIST database; Kingma & Welling, Auto-Encoding
    Variational Bayes, arXiv 1312.6114 (2013); Shumailov et al., Nature 631 (2024),
    THEORY.md section 8 (the recursive VAE protocol).
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

N_TRAIN_FROM_TEST = 8_000


class ImageData(NamedTuple):
    """Images in [0, 1] with integer labels, split into train and test.

    Attributes:
        train_x: ``(n_train, h, w)`` float32 in [0, 1].
        train_y: ``(n_train,)`` int32 labels 0..9.
        test_x, test_y: the same for the test split.
        name: where the data came from.

    Example:
        >>> d = ImageData(np.zeros((3, 8, 8), np.float32), np.zeros(3, np.int32),
        ...               np.zeros((1, 8, 8), np.float32), np.zeros(1, np.int32), "toy")
        >>> d.train_x.shape, d.name
        ((3, 8, 8), 'toy')
    """

    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    name: str


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Reads an idx file (gzipped or not) into a uint8 array of its header's shape.

    Raises:
        ValueError: naming the file: a damaged gzip stream, a bad magic number, a
            non-uint8 type, a header with no dimensions or cut short, or a payload
            whose size differs from the header's shape.

    Example:
        >>> import tempfile, gzip, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "x.gz"
        >>> hdr = bytes([0, 0, 8, 1]) + (3).to_bytes(4, "big")
        >>> _ = p.write_bytes(gzip.compress(hdr + bytes([1, 2, 3])))
        >>> read_idx(p).tolist()
        [1, 2, 3]
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # truncated or corrupted stream
            why = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ValueError(f"{path} is a damaged gzip file ({why}); download it "
                             f"again") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path} is not an idx file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: only uint8 idx files are supported; type code {raw[2]:#x}")
    ndim = raw[3]
    if ndim == 0:
        raise ValueError(f"{path}: the idx header gives 0 dimensions; an idx file has at "
                         f"least 1 (labels 1, images 3)")
    if len(raw) < 4 + 4 * ndim:
        raise ValueError(f"{path}: the idx header is cut short ({len(raw)} bytes for "
                         f"{ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    payload = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(shape)):
        raise ValueError(f"{path}: payload has {payload.size} bytes, header says {shape}")
    return payload.reshape(shape)


def load_mnist(directory: str | os.PathLike) -> ImageData:
    """Loads MNIST from a folder of idx files (``.gz`` or not).

    Uses the official split if ``train-images-idx3-ubyte`` is present; otherwise
    splits the 10,000 test images into the first 8,000 (train) and last 2,000 (test).

    Raises:
        FileNotFoundError: the folder or the files are missing (names listed).
        ValueError: naming the file: a damaged file (see :func:`read_idx`), images
            that are not ``(n, h, w)``, labels that are not ``(n,)``, label and image
            counts that differ, labels outside 0..9, or a split that comes out empty
            (a test-only folder needs more than 8,000 images).

    Example:
        >>> import tempfile
        >>> load_mnist(tempfile.mkdtemp())
        Traceback (most recent call last):
        ...
        FileNotFoundError: data directory ... lacks MNIST files; looked for: ...idx3-ubyte[.gz], ...
    """
    d = Path(directory)
    if not d.is_dir():
        raise FileNotFoundError(f"data directory does not exist: {d}")

    def find(stem):
        for name in (stem + ".gz", stem):
            if (d / name).is_file():
                return d / name
        return None

    tx, ty = find("t10k-images-idx3-ubyte"), find("t10k-labels-idx1-ubyte")
    if tx is None or ty is None:
        raise FileNotFoundError(
            f"data directory {d} lacks MNIST files; looked for: "
            "t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]")
    test_x, test_y = _read_pair(tx, ty)
    rx, ry = find("train-images-idx3-ubyte"), find("train-labels-idx1-ubyte")
    if rx is not None and ry is not None:
        (train_x, train_y), name = _read_pair(rx, ry), "mnist (official split)"
        if len(train_x) == 0 or len(test_x) == 0:
            raise ValueError(f"{rx if len(train_x) == 0 else tx} holds no images")
    else:
        n = N_TRAIN_FROM_TEST
        if len(test_x) <= n:
            raise ValueError(f"{tx} holds {len(test_x)} images; without the train files "
                             f"the first {n:,} train and the rest test, so the test split "
                             f"would be empty (give the full test file, or the train "
                             f"files too)")
        train_x, train_y = test_x[:n], test_y[:n]
        test_x, test_y = test_x[n:], test_y[n:]
        name = "mnist (official test split: first 8000 train / last 2000 test)"
    f = lambda x: (x.astype(np.float32) / 255.0)
    return ImageData(f(train_x), train_y.astype(np.int32), f(test_x), test_y.astype(np.int32),
                     name)


def _read_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """One split's images ``(n, h, w)`` and labels ``(n,)`` in 0..9, checked."""
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3:
        raise ValueError(f"{images}: images must have 3 dimensions (n, height, width); "
                         f"the header gives shape {x.shape}")
    if y.ndim != 1:
        raise ValueError(f"{labels}: labels must have 1 dimension (n,); the header gives "
                         f"shape {y.shape}")
    if len(x) != len(y):
        raise ValueError(f"{labels} holds {len(y)} labels but {images} holds {len(x)} "
                         f"images; they must match")
    if y.size and int(y.max()) > 9:
        raise ValueError(f"{labels}: labels must lie in 0..9; found {int(y.max())}")
    return x, y


def load_digits(n_test: int = 297) -> ImageData:
    """scikit-learn's 1,797 8x8 digits scaled to [0, 1]; the last ``n_test`` are test.

    Needs scikit-learn (the ``dev`` extra), imported only here.

    Example:
        >>> d = load_digits()
        >>> d.train_x.shape, d.test_x.shape, float(d.train_x.max())
        ((1500, 8, 8), (297, 8, 8), 1.0)
    """
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the embedded 8x8 digits need scikit-learn: "
                          "pip install 'jaxcollapse[dev]' or pass a MNIST directory") from e
    b = _load()
    x = (b.images / 16.0).astype(np.float32)
    y = b.target.astype(np.int32)
    if not 0 < n_test < len(x):
        raise ValueError(f"n_test must be in [1, {len(x) - 1}]; got {n_test}")
    return ImageData(x[:-n_test], y[:-n_test], x[-n_test:], y[-n_test:],
                     "sklearn 8x8 digits (not MNIST)")
