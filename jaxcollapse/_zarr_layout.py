"""The on-disk layout of the native zarr run store (:mod:`jaxcollapse._store_zarr`):
chunk ranges, variable names, the per-array chunk layout, and the raw chunk-file
reads and atomic writes (checksummed), apart from the writer's commit protocol.
"""

from __future__ import annotations

import ctypes
import errno
import json
import math
import os
import threading
from pathlib import Path

import numpy as np

from jaxcollapse._store_files import StoreError, digest, read_bytes

_CHUNK_BYTES = 32 << 20  # at most this many bytes in a chunk file (along chains)
_RESERVED = ("degenerate", "n_samples", "chain", "generation")
_WORKERS = 8  # concurrent chunk-file and carry writes: their fsyncs share journal commits
# the chunk-key separator of new stores: c.0.3 keeps an array's chunk files in its own
# folder (with "/", zarr's default, c/0/3 costs two folders more per array, made by the
# first chunk); stores written with "/" keep theirs, which the manifest records
_SEPARATOR = "."


def require_zarr():
    """The ``zarr`` module (v3), or an ``ImportError`` naming the extra to install."""
    try:
        import zarr
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("store_format='zarr' needs the 'zarr' extra: pip install "
                          "'jaxcollapse[zarr]' (zarr>=3)") from None
    if int(zarr.__version__.split(".")[0]) < 3:  # pragma: no cover
        raise ImportError(f"store_format='zarr' needs zarr>=3 (installed: "
                          f"{zarr.__version__}): pip install 'jaxcollapse[zarr]'")
    return zarr


def chunk_range(k: int, length: int, n_generations: int) -> tuple[int, int]:
    """Generations ``[start, stop)`` of chunk ``k``: zarr chunk ``k`` along generations,
    for chunks of ``length`` generations (:func:`chunk_length`).

    Example:
        >>> [chunk_range(k, 4, 9) for k in range(3)]
        [(0, 4), (4, 8), (8, 10)]
    """
    return k * length, min((k + 1) * length, n_generations + 1)


def n_chunks(n_generations: int, chunk_size: int) -> int:
    """How many zarr chunks a new store has along generations: chunks of
    ``chunk_size`` generations hold generations ``0..G``, except that a run of at most
    ``chunk_size`` generations (one simulation chunk, generation 0 included) is one
    chunk of ``G + 1`` generations, so that ``G = chunk_size`` does not leave
    generation ``G`` alone in a second chunk (a second commit, and a chunk file padded
    to ``chunk_size`` generations, for one generation).

    Example:
        >>> n_chunks(1000, 1000), n_chunks(999, 1000), n_chunks(1001, 1000)
        (1, 1, 2)
        >>> n_chunks(10_000, 1000)
        11
    """
    if n_generations <= chunk_size:
        return 1
    return math.ceil((n_generations + 1) / chunk_size)


def chunk_length(n_generations: int, chunk_size: int, chunks: int) -> int:
    """The generations of a zarr chunk in a store of ``chunks`` chunks (the manifest's
    ``n_chunks``): all ``G + 1`` in a one-chunk store, else ``chunk_size``. Stores
    written before :func:`n_chunks` made one chunk of ``G = chunk_size`` have two
    (generation ``G`` alone in the second): their chunks are ``chunk_size`` long.

    Example:
        >>> chunk_length(1000, 1000, 1), chunk_length(1000, 1000, 2)
        (1001, 1000)
    """
    return n_generations + 1 if chunks == 1 else chunk_size


def manifest_chunk_length(manifest: dict, path: Path) -> int:
    """:func:`chunk_length` of the store whose manifest (at ``path``) is ``manifest``,
    after checking that its ``n_chunks`` is one that this or the previous rule gives
    for its generations and chunk size (:class:`StoreError` naming the file if not)."""
    G, C = int(manifest["fingerprint"]["n_generations"]), int(manifest["chunk_size"])
    chunks = int(manifest["n_chunks"])
    allowed = sorted({n_chunks(G, C), math.ceil((G + 1) / C)})
    if chunks not in allowed:
        raise StoreError(f"manifest {str(path)!r} is damaged (n_chunks {chunks} for "
                         f"{G} generations in chunks of {C}; expected one of {allowed})")
    return chunk_length(G, C, chunks)


def _var(name: str) -> str:
    if name.startswith("metrics/"):
        return name[len("metrics/"):]
    if name.startswith("params/"):
        return "param_" + name[len("params/"):].replace("/", "_")
    return name


def check_metric_names(fp: dict) -> None:
    """Metric names that cannot be zarr array names beside the store's own."""
    for spec in fp["metrics"]:
        name = spec.split("=", 1)[0]
        if name in _RESERVED or name.startswith("param_") or "/" in name or not name:
            raise ValueError(f"metric name {name!r} cannot be stored with "
                             f"store_format='zarr' (it names an array of its own: "
                             f"{', '.join(_RESERVED)}, param_*; or holds '/'); rename it")


def array_meta(dtype: np.dtype, chunks, dims) -> dict | None:
    """The zarr v3 metadata, without ``shape``, that zarr 3 writes for an uncompressed
    array (``compressors=None, filters=None``, fill value 0) of a bool, integer or
    float ``dtype``, made without zarr (whose set-up costs more than a chunk's write);
    ``None`` for other dtypes, whose metadata zarr makes. Chunk keys are zarr's
    ``default`` encoding with the separator ``"."`` (``c.0.3``).

    Example:
        >>> m = array_meta(np.dtype("bool"), (64, 1000), ["chain", "generation"])
        >>> m["data_type"], m["fill_value"], m["codecs"]
        ('bool', False, [{'name': 'bytes'}])
        >>> _chunk_key(m, (0, 3))
        'c.0.3'
    """
    dt = np.dtype(dtype)
    if dt.kind not in "biuf":
        return None
    codec = {"name": "bytes"}
    if dt.itemsize > 1:  # zarr names no byte order for single bytes
        codec["configuration"] = {"endian": "little"}
    return dict(data_type=dt.name,
                chunk_grid=dict(name="regular",
                                configuration=dict(chunk_shape=[int(c) for c in chunks])),
                chunk_key_encoding=dict(name="default",
                                        configuration=dict(separator=_SEPARATOR)),
                fill_value=False if dt.kind == "b" else 0.0 if dt.kind == "f" else 0,
                codecs=[codec], attributes={}, dimension_names=list(dims), zarr_format=3,
                node_type="array", storage_transformers=[])


def _chunk_key(meta: dict, coords: tuple[int, ...]) -> str:
    # the array's own recorded separator: "." in new stores, "/" in older ones
    sep = meta["chunk_key_encoding"]["configuration"]["separator"]
    return "c" + sep + sep.join(str(c) for c in coords)


class _Layout:
    """The arrays of a store as the manifest records them: per array its flat name,
    the zarr metadata (without shape) and the per-chain-chunk keys of a chunk."""

    def __init__(self, arrays: dict[str, dict], n_chains: int):
        self.arrays = arrays
        self.n = n_chains

    def shape(self, var: str, generations: int) -> list[int]:
        a = self.arrays[var]
        lead = [generations] if a["gen_axis"] == 0 else [self.n, generations]
        return lead + list(a["trail"])

    def blocks(self, var: str, k: int):
        """``(key, chain_slice)`` of the files holding chunk ``k`` of ``var``."""
        a = self.arrays[var]
        if a["gen_axis"] == 0:
            yield f"{var}/{_chunk_key(a['meta'], (k,))}", None
            return
        cc = a["meta"]["chunk_grid"]["configuration"]["chunk_shape"][0]
        zeros = (0,) * len(a["trail"])
        for j in range(math.ceil(self.n / cc)):
            yield (f"{var}/{_chunk_key(a['meta'], (j, k) + zeros)}",
                   slice(j * cc, min((j + 1) * cc, self.n)))

    def keys(self, k: int) -> list[str]:
        return [key for var in self.arrays for key, _ in self.blocks(var, k)]

    def chunk_shape(self, var: str) -> tuple[int, ...]:
        return tuple(self.arrays[var]["meta"]["chunk_grid"]["configuration"]["chunk_shape"])

    def dtype(self, var: str) -> np.dtype:
        return np.dtype(self.arrays[var]["meta"]["data_type"]).newbyteorder("<")


def read_raw(path: Path, expected: str | None, nbytes: int) -> bytes:
    """A chunk file's bytes, checked against its recorded checksum and size."""
    data = read_bytes(path)
    if expected is None:
        raise StoreError(f"store file {str(path)!r} has no checksum in the manifest")
    if digest(data) != expected:
        raise StoreError(f"store file {str(path)!r} is damaged: its checksum "
                         f"{digest(data)} is not the {expected} the manifest recorded "
                         f"(truncated, corrupted or replaced; {len(data)} bytes)")
    if len(data) != nbytes:  # pragma: no cover - a matching checksum has the size
        raise StoreError(f"store file {str(path)!r} is damaged: {len(data)} bytes, "
                         f"expected {nbytes}")
    return data


def read_chunk(directory: Path, layout: _Layout, checksums: dict[str, str], k: int,
               start: int, stop: int, vars_: list[str]) -> dict[str, np.ndarray]:
    """Generations ``start..stop-1`` (chunk ``k``) of the arrays ``vars_``, verified."""
    out = {}
    for var in vars_:
        shape, dt = layout.chunk_shape(var), layout.dtype(var)
        nbytes = int(np.prod(shape)) * dt.itemsize
        parts = []
        for key, rows in layout.blocks(var, k):
            a = np.frombuffer(read_raw(directory / key, checksums.get(key), nbytes),
                              dt).reshape(shape)
            if rows is None:
                parts.append(a[:stop - start])
            else:
                parts.append(a[:rows.stop - rows.start, :stop - start])
        a = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=0)
        out[var] = a.astype(dt.newbyteorder("="), copy=False)
    return out


def _replace(path: Path, data: bytes, sync: bool = False) -> None:
    """Writes ``path`` atomically (temporary file, then rename). Chunk files, carries
    and the manifest are synced (``sync``) before the rename; the ``zarr.json``
    metadata is not (zarr itself writes it so): our own reader and a resume never trust
    it (they take the layout from the manifest) and a resume rewrites it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        try:
            f = open(tmp, "wb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:  # the first file of its folder
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "wb")  # noqa: SIM115
        with f:
            f.write(data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _renameat2():
    # Linux's renameat2 (glibc >= 2.28), for RENAME_EXCHANGE; None elsewhere
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError, TypeError):  # pragma: no cover - not Linux/glibc
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p,
                   ctypes.c_uint]
    fn.restype = ctypes.c_int
    return fn


_RENAMEAT2 = _renameat2()
_AT_FDCWD, _RENAME_EXCHANGE = -100, 2


def _exchange(a: Path, b: Path) -> bool:
    """Swaps the names ``a`` and ``b`` in one atomic step; ``False`` where the system
    or the file system cannot (or ``b`` is missing)."""
    if _RENAMEAT2 is None:  # pragma: no cover - not Linux/glibc
        return False
    if _RENAMEAT2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b),
                  _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOENT, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP,
               errno.EXDEV, errno.EPERM):
        return False
    raise OSError(err, os.strerror(err), str(a), None, str(b))


def _spare(path: Path) -> Path:
    return path.with_name(f".{path.name}.spare.tmp")


def _fill(spare: Path, data, sync: bool) -> bool:
    """Writes ``data`` into the file ``spare``, reusing its inode if it exists (its
    old content is overwritten in place); ``False`` if its folder does not exist."""
    try:
        fd = os.open(spare, os.O_WRONLY | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o666)
    except FileNotFoundError:
        return False
    try:
        view, done = memoryview(data).cast("B"), 0
        while done < len(view):  # from offset 0: a new descriptor starts there
            done += os.write(fd, view[done:])
        os.ftruncate(fd, len(view))
        if sync:
            os.fsync(fd)
    except BaseException:
        os.close(fd)
        spare.unlink(missing_ok=True)
        raise
    os.close(fd)
    return True


def _swap_in(path: Path, data: bytes, sync: bool = False) -> None:
    """Writes ``path`` atomically, as :func:`_replace`, for a file rewritten every
    chunk (the ``zarr.json`` metadata, the manifest): the new content goes into a spare
    file beside it (``.NAME.spare.tmp``, the version before last), which then trades
    names with ``path`` (``renameat2(RENAME_EXCHANGE)``), so readers see the old or
    the new file, whole, and no inode is made or freed (on ext4 making one can cost
    half a millisecond). A reader that held the old file open for a whole chunk could
    see it rewritten; the manifest's seal detects that. Where the exchange is not
    available (another system, ``path`` missing) the spare is renamed over ``path``."""
    spare = _spare(path)
    if not _fill(spare, data, sync):  # the first file of its folder
        _replace(path, data, sync)
    elif not _exchange(spare, path):
        os.replace(spare, path)


def _renew(path: Path, data: bytes, spare: Path) -> None:
    """Writes the new file ``path`` atomically and durably into the inode of ``spare``
    (a file no longer needed, such as a carry the manifest dropped), then renames it
    to ``path``: as :func:`_replace` with ``sync``, without making an inode."""
    if not _fill(spare, data, sync=True):
        _replace(path, data, sync=True)
    else:
        os.replace(spare, path)


def _dumps(obj) -> bytes:
    # compact: the C encoder (an indent would take the pure-Python one)
    return json.dumps(obj, separators=(",", ":"), default=str).encode()


def _pad_to(a: np.ndarray, shape: tuple[int, ...], fill) -> np.ndarray:
    if a.shape == shape:
        return a
    out = np.full(shape, fill, a.dtype)
    out[tuple(slice(0, s) for s in a.shape)] = a
    return out
