"""Where the real data sets for the learned-generator figures live.

``--data DIR`` (default ``$JAXCOLLAPSE_DATA``, else ``../shared/data`` beside the
repository) is either the shared data folder holding ``wikitext-2/`` and
``mnist/`` or the data set's own folder.
"""

from __future__ import annotations

import os
from pathlib import Path

from _style import REPO


def default_root() -> str:
    """``$JAXCOLLAPSE_DATA`` if set, else ``../shared/data`` relative to the repository."""
    return os.environ.get("JAXCOLLAPSE_DATA") or str(REPO.parent / "shared" / "data")


def add_data_argument(p, what: str) -> None:
    p.add_argument("--data", default=default_root(), metavar="DIR",
                   help=f"the shared data folder (holding {what}/) or the {what} folder "
                        "itself (default: $JAXCOLLAPSE_DATA, else ../shared/data)")


def find(p, root: str, sub: str, markers: tuple[str, ...]) -> Path:
    """``root/sub`` or ``root`` itself, whichever holds one of ``markers``; else a
    one-line error from the parser ``p`` (exit code 2) saying where it looked."""
    cands = [Path(root) / sub, Path(root)]
    for c in cands:
        if c.is_dir() and any(next(c.glob(m), None) is not None for m in markers):
            return c
    p.error(f"--data: {sub} not found: looked for {', '.join(markers)} in "
            f"{' and '.join(str(c) for c in cands)}; pass --data DIR or set JAXCOLLAPSE_DATA")
    raise AssertionError  # p.error exits
