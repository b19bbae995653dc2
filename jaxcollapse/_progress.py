"""Progress bars for long runs, drawn by :mod:`rich` (installed with flax) on stderr.

A bar shows the label, the fraction done, ``done/total``, the rate (``scale x unit``
per second: with ``scale=n_chains`` and ``unit="gen"``, chains x generations per
second), the elapsed time, the ETA and a free-text field. It is silent when
``enabled`` is false or when the stream is not a terminal (a log file or a pipe
gets no control characters). Rich redraws from a background thread a few times a
second, so :meth:`Progress.update` only records a number and never waits on output.
"""

from __future__ import annotations

import sys
import time


def _is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (ValueError, OSError):  # a closed stream
        return False


def _rate_column(unit: str, scale: int):
    from rich.progress import ProgressColumn
    from rich.text import Text

    label = f"chain·{unit}/s" if scale > 1 else f"{unit}/s"

    class RateColumn(ProgressColumn):
        def render(self, task):
            speed = task.finished_speed or task.speed
            if speed is None:
                return Text(f"? {label}", style="progress.data.speed")
            return Text(f"{speed * scale:,.1f} {label}", style="progress.data.speed")

    return RateColumn()


class Progress:
    """One rich progress bar: ``label [bar] done/total  rate  elapsed  eta  extra``.

    Use as a context manager and call :meth:`update` with the number of finished
    units (absolute, not an increment). Silent when ``enabled`` is false or the
    stream is not a terminal; ``done`` is kept either way.

    Args:
        total: units in the whole run.
        label: shown before the bar.
        unit: the unit's name (``"gen"``, ``"step"``, ``"tok"``).
        enabled: ``False`` for a quiet run (``--quiet`` / ``--no-progress``).
        stream: where to draw (default ``sys.stderr``).
        scale: work per unit for the rate column (e.g. the number of chains, so the
            rate reads chains x generations per second).

    Example:
        >>> with Progress(10, "gens", enabled=False) as p:
        ...     p.update(10)
        >>> p.done
        10
    """

    def __init__(self, total: int, label: str = "", unit: str = "gen",
                 enabled: bool = True, stream=None, scale: int = 1):
        self.total, self.label, self.unit, self.scale = total, label, unit, max(1, int(scale))
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = bool(enabled) and _is_terminal(self.stream)
        self.done = 0
        self.start = time.perf_counter()
        self._bar = None
        self._task = None

    def __enter__(self) -> Progress:
        self.start = time.perf_counter()
        if self.enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn(f"{self.unit}s"), _rate_column(self.unit, self.scale),
                TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                TextColumn("{task.fields[extra]}"),
                console=Console(file=self.stream), refresh_per_second=4)
            self._bar.start()
            self._task = self._bar.add_task(self.label, total=self.total, extra="")
        return self

    def update(self, done: int, extra: str = "") -> None:
        """Records ``done`` finished units (and a free-text ``extra``)."""
        self.done = done
        if self._bar is not None:
            self._bar.update(self._task, completed=done, extra=extra)

    def __exit__(self, *exc) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
