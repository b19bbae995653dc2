"""Fault injection on the on-disk store: every file of a run, truncated, corrupted,
emptied, filled with garbage, swapped for another valid file or deleted, then the run
is resumed and read back. Each case must end in a clear error naming the damaged
file or in the very numbers of the undamaged run (bitwise), never in other numbers.
"""

import json
import shutil
import warnings

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import store as st

FAM = jc.Gaussian(dim=1, method="exact")
P0 = FAM.params()
# 3 chunks of 2 generations: chunk 2 is the last; an interrupted run stops after 2
KW = dict(n_generations=6, n_samples=10, n_chains=3, chunk_size=2, metrics=["w2sq"])
KEY = 7


class Killed(Exception):
    pass


def _run(d, **kw):
    return jc.simulate(jax.random.key(KEY), FAM, P0, checkpoint_dir=d, **KW, **kw)


def _die_after_two(start, stop, chunk):
    if stop > 3:
        raise Killed


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    """A complete store, an interrupted one (2 of 3 chunks), and the reference."""
    root = tmp_path_factory.mktemp("stores")
    ref = _run(root / "complete")
    with pytest.raises(Killed):
        _run(root / "interrupted", on_chunk=_die_after_two)
    return root, jax.tree.map(np.asarray, ref)


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _first(res, n_gens):
    return jax.tree.map(lambda a: a[..., :n_gens] if a.ndim == 1 else a[:, :n_gens], res)


def _damage(path, how, root, state):
    data = path.read_bytes() if path.exists() else b""
    if how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "corrupt":  # one flipped bit in the middle
        b = bytearray(data)
        b[len(b) // 2] ^= 0x10
        path.write_bytes(bytes(b))
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "garbage":  # a zip's magic, then noise
        path.write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    elif how == "delete":
        path.unlink()
    elif how == "swap":  # another valid file of the same kind
        if path.name == "manifest.json":
            other = root / ("interrupted" if state == "complete" else "complete") / path.name
        else:
            kind, k = path.stem.split("_")
            cands = sorted(p for p in (root / "complete").glob(f"{kind}_*.npz")) + sorted(
                p for p in (root / "interrupted").glob(f"{kind}_*.npz"))
            other = next(p for p in cands if p.read_bytes() != data)
        shutil.copyfile(other, path)


FILES = {"complete": ["manifest.json", "chunk_000000.npz", "chunk_000001.npz",
                      "chunk_000002.npz", "carry_000001.npz"],
         "interrupted": ["manifest.json", "chunk_000000.npz", "chunk_000001.npz",
                         "carry_000000.npz", "carry_000001.npz"]}
HOW = ["truncate", "corrupt", "empty", "garbage", "swap", "delete"]
CASES = [(s, f, h) for s in FILES for f in FILES[s] for h in HOW]


def _clear_or_same(call, want, name, what):
    """``call()`` raises a ValueError (FileNotFoundError for a missing manifest) naming
    ``name``, or returns ``want`` bitwise; a recovery warns naming the file."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            got = call()
        except (ValueError, FileNotFoundError) as e:
            assert name in str(e), f"{what}: the error does not name {name}: {e}"
            assert len(str(e).splitlines()) == 1, e
            return "error"
    _same(got, want)
    for w in caught:
        if issubclass(w.category, RuntimeWarning):
            assert name in str(w.message) or "store file" in str(w.message), w.message
    return "same"


@pytest.mark.parametrize("state, name, how", CASES)
def test_damaged_file_gives_a_clear_error_or_the_same_numbers(stores, tmp_path, state, name,
                                                              how):
    root, ref = stores
    d = tmp_path / "run"
    shutil.copytree(root / state, d)
    _damage(d / name, how, root, state)
    done = 7 if state == "complete" else 5  # generations written (0..done-1)

    # reading what is on disk: a damaged chunk is named; nothing else changes numbers
    def read():
        return jc.load_run(d).load()

    if name == "manifest.json" and how == "swap":
        # the other run's manifest: read as what it claims, so the interrupted folder
        # lacks the third chunk and the complete folder reads as interrupted
        want, named = (_first(ref, 5), name) if state == "complete" else \
            (None, "chunk_000002.npz")
        outcome = _clear_or_same(read, want, named, "read")
        assert outcome == ("same" if state == "complete" else "error")
    else:
        outcome = _clear_or_same(read, _first(ref, done), name, f"read {state}/{name}/{how}")
        # a damaged chunk or manifest is named; carries are not read by the reader
        assert outcome == ("same" if name.startswith("carry") else "error")

    # resuming: the last chunk (or latest carry) is recomputed; an earlier chunk is fatal
    outcome = _clear_or_same(lambda: _run(d), ref, name, f"resume {state}/{name}/{how}")
    last_chunk = "chunk_000002.npz" if state == "complete" else "chunk_000001.npz"
    if name == last_chunk or name.startswith("carry") or (name == "manifest.json" and
                                                         how in ("delete", "swap")):
        assert outcome == "same", "a damaged last chunk or carry must be recomputed"
    else:  # an earlier chunk or a damaged manifest cannot be trusted: named
        assert outcome == "error"
    if outcome == "same":  # the store is whole again: every file verifies
        _same(jc.load_run(d).load(), ref)


def test_a_recovered_last_chunk_is_computed_again_and_warned_about(stores, tmp_path):
    root, ref = stores
    d = tmp_path / "run"
    shutil.copytree(root / "complete", d)
    _damage(d / "chunk_000002.npz", "corrupt", root, "complete")
    seen = []
    with pytest.warns(RuntimeWarning, match="chunk_000002.npz"):
        res = _run(d, on_chunk=lambda a, b, c: seen.append((a, b)))
    assert seen == [(5, 7)]  # only the damaged chunk was computed
    _same(res, ref)
    lazy = _run(d, keep=False)  # complete again: read back without computing
    assert isinstance(lazy, jc.StoredResult) and lazy.complete
    _same(lazy.load(), ref)


def test_a_damaged_only_chunk_restarts_the_run(tmp_path):
    ref = jc.simulate(jax.random.key(KEY), FAM, P0, **KW)
    with pytest.raises(Killed):
        _run(tmp_path, on_chunk=lambda a, b, c: (_ for _ in ()).throw(Killed()))
    _damage(tmp_path / "chunk_000000.npz", "truncate", None, None)
    with pytest.warns(RuntimeWarning, match="chunk_000000.npz"):
        _same(_run(tmp_path), ref)


def test_the_reader_names_the_damaged_chunk_and_what_to_do(stores, tmp_path):
    root, _ = stores
    d = tmp_path / "run"
    shutil.copytree(root / "complete", d)
    _damage(d / "chunk_000001.npz", "truncate", root, "complete")
    lazy = jc.load_run(d)
    with pytest.raises(ValueError, match=r"chunk_000001\.npz.*cannot be recomputed"):
        lazy.metric("w2sq", 3)
    assert lazy.metric("w2sq", 6).shape == (3,)  # the other chunks are still read
    _damage(d / "chunk_000002.npz", "corrupt", root, "complete")
    with pytest.raises(ValueError, match=r"chunk_000002\.npz.*resume the run"):
        jc.load_run(d).metric("w2sq", [0, 6])


@pytest.mark.parametrize("text", ["", "{", "[1, 2]", "\x00\xff", '{"format": "x"}',
                                  '{"format": "jaxcollapse.simulate-store/1"}'])
def test_a_garbage_manifest_is_named(stores, tmp_path, text):
    root, _ = stores
    d = tmp_path / "run"
    shutil.copytree(root / "complete", d)
    (d / "manifest.json").write_bytes(text.encode("latin-1"))
    for call in (lambda: jc.load_run(d), lambda: _run(d)):
        with pytest.raises(ValueError, match=r"manifest\.json"):
            call()


def test_stores_without_checksums_are_still_read(stores, tmp_path):
    root, ref = stores
    d = tmp_path / "run"
    shutil.copytree(root / "complete", d)
    man = json.loads((d / "manifest.json").read_text())
    del man["checksums"], man["self_checksum"]  # as written before checksums existed
    (d / "manifest.json").write_text(json.dumps(man))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(jc.load_run(d).load(), ref)
        _same(_run(d), ref)
    _damage(d / "chunk_000001.npz", "truncate", root, "complete")
    with pytest.raises(ValueError, match=r"chunk_000001\.npz"):  # zip's own check
        jc.load_run(d).load()


def test_stale_store_files_without_a_manifest_are_recomputed(stores, tmp_path):
    root, ref = stores
    d = tmp_path / "run"
    shutil.copytree(root / "interrupted", d)
    (d / "manifest.json").unlink()
    (d / "notes.txt").write_text("a user's file")
    with pytest.warns(RuntimeWarning, match="no manifest.json"):
        _same(_run(d), ref)
    assert (d / "notes.txt").read_text() == "a user's file"


def test_remove_store_leaves_other_files(stores, tmp_path):
    root, _ = stores
    d = tmp_path / "ckpt"
    shutil.copytree(root / "complete", d)
    (d / "mine.txt").write_text("x")
    (d / "shards" / "process_00000_of_00002").mkdir(parents=True)
    shutil.copy(d / "manifest.json", d / "shards" / "process_00000_of_00002")
    st.remove_store(d)
    assert sorted(p.name for p in d.rglob("*")) == ["mine.txt"]
    (d / "mine.txt").unlink()
    st.remove_store(d)
    assert not d.exists()


# ------------------------------------------------------------------ the zarr store
# The same faults on a store written with store_format="zarr" (a zarr v3 group): its
# chunk files (one per array and chunk: w2sq/c.0.K, param_cov/c.0.K.0.0, ...), its
# carries, its manifest and the zarr.json metadata that xarray reads. Chunks of 2
# generations hold 0-1, 2-3, 4-5 and 6 (the last); an interrupted run stops after 2.

ZFILES = {"complete": ["manifest.json", "w2sq/c.0.0", "param_cov/c.0.3.0.0",
                       "carry_000002.npz", "w2sq/zarr.json", "zarr.json"],
          "interrupted": ["manifest.json", "degenerate/c.0.1", "carry_000001.npz"]}
ZCASES = [(s, f, h) for s in ZFILES for f in ZFILES[s] for h in HOW]


def _zrun(d, **kw):
    return _run(d, store_format="zarr", **kw)


@pytest.fixture(scope="module")
def zstores(tmp_path_factory):
    pytest.importorskip("zarr")
    root = tmp_path_factory.mktemp("zstores")
    ref = _zrun(root / "complete")
    with pytest.raises(Killed):
        _zrun(root / "interrupted", on_chunk=_die_after_two)
    return root, jax.tree.map(np.asarray, ref)


def _zdamage(path, how, root, state):
    if how != "swap" or path.name == "manifest.json":
        return _damage(path, how, root, state)
    data = path.read_bytes()
    # another valid file of the same kind: the same array's other chunks, another
    # array's metadata, the other carries
    cands = sorted(p for s in ("complete", "interrupted") for p in (root / s).rglob("*")
                   if p.is_file() and p.name != "manifest.json" and
                   not p.name.startswith(".") and
                   ((p.parent.name == path.parent.name and
                     (p.name == "zarr.json") == (path.name == "zarr.json"))
                    or p.name == path.name or
                    (p.name.startswith("carry") and path.name.startswith("carry")))
                   and p.read_bytes() != data)
    assert cands, path
    shutil.copyfile(cands[0], path)


@pytest.mark.parametrize("state, name, how", ZCASES)
def test_a_damaged_zarr_file_gives_a_clear_error_or_the_same_numbers(zstores, tmp_path,
                                                                     state, name, how):
    xr = pytest.importorskip("xarray")
    root, ref = zstores
    d = tmp_path / state
    shutil.copytree(root / state, d)
    _zdamage(d / name, how, root, state)
    done = 7 if state == "complete" else 4  # generations written (0..done-1)
    chunk_file = "/c." in name
    meta = name.endswith("zarr.json")

    def read():
        return jc.load_run(d).load()

    if name == "manifest.json" and how == "swap":
        # the other run's manifest: the interrupted folder lacks chunks 2 and 3
        want, named = (_first(ref, 4), name) if state == "complete" else (None, "/c.0.2")
        outcome = _clear_or_same(read, want, named, "read")
        assert outcome == ("same" if state == "complete" else "error")
    else:
        outcome = _clear_or_same(read, _first(ref, done), name, f"read {state}/{name}/{how}")
        # the package's reader reads chunk files (verified) and the manifest only
        assert outcome == ("error" if chunk_file or name == "manifest.json" else "same")

    named = name
    if name == "manifest.json" and how == "swap":
        # the complete folder keeps only the carry before its last chunk (2), not the
        # carry after chunk 1 that the interrupted manifest resumes from
        named = "carry_000001.npz" if state == "complete" else "/c.0.2"
    outcome = _clear_or_same(lambda: _zrun(d), ref, named, f"resume {state}/{name}/{how}")
    last_chunk = "/c.0.3" in name or (state == "interrupted" and "/c.0.1" in name)
    if how == "swap" and name == "manifest.json":
        assert outcome == "error"
    elif last_chunk or name.startswith("carry") or meta or (
            name == "manifest.json" and how == "delete"):
        assert outcome == "same", "a damaged last chunk, carry or zarr.json is recomputed"
    else:  # an earlier chunk or a damaged manifest cannot be trusted: named
        assert outcome == "error"
    if outcome == "same":  # whole again: every file verifies, and xarray reads it all
        _same(jc.load_run(d).load(), ref)
        ds = xr.open_zarr(d)
        np.testing.assert_array_equal(ds["w2sq"].values, ref.metrics["w2sq"])
        np.testing.assert_array_equal(ds["param_cov"].values, ref.params.cov)
