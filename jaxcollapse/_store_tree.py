"""Pytrees as the flat names of a store's files, and the configuration fingerprint
that a resumed run is checked against (the machinery of :mod:`jaxcollapse.store`)."""

from __future__ import annotations

import hashlib
import importlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

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
