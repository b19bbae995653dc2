"""Validation at the public boundary of the learned models (``run_lm``, ``run_vae``
and their protocols): settings and data are checked in Python before anything is
built or trained, and every error names the argument, its value and what is
allowed."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from jaxcollapse._validate import check_key

__all__ = ["check_image_data", "check_optimiser", "check_protocol_ints", "check_run_key"]


def check_run_key(key: Any) -> Any:
    """A single JAX PRNG key for ``run_lm``/``run_vae`` (a plain integer is refused).

    Example:
        >>> check_run_key(0)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: key must be a JAX PRNG key from jax.random.key(seed); got 0...
    """
    key = check_key(key)
    if key.shape != ():
        raise ValueError(f"key must be a single PRNG key (shape ()); got shape {key.shape}")
    return key


def check_protocol_ints(protocol: Any, names: tuple[str, ...], minimum: int = 1) -> None:
    """Each field in ``names`` of a protocol dataclass is an ``int >= minimum`` (never
    a bool or a float).

    Example:
        >>> import types
        >>> check_protocol_ints(types.SimpleNamespace(steps=2.5), ("steps",))
        Traceback (most recent call last):
        ...
        TypeError: steps must be a positive integer; got 2.5
    """
    allowed = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
    for f in names:
        v = getattr(protocol, f)
        if isinstance(v, bool) or not isinstance(v, int | np.integer):
            raise TypeError(f"{f} must be {allowed}; got {v!r}")
        if v < minimum:
            raise ValueError(f"{f} must be {allowed}; got {v!r}")


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name} must be a real number; got {value!r}")
    return float(value)


def check_optimiser(learning_rate: Any, weight_decay: Any = 0.0) -> None:
    """A finite ``learning_rate > 0`` and a finite ``weight_decay >= 0``.

    Example:
        >>> check_optimiser(1e-3, -0.1)
        Traceback (most recent call last):
        ...
        ValueError: weight_decay must be finite and >= 0 (0 turns it off); got -0.1
    """
    lr = _real(learning_rate, "learning_rate")
    if not (math.isfinite(lr) and lr > 0):
        raise ValueError(f"learning_rate must be finite and > 0; got {learning_rate!r}")
    wd = _real(weight_decay, "weight_decay")
    if not (math.isfinite(wd) and wd >= 0):
        raise ValueError(f"weight_decay must be finite and >= 0 (0 turns it off); got "
                         f"{weight_decay!r}")


def _check_split(x: Any, y: Any, split: str) -> None:
    xa, ya = np.asarray(x), np.asarray(y)
    if xa.dtype.kind != "f":
        hint = " (divide uint8 pixels by 255)" if xa.dtype.kind in "iub" else ""
        raise TypeError(f"data.{split}_x must be floating pixels in [0, 1]{hint}; got dtype "
                        f"{xa.dtype}")
    if xa.ndim != 3 or xa.shape[0] < 1:
        raise ValueError(f"data.{split}_x must have shape (n, height, width) with n >= 1; "
                         f"got {xa.shape}")
    if not np.all(np.isfinite(xa)):
        raise ValueError(f"data.{split}_x must be finite; got NaN or inf")
    lo, hi = float(xa.min()), float(xa.max())
    if lo < 0 or hi > 1:
        hint = " (pixels in [0, 255]: divide by 255)" if hi <= 255 and lo >= 0 else ""
        raise ValueError(f"data.{split}_x must hold pixels in [0, 1] (the decoder is "
                         f"Bernoulli); got values in [{lo:g}, {hi:g}]{hint}; they are not "
                         f"rescaled silently")
    if ya.dtype.kind not in "iu" or ya.shape != (xa.shape[0],):
        raise ValueError(f"data.{split}_y must be {xa.shape[0]} integer labels (one per "
                         f"image); got dtype {ya.dtype}, shape {ya.shape}")
    if ya.size and (ya.min() < 0 or ya.max() > 9):
        raise ValueError(f"data.{split}_y must hold labels 0..9 (the digit classifier has "
                         f"10 classes); got values in [{ya.min()}, {ya.max()}]")


def check_image_data(data: Any) -> None:
    """An :class:`~jaxcollapse.data.ImageData` the VAE protocol can use: float pixels in
    [0, 1] of shape ``(n, h, w)``, finite, with one label 0..9 per image, in both
    splits. Images in [0, 255] are refused (not rescaled), with the fix in the message.

    Example:
        >>> from jaxcollapse.data import ImageData
        >>> x = np.full((2, 4, 4), 255.0, np.float32)
        >>> check_image_data(ImageData(x, np.zeros(2, int), x, np.zeros(2, int), "toy"))
        Traceback (most recent call last):
        ...
        ValueError: data.train_x must hold pixels in [0, 1] (the decoder is Bernoulli); got values in [255, 255] (pixels in [0, 255]: divide by 255); they are not rescaled silently
    """  # noqa: E501
    from jaxcollapse.data import ImageData

    if not isinstance(data, ImageData):
        raise TypeError(f"data must be a jaxcollapse.data.ImageData (train and test "
                        f"images with labels, e.g. from jaxcollapse.data.load_mnist); "
                        f"got {type(data).__name__}")
    for split in ("train", "test"):
        _check_split(getattr(data, f"{split}_x"), getattr(data, f"{split}_y"), split)
