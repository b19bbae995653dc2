"""The files of an on-disk store: checksummed writes, verified reads, a checked
manifest, and a clean-up that removes only what the store wrote.

Every chunk and carry file's checksum (BLAKE2b, 128 bits, of its bytes) is kept in
the manifest when the file is written; a read compares the file's bytes with it
before decoding them, so a truncated, corrupted or swapped file is reported by
name instead of decoded into other numbers. Stores written before checksums existed
(no ``checksums`` in the manifest) are still read: their files are checked only by
the zip format's own CRC-32.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import warnings
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxcollapse._store_tree import check_fingerprint
from jaxcollapse.io import atomic_write_bytes, npz_bytes

MANIFEST = "manifest.json"  # the commit point of a store
FORMAT_ZARR = "jaxcollapse.simulate-store/zarr-1"  # a store written natively in zarr v3

# the names a store writes (and nothing else is ever removed by remove_store)
_OWN = re.compile(r"(manifest\.json|chunk_\d{6}\.npz|carry_\d{6}\.npz|zarr\.json)")
_OWN_TMP = re.compile(r"\.(manifest\.json|chunk_\d{6}\.npz|carry_\d{6}\.npz|zarr\.json|\d+"
                      r"|c(\.\d+)+)\..*\.tmp")
# inside a zarr array's folder: its metadata and chunk files (c.0.3, ...; c/0/3 in
# stores written before the separator was ".")
_ZARR_OWN = re.compile(r"zarr\.json|c(\.\d+)+|c(/\d+)+")


class StoreError(ValueError):
    """A store file is missing, damaged, or not what its manifest recorded; the message
    names the file and what to do.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "chunk_000000.npz"
        >>> _ = p.write_bytes(b"garbage")
        >>> read_npz(p)
        Traceback (most recent call last):
        ...
        jaxcollapse._store_files.StoreError: store file '...chunk_000000.npz' is damaged: ...
    """


def digest(data: bytes) -> str:
    """The checksum recorded for a file's bytes.

    Example:
        >>> digest(b"abc")
        'blake2b:cf4ab791c62b8d2b2109c90275287816'
    """
    return "blake2b:" + hashlib.blake2b(data, digest_size=16).hexdigest()


def write_npz(path: str | Path, arrays: Mapping[str, Any]) -> str:
    """Writes ``arrays`` as an ``.npz`` atomically; returns the bytes' checksum.

    Example:
        >>> import tempfile, numpy as np
        >>> p = tempfile.mkdtemp() + "/a.npz"
        >>> read_npz(p, write_npz(p, {"x": np.arange(3)}))["x"].tolist()
        [0, 1, 2]
    """
    data = npz_bytes(arrays)
    atomic_write_bytes(path, data)
    return digest(data)


def file_problem(path: str | Path, expected: str | None) -> str | None:
    """What is wrong with a store file (``None`` if nothing): missing, unreadable, a
    checksum other than ``expected``, or (no checksum recorded) not a readable npz.

    Example:
        >>> import tempfile
        >>> file_problem(tempfile.mkdtemp() + "/chunk_000001.npz", None)
        "store file '...chunk_000001.npz' is missing"
    """
    try:
        read_npz(path, expected)
    except StoreError as e:
        return str(e)
    return None


def read_bytes(path: Path) -> bytes:
    """A store file's bytes; :class:`StoreError` naming it if it is missing or unreadable."""
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise StoreError(f"store file {str(path)!r} is missing") from None
    except OSError as e:
        raise StoreError(f"store file {str(path)!r} cannot be read ({e.strerror})") from None


def read_npz(path: str | Path, expected: str | None = None,
             names: list[str] | None = None) -> dict[str, np.ndarray]:
    """The arrays of a store file, after checking its checksum against ``expected``
    (when recorded). Raises :class:`StoreError` naming the file if it is missing,
    damaged, swapped for another file, or lacks one of ``names``."""
    path = Path(path)
    data = read_bytes(path)
    if expected is not None and digest(data) != expected:
        raise StoreError(f"store file {str(path)!r} is damaged: its checksum "
                         f"{digest(data)} is not the {expected} the manifest recorded "
                         f"(truncated, corrupted or replaced; {len(data)} bytes)")
    if data[:4] != b"PK\x03\x04":
        raise StoreError(f"store file {str(path)!r} is damaged: not an npz archive "
                         f"({len(data)} bytes)")
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {n: z[n] for n in (z.files if names is None else names)}
    except KeyError as e:
        raise StoreError(f"store file {str(path)!r} lacks the array {e.args[0]!r}") from None
    except (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise StoreError(f"store file {str(path)!r} is damaged: {why}") from None


def seal(manifest: dict) -> dict:
    """``manifest`` with ``self_checksum``: the checksum of its other fields, so that a
    manifest changed on disk (even into valid JSON) is detected on load."""
    body = {k: v for k, v in manifest.items() if k != "self_checksum"}
    text = json.dumps(body, sort_keys=True, allow_nan=False, default=str)
    return dict(body, self_checksum=digest(text.encode()))


_FIELDS = dict(fingerprint=dict, chunk_size=int, n_chunks=int, chunks_done=int,
               complete=bool)


def load_manifest(path: str | Path, fmt: str) -> dict:
    """A store's manifest, checked: valid JSON, the format tag ``fmt`` and the fields a
    store needs with their types. Raises :class:`StoreError` naming the file.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "manifest.json"
        >>> _ = p.write_text("")
        >>> load_manifest(p, "x")
        Traceback (most recent call last):
        ...
        jaxcollapse._store_files.StoreError: manifest '...manifest.json' is damaged (empty); ...
    """
    path = Path(path)
    hint = ("the run in this folder cannot be read or resumed; remove the folder's store "
            "files (or use a new folder) to compute the run again")
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise
    except UnicodeDecodeError:
        raise StoreError(f"manifest {str(path)!r} is damaged (not UTF-8 text); "
                         f"{hint}") from None
    if not text.strip():
        raise StoreError(f"manifest {str(path)!r} is damaged (empty); {hint}")
    try:
        m = json.loads(text)
    except json.JSONDecodeError as e:
        raise StoreError(f"manifest {str(path)!r} is damaged (not valid JSON: {e.msg} at "
                         f"line {e.lineno}); {hint}") from None
    if not isinstance(m, dict) or m.get("format") != fmt:
        got = m.get("format") if isinstance(m, dict) else type(m).__name__
        raise StoreError(f"{str(path.parent)!r} holds no jaxcollapse run ({str(path)!r} "
                         f"has format {got!r}, expected {fmt!r}); use an empty or new "
                         f"directory")
    if "self_checksum" in m and seal(m)["self_checksum"] != m["self_checksum"]:
        raise StoreError(f"manifest {str(path)!r} is damaged (its content does not match "
                         f"its checksum: changed after it was written); {hint}")
    for name, typ in _FIELDS.items():
        v = m.get(name)
        if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
            raise StoreError(f"manifest {str(path)!r} is damaged (field {name!r} is {v!r}, "
                             f"expected {typ.__name__}); {hint}")
    if not (m["chunk_size"] >= 1 and 0 <= m["chunks_done"] <= m["n_chunks"]):
        raise StoreError(f"manifest {str(path)!r} is damaged (chunks_done "
                         f"{m['chunks_done']} of {m['n_chunks']}, chunk_size "
                         f"{m['chunk_size']}); {hint}")
    sums = m.get("checksums")
    if sums is not None and not (isinstance(sums, dict) and
                                 all(isinstance(v, str) for v in sums.values())):
        raise StoreError(f"manifest {str(path)!r} is damaged (field 'checksums'); {hint}")
    return m


def store_files(directory: str | Path) -> list[Path]:
    """The files in ``directory`` a store wrote (manifest, chunks, carries, and
    temporary files of interrupted writes); nothing else."""
    d = Path(directory)
    if not d.is_dir():
        return []
    own = [p for p in d.iterdir() if p.is_file() and
           (_OWN.fullmatch(p.name) or _OWN_TMP.fullmatch(p.name))]
    for sub in d.iterdir():  # the arrays of a zarr store: folders holding a zarr.json
        if sub.is_dir() and sub.name != "shards" and (sub / "zarr.json").is_file():
            own += [p for p in sub.rglob("*") if p.is_file() and (
                _ZARR_OWN.fullmatch(p.relative_to(sub).as_posix())
                or _OWN_TMP.fullmatch(p.name))]
    return sorted(own)


def remove_store(directory: str | Path, shards: bool = True) -> None:
    """Removes the files a store wrote in ``directory`` (and, if ``shards``, in its
    ``shards/*`` sub-stores), then the folders if they are left empty. Files the store
    did not write are never removed.

    Example:
        >>> import tempfile, pathlib
        >>> d = pathlib.Path(tempfile.mkdtemp())
        >>> for name in ("manifest.json", "chunk_000000.npz", "notes.txt"):
        ...     _ = (d / name).write_text("x")
        >>> remove_store(d)
        >>> sorted(p.name for p in d.iterdir())
        ['notes.txt']
    """
    d = Path(directory)
    if not d.is_dir():
        return
    sub_stores = d / "shards"
    if shards and sub_stores.is_dir():
        for sub in sub_stores.iterdir():
            if sub.is_dir():
                remove_store(sub)
        _rmdir_if_empty(sub_stores)
    files = store_files(d)
    for p in files:
        p.unlink(missing_ok=True)
    # the folders of a zarr store's arrays, deepest first, if left empty
    for folder in sorted({q for p in files for q in p.parents if d in q.parents},
                         key=lambda q: -len(q.parts)):
        _rmdir_if_empty(folder)
    _rmdir_if_empty(d)


def _rmdir_if_empty(d: Path) -> None:
    try:
        d.rmdir()
    except OSError:  # not empty (a user's file), or already gone
        pass


def open_manifest(directory: Path, fp: dict, fmt: str) -> dict | None:
    """The manifest of the run store in ``directory`` (``None`` if it has none),
    checked against the format ``fmt`` and the configuration fingerprint ``fp``;
    a file where the directory should be is refused."""
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"checkpoint_dir {str(directory)!r} is a file; give a directory")
    path = directory / MANIFEST
    if not path.exists():
        return None
    m = load_manifest(path, fmt)
    check_fingerprint(m["fingerprint"], fp, directory)
    return m


def recompute_last(done: int, complete: bool, chunk_problem: Callable[[int], str | None],
                   carry_problem: Callable[[int], str | None], directory: Path,
                   stacklevel: int = 5) -> bool:
    """The recovery rule of the chunk stores, for a store with ``done`` chunks: a
    damaged chunk but the last is fatal; a damaged last chunk (or, in a run not yet
    complete, its carry) is computed again from the carry before it, with a warning
    (``True``), unless that carry is damaged too (fatal). ``chunk_problem(k)`` and
    ``carry_problem(k)`` say what is wrong with chunk ``k`` or its carry (or None).

    Example:
        >>> from pathlib import Path
        >>> recompute_last(3, True, lambda k: None, lambda k: None, Path("run"))
        False
    """
    for k in range(done - 1):
        bad = chunk_problem(k)
        if bad:
            raise StoreError(f"{bad}; chunk {k} cannot be recomputed (only the last "
                             f"chunk can be); remove the store in "
                             f"{str(directory)!r} and run again")
    bad = chunk_problem(done - 1) if done else None
    if bad is None and done and not complete:
        bad = carry_problem(done - 1)
    if bad is None:
        return False
    if done >= 2:
        before = carry_problem(done - 2)
        if before:
            raise StoreError(f"{bad}; it cannot be recomputed either: {before}; remove "
                             f"the store in {str(directory)!r} and run again")
    warnings.warn(f"{bad}; chunk {done - 1} is computed again from the carry before it",
                  RuntimeWarning, stacklevel=stacklevel)
    return True


def check_chunk_order(index: int, done: int) -> None:
    """Chunks are written in order: chunk ``index`` must be the next (``done``)."""
    if index != done:
        raise RuntimeError(f"chunk {index} written out of order (expected {done})")


def warn_stale(directory: Path, stacklevel: int) -> bool:
    """Warns (and says ``True``) where ``directory`` holds store files but no manifest:
    the commit point is gone, so nothing there can be trusted and the run starts
    from generation 0 (the caller removes them)."""
    stale = store_files(directory)
    if stale:
        warnings.warn(f"checkpoint_dir {str(directory)!r} holds store files "
                      f"({stale[0].name}, ...) but no {MANIFEST}; they are "
                      f"discarded and the run starts from generation 0",
                      RuntimeWarning, stacklevel=stacklevel + 1)
    return bool(stale)
