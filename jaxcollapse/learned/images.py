"""Image grids of generated samples, written with Pillow (the ``images`` extra).

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8 (the VAE samples).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from jaxcollapse.io import atomic_write_bytes


def _pil_image():
    try:
        from PIL import Image
    except ImportError as e:  # pragma: no cover - exercised only without Pillow
        raise ImportError("writing PNG sample grids needs Pillow: "
                          "pip install 'jaxcollapse[images]'") from e
    return Image


def image_grid(images: np.ndarray, ncol: int = 8) -> np.ndarray:
    """Tiles images ``(n, h, w)`` in [0, 1] into one ``uint8`` grid with 1-pixel
    white borders.

    Example:
        >>> image_grid(np.zeros((3, 4, 4)), ncol=2).shape
        (11, 11)
    """
    x = np.clip(np.asarray(images, np.float64), 0, 1)
    if x.ndim != 3:
        raise ValueError(f"images must have shape (n, h, w); got {x.shape}")
    if not isinstance(ncol, int) or ncol < 1:
        raise ValueError(f"ncol must be a positive integer; got {ncol!r}")
    n, h, w = x.shape
    nrow = -(-n // ncol)
    grid = np.ones((nrow * (h + 1) + 1, ncol * (w + 1) + 1))
    for i in range(n):
        r, c = divmod(i, ncol)
        grid[1 + r * (h + 1):1 + r * (h + 1) + h, 1 + c * (w + 1):1 + c * (w + 1) + w] = x[i]
    return (grid * 255).round().astype(np.uint8)


def save_image_grid(path: str | Path, images: np.ndarray, ncol: int = 8) -> Path:
    """Writes images ``(n, h, w)`` in [0, 1] as one greyscale PNG grid, atomically.

    Needs Pillow (``pip install 'jaxcollapse[images]'``).

    Example:
        >>> import tempfile
        >>> p = save_image_grid(tempfile.mkdtemp() + "/g.png", np.zeros((3, 4, 4)), ncol=2)
        >>> p.read_bytes()[:4] == b"\\x89PNG"
        True
    """
    img = image_grid(images, ncol)
    buf = io.BytesIO()
    _pil_image().fromarray(img).save(buf, format="PNG", optimize=True)
    return atomic_write_bytes(path, buf.getvalue())
