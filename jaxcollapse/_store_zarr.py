"""A run store written natively as a zarr v3 group (``simulate(..., store_format="zarr")``).

The checkpoint directory is itself a zarr v3 group that ``xarray.open_zarr(DIR)`` and
``zarr.open_group(DIR)`` read lazily, while the run is going or after it: one array per
metric (``w2sq``, ...), ``degenerate``, one per parameter leaf (``param_mean``,
``param_cov``, ...) with dimensions ``(chain, generation, ...)``, ``n_samples`` along
``generation``, and coordinates ``chain`` (the chain ids) and ``generation``.

Layout: zarr chunk ``k`` along ``generation`` holds generations ``kC..(k+1)C-1``, and
simulation chunk ``k`` computes exactly these (the first computes ``C - 1`` generations
after generation 0), so every zarr chunk file is written once, whole, by one
simulation chunk. A run of at most ``C`` generations is one zarr chunk of all its
``G + 1`` generations, computed by its one simulation chunk (as the npz store's one
file): at ``G = C`` the rule above would leave generation ``G`` alone in a second
chunk, padded to ``C`` generations, for a second commit (twice the npz store's write
time). Stores written before that rule hold two chunks at ``G = C``; the manifest's
``n_chunks`` says which (:func:`~jaxcollapse._zarr_layout.chunk_length`). Along
``chain`` a chunk holds all chains, or as many as keep a chunk file under 32 MiB.
Chunk files are raw little-endian C-order bytes (zarr's ``bytes`` codec, no
compression: the bytes an ``.npz`` store holds), written atomically and concurrently,
each hashed (BLAKE2b) as it is written.

Commit protocol, per simulation chunk: the chunk files and the carry
(``carry_K.npz``, as in the npz store) are written first, together, each synced to
disk before it is renamed into place; then every array's ``zarr.json`` and the
group's ``zarr.json`` (which holds the consolidated metadata ``xarray.open_zarr``
reads) are rewritten with the shape grown to the committed generations; last
``manifest.json`` (format ``jaxcollapse.simulate-store/zarr-1``, synced), the commit
point for resuming and for :class:`ZarrStoredResult`, records the fingerprint and the
checksum of every chunk and carry file. A reader therefore never sees a generation
whose data is not on disk. Our own reader takes dtypes and chunk shapes from the
manifest, not from the ``zarr.json`` files, and verifies every chunk file it reads; a
resumed run rewrites the ``zarr.json`` files from the manifest, so a damaged one is
repaired.

Cost: making and removing files is what a chunk's write mostly costs beyond the bytes
(on ext4 up to half a millisecond a file), so the files rewritten every chunk (the
``zarr.json`` files, the manifest) trade names with a spare copy beside them
(``.NAME.spare.tmp``: :func:`~jaxcollapse._zarr_layout._swap_in`), a new carry is
written into the inode of the one the manifest dropped, and a chunk makes only its
chunk files (the first chunk also one folder per array). A complete store keeps no
spare.

Chunk keys: zarr's ``default`` encoding with the separator ``"."`` (``w2sq/c.0.3``),
so an array's chunk files sit in its own folder; stores written before used ``"/"``
(``w2sq/c/0/3``, two folders more per array), which the manifest records per array,
so they are still read, verified and resumed with their own keys.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from jaxcollapse._store_files import (
    FORMAT_ZARR,
    MANIFEST,
    StoreError,
    check_chunk_order,
    digest,
    open_manifest,
    read_npz,
    recompute_last,
    remove_store,
    seal,
    warn_stale,
)
from jaxcollapse._zarr_layout import (  # noqa: F401  (the writer and reader use them)
    _CHUNK_BYTES,
    _RESERVED,
    _SEPARATOR,
    _WORKERS,
    _chunk_key,
    _dumps,
    _Layout,
    _pad_to,
    _renew,
    _replace,
    _spare,
    _swap_in,
    _var,
    array_meta,
    check_metric_names,
    chunk_length,
    chunk_range,
    manifest_chunk_length,
    n_chunks,
    read_chunk,
    read_raw,
    require_zarr,
)
from jaxcollapse.io import atomic_write_bytes, npz_bytes
from jaxcollapse.store import StoredResult

# a dropped carry kept for its inode (a name the store's clean-up has always matched)
_CARRY_SPARE = ".carry_000000.npz.spare.tmp"


class ZarrChunkWriter:
    """Writes one run's chunks, carries, zarr metadata and manifest as a zarr v3 group
    (the zarr counterpart of :class:`jaxcollapse.store.ChunkWriter`, same interface).
    """

    def __init__(self, directory: str | Path, fp: dict[str, Any],
                 n_chunks: int,  # noqa: F811  (the count; n_chunks() is re-exported)
                 params_type: dict | None, *, quiet_stale: bool = False):
        require_zarr()
        check_metric_names(fp)
        self.directory = Path(directory)
        self._pool: ThreadPoolExecutor | None = None
        self.fp = fp
        self.n_chunks = n_chunks
        self.params_type = params_type
        self.chunk_size = int(fp["chunk_size"])
        self.n_generations = int(fp["n_generations"])
        self.n_chains = fp["chains"][1] - fp["chains"][0]
        m = open_manifest(self.directory, fp, FORMAT_ZARR)
        # zarr chunk k holds generations kL..(k+1)L-1 (chunk_length), which simulation
        # chunk k computes: it starts at generation kC (the npz store: kC + 1), except
        # in a one-chunk store (generations 0..G, G <= C), as the npz store's
        if m is not None:  # the store's own chunking (two chunks at G = C before)
            self.n_chunks = int(m["n_chunks"])
            self.gen_chunk = manifest_chunk_length(m, self.directory / MANIFEST)
        else:
            self.gen_chunk = chunk_length(self.n_generations, self.chunk_size, n_chunks)
        self.SHIFT = 0 if self.n_chunks == 1 else 1
        if m is not None:
            self.chunks_done = int(m["chunks_done"])
            self.complete = bool(m["complete"])
            self.checksums: dict[str, str] = dict(m.get("checksums") or {})
            self.layout = _Layout(m.get("arrays") or {}, self.n_chains)
            self.coords: dict[str, dict] = dict(m.get("coords") or {})
            self._recover()
            if "chain" in self.coords:
                self._write_chain()
            if self.chunks_done:
                self._write_metadata()  # repairs a damaged zarr.json
        else:
            if not quiet_stale:
                warn_stale(self.directory, stacklevel=4)
            remove_store(self.directory, shards=False)
            self.chunks_done, self.complete, self.checksums = 0, False, {}
            self.layout = _Layout({}, self.n_chains)
            self.coords = {}
            self._write_manifest()

    # ------------------------------------------------------------------ manifest

    def _write_manifest(self) -> None:
        m = json.loads(json.dumps(dict(
            format=FORMAT_ZARR, fingerprint=self.fp, chunk_size=self.chunk_size,
            n_chunks=self.n_chunks, chunks_done=self.chunks_done, complete=self.complete,
            params_type=self.params_type, arrays=self.layout.arrays, coords=self.coords,
            checksums=dict(sorted(self.checksums.items()))), allow_nan=False, default=str))
        _swap_in(self.directory / MANIFEST, _dumps(seal(m)), sync=True)

    def generations(self) -> int:
        """Generations committed to the zarr arrays (``0..generations()-1``)."""
        return chunk_range(self.chunks_done - 1, self.gen_chunk,
                           self.n_generations)[1] if self.chunks_done else 0

    def _write_metadata(self, coords: bool = True) -> None:
        """Every array's ``zarr.json`` (and, if ``coords``, the chain coordinate's),
        then the group's (consolidated), at the committed shape, written from the
        manifest's record."""
        g = self.generations()
        metas = {}
        for var, a in self.layout.arrays.items():
            metas[var] = dict(a["meta"], shape=self.layout.shape(var, g))
            _swap_in(self.directory / var / "zarr.json", _dumps(metas[var]))
        for var, meta in self.coords.items():  # its shape never changes
            metas[var] = meta
            if coords:
                _swap_in(self.directory / var / "zarr.json", _dumps(meta))
        attrs = dict(format=FORMAT_ZARR, fingerprint=self.fp, chunk_size=self.chunk_size,
                     n_generations=self.n_generations, generations_done=max(0, g - 1),
                     complete=self.complete)
        group = dict(attributes=attrs, zarr_format=3, consolidated_metadata=dict(
            kind="inline", must_understand=False, metadata=metas), node_type="group")
        _swap_in(self.directory / "zarr.json", _dumps(group))

    def _create_arrays(self, flat: dict[str, np.ndarray]) -> None:
        """The arrays' zarr metadata (once, at the first chunk): what zarr itself makes
        (:func:`array_meta`; zarr only for a dtype that function does not cover)."""
        C, n = self.gen_chunk, self.n_chains
        arrays = {}
        for name, a in flat.items():
            var = _var(name)
            if a.ndim == 1:  # along generations
                chunks, dims, gen_axis = (C,), ["generation"], 0
            else:
                trail = a.shape[2:]
                row = max(1, C * int(np.prod(trail, dtype=int)) * a.dtype.itemsize)
                cc = min(n, max(1, _CHUNK_BYTES // row))
                chunks, gen_axis = (cc, C) + trail, 1
                dims = ["chain", "generation"] + [f"{var}_{i}" for i in range(len(trail))]
            meta = array_meta(a.dtype, chunks, dims)
            if meta is None:
                meta = _zarr_meta(a.dtype, chunks, dims)
            arrays[var] = dict(name=name, gen_axis=gen_axis, trail=list(a.shape[2:]),
                               meta=meta)
        self.layout = _Layout(arrays, n)
        self.coords = {"chain": dict(shape=[n], **array_meta(np.dtype("int64"), [n],
                                                             ["chain"]))}

    def _chain_file(self) -> tuple[str, np.ndarray]:
        # the chain coordinate (ids lo..hi-1): one small chunk, written with the first
        # chunk (and again on resume, so that a damaged one is repaired)
        ids = np.arange(*self.fp["chains"]).astype("<i8")
        return "chain/" + _chunk_key(self.coords["chain"], (0,)), ids

    def _write_chain(self) -> None:
        key, ids = self._chain_file()
        self.checksums[key] = digest(ids.tobytes())
        atomic_write_bytes(self.directory / key, ids.tobytes())

    # ------------------------------------------------------------------ recovery

    def _chunk_problem(self, k: int) -> str | None:
        start, stop = chunk_range(k, self.gen_chunk, self.n_generations)
        try:
            read_chunk(self.directory, self.layout, self.checksums, k, start, stop,
                       list(self.layout.arrays))
        except StoreError as e:
            return str(e)
        return None

    def _carry_problem(self, k: int) -> str | None:
        name = f"carry_{k:06d}.npz"
        try:
            read_npz(self.directory / name, self.checksums.get(name))
        except StoreError as e:
            return str(e)
        return None

    def _recover(self) -> None:
        """As :meth:`jaxcollapse.store.ChunkWriter._recover`: a damaged chunk but the
        last is fatal; a damaged last chunk or latest carry is computed again."""
        done = self.chunks_done
        if not recompute_last(done, self.complete, self._chunk_problem,
                              self._carry_problem, self.directory, stacklevel=6):
            return
        self.chunks_done, self.complete = done - 1, False
        for key in self.layout.keys(done - 1) + [f"carry_{done - 1:06d}.npz"]:
            self.checksums.pop(key, None)
        self._write_metadata()
        self._write_manifest()

    # ------------------------------------------------------------------ writing

    def write(self, index: int, outputs: dict[str, np.ndarray], n_samples: np.ndarray,
              carry: dict[str, np.ndarray] | None) -> None:
        """Writes chunk ``index`` (its outputs and the carry after it), then commits."""
        check_chunk_order(index, self.chunks_done)
        # no generation coordinate array: xarray's default index along a dimension is
        # 0..G, the generations (one file less a chunk)
        flat = dict(outputs, n_samples=np.asarray(n_samples))
        if not self.layout.arrays:
            self._create_arrays(flat)
        jobs: list[tuple[str, Any]] = []
        for var, a in self.layout.arrays.items():
            x = flat[a["name"]]
            shape, dt = self.layout.chunk_shape(var), self.layout.dtype(var)
            fill = a["meta"]["fill_value"]
            for key, rows in self.layout.blocks(var, index):
                block = x if rows is None else x[rows]
                jobs.append((key, _pad_to(np.ascontiguousarray(block, dt), shape, fill)))
        if index == 0:
            jobs.append(self._chain_file())
        last = index + 1 == self.n_chunks
        carry_name = f"carry_{index:06d}.npz"
        if carry is not None and not last:
            jobs.append((carry_name, carry))  # written beside the chunk files
        if self._pool is None:
            self._pool = ThreadPoolExecutor(_WORKERS, thread_name_prefix="zarr-store")
        try:
            self.checksums.update(zip((k for k, _ in jobs), self._pool.map(self._put, jobs),
                                      strict=True))
        except BaseException:
            self._pool.shutdown()
            self._pool = None
            raise
        keep = {f"carry_{index - 1:06d}.npz"} | (set() if last else {carry_name})
        for name in [n for n in self.checksums if n.startswith("carry_") and n not in keep]:
            del self.checksums[name]
        self.chunks_done, self.complete = index + 1, last
        if last:
            self._pool.shutdown()
            self._pool = None
        self._write_metadata(coords=index == 0)
        self._write_manifest()
        # older carries go only once the manifest no longer points at them; one keeps
        # its inode for the next carry (_renew), and a complete store keeps no spare
        spare = self.directory / _CARRY_SPARE
        for f in self.directory.glob("carry_*.npz"):
            if f.name in keep:
                continue
            if last or spare.exists():
                f.unlink(missing_ok=True)
            else:
                os.replace(f, spare)
        if last:
            self._drop_spares()

    def _drop_spares(self) -> None:
        """Removes the spare files of a complete store (its zarr.json, manifest and
        carry spares): nothing is rewritten any more."""
        d = self.directory
        for path in [d / _CARRY_SPARE, _spare(d / MANIFEST), _spare(d / "zarr.json")] + [
                _spare(d / var / "zarr.json") for var in [*self.layout.arrays, *self.coords]]:
            path.unlink(missing_ok=True)

    def _put(self, job: tuple[str, Any]) -> str:
        key, data = job
        if isinstance(data, dict):  # the carry, into the inode of a dropped one
            data = npz_bytes(data)
            _renew(self.directory / key, data, self.directory / _CARRY_SPARE)
            return digest(data)
        view = memoryview(data).cast("B")  # the array's bytes, not copied
        _replace(self.directory / key, view, sync=True)
        return digest(view)

    def read_chunk(self, index: int) -> dict[str, np.ndarray]:
        """The flat outputs of a written chunk (without ``n_samples``), verified."""
        start, stop = chunk_range(index, self.gen_chunk, self.n_generations)
        vars_ = [v for v, a in self.layout.arrays.items()
                 if a["name"] != "n_samples"]
        got = read_chunk(self.directory, self.layout, self.checksums, index, start, stop,
                         vars_)
        return {self.layout.arrays[v]["name"]: a for v, a in got.items()}

    def read_carry(self) -> dict[str, np.ndarray]:
        name = f"carry_{self.chunks_done - 1:06d}.npz"
        return read_npz(self.directory / name, self.checksums.get(name))


def _zarr_meta(dtype: np.dtype, chunks, dims) -> dict:
    """An uncompressed array's zarr v3 metadata (without ``shape``), made by zarr."""
    zarr = require_zarr()
    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    arr = group.create_array("a", shape=(0,) * len(chunks), chunks=chunks, dtype=dtype,
                             fill_value=0, compressors=None, filters=None,
                             dimension_names=dims, chunk_key_encoding=dict(
                                 name="default", separator=_SEPARATOR))
    meta = json.loads(json.dumps(arr.metadata.to_dict(), default=list))
    meta.pop("shape")
    return meta


class ZarrStoredResult(StoredResult):
    """A run stored with ``store_format="zarr"``, read chunk by chunk and verified
    (what :func:`jaxcollapse.load_run` returns for such a directory; the same methods
    as :class:`~jaxcollapse.StoredResult`). ``xarray.open_zarr(directory)`` reads the
    same arrays lazily, without the checksums."""

    _FORMAT = FORMAT_ZARR

    def __init__(self, directory: str | Path):
        super().__init__(directory)
        self.layout = _Layout(self.manifest.get("arrays") or {}, self.n_chains)
        self._by_name = {a["name"]: v for v, a in self.layout.arrays.items()}
        # checked when the store is opened, even with no chunk written yet
        self._gen_chunk = manifest_chunk_length(self.manifest, self.directory / MANIFEST)

    def _chunk_range(self, k: int) -> tuple[int, int]:
        # zarr chunk k: generations kL..(k+1)L-1 (checked when the manifest is read)
        return chunk_range(k, self._length, self.n_generations)

    def _chunk_of(self, generations: np.ndarray) -> np.ndarray:
        return generations // self._length

    @property
    def _length(self) -> int:
        if "_gen_chunk" not in self.__dict__:  # StoredResult.__init__ asks first
            self._gen_chunk = manifest_chunk_length(self.manifest,
                                                    self.directory / MANIFEST)
        return self._gen_chunk

    def _load(self, k: int, names=None) -> dict[str, np.ndarray]:
        if names is None:
            names = list(self._by_name)
        missing = [n for n in names if n not in self._by_name]
        if missing:
            raise StoreError(f"store {str(self.directory)!r} holds no array "
                             f"{missing[0]!r}")
        start, stop = self._chunk_range(k)
        got = read_chunk(self.directory, self.layout, self.checksums, k, start, stop,
                         [self._by_name[n] for n in names])
        return {n: got[self._by_name[n]] for n in names}
