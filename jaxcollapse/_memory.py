"""Memory estimates before compiling: refuse a request that cannot fit, quickly and
clearly, instead of letting XLA abort the process or run for minutes first.

The entry points that allocate in proportion to their arguments (``simulate``,
``simulate_grid``, ``decompose``; ``kernels.gram`` has its own guard) estimate the
bytes of their outputs and of their working set from the static configuration
alone (shapes, counts, dtypes: nothing is traced or compiled) and call
:func:`check_memory`, which compares the estimate with the memory available and
raises :class:`InsufficientMemoryError` (a ``MemoryError`` and a ``ValueError``)
that says how much would be needed, how much is available and what to do.

The estimates are upper-ish bounds (they count every large buffer the program
holds, with a factor for copies), so a run that fits is not refused; where the
bound is too pessimistic for a machine, or the detected memory is wrong (a
container limit, a shared accelerator), the environment variable
``JAXCOLLAPSE_MAX_MEMORY`` overrides it: a size (``"64G"``, ``"500M"``, ``"2T"`` or a
byte count) to use as the memory available, or ``"off"`` to skip the check.

Available memory: on an accelerator, the default device's ``memory_stats()``
(``bytes_limit - bytes_in_use``); on the CPU, ``MemAvailable`` of
``/proc/meminfo``, else the physical memory (``os.sysconf``).
"""

from __future__ import annotations

import os
import re
from typing import Any

import jax

__all__ = ["ENV_VAR", "InsufficientMemoryError", "available_bytes", "check_memory",
           "format_bytes", "parse_bytes"]

ENV_VAR = "JAXCOLLAPSE_MAX_MEMORY"

_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


class InsufficientMemoryError(MemoryError, ValueError):
    """A request whose estimated memory exceeds what is available (raised before
    anything is compiled). A ``MemoryError`` and a ``ValueError``.

    Example:
        >>> issubclass(InsufficientMemoryError, MemoryError), issubclass(
        ...     InsufficientMemoryError, ValueError)
        (True, True)
    """


def format_bytes(n: float) -> str:
    """``n`` bytes in binary units.

    Example:
        >>> format_bytes(3 * 2**30), format_bytes(1536), format_bytes(12)
        ('3.0 GiB', '1.5 KiB', '12 B')
    """
    for unit, size in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20),
                       ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def parse_bytes(text: str) -> int | None:
    """A size such as ``"64G"``, ``"500 MiB"``, ``"1e9"``; ``None`` for ``"off"``.

    Example:
        >>> parse_bytes("2G"), parse_bytes("512MiB"), parse_bytes("off")
        (2147483648, 536870912, None)
        >>> parse_bytes("lots")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: JAXCOLLAPSE_MAX_MEMORY must be a size such as '64G', ...; got 'lots'
    """
    t = str(text).strip().lower()
    if t in ("off", "none", "0", "no", "false"):
        return None
    m = re.fullmatch(r"([0-9.]+(?:e[0-9]+)?)\s*([kmgt]?)(?:i?b)?", t)
    if m is None:
        raise ValueError(f"{ENV_VAR} must be a size such as '64G', '500M' or a byte count, "
                         f"or 'off'; got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def _host_available() -> tuple[int, str]:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024, "host MemAvailable"
    except (OSError, ValueError, IndexError):
        pass
    try:
        return (os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
                "host physical memory")
    except (ValueError, OSError, AttributeError):
        return 2**36, "unknown (assumed 64 GiB)"


def available_bytes(device: Any = None, host: bool = False) -> tuple[int | None, str]:
    """Bytes available for a computation and where the number comes from.

    ``host=True`` asks for host memory; otherwise for ``device`` (default: the first
    local device): an accelerator's ``memory_stats()``, or host memory for a CPU.
    ``(None, ...)`` when ``JAXCOLLAPSE_MAX_MEMORY=off`` disables the check.

    Example:
        >>> n, where = available_bytes()
        >>> n is None or n > 0
        True
    """
    override = os.environ.get(ENV_VAR)
    if override:
        return parse_bytes(override), f"{ENV_VAR}={override}"
    if not host:
        try:
            dev = device if device is not None else jax.local_devices()[0]
            if dev.platform != "cpu":
                stats = dev.memory_stats() or {}
                if stats.get("bytes_limit"):
                    free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
                    return free, f"free on {dev.device_kind}"
        except Exception:  # noqa: BLE001 - a device may not report its memory
            pass
    return _host_available()


def on_accelerator() -> bool:
    """Whether the default device is not the CPU (its memory is apart from the host's).

    Example:
        >>> isinstance(on_accelerator(), bool)
        True
    """
    try:
        return jax.local_devices()[0].platform != "cpu"
    except Exception:  # noqa: BLE001
        return False


def check_memory(need: float, what: str, advice: str, *, host: bool = False,
                 parts: str = "") -> None:
    """Raises :class:`InsufficientMemoryError` if ``need`` bytes exceed what is
    available (see :func:`available_bytes`).

    Args:
        need: the estimated bytes.
        what: the request, e.g. ``"simulate with 100,000,000 chains"``.
        advice: what to do instead (ends the message).
        host: compare with host memory (else the default device's).
        parts: an optional breakdown of ``need`` for the message.

    Example:
        >>> check_memory(2**70, "a test", "ask for less")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        jaxcollapse._memory.InsufficientMemoryError: a test needs about 1024.0 EiB...
    """
    avail, where = available_bytes(host=host)
    if avail is None or need <= avail:
        return
    detail = f" ({parts})" if parts else ""
    raise InsufficientMemoryError(
        f"{what} needs about {_fmt_big(need)}{detail}, but {format_bytes(avail)} is "
        f"available ({where}); {advice}. The estimate is made before compiling; if it "
        f"is wrong for this machine, set {ENV_VAR} to the memory to assume (e.g. '64G') "
        f"or to 'off'")


def _fmt_big(n: float) -> str:
    return f"{n / 2**60:.1f} EiB" if n >= 2**60 else format_bytes(n)
