"""Long runs written to disk and resumed, and multi-process runs merged on disk.

The resumed and merged runs must give the very numbers of an uninterrupted
single-process run (bitwise: the same compiled chunk program from the same
carry bits). The 2-process checks run real subprocesses joined through
``jax.distributed`` on 127.0.0.1 with JAX's CPU collectives.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import cli, distributed
from jaxcollapse import store as st

REPO = Path(__file__).resolve().parents[1]
SAMPLES = jc.Gaussian(dim=2, method="samples")
EXACT = jc.Gaussian(dim=2, method="exact")
P0 = SAMPLES.params(cov=[[1.0, 0.3], [0.3, 2.0]])
HUMAN = SAMPLES.sample(jax.random.key(9), P0, 60)
KW = dict(n_generations=14, n_samples=12, n_chains=5, metrics=["w2sq", "var_ratio"])


def _kw(regime):
    """KW, with the human rows for a regime that trains on them (others refuse them)."""
    return dict(KW, human_data=HUMAN if isinstance(regime, jc.regimes.Mix) else None)
# the carry of accumulate on the samples path holds a pool of points; that of
# mix(source="fresh") a human-data key: both must survive a restart
CASES = {"samples-accumulate": (SAMPLES, "accumulate"),
         "exact-mix-fresh": (EXACT, jc.mix(0.25, "fresh"))}


class Killed(Exception):
    """Stands for the process dying between two chunks."""


def _die(start, stop, chunk):
    raise Killed


def _assert_same(a, b):
    """Bitwise equality of two results (NumPy or JAX leaves)."""
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ------------------------------------------------------------------ chunks on disk


def test_chunked_to_disk_equals_unchunked_and_lays_out_the_store(tmp_path):
    whole = jc.simulate(jax.random.key(1), EXACT, P0, regime="replace", **_kw(None))
    disk = jc.simulate(jax.random.key(1), EXACT, P0, regime="replace", chunk_size=4,
                       checkpoint_dir=tmp_path, **_kw(None))
    # one program against chunked programs: only the association of sums may differ
    np.testing.assert_allclose(whole.params.cov, disk.params.cov, rtol=1e-12)
    np.testing.assert_allclose(whole.metrics["w2sq"], disk.metrics["w2sq"], rtol=1e-9,
                               atol=1e-15)
    names = sorted(p.name for p in tmp_path.iterdir())
    # the carry before the last chunk stays, to recompute that chunk if it is damaged
    assert names == (["carry_000002.npz"] + [f"chunk_{k:06d}.npz" for k in range(4)]
                     + ["manifest.json"])
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["complete"] and man["chunks_done"] == 4 and man["chunk_size"] == 4
    # the lazy reader gives back exactly what the in-memory run returned
    lazy = jc.simulate(jax.random.key(1), EXACT, P0, regime="replace", chunk_size=4,
                       checkpoint_dir=tmp_path, keep=False, **_kw(None))
    assert isinstance(lazy, jc.StoredResult) and lazy.complete
    assert (lazy.n_chains, lazy.n_generations) == (5, 14)
    _assert_same(lazy.load(), disk)
    w2 = np.asarray(disk.metrics["w2sq"])
    gens = [14, 0, 5, 4, 9]  # across chunk borders, unsorted
    np.testing.assert_array_equal(lazy.metric("w2sq", gens), w2[:, gens])
    np.testing.assert_array_equal(lazy.metric("w2sq", 7), w2[:, 7])
    np.testing.assert_array_equal(lazy.per_generation("w2sq"), w2.mean(axis=0))
    np.testing.assert_array_equal(lazy.per_generation("w2sq", np.median),
                                  np.median(w2, axis=0))
    np.testing.assert_array_equal(lazy.degenerate(), np.asarray(disk.degenerate))
    spans = [(a, b) for a, b, _ in lazy.chunks()]
    assert spans == [(0, 5), (5, 9), (9, 13), (13, 15)]
    assert isinstance(lazy.load().params, jc.GaussianParams)


@pytest.mark.parametrize("case", list(CASES))
def test_resume_after_a_kill_between_chunks_equals_the_uninterrupted_run(tmp_path, case):
    fam, regime = CASES[case]
    ref = jc.simulate(jax.random.key(2), fam, P0, regime=regime, chunk_size=4, **_kw(regime))

    def die_after_second(start, stop, chunk):
        if stop > 5:
            raise Killed

    with pytest.raises(Killed):
        jc.simulate(jax.random.key(2), fam, P0, regime=regime, chunk_size=4,
                    checkpoint_dir=tmp_path, on_chunk=die_after_second, **_kw(regime))
    man = json.loads((tmp_path / "manifest.json").read_text())
    assert man["chunks_done"] == 2 and not man["complete"]
    assert sorted(p.name for p in tmp_path.glob("carry_*")) == ["carry_000000.npz",
                                                                "carry_000001.npz"]
    assert jc.load_run(tmp_path).generations_done == 8

    seen = []
    res = jc.simulate(jax.random.key(2), fam, P0, regime=regime, chunk_size=4,
                      checkpoint_dir=tmp_path, on_chunk=lambda a, b, c: seen.append((a, b)),
                      **_kw(regime))
    assert seen == [(9, 13), (13, 15)]  # only the missing chunks were computed
    _assert_same(res, ref)
    # a finished run keeps only the carry before its last chunk
    assert sorted(p.name for p in tmp_path.glob("carry_*")) == ["carry_000002.npz"]


_KILLED_CHILD = """
import sys, time
import jax
jax.config.update("jax_enable_x64", True)
import jaxcollapse as jc
fam = jc.Gaussian(dim=2, method="samples")
p0 = fam.params(cov=[[1.0, 0.3], [0.3, 2.0]])
human = fam.sample(jax.random.key(9), p0, 60)

def on_chunk(start, stop, chunk):
    print("CHUNK", stop, flush=True)
    if stop > 5:
        time.sleep(120)  # killed here, between chunks

jc.simulate(jax.random.key(2), fam, p0, regime="accumulate", chunk_size=4,
            n_generations=14, n_samples=12, n_chains=5,
            metrics=["w2sq", "var_ratio"], checkpoint_dir=sys.argv[1], on_chunk=on_chunk)
"""


def test_resume_after_sigkill_of_a_real_process(tmp_path):
    # a real process killed with SIGKILL (no cleanup, no exception handlers) after its
    # second chunk; this process then resumes its run from disk
    proc = subprocess.Popen([sys.executable, "-c", _KILLED_CHILD, str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        lines = []
        for line in proc.stdout:
            lines.append(line.strip())
            if line.strip() == "CHUNK 9":
                break
        assert lines[-1] == "CHUNK 9", lines
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -9
    assert jc.load_run(tmp_path).generations_done == 8
    fam, regime = CASES["samples-accumulate"]
    seen = []
    res = jc.simulate(jax.random.key(2), fam, P0, regime=regime, chunk_size=4,
                      checkpoint_dir=tmp_path, on_chunk=lambda a, b, c: seen.append((a, b)),
                      **_kw(regime))
    assert seen == [(9, 13), (13, 15)]
    _assert_same(res, jc.simulate(jax.random.key(2), fam, P0, regime=regime, chunk_size=4,
                                  **_kw(regime)))


def test_resume_with_keep_false_reads_the_disk(tmp_path):
    # (the compiled chunk program is shared with the test above: same shapes)
    ref = jc.simulate(jax.random.key(3), SAMPLES, P0, regime="accumulate", chunk_size=4,
                      **_kw(None))

    def die(start, stop, chunk):
        if stop > 10:
            raise Killed

    with pytest.raises(Killed):
        jc.simulate(jax.random.key(3), SAMPLES, P0, regime="accumulate", chunk_size=4,
                    checkpoint_dir=tmp_path, keep=False, on_chunk=die, **_kw(None))
    lazy = jc.simulate(jax.random.key(3), SAMPLES, P0, regime="accumulate", chunk_size=4,
                       checkpoint_dir=tmp_path, keep=False, **_kw(None))
    _assert_same(lazy.load(), ref)


@pytest.mark.parametrize("change, field", [
    (dict(chunk_size=5), "chunk_size"),
    (dict(n_samples=13), "n_samples"),
    (dict(key=jax.random.key(5)), "key"),
    (dict(n_chains=6), "n_chains"),
    (dict(regime="replace"), "regime"),
    (dict(family=jc.Gaussian(dim=2, method="samples", ddof=0)), "family"),
    (dict(params0=P0._replace(mean=P0.mean + 1)), "params0"),
    (dict(params0=jax.tree.map(lambda a: a.astype(np.float32), P0)), "dtype"),
    (dict(metrics=["w2sq"]), "metrics"),
])
def test_resume_with_another_configuration_names_what_differs(tmp_path, change, field):
    base = dict(key=jax.random.key(4), family=SAMPLES, params0=P0, regime="accumulate",
                chunk_size=4, **_kw(None))
    with pytest.raises(Killed):
        jc.simulate(**base, checkpoint_dir=tmp_path, on_chunk=_die)
    args = dict(base, **change)
    with pytest.raises(ValueError, match=rf"different configuration \(.*{field}: stored"):
        jc.simulate(args.pop("key"), args.pop("family"), args.pop("params0"),
                    checkpoint_dir=tmp_path, **args)


def test_bad_store_arguments(tmp_path):
    kw = dict(n_generations=4, n_samples=10, n_chains=3)
    with pytest.raises(ValueError, match="keep=False needs checkpoint_dir"):
        jc.simulate(jax.random.key(0), SAMPLES, P0, keep=False, **kw)
    with pytest.raises(TypeError, match="keep must be True or False"):
        jc.simulate(jax.random.key(0), SAMPLES, P0, keep="no", checkpoint_dir=tmp_path, **kw)
    for block in ((2, 2), (0, 4), (-1, 2)):
        with pytest.raises(ValueError, match="chain_block must satisfy 0 <= start < stop"):
            jc.simulate(jax.random.key(0), SAMPLES, P0, chain_block=block, **kw)
    with pytest.raises(FileNotFoundError, match="no jaxcollapse run"):
        jc.load_run(tmp_path / "nothing")
    (tmp_path / "manifest.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="holds no jaxcollapse run"):
        jc.simulate(jax.random.key(0), SAMPLES, P0, checkpoint_dir=tmp_path, **kw)


def test_chain_block_is_the_same_chains_of_the_whole_run():
    whole = jc.simulate(jax.random.key(6), EXACT, P0, regime="replace", **_kw(None))
    part = jc.simulate(jax.random.key(6), EXACT, P0, regime="replace", chain_block=(2, 5),
                       **_kw(None))
    _assert_same(part, jax.tree.map(lambda a: a[2:5] if a.ndim > 1 else a, whole))


# --------------------------------------------------------------------- processes


def test_chain_blocks_tile_the_chains():
    for n_chains in (1, 7, 8, 100):
        for n_proc in range(1, min(n_chains, 5) + 1):
            blocks = [distributed.chain_block(n_chains, p, n_proc) for p in range(n_proc)]
            assert blocks[0][0] == 0 and blocks[-1][1] == n_chains
            assert all(a[1] == b[0] for a, b in zip(blocks[:-1], blocks[1:], strict=True))
            sizes = [b - a for a, b in blocks]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    with pytest.raises(ValueError, match="n_chains=2 is smaller than num_processes=3"):
        distributed.chain_block(2, 0, 3)


@pytest.mark.parametrize("kwargs, env, error, message", [
    (dict(coordinator="127.0.0.1:1", num_processes=2, process_id=2), {}, ValueError,
     r"process_id must lie in 0..1 \(num_processes=2\); got 2"),
    (dict(coordinator="127.0.0.1:1", num_processes=2, process_id=-1), {}, ValueError,
     "process_id must be >= 0; got -1"),
    (dict(coordinator="127.0.0.1:1", num_processes=0, process_id=0), {}, ValueError,
     "num_processes must be >= 1; got 0"),
    (dict(coordinator="127.0.0.1:1", num_processes=2.0, process_id=0), {}, TypeError,
     "num_processes must be an integer"),
    (dict(coordinator="127.0.0.1:1"), {"JAXCOLLAPSE_NUM_PROCESSES": "2",
                                       "JAXCOLLAPSE_PROCESS_ID": "5"}, ValueError,
     r"process_id \(from JAXCOLLAPSE_PROCESS_ID\) must lie in 0..1"),
    (dict(num_processes=2, process_id=1), {}, ValueError,
     r"missing coordinator \(or JAXCOLLAPSE_COORDINATOR\)"),
    (dict(coordinator="localhost", num_processes=2, process_id=1), {}, ValueError,
     "coordinator must be 'HOST:PORT'"),
    (dict(coordinator="127.0.0.1:1"), {"JAXCOLLAPSE_NUM_PROCESSES": "two"}, ValueError,
     "environment variable JAXCOLLAPSE_NUM_PROCESSES must be an integer; got 'two'"),
    (dict(num_processes=1, process_id=1), {}, ValueError,
     "process_id must be 0 when num_processes=1"),
])
def test_bad_process_arguments(monkeypatch, kwargs, env, error, message):
    for var in ("JAXCOLLAPSE_COORDINATOR", "JAXCOLLAPSE_NUM_PROCESSES",
                "JAXCOLLAPSE_PROCESS_ID", "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    with pytest.raises(error, match=message):
        distributed.initialize(**kwargs, timeout_s=1.0)


def test_unreachable_coordinator_times_out_naming_the_address(monkeypatch):
    monkeypatch.delenv("JAXCOLLAPSE_COORDINATOR", raising=False)
    address = f"127.0.0.1:{_free_port()}"  # nobody listens there
    with pytest.raises(TimeoutError, match=f"could not reach the coordinator at {address} "
                                           r"within 0.5 s \(process 1 of 2"):
        distributed.initialize(address, 2, 1, timeout_s=0.5)


def test_single_process_initialize_is_a_no_op(monkeypatch):
    for var in ("JAXCOLLAPSE_COORDINATOR", "JAXCOLLAPSE_NUM_PROCESSES",
                "JAXCOLLAPSE_PROCESS_ID", "JAX_COORDINATOR_ADDRESS"):
        monkeypatch.delenv(var, raising=False)
    assert distributed.initialize() == distributed.ProcessInfo(0, 1, None)
    assert not jax.distributed.is_initialized()


WORKER = textwrap.dedent("""
    import sys
    import jax
    jax.config.update("jax_enable_x64", True)
    from jaxcollapse import distributed
    mode, out = sys.argv[1], sys.argv[2]
    try:
        info = distributed.initialize(timeout_s=120)
    except ValueError as e:
        print("INIT-ERROR", e, flush=True)
        raise SystemExit(0)
    from jaxcollapse import cli
    assert len(jax.local_devices()) == 2 and jax.process_count() == 2
    import jaxcollapse as jc
    fam = jc.Gaussian(dim=2, method="exact")
    p0 = fam.params(cov=[[1.0, 0.3], [0.3, 2.0]])
    human = fam.sample(jax.random.key(9), p0, 60)
    res = distributed.simulate_processes(
        jax.random.key(7), fam, p0, out=out + "/lib", n_chains=11, n_generations=9,
        n_samples=12, chunk_size=4, regime=jc.mix(0.25, "fresh"), human_data=human,
        timeout_s=300)
    assert (res is None) == (info.process_id != 0)
    cli.main(["run", "gaussian", "--generations", "7", "--samples", "10", "--chains", "9",
              "--chunk-size", "3", "--out", out + "/cli", "--no-progress"])
    print("WORKER-DONE", info.process_id, flush=True)
""")


def test_two_processes_over_loopback_merge_to_the_single_process_result(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    for var in ("JAXCOLLAPSE_COORDINATOR", "JAX_COORDINATOR_ADDRESS"):
        env.pop(var, None)
    good, bad = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"
    # a good pair, and a pair that disagrees on the process count (run alongside)
    launches = [("run", good, 2, 0), ("run", good, 2, 1), ("bad", bad, 2, 0),
                ("bad", bad, 3, 1)]
    procs = [subprocess.Popen(
        [sys.executable, "-c", WORKER, mode, str(tmp_path / mode)],
        env=dict(env, JAXCOLLAPSE_COORDINATOR=addr, JAXCOLLAPSE_NUM_PROCESSES=str(n),
                 JAXCOLLAPSE_PROCESS_ID=str(i)),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for mode, addr, n, i in launches]
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=600)
            outs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    for (mode, _, _, i), (code, out, err) in zip(launches, outs, strict=True):
        assert code == 0, err[-3000:]
        if mode == "run":
            assert f"WORKER-DONE {i}" in out, err[-3000:]
        else:
            assert "INIT-ERROR mismatched process counts" in out, out + err[-2000:]
    assert "process 1 with num_processes=3" in outs[2][1]
    assert "process 0 with num_processes=2" in outs[3][1]

    # the library store: process 0 merged both shards into what one process writes
    # (2 devices a process, 6 and 5 chains: padding and sharding within each process)
    fam = jc.Gaussian(dim=2, method="exact")
    p0 = fam.params(cov=[[1.0, 0.3], [0.3, 2.0]])
    human = fam.sample(jax.random.key(9), p0, 60)
    one = jc.simulate(jax.random.key(7), fam, p0, n_chains=11, n_generations=9,
                      n_samples=12, chunk_size=4, regime=jc.mix(0.25, "fresh"),
                      human_data=human)
    merged = jc.load_run(tmp_path / "run" / "lib")
    assert merged.complete and merged.n_chains == 11
    assert not (tmp_path / "run" / "lib" / "shards").exists()
    got = merged.load()
    # parameters are bitwise those of one process; a metric computed for a batch of 3
    # chains a device may round differently from a batch of 11 (seen: 1 ulp)
    _assert_same((got.params, got.degenerate, got.n_samples),
                 (one.params, one.degenerate, one.n_samples))
    for name, m in one.metrics.items():
        np.testing.assert_allclose(got.metrics[name], m, rtol=1e-13, atol=1e-15)
    # and one process asking for the same run finds it finished on disk
    again = distributed.simulate_processes(
        jax.random.key(7), fam, p0, out=tmp_path / "run" / "lib", n_chains=11,
        n_generations=9, n_samples=12, chunk_size=4, regime=jc.mix(0.25, "fresh"),
        human_data=human)
    assert again.directory == merged.directory

    # the command line: process 0 writes the files a single-process run writes
    single = tmp_path / "single"
    cli.main(["run", "gaussian", "--generations", "7", "--samples", "10", "--chains", "9",
              "--chunk-size", "3", "--out", str(single), "--no-progress"])
    two = np.load(tmp_path / "run" / "cli" / "arrays.npz")
    one_cli = np.load(single / "arrays.npz")
    assert sorted(two.files) == sorted(one_cli.files)
    for name in one_cli.files:
        if name.startswith("metric_"):  # float32 copies of metrics (see above)
            np.testing.assert_allclose(two[name], one_cli[name], rtol=1e-6)
        else:
            np.testing.assert_array_equal(two[name], one_cli[name])
    table = json.loads((tmp_path / "run" / "cli" / "summary.json").read_text())["table"]
    for a, b in zip(table, json.loads((single / "summary.json").read_text())["table"],
                    strict=True):
        assert a.keys() == b.keys()
        np.testing.assert_allclose([a[k] for k in a], [b[k] for k in a], rtol=1e-6)
    assert not (tmp_path / "run" / "cli" / "checkpoint").exists()


def test_cli_resume_continues_an_interrupted_run(tmp_path, monkeypatch):
    argv = ["run", "gaussian", "--generations", "12", "--samples", "10", "--chains", "7",
            "--chunk-size", "4", "--no-progress"]
    real = jc.simulate
    seen = []

    def dying(*args, on_chunk=None, **kw):
        def cb(a, b, c):
            on_chunk(a, b, c)
            seen.append((a, b))
            if b > 8:
                raise Killed
        return real(*args, on_chunk=cb, **kw)

    monkeypatch.setattr(jc, "simulate", dying)
    with pytest.raises(Killed):
        cli.main([*argv, "--out", str(tmp_path / "a")])
    progress = json.loads((tmp_path / "a" / "progress.json").read_text())
    assert progress["generations_done"] == 8 and not progress["complete"]
    assert st.StoredResult(tmp_path / "a" / "checkpoint").chunks_done == 2

    def counting(*args, on_chunk=None, **kw):
        return real(*args, on_chunk=lambda a, b, c: (seen.append((a, b)), on_chunk(a, b, c)),
                    **kw)

    monkeypatch.setattr(jc, "simulate", counting)
    seen.clear()
    assert cli.main([*argv, "--out", str(tmp_path / "a"), "--resume"]) == 0
    assert seen == [(9, 13)]
    assert cli.main([*argv, "--out", str(tmp_path / "b")]) == 0
    a, b = np.load(tmp_path / "a" / "arrays.npz"), np.load(tmp_path / "b" / "arrays.npz")
    for name in b.files:
        np.testing.assert_array_equal(a[name], b[name])
    assert json.loads((tmp_path / "a" / "progress.json").read_text())["complete"]
