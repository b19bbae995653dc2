"""Checkpoints of pytrees (parameters, optimiser state, keys) with atomic writes.

A checkpoint is one ``.npz`` file: the leaves of a pytree as ``leaf_<i>`` arrays
plus a JSON ``meta`` string (configuration, vocabulary fingerprint, metrics so
far). It is written to a temporary file and renamed, so an interrupted run leaves
either the previous checkpoint or the new one, never half of one. Restoring needs
a *template* pytree of the same structure (for example a freshly initialised
state); a different structure or shape raises ``ValueError``.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8 (long recursive runs
    that must survive interruption).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcollapse.io import atomic_write_bytes


def _to_numpy(x):
    if isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        return np.asarray(jax.random.key_data(x))
    return np.asarray(x)


def save_checkpoint(path: str | os.PathLike, tree: Any, meta: dict | None = None) -> Path:
    """Writes the leaves of ``tree`` and a JSON-able ``meta`` dict atomically.

    Typed PRNG keys are stored as their raw key data.

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/c.npz", {"w": jnp.ones(2)}, {"gen": 1})
        >>> tree, meta = load_checkpoint(p, {"w": jnp.zeros(2)})
        >>> tree["w"].tolist(), meta["gen"]
        ([1.0, 1.0], 1)
    """
    leaves = jax.tree.leaves(tree)
    arrays = {f"leaf_{i}": _to_numpy(x) for i, x in enumerate(leaves)}
    arrays["meta"] = np.asarray(json.dumps(meta or {}))
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def read_meta(path: str | os.PathLike) -> dict:
    """The ``meta`` dict of a checkpoint, without loading the arrays.

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/c.npz", [jnp.ones(1)], {"a": 2})
        >>> read_meta(p)
        {'a': 2}
    """
    with np.load(path) as z:
        return json.loads(str(z["meta"]))


def load_checkpoint(path: str | os.PathLike, template: Any) -> tuple[Any, dict]:
    """Restores a pytree shaped like ``template`` and the ``meta`` dict.

    Raises:
        FileNotFoundError: no such checkpoint.
        ValueError: the checkpoint's structure or shapes differ from ``template``
            (a checkpoint from a different configuration).

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> p = save_checkpoint(tempfile.mkdtemp() + "/c.npz", {"w": jnp.ones(2)})
        >>> load_checkpoint(p, {"w": jnp.zeros(3)})
        Traceback (most recent call last):
        ...
        ValueError: checkpoint ... does not match: leaf 0 has shape (2,), expected (3,) ...
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    leaves, treedef = jax.tree.flatten(template)
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        n = sum(1 for k in z.files if k.startswith("leaf_"))
        if n != len(leaves):
            raise ValueError(f"checkpoint {path} does not match: it has {n} arrays, expected "
                             f"{len(leaves)} (a checkpoint from a different config?)")
        out = []
        for i, t in enumerate(leaves):
            a = z[f"leaf_{i}"]
            if isinstance(t, jax.Array) and jax.dtypes.issubdtype(t.dtype, jax.dtypes.prng_key):
                out.append(jax.random.wrap_key_data(a, impl=jax.random.key_impl(t)))
                continue
            if a.shape != np.shape(t):
                raise ValueError(f"checkpoint {path} does not match: leaf {i} has shape "
                                 f"{a.shape}, expected {np.shape(t)} (a checkpoint from a "
                                 f"different config?)")
            out.append(jax.numpy.asarray(a, dtype=getattr(t, "dtype", a.dtype)))
    return jax.tree.unflatten(treedef, out), meta
