"""A run store as a zarr v3 store, which ``xarray.open_zarr`` reads lazily.

:func:`export_zarr` converts a store written by ``simulate(...,
checkpoint_dir=DIR)`` (finished or not) into one zarr v3 group: one array per
metric (``w2sq``, ...), ``degenerate``, one per parameter leaf (``param_mean``,
``param_cov``, ...) with dimensions ``(chain, generation, ...)``, ``n_samples``
along ``generation``, and coordinate arrays ``chain`` and ``generation``. Arrays are
chunked by the run's ``chunk_size`` generations and all chains. The configuration
fingerprint, the chunk checksums of the source manifest and the number of
generations written are kept in the group's attributes. Every source chunk is
verified against its checksum as it is read; memory holds about two chunks.

A run can also be written as a zarr store from the start, readable while it runs:
``simulate(..., checkpoint_dir=DIR, store_format="zarr")`` (:mod:`jaxcollapse._store_zarr`);
this converter is for runs stored as npz (the default).

Needs the ``zarr`` extra (``pip install 'jaxcollapse[zarr]'``); ``xarray`` to read.

Example:
    >>> import jax, tempfile, jaxcollapse as jc
    >>> from jaxcollapse.zarr_export import export_zarr
    >>> fam = jc.Gaussian(dim=1, method="exact")
    >>> d = tempfile.mkdtemp()
    >>> _ = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=10,
    ...                 n_samples=20, n_chains=4, chunk_size=3, checkpoint_dir=d)
    >>> z = export_zarr(d, d + "/run.zarr")
    >>> import xarray as xr
    >>> ds = xr.open_zarr(z)
    >>> ds["w2sq"].dims, ds["w2sq"].shape, ds.attrs["generations_done"]
    (('chain', 'generation'), (4, 11), 10)
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jaxcollapse._zarr_layout import _var
from jaxcollapse.store import StoredResult

FORMAT = "jaxcollapse.simulate-zarr/1"
__all__ = ["export_zarr"]


def _zarr():
    try:
        import zarr
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("writing a zarr store needs the 'zarr' extra: pip install "
                          "'jaxcollapse[zarr]' (zarr>=3)") from None
    return zarr


def export_zarr(directory: str | os.PathLike, path: str | os.PathLike, *,
                overwrite: bool = False) -> Path:
    """Writes the run stored in ``directory`` as a zarr v3 store at ``path``.

    Args:
        directory: a store written by ``simulate(..., checkpoint_dir=directory)``.
        path: the zarr store to write (a folder; refused if it exists, unless
            ``overwrite``, which replaces only a store this function wrote).
        overwrite: replace an existing export.

    Returns:
        ``path``, for ``xarray.open_zarr(path)``: variables with dimensions
        ``(chain, generation, ...)``, lazily read, chunked as the run.

    Raises:
        ValueError: ``path`` exists (and is not a replaceable export), or a source
            chunk is damaged (named).
        ImportError: zarr is not installed.

    Example:
        >>> import tempfile, jax, jaxcollapse as jc
        >>> d = tempfile.mkdtemp()
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> _ = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=4,
        ...                 n_samples=10, n_chains=2, chunk_size=2, checkpoint_dir=d + "/run")
        >>> out = export_zarr(d + "/run", d + "/run.zarr")
        >>> out.name
        'run.zarr'
    """
    zarr = _zarr()
    src = StoredResult(directory)
    path = Path(path)
    if path.exists():
        attrs = path / "zarr.json"
        ours = attrs.is_file() and FORMAT in attrs.read_text(errors="replace")
        if not (overwrite and ours):
            raise ValueError(f"path {str(path)!r} exists; "
                             + ("pass overwrite=True to replace it" if ours else
                                "choose a new path (it holds no export of a run)"))
        shutil.rmtree(path)
    if src.chunks_done == 0:
        raise ValueError(f"{str(src.directory)!r} holds no finished chunk yet")
    G1, C, n = src.generations_done + 1, src.chunk_size, src.n_chains
    group = zarr.open_group(str(path), mode="w-", zarr_format=3)
    arrays: dict[str, Any] = {}
    pending: dict[str, list[np.ndarray]] = {}
    written = 0  # generations [0, written) are on disk

    def flush(upto: int) -> int:
        stop = written
        while pending and (upto - stop >= C or (upto == G1 and stop < upto)):
            size = min(C, upto - stop)
            for name, parts in pending.items():
                block = np.concatenate(parts, axis=-1 if name == "n_samples" else 1)
                head, rest = (block[:size], block[size:]) if name == "n_samples" else \
                    (block[:, :size], block[:, size:])
                if name == "n_samples":
                    arrays[name][stop:stop + size] = head
                else:
                    arrays[name][:, stop:stop + size] = head
                pending[name] = [rest]
            stop += size
        return stop

    for k in range(src.chunks_done):
        flat = src._read(k)  # verified against the manifest's checksum
        start, stop = src._chunk_range(k)
        if not arrays:
            for name, a in flat.items():
                var = _var(name)
                if name == "n_samples":
                    shape, chunks, dims = (G1,), (C,), ["generation"]
                else:
                    shape, chunks = (n, G1) + a.shape[2:], (n, C) + a.shape[2:]
                    dims = ["chain", "generation"] + [f"{var}_{i}" for i in
                                                      range(a.ndim - 2)]
                arrays[name] = group.create_array(var, shape=shape, chunks=chunks,
                                                  dtype=a.dtype, dimension_names=dims,
                                                  fill_value=0 if a.dtype.kind != "b" else
                                                  False)
            group.create_array("chain", data=np.arange(n), dimension_names=["chain"])
            group.create_array("generation", data=np.arange(G1),
                               dimension_names=["generation"])
        for name, a in flat.items():
            pending.setdefault(name, []).append(a)
        written = flush(stop)
    written = flush(G1)
    m = src.manifest
    group.attrs.update(dict(format=FORMAT, source=str(src.directory),
                            fingerprint=m["fingerprint"], chunk_size=C,
                            n_generations=src.n_generations,
                            generations_done=src.generations_done,
                            complete=src.complete, source_checksums=m.get("checksums", {})))
    with warnings.catch_warnings():  # zarr notes that v3 has no consolidation spec yet
        warnings.filterwarnings("ignore", message="Consolidated metadata")
        zarr.consolidate_metadata(str(path), zarr_format=3)  # last: the commit point
    return path
