"""A dependency-free progress line for long runs (written to stderr)."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``label [#####.....] done/total  rate  eta`` on one refreshed line.

    Silent when ``enabled`` is false. Use as a context manager and call
    :meth:`update` with the number of finished units.

    Example:
        >>> with Progress(10, "gens", enabled=False) as p:
        ...     p.update(10)
        >>> p.done
        10
    """

    def __init__(self, total: int, label: str = "", unit: str = "gen",
                 enabled: bool = True, stream=None):
        self.total, self.label, self.unit = total, label, unit
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.done = 0
        self.start = time.perf_counter()

    def __enter__(self) -> Progress:
        self.start = time.perf_counter()
        return self

    def update(self, done: int, extra: str = "") -> None:
        self.done = done
        if not self.enabled:
            return
        el = time.perf_counter() - self.start
        rate = done / el if el > 0 else 0.0
        eta = (self.total - done) / rate if rate > 0 else float("nan")
        width = 24
        fill = int(width * done / max(self.total, 1))
        bar = "#" * fill + "." * (width - fill)
        msg = (f"\r{self.label} [{bar}] {done}/{self.total} {self.unit}s "
               f"{rate:,.1f} {self.unit}/s eta {eta:,.0f}s {extra}")
        self.stream.write(msg)
        self.stream.flush()

    def __exit__(self, *exc) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
