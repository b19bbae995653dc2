"""Small PNG previews of the rendered figures for the README gallery.

``python paper_figures/make_gallery.py OUT_DIR [--dest docs/gallery] [--width 400]``
reads ``OUT_DIR/<name>.png`` (as written by ``run_all.py``) for every figure of
the gallery and writes a copy about ``--width`` pixels wide to
``DEST/<name>.png`` (with Pillow, which matplotlib installs). A figure not
rendered yet is reported and skipped; the exit code is the number of missing
figures.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GALLERY = ("fig01_gaussian_1d", "fig02_multivariate", "fig03_regimes", "fig04_gmm",
           "fig05_kde", "fig06_categorical", "fig07_regression", "fig08_decomposition",
           "fig09_lm", "fig10_vae", "fig11_bias", "fig12_curation", "fig13_real_data",
           "fig14_strong_collapse", "fig15_design")


def thumbnail(src: Path, dest: Path, width: int = 400) -> tuple[int, int]:
    """Writes ``src`` downscaled to ``width`` pixels wide (never upscaled), aspect
    ratio kept; returns the (height, width) written."""
    from PIL import Image

    with Image.open(src) as im:
        w, h = im.size
        if w > width:
            im = im.resize((width, max(1, round(h * width / w))), Image.Resampling.LANCZOS)
        dest.parent.mkdir(parents=True, exist_ok=True)
        im.save(dest, optimize=True)
        return im.size[1], im.size[0]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="the output directory of run_all.py")
    ap.add_argument("--dest", type=Path, default=HERE.parent / "docs" / "gallery")
    ap.add_argument("--width", type=int, default=400, help="target width in pixels")
    args = ap.parse_args(argv)
    if args.width < 16:
        ap.error(f"--width must be >= 16 pixels; got {args.width}")
    if not args.out.is_dir():
        ap.error(f"{args.out} is not a directory (render the figures with run_all.py)")
    missing = 0
    for name in GALLERY:
        src = args.out / f"{name}.png"
        if not src.is_file():
            print(f"[{name}] missing: {src}", file=sys.stderr)
            missing += 1
            continue
        h, w = thumbnail(src, args.dest / f"{name}.png", args.width)
        print(f"[{name}] {w}x{h} -> {args.dest / (name + '.png')}")
    return missing


if __name__ == "__main__":
    sys.exit(main())
