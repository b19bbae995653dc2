"""On-disk store of a chunked simulation: resumable, memory-bounded long runs.

:func:`jaxcollapse.simulate` with ``checkpoint_dir=DIR`` writes every finished
chunk of generations to ``DIR`` as it completes, together with the state needed to
continue (the carry: PRNG keys, parameters, pools) and a fingerprint of the
configuration. Called again with the same ``DIR`` it resumes after the last
written chunk; with ``keep=False`` it returns a :class:`StoredResult` that reads the
chunks back on demand instead of holding every generation in memory.

Layout of ``DIR`` (every file written atomically by :mod:`jaxcollapse.io`):

- ``manifest.json``: format tag, fingerprint, ``chunk_size``, ``chunks_done``,
  ``complete``, the stored array names and how to rebuild the parameters.
- ``chunk_000000.npz``: generations ``0..C`` of every chain; ``chunk_k``
  (k >= 1) holds generations ``kC+1..(k+1)C``. Arrays are ``metrics/NAME``,
  ``degenerate``, ``params/FIELD`` (leading axes chain, generation) and
  ``n_samples`` (generation).
- ``carry_00000k.npz``: the carry after chunk ``k`` (PRNG keys as key data);
  the latest two are kept (a complete run keeps the one before its last chunk), so
  that a damaged last chunk or carry is recomputed from the carry before it.

The manifest is the commit point: it is rewritten after a chunk and its carry are
on disk, so a run killed at any moment resumes from a consistent state. It records
a checksum of every chunk and carry file (``checksums``), verified whenever a file
is read and, for every file, when a run is resumed: a damaged, truncated, missing or
swapped file raises :class:`~jaxcollapse._store_files.StoreError` (a ``ValueError``)
naming it, except that a damaged last chunk (or latest carry) is recomputed, with a
warning, from the carry before it. Stores written without checksums are still read.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcollapse._store_files import (
    FORMAT_ZARR,
    MANIFEST,
    StoreError,
    check_chunk_order,
    file_problem,
    load_manifest,
    open_manifest,
    read_npz,
    recompute_last,
    remove_store,
    seal,
    warn_stale,
    write_npz,
)
from jaxcollapse._store_tree import (  # noqa: F401  (simulate and distributed use them)
    _is_key,
    _params_type,
    _path_name,
    _rebuild_params,
    carry_from_host,
    carry_to_host,
    check_fingerprint,
    fingerprint,
    flatten,
    unflatten_like,
)
from jaxcollapse.io import save_json

FORMAT = "jaxcollapse.simulate-store/1"
# public: the stored result and its loader; the rest is the machinery of simulate
# (chunk writing, fingerprints, carries) and of distributed (merging shards)
__all__ = ["StoreError", "StoredResult", "load_run", "remove_store", "store_format_of"]



# --------------------------------------------------------------------------- writer


def _chunk(k: int) -> str:
    return f"chunk_{k:06d}.npz"


def _carry(k: int) -> str:
    return f"carry_{k:06d}.npz"


def _write_manifest(directory: Path, fp: dict, n_chunks: int, chunks_done: int,
                    complete: bool, params_type: dict | None,
                    checksums: dict[str, str]) -> None:
    # through JSON first, so the seal covers exactly what load_manifest reads back
    m = json.loads(json.dumps(dict(
        format=FORMAT, fingerprint=fp, chunk_size=fp["chunk_size"], n_chunks=n_chunks,
        chunks_done=chunks_done, complete=complete, params_type=params_type,
        checksums=dict(sorted(checksums.items()))), allow_nan=False, default=str))
    save_json(directory / MANIFEST, seal(m))


STORE_FORMATS = ("npz", "zarr")


def store_format_of(directory: str | Path) -> str | None:
    """``"npz"`` or ``"zarr"``: the format of the store in ``directory``; ``None`` if
    it holds no readable manifest.

    Example:
        >>> import tempfile
        >>> store_format_of(tempfile.mkdtemp()) is None
        True
    """
    try:
        m = json.loads((Path(directory) / MANIFEST).read_bytes())
    except (OSError, ValueError):
        return None
    fmt = m.get("format") if isinstance(m, dict) else None
    return {FORMAT: "npz", FORMAT_ZARR: "zarr"}.get(fmt)


def check_store_format(store_format: Any, checkpoint_dir: Any) -> None:
    """Validates ``simulate``'s ``store_format`` (before any work): ``None``, ``"npz"``
    or ``"zarr"`` (which needs the ``zarr`` extra) and only with ``checkpoint_dir``."""
    if store_format is None:
        return
    if store_format not in STORE_FORMATS:
        raise ValueError(f"store_format must be one of {STORE_FORMATS} or None (the "
                         f"format of the store already in checkpoint_dir, else 'npz'); "
                         f"got {store_format!r}")
    if checkpoint_dir is None:
        raise ValueError(f"store_format={store_format!r} needs checkpoint_dir (the store "
                         f"it selects is written there); got checkpoint_dir=None")
    if store_format == "zarr":
        from jaxcollapse._store_zarr import require_zarr

        require_zarr()


def open_writer(directory: str | Path, fp: dict[str, Any], params_type: dict | None,
                store_format: str | None = None):
    """The chunk writer of a run in ``directory``: a :class:`ChunkWriter` (npz) or a
    :class:`~jaxcollapse._store_zarr.ZarrChunkWriter`. ``store_format=None`` continues
    the store already there, else writes npz; a store of the other format than the one
    asked for raises ``ValueError`` naming both."""
    found = store_format_of(directory)
    fmt = store_format or found or "npz"
    if found is not None and found != fmt:
        raise ValueError(f"checkpoint_dir {str(directory)!r} holds a run stored as "
                         f"{found!r}, which store_format={store_format!r} cannot resume; "
                         f"pass store_format={found!r} (or None), or use a new directory")
    G, C = int(fp["n_generations"]), int(fp["chunk_size"])
    if fmt == "zarr":
        from jaxcollapse._store_zarr import ZarrChunkWriter, n_chunks

        return ZarrChunkWriter(directory, fp, n_chunks(G, C), params_type)
    return ChunkWriter(directory, fp, math.ceil(G / C), params_type)


class ChunkWriter:
    """Writes one run's chunks, carries and manifest (used by ``simulate``).

    Opening an existing directory checks its fingerprint against this run's and
    raises ``ValueError`` naming every field that differs, then verifies every
    written file against the manifest's checksums (:meth:`_recover`).
    """

    SHIFT = 0  # chunk k holds generations kC + 1 .. (k + 1)C (the first also 0)

    def __init__(self, directory: str | Path, fp: dict[str, Any], n_chunks: int,
                 params_type: dict | None):
        self.directory = Path(directory)
        self.fp = fp
        self.n_chunks = n_chunks
        self.params_type = params_type
        m = open_manifest(self.directory, fp, FORMAT)
        if m is not None:
            self.chunks_done = int(m["chunks_done"])
            self.complete = bool(m["complete"])
            self.checksums: dict[str, str] = dict(m.get("checksums") or {})
            self._recover()
        else:
            if warn_stale(self.directory, stacklevel=3):
                remove_store(self.directory)
            self.chunks_done, self.complete, self.checksums = 0, False, {}
            self._write_manifest()

    def _write_manifest(self) -> None:
        _write_manifest(self.directory, self.fp, self.n_chunks, self.chunks_done,
                        self.complete, self.params_type, self.checksums)

    def _problem(self, name: str) -> str | None:
        return file_problem(self.directory / name, self.checksums.get(name))

    def _recover(self) -> None:
        """Verifies the written files. Any damaged chunk but the last is fatal (a
        ``StoreError`` naming it); a damaged last chunk or latest carry is dropped from
        the manifest, with a warning, and computed again from the carry before it."""
        done = self.chunks_done
        if not recompute_last(done, self.complete, lambda k: self._problem(_chunk(k)),
                              lambda k: self._problem(_carry(k)), self.directory):
            return
        self.chunks_done, self.complete = done - 1, False
        self.checksums.pop(_chunk(done - 1), None)
        self.checksums.pop(_carry(done - 1), None)
        self._write_manifest()

    def write(self, index: int, outputs: dict[str, np.ndarray], n_samples: np.ndarray,
              carry: dict[str, np.ndarray] | None) -> None:
        """Writes chunk ``index`` (its outputs and the carry after it), then commits."""
        check_chunk_order(index, self.chunks_done)
        self.checksums[_chunk(index)] = write_npz(self.directory / _chunk(index),
                                                  dict(outputs, n_samples=n_samples))
        last = index + 1 == self.n_chunks
        if not last:
            self.checksums[_carry(index)] = write_npz(self.directory / _carry(index), carry)
        # the carry before this chunk stays: it recomputes this chunk if it is damaged
        keep = {_carry(index - 1)} | (set() if last else {_carry(index)})
        for name in [n for n in self.checksums if n.startswith("carry_") and n not in keep]:
            del self.checksums[name]
        self.chunks_done, self.complete = index + 1, last
        self._write_manifest()
        # older carries go only once the manifest no longer points at them
        for f in self.directory.glob("carry_*.npz"):
            if f.name not in keep:
                f.unlink(missing_ok=True)

    def read_chunk(self, index: int) -> dict[str, np.ndarray]:
        """The flat outputs of a written chunk (without ``n_samples``), verified."""
        flat = read_npz(self.directory / _chunk(index), self.checksums.get(_chunk(index)))
        flat.pop("n_samples", None)
        return flat

    def read_carry(self) -> dict[str, np.ndarray]:
        name = _carry(self.chunks_done - 1)
        return read_npz(self.directory / name, self.checksums.get(name))


# --------------------------------------------------------------------------- reader


class StoredResult:
    """A chunked run on disk, read chunk by chunk so that memory stays bounded.

    Returned by :func:`jaxcollapse.simulate` with ``keep=False`` and by
    :func:`load_run`. Only the chunks a request touches are read.

    Attributes:
        directory: the store directory.
        n_chains, n_generations: as in :class:`jaxcollapse.SimulationResult`.
        generations_done: generations written so far (``n_generations`` when complete).
        complete: whether every chunk is written.
        metric_names: the stored metrics.

    Example:
        >>> import jax, tempfile, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> d = tempfile.mkdtemp()
        >>> s = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=30,
        ...                 n_samples=50, n_chains=64, chunk_size=10, checkpoint_dir=d,
        ...                 keep=False)
        >>> s.n_generations, s.complete, s.metric("w2sq", [0, 15, 30]).shape
        (30, True, (64, 3))
        >>> s.per_generation("var_ratio").shape  # mean over chains, chunk by chunk
        (31,)
    """

    _FORMAT = FORMAT

    def __new__(cls, directory: str | Path):
        if cls is StoredResult and store_format_of(directory) == "zarr":
            from jaxcollapse._store_zarr import ZarrStoredResult

            cls = ZarrStoredResult
        return super().__new__(cls)

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        path = self.directory / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"no jaxcollapse run in {str(self.directory)!r} "
                                    f"(missing {MANIFEST})")
        m = load_manifest(path, self._FORMAT)
        self.manifest = m
        self.checksums: dict[str, str] = dict(m.get("checksums") or {})
        self._verified: dict[int, tuple] = {}
        fp = m["fingerprint"]
        self.chunk_size = int(m["chunk_size"])
        self.n_chains = fp["chains"][1] - fp["chains"][0]
        self.n_generations = int(fp["n_generations"])
        self.complete = bool(m["complete"])
        self.chunks_done = int(m["chunks_done"])
        self.generations_done = (self._chunk_range(self.chunks_done - 1)[1] - 1
                                 if self.chunks_done else 0)
        self.metric_names = [s.split("=", 1)[0] for s in fp["metrics"]]

    def __repr__(self) -> str:
        return (f"StoredResult({str(self.directory)!r}, n_chains={self.n_chains}, "
                f"generations_done={self.generations_done}/{self.n_generations})")

    def _chunk_range(self, k: int) -> tuple[int, int]:
        C = self.chunk_size
        start = 0 if k == 0 else k * C + 1
        return start, min((k + 1) * C, self.n_generations) + 1

    def _chunk_of(self, generations: np.ndarray) -> np.ndarray:
        """The chunk holding each of ``generations``."""
        return np.maximum(0, (generations - 1) // self.chunk_size)

    def _load(self, k: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        """The arrays ``names`` (all if ``None``) of chunk ``k``, verified."""
        path = self.directory / _chunk(k)
        try:
            st_ = path.stat()
            sig = (st_.st_size, st_.st_mtime_ns, st_.st_ino)
        except OSError:
            sig = None
        # a file verified once and unchanged since is not hashed again (zip's CRC-32
        # still checks every array read)
        verified = sig is not None and self._verified.get(k) == sig
        out = read_npz(path, None if verified else self.checksums.get(_chunk(k)),
                       None if names is None else list(names))
        self._verified[k] = sig
        return out

    def _read(self, k: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        try:
            return self._load(k, names)
        except StoreError as e:
            last = k + 1 == self.chunks_done
            raise StoreError(f"{e}; " + (
                "resume the run (simulate with the same arguments and checkpoint_dir) to "
                "compute it again" if last else "this chunk cannot be recomputed: run "
                "again into a new directory")) from None

    def chunks(self) -> Iterator[tuple[int, int, Any]]:
        """Yields ``(start, stop, chunk)`` for every written chunk, where ``chunk`` is a
        :class:`~jaxcollapse.SimulationResult` of NumPy arrays holding generations
        ``start..stop-1``."""
        from jaxcollapse.simulation import SimulationResult

        for k in range(self.chunks_done):
            flat = self._read(k)
            params = _rebuild_params(
                {n[len("params/"):]: a for n, a in flat.items() if n.startswith("params/")},
                self.manifest.get("params_type"))
            metrics = {n[len("metrics/"):]: a for n, a in flat.items()
                       if n.startswith("metrics/")}
            start, stop = self._chunk_range(k)
            yield start, stop, SimulationResult(params=params, metrics=metrics,
                                                degenerate=flat["degenerate"],
                                                n_samples=flat["n_samples"])

    def _gather(self, name: str, generations) -> np.ndarray:
        G = self.generations_done
        gens = np.arange(G + 1) if generations is None else np.asarray(generations)
        if gens.dtype.kind not in "iu" or gens.ndim > 1:
            raise TypeError(f"generations must be an int or a 1-D integer array; got "
                            f"{generations!r}")
        flat_g = np.atleast_1d(gens)
        if flat_g.size and (flat_g.min() < 0 or flat_g.max() > G):
            raise ValueError(f"generations must lie in [0, {G}] (written so far); got "
                             f"{flat_g.min()}..{flat_g.max()}")
        chunk_of = self._chunk_of(flat_g)
        out = None
        for k in np.unique(chunk_of):
            a = self._read(int(k), [name])[name]
            start = self._chunk_range(int(k))[0]
            sel = chunk_of == k
            if out is None:
                out = np.empty((a.shape[0], flat_g.size) + a.shape[2:], a.dtype)
            out[:, sel] = a[:, flat_g[sel] - start]
        if out is None:
            out = np.empty((self.n_chains, 0))
        return out[:, 0] if gens.ndim == 0 else out

    def metric(self, name: str, generations: Any = None) -> np.ndarray:
        """Metric ``name`` at ``generations`` (an int, a list/array, or ``None`` for all
        written), shape ``(chain, len(generations))``; reads only the chunks needed."""
        if name not in self.metric_names:
            raise ValueError(f"metric must be one of {self.metric_names}; got {name!r}")
        return self._gather(f"metrics/{name}", generations)

    def degenerate(self, generations: Any = None) -> np.ndarray:
        """The degenerate flags at ``generations`` (as :meth:`metric`)."""
        return self._gather("degenerate", generations)

    def per_generation(self, name: str, fn: Callable = np.mean) -> np.ndarray:
        """``fn(metric, axis=0)`` over chains for every written generation, computed one
        chunk at a time (e.g. ``np.mean``, ``np.median``, ``lambda a, axis: ...``)."""
        if name not in self.metric_names:
            raise ValueError(f"metric must be one of {self.metric_names}; got {name!r}")
        parts = [np.asarray(fn(self._read(k, [f"metrics/{name}"])[f"metrics/{name}"],
                               axis=0)) for k in range(self.chunks_done)]
        return np.concatenate(parts, axis=0) if parts else np.empty((0,))

    def to_xarray(self, **kwargs):
        """As an ``xarray.Dataset`` (:func:`jaxcollapse.export.to_xarray`; needs the
        ``analysis`` extra)."""
        from jaxcollapse.export import to_xarray

        return to_xarray(self, **kwargs)

    def to_dataframe(self, **kwargs):
        """As a long ``pandas.DataFrame`` (:func:`jaxcollapse.export.to_dataframe`)."""
        from jaxcollapse.export import to_dataframe

        return to_dataframe(self, **kwargs)

    def load(self):
        """Every written generation in memory, as a :class:`~jaxcollapse.SimulationResult`
        of NumPy arrays."""
        from jaxcollapse.simulation import SimulationResult

        pieces = [c for _, _, c in self.chunks()]
        if not pieces:
            raise ValueError(f"{str(self.directory)!r} holds no finished chunk yet")

        def cat(*xs):
            return np.concatenate(xs, axis=1)

        return SimulationResult(
            params=jax.tree.map(cat, *[p.params for p in pieces]),
            metrics={k: cat(*[p.metrics[k] for p in pieces]) for k in pieces[0].metrics},
            degenerate=cat(*[p.degenerate for p in pieces]),
            n_samples=np.concatenate([p.n_samples for p in pieces]))


def merge(directory: str | Path, shards: Sequence[StoredResult], fp: dict[str, Any]
          ) -> StoredResult:
    """Concatenates complete stores of consecutive chain blocks along the chain axis
    into one store at ``directory`` with fingerprint ``fp``: the store a single
    process writes for the whole run. Memory: one chunk of every chain at a time.
    The chunk files are written first and the manifest last, so an interrupted
    merge leaves no store behind that claims to be complete."""
    directory = Path(directory)
    if not shards or not all(s.complete for s in shards):
        raise ValueError("merge needs complete shard stores")
    (directory / MANIFEST).unlink(missing_ok=True)
    n_chunks = shards[0].chunks_done
    if shards[0]._FORMAT == FORMAT_ZARR:  # the store simulate writes with store_format
        from jaxcollapse._store_zarr import ZarrChunkWriter

        writer = ZarrChunkWriter(directory, fp, n_chunks,
                                 shards[0].manifest.get("params_type"), quiet_stale=True)
        for k in range(n_chunks):
            parts = [s._read(k) for s in shards]
            writer.write(k, {name: np.concatenate([p[name] for p in parts], axis=0)
                             for name in parts[0] if name != "n_samples"},
                         parts[0]["n_samples"], None)
        return StoredResult(directory)
    sums = {}
    for k in range(n_chunks):
        parts = [s._read(k) for s in shards]
        flat = {name: np.concatenate([p[name] for p in parts], axis=0)
                for name in parts[0] if name != "n_samples"}
        sums[_chunk(k)] = write_npz(directory / _chunk(k),
                                    dict(flat, n_samples=parts[0]["n_samples"]))
    _write_manifest(directory, fp, n_chunks, n_chunks, True,
                    shards[0].manifest.get("params_type"), sums)
    return StoredResult(directory)


def load_run(directory: str | Path) -> StoredResult:
    """Opens a run written by ``simulate(..., checkpoint_dir=directory)``.

    Example:
        >>> import jax, tempfile, jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> d = tempfile.mkdtemp()
        >>> _ = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=8,
        ...                 n_samples=20, n_chains=4, chunk_size=3, checkpoint_dir=d)
        >>> res = jc.load_run(d).load()
        >>> res.params.cov.shape, res.n_samples.tolist()[:3]
        ((4, 9, 1, 1), [0, 20, 20])
    """
    return StoredResult(directory)
