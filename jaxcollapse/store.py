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
  only the latest is kept, and it is removed once the run is complete.

The manifest is the commit point: it is rewritten after a chunk and its carry are
on disk, so a run killed at any moment resumes from a consistent state.
"""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcollapse.io import load_json, save_json, save_npz

FORMAT = "jaxcollapse.simulate-store/1"
# public: the stored result and its loader; the rest is the machinery of simulate
# (chunk writing, fingerprints, carries) and of distributed (merging shards)
__all__ = ["StoredResult", "load_run"]

MANIFEST = "manifest.json"


# ------------------------------------------------------------------ pytree <-> names


def _path_name(path) -> str:
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def flatten(tree) -> dict[str, Any]:
    """A pytree as a flat dict ``"a/b" -> leaf`` (the names used in the store files)."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {_path_name(p): x for p, x in leaves}


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _strip_addresses(text: str) -> str:
    # reprs of functions carry memory addresses that differ between processes
    return re.sub(r" at 0x[0-9a-fA-F]+", "", text)


def _digest(tree) -> str | None:
    """A short content hash of a pytree of arrays (dtype, shape and bytes)."""
    if tree is None:
        return None
    h = hashlib.sha256()
    for name, x in flatten(tree).items():
        if _is_key(x):
            h.update(str(jax.random.key_impl(x)).encode())
            x = jax.random.key_data(x)
        a = np.ascontiguousarray(np.asarray(x))
        h.update(f"{name}:{a.dtype.str}:{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _fn_name(fn: Callable) -> str:
    fn = getattr(fn, "func", fn)  # functools.partial
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return _strip_addresses(f"{getattr(fn, '__module__', '')}.{name}")


def _describe_schedule(sched: np.ndarray) -> Any:
    s = np.asarray(sched)
    if s.ndim == 1 and s.size and np.all(s == s[0]):
        return int(s[0])
    return f"schedule {int(s.min())}..{int(s.max())} #{_digest(s)}"


def fingerprint(cfg: Any, key: jax.Array, params0: Any, alpha: Any, sched: Any,
                human: Any, chunk_size: int, chains: tuple[int, int], n_chains: int
                ) -> dict[str, Any]:
    """Everything that determines a chunked run's numbers, as JSON-able values.

    The device count is deliberately absent: chain i runs the same program on
    whichever device holds it, so a run may resume on a different number of devices.
    """
    dtypes = [np.dtype(x.dtype).name for x in jax.tree.leaves(params0)
              if np.issubdtype(np.dtype(x.dtype), np.floating)]
    return dict(
        family=_strip_addresses(repr(cfg.family)),
        regime=cfg.regime if cfg.regime != "mix" else f"mix(source={cfg.source!r})",
        alpha=np.asarray(alpha).tolist() if cfg.regime == "mix" else None,
        n_generations=cfg.n_generations,
        n_samples=_describe_schedule(sched),
        n_chains=int(n_chains),
        chains=[int(chains[0]), int(chains[1])],
        key=np.asarray(jax.random.key_data(key)).tolist(),
        key_impl=str(jax.random.key_impl(key)),
        params0=_digest(params0),
        dtype=dtypes[0] if dtypes else None,
        human_data=_digest(human),
        metrics=[f"{name}={_fn_name(fn)}" for name, fn in cfg.metrics],
        save_params=cfg.save_params,
        chunk_size=int(chunk_size),
    )


def _params_type(params0) -> dict | None:
    """How to rebuild the parameter pytree from its flat names: a NamedTuple class
    (module, name, fields) when the parameters are one, else ``None`` (a dict)."""
    cls = type(params0)
    fields = getattr(cls, "_fields", None)
    if fields is None or not all(hasattr(getattr(params0, f), "shape") for f in fields):
        return None
    return dict(module=cls.__module__, name=cls.__qualname__, fields=list(fields))


def _rebuild_params(flat: dict[str, np.ndarray], ptype: dict | None):
    if not flat:
        return None
    if ptype is not None:
        try:
            cls = getattr(importlib.import_module(ptype["module"]), ptype["name"])
            return cls(**{f: flat[f] for f in ptype["fields"]})
        except (ImportError, AttributeError, KeyError, TypeError):
            pass
    return flat


# --------------------------------------------------------------------------- writer


def _write_manifest(directory: Path, fp: dict, n_chunks: int, chunks_done: int,
                    complete: bool, params_type: dict | None) -> None:
    save_json(directory / MANIFEST, dict(
        format=FORMAT, fingerprint=fp, chunk_size=fp["chunk_size"], n_chunks=n_chunks,
        chunks_done=chunks_done, complete=complete, params_type=params_type))


class ChunkWriter:
    """Writes one run's chunks, carries and manifest (used by ``simulate``).

    Opening an existing directory checks its fingerprint against this run's and
    raises ``ValueError`` naming every field that differs.
    """

    def __init__(self, directory: str | Path, fp: dict[str, Any], n_chunks: int,
                 params_type: dict | None):
        self.directory = Path(directory)
        self.fp = fp
        self.n_chunks = n_chunks
        self.params_type = params_type
        path = self.directory / MANIFEST
        if path.exists():
            m = load_json(path)
            if m.get("format") != FORMAT:
                raise ValueError(f"checkpoint_dir {str(self.directory)!r} holds no "
                                 f"jaxcollapse run (format {m.get('format')!r}); use an "
                                 f"empty or new directory")
            check_fingerprint(m["fingerprint"], fp, self.directory)
            self.chunks_done = int(m["chunks_done"])
            self.complete = bool(m["complete"])
        else:
            if self.directory.exists() and not self.directory.is_dir():
                raise ValueError(f"checkpoint_dir {str(self.directory)!r} is a file; "
                                 f"give a directory")
            self.chunks_done, self.complete = 0, False
            self._write_manifest()

    def _write_manifest(self) -> None:
        _write_manifest(self.directory, self.fp, self.n_chunks, self.chunks_done,
                        self.complete, self.params_type)

    def write(self, index: int, outputs: dict[str, np.ndarray], n_samples: np.ndarray,
              carry: dict[str, np.ndarray] | None) -> None:
        """Writes chunk ``index`` (its outputs and the carry after it), then commits."""
        if index != self.chunks_done:
            raise RuntimeError(f"chunk {index} written out of order (expected "
                               f"{self.chunks_done})")
        save_npz(self.directory / f"chunk_{index:06d}.npz",
                 dict(outputs, n_samples=n_samples))
        last = index + 1 == self.n_chunks
        if not last:
            save_npz(self.directory / f"carry_{index:06d}.npz", carry)
        self.chunks_done, self.complete = index + 1, last
        self._write_manifest()
        # older carries go only once the manifest no longer points at them
        for f in self.directory.glob("carry_*.npz"):
            if last or f.name != f"carry_{index:06d}.npz":
                f.unlink(missing_ok=True)

    def read_chunk(self, index: int) -> dict[str, np.ndarray]:
        """The flat outputs of a written chunk (without ``n_samples``)."""
        with np.load(self.directory / f"chunk_{index:06d}.npz") as z:
            return {k: z[k] for k in z.files if k != "n_samples"}

    def read_carry(self) -> dict[str, np.ndarray]:
        with np.load(self.directory / f"carry_{self.chunks_done - 1:06d}.npz") as z:
            return {k: z[k] for k in z.files}


def check_fingerprint(stored: dict, now: dict, directory: Path | str) -> None:
    """Raises ``ValueError`` naming every configuration field that differs."""
    diffs = [f"{k}: stored {stored.get(k)!r}, now {now.get(k)!r}"
             for k in sorted(set(stored) | set(now)) if stored.get(k) != now.get(k)]
    if diffs:
        raise ValueError(f"checkpoint_dir {str(directory)!r} holds a run with a different "
                         f"configuration ({'; '.join(diffs)}); resume with the original "
                         f"arguments or use a new directory")


def unflatten_like(template, flat: dict[str, np.ndarray]):
    """The pytree ``template`` with its leaves replaced by ``flat[name]``."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    return jax.tree_util.tree_unflatten(treedef, [flat[_path_name(p)] for p, _ in leaves])


def carry_to_host(carry, n_chains: int) -> dict[str, np.ndarray]:
    """The carry's first ``n_chains`` rows as NumPy (PRNG keys as their key data)."""
    out = {}
    for name, x in flatten(carry).items():
        a = jax.random.key_data(x) if _is_key(x) else x
        out[name] = np.asarray(a)[:n_chains]
    return out


def carry_from_host(template, stored: dict[str, np.ndarray], n_chains: int):
    """``template`` (a freshly initialised carry, possibly padded and sharded) with its
    first ``n_chains`` rows replaced by the stored ones, placed as the template is."""
    leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
    names = [_path_name(p) for p, _ in leaves]
    if sorted(names) != sorted(stored):
        raise ValueError(f"the stored carry holds {sorted(stored)} but this run needs "
                         f"{sorted(names)}; the checkpoint is not from this configuration")
    new = []
    for (_, x), name in zip(leaves, names, strict=True):
        data = jax.random.key_data(x) if _is_key(x) else x
        full = np.array(data)
        if full[:n_chains].shape != stored[name].shape or full.dtype != stored[name].dtype:
            raise ValueError(f"stored carry {name!r} has shape {stored[name].shape} "
                             f"{stored[name].dtype}; this run needs "
                             f"{full[:n_chains].shape} {full.dtype}")
        full[:n_chains] = stored[name]
        placed = jax.device_put(full, x.sharding)
        new.append(jax.random.wrap_key_data(placed, impl=jax.random.key_impl(x))
                   if _is_key(x) else placed)
    return jax.tree_util.tree_unflatten(treedef, new)


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

    def __init__(self, directory: str | Path):
        self.directory = Path(directory)
        path = self.directory / MANIFEST
        if not path.exists():
            raise FileNotFoundError(f"no jaxcollapse run in {str(self.directory)!r} "
                                    f"(missing {MANIFEST})")
        m = load_json(path)
        if m.get("format") != FORMAT:
            raise ValueError(f"{str(path)!r} is not a jaxcollapse run manifest")
        self.manifest = m
        fp = m["fingerprint"]
        self.chunk_size = int(m["chunk_size"])
        self.n_chains = fp["chains"][1] - fp["chains"][0]
        self.n_generations = int(fp["n_generations"])
        self.complete = bool(m["complete"])
        self.chunks_done = int(m["chunks_done"])
        self.generations_done = min(self.n_generations, self.chunks_done * self.chunk_size)
        self.metric_names = [s.split("=", 1)[0] for s in fp["metrics"]]

    def __repr__(self) -> str:
        return (f"StoredResult({str(self.directory)!r}, n_chains={self.n_chains}, "
                f"generations_done={self.generations_done}/{self.n_generations})")

    def _chunk_range(self, k: int) -> tuple[int, int]:
        C = self.chunk_size
        start = 0 if k == 0 else k * C + 1
        return start, min((k + 1) * C, self.n_generations) + 1

    def _read(self, k: int, names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
        with np.load(self.directory / f"chunk_{k:06d}.npz") as z:
            return {n: z[n] for n in (z.files if names is None else names)}

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
        chunk_of = np.maximum(0, (flat_g - 1) // self.chunk_size)
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
    for k in range(n_chunks):
        parts = [s._read(k) for s in shards]
        flat = {name: np.concatenate([p[name] for p in parts], axis=0)
                for name in parts[0] if name != "n_samples"}
        save_npz(directory / f"chunk_{k:06d}.npz", dict(flat, n_samples=parts[0]["n_samples"]))
    _write_manifest(directory, fp, n_chunks, n_chunks, True,
                    shards[0].manifest.get("params_type"))
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
