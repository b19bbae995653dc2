"""What the ``jaxcollapse run`` experiments share: the output folder (checked, marked
and locked), the generations they tabulate, the printed table, and (learned
generators) the loop over seeds."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

# written into every output folder a run uses: how a later run knows the folder is
# one of its own (and may write over it) rather than a user's
MARKER = ".jaxcollapse-run.json"
MARKER_FORMAT = "jaxcollapse.run-folder/1"
LOCK = ".jaxcollapse.lock"


def check_out(out) -> Path:
    """``--out`` as a path, refused (``ValueError`` naming it) when empty, when it names
    a file, or when a folder on the way is a file.

    Example:
        >>> check_out("")
        Traceback (most recent call last):
        ...
        ValueError: --out must name a folder; got an empty string
    """
    if not isinstance(out, str | os.PathLike) or not str(out).strip():
        raise ValueError("--out must name a folder; got an empty string")
    path = Path(out)
    for p in (path, *path.parents):
        if p.exists() and not p.is_dir():
            what = "is a file" if p == path else f"passes through the file {str(p)!r}"
            raise ValueError(f"--out {str(out)!r} {what}; give a folder")
    return path


def _is_own(path: Path) -> bool:
    """Whether ``path`` holds a run of this program: its marker, or (folders written
    before the marker existed) a summary, progress or results file of a run."""
    if (path / MARKER).is_file():
        return True
    for name, keys in (("summary.json", ("config",)), ("progress.json", ("config",)),
                       ("results.json", ("protocol", "records"))):
        try:
            data = json.loads((path / name).read_text())
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and all(k in data for k in keys):
            return True
    return False


def _lock_name(process_id, num_processes) -> str:
    # the processes of one multi-process run share --out: each locks its own file
    n = num_processes or os.environ.get("JAXCOLLAPSE_NUM_PROCESSES")
    i = process_id if process_id is not None else os.environ.get("JAXCOLLAPSE_PROCESS_ID")
    try:
        if n is not None and int(n) > 1:
            return f"{LOCK}.p{int(i or 0)}"
    except ValueError:
        pass
    return LOCK


@contextlib.contextmanager
def output_folder(out, experiment: str, *, overwrite: bool = False, resume: bool = False,
                  process_id: int | None = None, num_processes: int | None = None
                  ) -> Iterator[Path]:
    """The run's output folder, checked, marked as this program's and locked for the
    run (an OS file lock, released when the run ends or its process dies).

    A non-empty folder that holds no run of this program is refused unless
    ``overwrite`` or ``resume``: the run writes only its own files, and never removes
    what it did not write. A second run on the same folder while the first holds
    the lock is refused (``ValueError``, naming the folder and the lock holder).

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (d / "notes.txt").write_text("mine")
        >>> with output_folder(d, "gaussian"):
        ...     pass
        Traceback (most recent call last):
        ...
        ValueError: --out '...' is a non-empty folder that holds no jaxcollapse run...
        >>> with output_folder(d / "run", "gaussian") as p:
        ...     sorted(f.name for f in p.iterdir())
        ['.jaxcollapse-run.json', '.jaxcollapse.lock']
    """
    path = check_out(out)
    try:  # the lock files of this program's processes (a multi-process run's) are its own
        busy = path.is_dir() and any(not p.name.startswith(LOCK) for p in path.iterdir())
    except OSError as e:
        raise ValueError(f"--out {str(out)!r} cannot be read ({e.strerror})") from None
    if busy and not (overwrite or resume or _is_own(path)):
        raise ValueError(f"--out {str(out)!r} is a non-empty folder that holds no "
                         f"jaxcollapse run; choose a new folder, or give --overwrite to "
                         f"write the run's files beside what is there (nothing of it is "
                         f"removed)")
    lock = path / _lock_name(process_id, num_processes)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as e:
        raise ValueError(f"--out {str(out)!r} cannot be written ({e.strerror})") from None
    try:
        _lock(fd, lock)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        if not (path / MARKER).is_file():
            from jaxcollapse.io import save_json

            save_json(path / MARKER, dict(format=MARKER_FORMAT, experiment=experiment))
        yield path
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _lock(fd: int, lock: Path) -> None:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: runs are not locked
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            holder = lock.read_text().strip() or "?"
        except OSError:
            holder = "?"
        raise ValueError(f"--out {str(lock.parent)!r} is in use by another jaxcollapse run "
                         f"(process {holder} holds {lock.name}); wait for it to end or "
                         f"choose another folder") from None


def remove_checkpoint(folder: Path) -> None:
    """Removes a run's checkpoint store in ``folder`` (only the files the store wrote;
    a user's files there stay, and so does the folder then)."""
    from jaxcollapse.store import remove_store

    remove_store(folder)


def report_generations(G: int, asked: list[int] | None = None) -> list[int]:
    """The generations to tabulate: ``asked`` (sorted, once each, all in [0, G]), or
    by default 0 and about 8 log-spaced generations up to ``G``."""
    if asked:
        bad = [g for g in asked if not 0 <= g <= G]
        if bad:
            raise ValueError(f"--report generations must lie in [0, {G}]; got {bad}")
        return sorted(set(asked))
    return [0] + np.unique(np.round(np.geomspace(1, G, 8)).astype(int)).tolist()


def print_table(title: str, head: str, lines, out: Path, notes=()) -> None:
    """Prints the run's one-line summary, the table (``head``, a rule, ``lines``), any
    ``notes`` and where the results went."""
    print(title)
    print(head)
    print("-" * len(head))
    for line in lines:
        print(line)
    for note in notes:
        print(note)
    print(f"results: {out / 'summary.json'}, {out / 'arrays.npz'}")


def run_seeds(run_one, seeds, out: Path, summary: dict) -> dict:
    """``run_one(key, folder)`` (:func:`~jaxcollapse.learned.run_lm` or
    :func:`~jaxcollapse.learned.run_vae` for one seed) for each seed into
    ``out/seed{s}``; ``out/results.json`` (``summary`` and the records so far) is
    rewritten after each. Returns seed -> records."""
    import jax

    from jaxcollapse.io import save_json
    from jaxcollapse.learned import NaNLossError

    results = {}
    for s in seeds:
        try:
            r = run_one(jax.random.key(s), out / f"seed{s}")
        except NaNLossError as e:  # one clear line from the CLI, exit code 2
            raise ValueError(str(e)) from None
        results[s] = r.records
        save_json(out / "results.json", dict(summary, seeds=list(results), records=results))
    return results
