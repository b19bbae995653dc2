"""Checkpoints of the recursive protocol, through orbax-checkpoint's
``CheckpointManager``.

Each arm (and generation 0) has one folder managed by a ``CheckpointManager``:
step ``g`` holds the training state (parameters, optimiser state, step counter),
the arm's key and, as JSON, the configuration and the metrics so far. Orbax
writes a step into a temporary folder and renames it when complete (atomic),
keeps the latest two steps (retention) and saves asynchronously: the state is
copied to host memory before ``save`` returns, and the file writes run while
the next generation trains. The arrays a generation leaves beside its state
(synthetic sets, which the accumulate pool needs on resume, and the plug-in's
artifacts) are ``gen{g}.npz`` files written *before* the step is saved, so the
step is the commit point of its generation.

A checkpoint whose recorded configuration differs from the run's is refused,
naming the field that differs.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8 (long recursive runs
    that must survive interruption).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxcollapse.io import save_npz

KEEP = 2  # steps each folder retains (the newest is the one resumed from)


def _ocp():
    import orbax.checkpoint as ocp  # flax depends on it; imported when first needed

    return ocp


# fields added to the configuration later, with the value a checkpoint without them had
_ABSENT = {"start": "init"}


def check_meta(where: Path, got: dict, want: dict) -> None:
    """Raises ``ValueError`` naming the first field of ``want`` that ``got`` differs in.

    Example:
        >>> check_meta(Path("c"), {"protocol": {"steps": 50}}, {"protocol": {"steps": 60}})
        Traceback (most recent call last):
        ...
        ValueError: checkpoint c is from a different config (steps: 50 vs 60); use another --out or drop --resume
    """  # noqa: E501
    if "vocab" in want and got.get("vocab") != want["vocab"]:
        raise ValueError(f"vocabulary mismatch on resume: checkpoint {where} was made with "
                         f"vocabulary {got.get('vocab')} ({got.get('corpus')}), this run has "
                         f"{want['vocab']} ({want.get('corpus')})")
    for k, w in want.items():
        if k in ("generation", "records") or got.get(k, _ABSENT.get(k)) == w:
            continue
        g = got.get(k)
        diff = f"{k}: {g} vs {w}"
        if isinstance(w, dict) and isinstance(g, dict):
            diff = ", ".join(f"{f}: {g.get(f)} vs {w.get(f)}" for f in w if g.get(f) != w.get(f))
            if k != "protocol":
                diff = f"{k}: {diff}"
        raise ValueError(f"checkpoint {where} is from a different config ({diff}); "
                         "use another --out or drop --resume")


def _is_key(x) -> bool:
    return isinstance(x, jax.Array) and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _to_saveable(tree):
    # Typed PRNG keys are stored as their raw key data.
    return jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, tree)


def _abstract(tree):
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(np.shape(x), np.asarray(x).dtype),
                        _to_saveable(tree))


class Checkpoints:
    """The checkpoint folders of one run (``root/<name>``), one orbax
    ``CheckpointManager`` each; use as a context manager (``close`` waits for the
    asynchronous saves).

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> root = Path(tempfile.mkdtemp())
        >>> with Checkpoints(root) as c:
        ...     c.save("gen0", 0, {"w": jnp.ones(2)}, {"records": [1]})
        >>> with Checkpoints(root) as c:
        ...     tree, meta = c.restore("gen0", {}, lambda: {"w": jnp.zeros(2)})
        >>> tree["w"].tolist(), meta["records"]
        ([1.0, 1.0], [1])
    """

    def __init__(self, root: str | Path | None, *, asynchronous: bool = True):
        self.root = None if root is None else Path(root)
        self.asynchronous = asynchronous
        self._managers: dict[str, Any] = {}

    def __enter__(self) -> Checkpoints:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def folder(self, name: str) -> Path:
        return self.root / name

    def _manager(self, name: str, create: bool):
        if name not in self._managers:
            ocp = _ocp()
            opts = ocp.CheckpointManagerOptions(
                create=create, enable_async_checkpointing=self.asynchronous,
                preservation_policy=ocp.checkpoint_managers.LatestN(KEEP))
            self._managers[name] = ocp.CheckpointManager(
                self.folder(name).absolute(), options=opts, item_names=("state", "meta"))
        return self._managers[name]

    def save(self, name: str, step: int, tree: Any, meta: dict) -> None:
        """Commits generation ``step`` of folder ``name``: the pytree ``tree`` and
        ``meta`` (JSON-able); asynchronous when the run allows it."""
        ocp = _ocp()
        self._manager(name, True).save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(_to_saveable(tree)), meta=ocp.args.JsonSave(meta)))

    def restore(self, name: str, want: dict, template) -> tuple[Any, dict] | None:
        """``(tree, meta)`` of the latest step in folder ``name`` (``None``: none);
        ``template()`` gives the tree's structure (typed keys in it come back as
        typed keys).

        Raises:
            ValueError: the checkpoint's configuration differs from ``want``
                (naming the field), or its arrays do not fit ``template()``.
        """
        if self.root is None or not self.folder(name).is_dir():
            return None
        mngr = self._manager(name, False)
        step = mngr.latest_step()
        if step is None:
            return None
        ocp = _ocp()
        where = self.folder(name)
        meta = mngr.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        check_meta(where, meta, want)
        tmpl = template()
        try:
            got = mngr.restore(step, args=ocp.args.Composite(
                state=ocp.args.StandardRestore(_abstract(tmpl)))).state
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"checkpoint {where} does not match this run's model or "
                             f"optimiser (a checkpoint from a different config?): {e}") from e
        leaves, treedef = jax.tree.flatten(tmpl)
        out = [jax.random.wrap_key_data(a, impl=jax.random.key_impl(t)) if _is_key(t) else a
               for a, t in zip(jax.tree.leaves(got), leaves, strict=True)]
        return jax.tree.unflatten(treedef, out), meta

    def save_arrays(self, name: str, step: int, arrays: dict) -> None:
        """Writes the arrays generation ``step`` leaves (before its commit point)."""
        save_npz(self.folder(name) / f"gen{step}.npz", arrays)

    def load_arrays(self, name: str, step: int) -> dict:
        """The arrays written by :meth:`save_arrays` for generation ``step``."""
        with np.load(self.folder(name) / f"gen{step}.npz") as z:
            return {k: z[k] for k in z.files}

    def wait(self) -> None:
        """Blocks until every asynchronous save has finished."""
        for m in self._managers.values():
            m.wait_until_finished()

    def close(self) -> None:
        for m in self._managers.values():
            m.close()
        self._managers.clear()


def load_params(path: str | Path, template) -> tuple[Any, dict]:
    """``(tree, meta)`` of the latest step of one checkpoint folder (``gen0`` or an
    arm's folder) written by a run; ``template()`` as in :meth:`Checkpoints.restore`.

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> root = Path(tempfile.mkdtemp())
        >>> with Checkpoints(root, asynchronous=False) as c:
        ...     c.save("gen0", 0, {"w": jnp.ones(2)}, {"generation": 0})
        >>> load_params(root / "gen0", lambda: {"w": jnp.zeros(2)})[1]
        {'generation': 0}
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {path}")
    with Checkpoints(path.parent) as c:
        got = c.restore(path.name, {}, template)
    if got is None:
        raise FileNotFoundError(f"no checkpoint step in {path}")
    return got


def read_meta(path: str | Path) -> dict:
    """The JSON ``meta`` of the latest step of a checkpoint folder.

    Example:
        >>> import tempfile, jax.numpy as jnp
        >>> root = Path(tempfile.mkdtemp())
        >>> with Checkpoints(root) as c:
        ...     c.save("a", 3, [jnp.ones(1)], {"a": 2})
        >>> read_meta(root / "a")
        {'a': 2}
    """
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint folder not found: {path}")
    ocp = _ocp()
    with ocp.CheckpointManager(path.absolute(), item_names=("state", "meta"),
                               options=ocp.CheckpointManagerOptions(create=False,
                                                                    read_only=True)) as m:
        step = m.latest_step()
        if step is None:
            raise FileNotFoundError(f"no checkpoint step in {path}")
        return m.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
