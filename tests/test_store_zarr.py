"""``simulate(..., store_format="zarr")``: the checkpoint directory is a zarr v3 group
that xarray and zarr read lazily, while the run goes and after; resume is bitwise;
the fingerprint, the format and the checksums are checked as for the npz store."""

import json
import warnings

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import distributed
from jaxcollapse import store as st

zarr = pytest.importorskip("zarr")
xr = pytest.importorskip("xarray")

# the configuration of test_faults.py (one compiled program for both, in one process):
# 6 generations in zarr chunks of 2, generations 0-1, 2-3, 4-5 and 6
FAM = jc.Gaussian(dim=1, method="exact")
P0 = FAM.params()
KW = dict(n_generations=6, n_samples=10, n_chains=3, chunk_size=2, metrics=["w2sq"])
KEY = 7


class Killed(Exception):
    pass


def _run(d, **kw):
    return jc.simulate(jax.random.key(KEY), FAM, P0, checkpoint_dir=d,
                       **{**KW, "store_format": "zarr", **kw})


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


@pytest.fixture(scope="module")
def ref():
    """The run without a store, in chunks ending where the npz store's do (the same
    compiled chunk program): the zarr store must hold exactly these numbers."""
    return jax.tree.map(np.asarray, jc.simulate(jax.random.key(KEY), FAM, P0,
                                                on_chunk=lambda *a: None, **KW))


def _check_dataset(ds, ref, gens):
    assert ds["w2sq"].dims == ("chain", "generation")
    np.testing.assert_array_equal(ds["generation"].values, np.arange(gens))
    for k, v in ref.metrics.items():
        np.testing.assert_array_equal(ds[k].values, v[:, :gens])
    np.testing.assert_array_equal(ds["param_cov"].values, ref.params.cov[:, :gens])
    np.testing.assert_array_equal(ds["param_mean"].values, ref.params.mean[:, :gens])
    np.testing.assert_array_equal(ds["degenerate"].values, ref.degenerate[:, :gens])
    np.testing.assert_array_equal(ds["n_samples"].values, ref.n_samples[:gens])


def test_a_zarr_store_is_read_lazily_by_xarray_and_zarr_while_running_and_after(
        tmp_path, ref):
    d = tmp_path / "run"
    seen = []

    def look(start, stop, chunk):  # a reader while the run goes: committed chunks only
        ds = xr.open_zarr(d)
        seen.append((start, stop, ds.sizes["generation"], ds.attrs["generations_done"]))
        _check_dataset(ds, ref, stop)
        assert not isinstance(ds["w2sq"].variable._data, np.ndarray)  # lazy

    res = _run(d, on_chunk=look)
    # complete: no spare or temporary file is left (only the store's own files)
    assert [p.name for p in d.rglob(".*")] == []
    assert sorted(p.name for p in d.iterdir() if p.is_file()) == [
        "carry_000002.npz", "manifest.json", "zarr.json"]
    # one zarr chunk per simulation chunk, generation 0 in the first
    assert seen == [(0, 2, 2, 1), (2, 4, 4, 3), (4, 6, 6, 5), (6, 7, 7, 6)]
    _same(res, ref)  # the same numbers as the run without a store
    ds = xr.open_zarr(d)
    _check_dataset(ds, ref, 7)
    assert ds["w2sq"].encoding["chunks"] == (3, 2)
    assert ds.attrs["complete"] and ds.attrs["fingerprint"]["n_chains"] == 3
    np.testing.assert_array_equal(ds["chain"].values, np.arange(3))
    g = zarr.open_group(d, mode="r")
    assert g["param_cov"].chunks == (3, 2, 1, 1) and g["param_cov"].shape == (3, 7, 1, 1)
    np.testing.assert_array_equal(g["w2sq"][:, 3:6], ref.metrics["w2sq"][:, 3:6])
    # the package's own reader: verified, chunk by chunk, same API as the npz store
    lazy = jc.load_run(d)
    assert isinstance(lazy, jc.StoredResult) and lazy.complete
    assert lazy.generations_done == 6 and st.store_format_of(d) == "zarr"
    np.testing.assert_array_equal(lazy.metric("w2sq", [0, 3, 6]),
                                  ref.metrics["w2sq"][:, [0, 3, 6]])
    np.testing.assert_array_equal(lazy.per_generation("w2sq"), ref.metrics["w2sq"].mean(0))
    _same(lazy.load(), ref)
    np.testing.assert_array_equal(lazy.to_xarray()["w2sq"].values, ref.metrics["w2sq"])
    starts = [(a, b) for a, b, _ in lazy.chunks()]
    assert starts == [(0, 2), (2, 4), (4, 6), (6, 7)]
    # finished: read back without computing, as a StoredResult when keep=False
    again = _run(d, keep=False, on_chunk=lambda *a: pytest.fail("computed again"))
    _same(again.load(), ref)


def test_zarr_resume_is_bitwise_and_needs_no_format_argument(tmp_path, ref):
    d = tmp_path / "run"

    def die(start, stop, chunk):
        if stop > 4:
            raise Killed

    with pytest.raises(Killed):
        _run(d, on_chunk=die)
    part = jc.load_run(d)
    assert not part.complete and part.generations_done == 5  # 3 chunks committed
    assert xr.open_zarr(d).sizes["generation"] == 6
    seen = []
    res = jc.simulate(jax.random.key(KEY), FAM, P0, checkpoint_dir=d,  # format from DIR
                      on_chunk=lambda a, b, c: seen.append((a, b)), **KW)
    assert seen == [(6, 7)]  # only the missing chunk was computed
    _same(res, ref)
    _same(jc.load_run(d).load(), ref)
    _check_dataset(xr.open_zarr(d), ref, 7)


def test_zarr_store_refuses_a_changed_configuration_and_the_other_format(tmp_path):
    d = tmp_path / "run"
    _run(d)
    with pytest.raises(ValueError, match=r"n_samples: stored 10, now 30"):
        _run(d, n_samples=30)
    with pytest.raises(ValueError, match=r"stored as 'zarr'.*store_format='npz'"):
        _run(d, store_format="npz")
    npz = tmp_path / "npz"
    jc.simulate(jax.random.key(KEY), FAM, P0, checkpoint_dir=npz, **KW)
    with pytest.raises(ValueError, match=r"stored as 'npz'.*store_format='zarr'"):
        _run(npz)
    with pytest.raises(ValueError, match="store_format must be one of"):
        _run(tmp_path / "x", store_format="hdf5")
    with pytest.raises(ValueError, match="store_format='zarr' needs checkpoint_dir"):
        jc.simulate(jax.random.key(KEY), FAM, P0, store_format="zarr", **KW)
    with pytest.raises(ValueError, match="metric name 'n_samples' cannot be stored"):
        _run(tmp_path / "y", metrics={"n_samples": lambda p, q: p.mean.sum()})


def test_missing_zarr_names_the_extra(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "zarr", None)  # import zarr now fails
    with pytest.raises(ImportError, match=r"jaxcollapse\[zarr\]"):
        _run(tmp_path / "run")
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_zarr_shards_merge_into_the_single_process_store(tmp_path):
    res = distributed.simulate_processes(jax.random.key(KEY), FAM, P0, out=tmp_path / "run",
                                         keep_shards=True, store_format="zarr", **KW)
    assert isinstance(res, jc.StoredResult) and st.store_format_of(tmp_path / "run") == "zarr"
    single = _run(tmp_path / "single", keep=False)
    _same(res.load(), single.load())
    shard = distributed.shard_dir(tmp_path / "run", 0, 1)
    assert st.store_format_of(shard) == "zarr"
    st.remove_store(tmp_path / "run")
    assert not (tmp_path / "run").exists()  # every file the store wrote, and only those


def test_remove_store_removes_a_zarr_store_and_keeps_other_files(tmp_path):
    d = tmp_path / "run"
    _run(d)
    (d / "notes.txt").write_text("mine")
    (d / "w2sq" / "mine.txt").write_text("mine too")
    (d / "w2sq" / ".c.0.9.123.456.tmp").write_text("an interrupted chunk write")
    st.remove_store(d)
    assert sorted(p.relative_to(d).as_posix() for p in d.rglob("*")) == [
        "notes.txt", "w2sq", "w2sq/mine.txt"]


def test_a_zarr_manifest_is_the_commit_point(tmp_path, ref):
    """Chunk files written after the last commit (a run killed mid-chunk) are neither
    read nor trusted: the store reads as before and resumes to the same numbers."""
    d = tmp_path / "run"

    def die(start, stop, chunk):
        if stop > 3:
            raise Killed

    with pytest.raises(Killed):
        _run(d, on_chunk=die)
    man = json.loads((d / "manifest.json").read_text())
    # a kill between the chunk files and the commit: files of chunk 2, not recorded
    (d / "w2sq" / "c.0.2").write_bytes(b"\x00" * 24)
    assert man["chunks_done"] == 2 and "w2sq/c.0.2" not in man["checksums"]
    assert xr.open_zarr(d).sizes["generation"] == 4
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _same(_run(d), ref)


def test_the_metadata_made_without_zarr_is_what_zarr_makes():
    from jaxcollapse._zarr_layout import array_meta

    group = zarr.open_group(zarr.storage.MemoryStore(), mode="w", zarr_format=3)
    cases = [("bool", (3, 2), ["chain", "generation"]), ("float32", (3, 2, 1, 1),
             ["chain", "generation", "c_0", "c_1"]), ("int64", (2,), ["generation"]),
             ("float64", (5, 4), ["chain", "generation"]), ("uint32", (3, 2, 2),
             ["chain", "generation", "k_0"]), ("int8", (2,), ["generation"])]
    for i, (dt, chunks, dims) in enumerate(cases):
        arr = group.create_array(f"a{i}", shape=(0,) * len(chunks), chunks=chunks,
                                 dtype=dt, fill_value=False if dt == "bool" else 0,
                                 compressors=None, filters=None, dimension_names=dims,
                                 chunk_key_encoding=dict(name="default", separator="."))
        want = json.loads(json.dumps(arr.metadata.to_dict(), default=list))
        want.pop("shape")
        got = json.loads(json.dumps(array_meta(np.dtype(dt), chunks, dims)))
        assert list(got.items()) == list(want.items()), dt  # same keys, same order
    assert array_meta(np.dtype("complex64"), (2,), ["generation"]) is None  # zarr's


@pytest.mark.parametrize("exchange", [True, False])
def test_a_file_rewritten_every_chunk_is_replaced_whole(tmp_path, monkeypatch, exchange):
    from jaxcollapse import _zarr_layout as zl

    if not exchange:  # a system without renameat2: the spare is renamed over the file
        monkeypatch.setattr(zl, "_RENAMEAT2", None)
    p = tmp_path / "a" / "zarr.json"
    inodes = []
    for text in (b'{"shape":[9]}', b'{"shape":[10]}  ', b'{"shape":[11]}'):
        zl._swap_in(p, text, sync=True)
        assert p.read_bytes() == text
        inodes.append(p.stat().st_ino)
    spare = p.with_name(".zarr.json.spare.tmp")
    if exchange and zl._RENAMEAT2 is not None:  # two files trade names: no new inode
        assert inodes[2] == inodes[0] != inodes[1] and spare.read_bytes() == b'{"shape":[10]}  '
    else:
        assert not spare.exists()
    assert sorted(q.name for q in p.parent.iterdir()) == sorted(
        {"zarr.json"} | ({spare.name} if spare.exists() else set()))


def _chunk_files(d):
    return sorted(p.relative_to(d).as_posix() for p in d.rglob("*")
                  if p.is_file() and p.relative_to(d).as_posix().startswith("c"))


def _check_sums(d):
    """Every file the manifest records has the bytes of its recorded checksum."""
    from jaxcollapse._store_files import digest

    man = json.loads((d / "manifest.json").read_text())
    assert man["checksums"]
    for key, want in man["checksums"].items():
        assert digest((d / key).read_bytes()) == want, key


def test_a_new_zarr_store_keeps_each_arrays_chunk_files_in_its_folder(tmp_path):
    d = tmp_path / "run"
    _run(d)
    # chunk keys c.<chain block>.<generation chunk>[.0...]: one folder per array
    assert [p.name for p in d.iterdir() if p.is_dir()] and all(
        q.is_file() for p in d.iterdir() if p.is_dir() for q in p.iterdir())
    assert _chunk_files(d / "w2sq") == ["c.0.0", "c.0.1", "c.0.2", "c.0.3"]
    assert _chunk_files(d / "param_cov")[-1] == "c.0.3.0.0"
    assert _chunk_files(d / "n_samples") == ["c.0", "c.1", "c.2", "c.3"]
    assert _chunk_files(d / "chain") == ["c.0"]
    meta = json.loads((d / "w2sq" / "zarr.json").read_text())
    assert meta["chunk_key_encoding"] == dict(name="default",
                                              configuration=dict(separator="."))
    _check_sums(d)


def test_a_store_written_with_the_old_separator_reads_and_resumes_bitwise(
        tmp_path, ref, monkeypatch):
    """Stores written before the separator was "." (c/0/3: a folder per chunk
    coordinate) are read, verified and resumed with their own recorded keys."""
    from jaxcollapse import _zarr_layout

    d = tmp_path / "run"

    def die(start, stop, chunk):
        if stop > 3:
            raise Killed

    with monkeypatch.context() as m:  # the previous version's metadata
        m.setattr(_zarr_layout, "_SEPARATOR", "/")
        with pytest.raises(Killed):
            _run(d, on_chunk=die)
    assert _chunk_files(d / "w2sq") == ["c/0/0", "c/0/1"]
    assert _chunk_files(d / "chain") == ["c/0"]
    _check_sums(d)
    part = jc.load_run(d)  # verified against the checksums
    assert part.generations_done == 3
    _same(part.load(), jax.tree.map(lambda x: x[:, :4] if x.ndim > 1 else x[:4], ref))
    _check_dataset(xr.open_zarr(d), ref, 4)
    np.testing.assert_array_equal(zarr.open_group(d, mode="r")["w2sq"][:],
                                  ref.metrics["w2sq"][:, :4])
    seen = []

    def look(start, stop, chunk):  # readers while the resumed run writes
        seen.append((start, stop))
        _check_dataset(xr.open_zarr(d), ref, stop)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _run(d, on_chunk=look)
    assert seen == [(4, 6), (6, 7)]  # only the missing chunks were computed
    _same(res, ref)
    # the appended chunks keep the store's own separator
    assert _chunk_files(d / "w2sq") == ["c/0/0", "c/0/1", "c/0/2", "c/0/3"]
    assert _chunk_files(d / "param_cov")[-1] == "c/0/3/0/0"
    _check_sums(d)
    _same(jc.load_run(d).load(), ref)
    _check_dataset(xr.open_zarr(d), ref, 7)
    g = zarr.open_group(d, mode="r")
    np.testing.assert_array_equal(g["param_cov"][:], ref.params.cov)
    (d / "notes.txt").write_text("mine")
    st.remove_store(d)  # every file it wrote, folders c/ and c/0/ too
    assert sorted(p.name for p in d.rglob("*")) == ["notes.txt"]


def test_shards_written_with_the_old_separator_merge_into_a_new_store(
        tmp_path, ref, monkeypatch):
    from jaxcollapse import _zarr_layout

    merge = st.merge

    def merge_now(*a, **kw):  # the shards were written before, the merge is new
        monkeypatch.setattr(_zarr_layout, "_SEPARATOR", ".")
        return merge(*a, **kw)

    monkeypatch.setattr(_zarr_layout, "_SEPARATOR", "/")
    monkeypatch.setattr(distributed.st, "merge", merge_now)
    res = distributed.simulate_processes(jax.random.key(KEY), FAM, P0, out=tmp_path / "run",
                                         keep_shards=True, store_format="zarr", **KW)
    shard = distributed.shard_dir(tmp_path / "run", 0, 1)
    assert _chunk_files(shard / "w2sq")[-1] == "c/0/3"
    assert _chunk_files(tmp_path / "run" / "w2sq")[-1] == "c.0.3"
    _check_sums(shard)
    _check_sums(tmp_path / "run")
    _same(res.load(), ref)
    _check_dataset(xr.open_zarr(tmp_path / "run"), ref, 7)


# ------------------------------------------------------- a run of one simulation chunk
# G = C: rows 0..G would make two zarr chunks of C, the second holding generation G
# alone (padded to C, a second commit); such a run is one zarr chunk of G + 1 instead
KW1 = dict(KW, n_generations=4, chunk_size=4)


@pytest.fixture(scope="module")
def ref1():
    return jax.tree.map(np.asarray, jc.simulate(jax.random.key(KEY), FAM, P0,
                                                on_chunk=lambda *a: None, **KW1))


def test_a_run_of_one_simulation_chunk_is_one_zarr_chunk_and_one_commit(
        tmp_path, ref1, monkeypatch):
    from jaxcollapse import _store_zarr

    d = tmp_path / "run"
    commits = []
    write = _store_zarr.ZarrChunkWriter._write_manifest
    monkeypatch.setattr(_store_zarr.ZarrChunkWriter, "_write_manifest",
                        lambda self: commits.append(self.chunks_done) or write(self))
    seen = []
    res = _run(d, on_chunk=lambda a, b, c: seen.append((a, b)), **KW1)
    assert seen == [(0, 5)] and commits == [0, 1]  # the empty store, then one commit
    _same(res, ref1)
    man = json.loads((d / "manifest.json").read_text())
    assert man["n_chunks"] == 1 and man["complete"]
    assert _chunk_files(d / "w2sq") == ["c.0.0"]
    assert _chunk_files(d / "param_cov") == ["c.0.0.0.0"]
    assert _chunk_files(d / "n_samples") == ["c.0"]
    assert not list(d.glob("carry_*")) and [p.name for p in d.rglob(".*")] == []
    _check_sums(d)
    ds = xr.open_zarr(d)
    assert ds["w2sq"].encoding["chunks"] == (3, 5)
    _check_dataset(ds, ref1, 5)
    lazy = jc.load_run(d)
    assert lazy.generations_done == 4 and [(a, b) for a, b, _ in lazy.chunks()] == [(0, 5)]
    np.testing.assert_array_equal(lazy.metric("w2sq", [4, 0, 3]),
                                  ref1.metrics["w2sq"][:, [4, 0, 3]])
    _same(lazy.load(), ref1)
    # its one chunk damaged: computed again from generation 0, with a warning
    (d / "w2sq" / "c.0.0").write_bytes(b"\x00" * 120)
    with pytest.raises(st.StoreError, match="c.0.0"):
        jc.load_run(d).metric("w2sq", [4])
    with pytest.warns(RuntimeWarning, match="chunk 0 is computed again"):
        again = _run(d, keep=False, **KW1)
    _same(again.load(), ref1)
    _check_sums(d)


def _old_chunking(monkeypatch):
    """The previous version's chunking: two zarr chunks at G = C, the second holding
    generation G alone."""
    import math

    from jaxcollapse import _store_zarr

    monkeypatch.setattr(_store_zarr, "n_chunks", lambda G, C: math.ceil((G + 1) / C))


def test_a_store_written_with_two_chunks_at_g_equal_c_reads_resumes_and_merges(
        tmp_path, ref1, monkeypatch):
    d = tmp_path / "run"

    def die(start, stop, chunk):
        raise Killed

    with monkeypatch.context() as m:  # written (and killed) by the previous version
        _old_chunking(m)
        with pytest.raises(Killed):
            _run(d, on_chunk=die, **KW1)
    man = json.loads((d / "manifest.json").read_text())
    assert (man["n_chunks"], man["chunks_done"]) == (2, 1)
    assert _chunk_files(d / "w2sq") == ["c.0.0"]
    part = jc.load_run(d)
    assert part.generations_done == 3
    _same(part.load(), jax.tree.map(lambda x: x[:, :4] if x.ndim > 1 else x[:4], ref1))
    _check_dataset(xr.open_zarr(d), ref1, 4)
    seen = []

    def look(start, stop, chunk):
        seen.append((start, stop))
        _check_dataset(xr.open_zarr(d), ref1, stop)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        res = _run(d, on_chunk=look, **KW1)
    assert seen == [(4, 5)]  # its own chunking: generation 4 alone in chunk 1
    _same(res, ref1)
    assert _chunk_files(d / "w2sq") == ["c.0.0", "c.0.1"]
    assert xr.open_zarr(d)["w2sq"].encoding["chunks"] == (3, 4)
    _check_sums(d)
    lazy = jc.load_run(d)
    assert [(a, b) for a, b, _ in lazy.chunks()] == [(0, 4), (4, 5)]
    np.testing.assert_array_equal(lazy.metric("w2sq", [4, 3]),
                                  ref1.metrics["w2sq"][:, [4, 3]])
    _same(lazy.load(), ref1)
    _check_dataset(xr.open_zarr(d), ref1, 5)
    # shards written with two chunks merge into a store of two chunks
    out = tmp_path / "merged"
    merge = st.merge

    def merge_now(*a, **kw):  # the shards were written before, the merge is new
        monkeypatch.undo()
        return merge(*a, **kw)

    _old_chunking(monkeypatch)
    monkeypatch.setattr(distributed.st, "merge", merge_now)
    merged = distributed.simulate_processes(jax.random.key(KEY), FAM, P0, out=out,
                                            keep_shards=True, store_format="zarr", **KW1)
    shard = distributed.shard_dir(out, 0, 1)
    assert json.loads((shard / "manifest.json").read_text())["n_chunks"] == 2
    assert _chunk_files(out / "w2sq") == ["c.0.0", "c.0.1"]
    _check_sums(out)
    _same(merged.load(), ref1)
    _check_dataset(xr.open_zarr(out), ref1, 5)


def test_shards_of_one_chunk_merge_into_a_store_of_one_chunk(tmp_path, ref1):
    out = tmp_path / "run"
    res = distributed.simulate_processes(jax.random.key(KEY), FAM, P0, out=out,
                                         keep_shards=True, store_format="zarr", **KW1)
    for d in (distributed.shard_dir(out, 0, 1), out):
        assert json.loads((d / "manifest.json").read_text())["n_chunks"] == 1
        assert _chunk_files(d / "w2sq") == ["c.0.0"]
        _check_sums(d)
    _same(res.load(), ref1)
    _check_dataset(xr.open_zarr(out), ref1, 5)


def test_a_manifest_whose_chunk_count_fits_no_layout_is_named(tmp_path):
    from jaxcollapse._store_files import seal

    d = tmp_path / "run"
    _run(d, **KW1)
    man = json.loads((d / "manifest.json").read_text())
    man["n_chunks"] = 3  # resealed: only the count is wrong (G = C = 4: 1, or 2 before)
    (d / "manifest.json").write_text(json.dumps(seal(man)))
    with pytest.raises(st.StoreError, match=r"manifest\.json.*n_chunks 3.*one of \[1, 2\]"):
        jc.load_run(d)
    with pytest.raises(st.StoreError, match=r"n_chunks 3"):
        _run(d, **KW1)
