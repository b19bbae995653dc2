"""Multi-process (multi-host) simulation with JAX's own distributed runtime.

Chains never interact, so a multi-process run splits the ``n_chains`` into one
contiguous block per process (:func:`chain_block`); each process simulates its
block on its own devices (sharded over them as :func:`jaxcollapse.simulate` does)
and writes its shard of the results; process 0 waits for every shard and merges
them into the store a single-process ``simulate(..., checkpoint_dir=out)`` writes.
Chain i uses ``fold_in(key, i)`` wherever it runs, so the merged result does not
depend on the number of processes. The processes find each other through
``jax.distributed`` (its coordinator and key-value service), and check that they
agree on the process count with ``multihost_utils.process_allgather``.

Launch: start the same program once per process (host), all with the same
arguments except the process id; process 0's host runs the coordinator, and every
process must see the output directory (a shared file system)::

    # host 10.0.0.1 (process 0; it also runs the coordinator on port 29500)
    jaxcollapse run gaussian --chains 1000000 --out /shared/runs/big \\
        --coordinator 10.0.0.1:29500 --num-processes 2 --process-id 0
    # host 10.0.0.2
    jaxcollapse run gaussian --chains 1000000 --out /shared/runs/big \\
        --coordinator 10.0.0.1:29500 --num-processes 2 --process-id 1

Instead of the flags, the environment may carry ``JAXCOLLAPSE_COORDINATOR``,
``JAXCOLLAPSE_NUM_PROCESSES`` and ``JAXCOLLAPSE_PROCESS_ID`` (or JAX's own
``JAX_COORDINATOR_ADDRESS``). From Python, call :func:`initialize` before any
other JAX call, then :func:`simulate_processes`. On CPU, cross-process collectives
use JAX's default implementation (``jax_cpu_collectives_implementation``, gloo).
For Slurm, Open MPI or Cloud TPU, ``jax.distributed.initialize()`` without
arguments detects everything itself; :func:`simulate_processes` works with a
runtime started either way.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxcollapse import store as st

ENV_COORDINATOR = "JAXCOLLAPSE_COORDINATOR"
ENV_NUM_PROCESSES = "JAXCOLLAPSE_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXCOLLAPSE_PROCESS_ID"
JAX_ENV_COORDINATOR = "JAX_COORDINATOR_ADDRESS"


class ProcessInfo(NamedTuple):
    """Where this process stands in a run: ``process_id`` of ``num_processes``.

    Example:
        >>> ProcessInfo(process_id=0, num_processes=1, coordinator=None).num_processes
        1
    """

    process_id: int
    num_processes: int
    coordinator: str | None


def _env_int(name: str) -> int | None:
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {name} must be an integer; got "
                         f"{value!r}") from None


def _split_address(address: str) -> tuple[str, int]:
    if not isinstance(address, str) or ":" not in address:
        raise ValueError(f"coordinator must be 'HOST:PORT'; got {address!r}")
    host, port_s = address.rsplit(":", 1)
    host = host.strip("[]")  # [::1]:port
    try:
        port = int(port_s)
    except ValueError:
        port = -1
    if not host or not 1 <= port <= 65535:
        raise ValueError(f"coordinator must be 'HOST:PORT' with a port in 1..65535; got "
                         f"{address!r}")
    return host, port


def _wait_for_coordinator(address: str, timeout_s: float, process_id: int,
                          num_processes: int) -> None:
    """Polls a TCP connection to the coordinator until it answers or time runs out.

    JAX's own client aborts the whole process when it cannot connect, so the
    check comes first, in Python, where the error can name the address."""
    host, port = _split_address(address)
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((host, port), timeout=max(0.05, min(1.0, left))):
                return
        except OSError as e:
            last = e
        if time.monotonic() >= deadline:
            raise TimeoutError(
                f"could not reach the coordinator at {address} within {timeout_s:g} s "
                f"(process {process_id} of {num_processes}; last error: {last}); start "
                f"process 0 first and check the address, port and firewall")
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def _check_port_free(address: str) -> None:
    host, port = _split_address(address)
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as e:
            raise ValueError(f"process 0 cannot start the coordinator at {address}: port "
                             f"{port} is not free on this host ({e})") from None


def _check_count(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return int(value)


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, *, timeout_s: float = 300.0,
               local_device_ids: Sequence[int] | None = None) -> ProcessInfo:
    """Joins this process to a multi-process run (``jax.distributed.initialize``).

    Call it before any other JAX computation. Each value comes from its argument,
    else from the environment (``JAXCOLLAPSE_COORDINATOR`` or JAX's
    ``JAX_COORDINATOR_ADDRESS``, ``JAXCOLLAPSE_NUM_PROCESSES``,
    ``JAXCOLLAPSE_PROCESS_ID``). With none of them set, or one process, it does
    nothing (a single-process run).

    Args:
        coordinator: ``"HOST:PORT"`` of process 0, which starts the coordinator there.
        num_processes: the number of processes (>= 1), the same in every process.
        process_id: this process's id in ``0..num_processes-1``.
        timeout_s: how long to wait for the coordinator (and JAX's initialisation).
        local_device_ids: restrict this process to these local devices (as JAX).

    Returns:
        A :class:`ProcessInfo`.

    Raises:
        ValueError / TypeError: an invalid address, count or id (naming the source:
            argument or environment variable), a process count that differs between
            processes, or a coordinator port that is taken.
        TimeoutError: the coordinator did not answer within ``timeout_s`` (the
            message names the address).

    Example:
        >>> initialize(num_processes=1)  # a single process: nothing to join
        ProcessInfo(process_id=0, num_processes=1, coordinator=None)
        >>> initialize("127.0.0.1:9", num_processes=2, process_id=2)
        Traceback (most recent call last):
        ...
        ValueError: process_id must lie in 0..1 (num_processes=2); got 2
    """
    src = {}
    if coordinator is None:
        for var in (ENV_COORDINATOR, JAX_ENV_COORDINATOR):
            if os.environ.get(var):
                coordinator, src["coordinator"] = os.environ[var], var
                break
    if num_processes is None:
        num_processes = _env_int(ENV_NUM_PROCESSES)
        src["num_processes"] = ENV_NUM_PROCESSES
    if process_id is None:
        process_id = _env_int(ENV_PROCESS_ID)
        src["process_id"] = ENV_PROCESS_ID

    def name(arg):
        return f"{arg} (from {src[arg]})" if arg in src and src[arg] else arg

    if not (isinstance(timeout_s, int | float) and not isinstance(timeout_s, bool)
            and math.isfinite(timeout_s) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds; got {timeout_s!r}")
    if jax.distributed.is_initialized():
        info = ProcessInfo(jax.process_index(), jax.process_count(), coordinator)
        for arg, want, have in (("num_processes", num_processes, info.num_processes),
                                ("process_id", process_id, info.process_id)):
            if want is not None and want != have:
                raise ValueError(f"jax.distributed is already initialised with {arg}="
                                 f"{have}; got {name(arg)}={want}")
        return info
    if num_processes is not None:
        num_processes = _check_count(name("num_processes"), num_processes, 1)
    if num_processes in (None, 1) and coordinator is None and process_id in (None, 0):
        return ProcessInfo(0, 1, None)
    if num_processes == 1:
        if process_id not in (None, 0):
            raise ValueError(f"{name('process_id')} must be 0 when num_processes=1; got "
                             f"{process_id}")
        return ProcessInfo(0, 1, coordinator)
    missing = [f"{arg} (or {env})" for arg, val, env in (
        ("coordinator", coordinator, ENV_COORDINATOR),
        ("num_processes", num_processes, ENV_NUM_PROCESSES),
        ("process_id", process_id, ENV_PROCESS_ID)) if val is None]
    if missing:
        raise ValueError(f"a multi-process run needs coordinator, num_processes and "
                         f"process_id; missing {', '.join(missing)}")
    process_id = _check_count(name("process_id"), process_id, 0)
    if process_id >= num_processes:
        raise ValueError(f"{name('process_id')} must lie in 0..{num_processes - 1} "
                         f"(num_processes={num_processes}); got {process_id}")
    _split_address(coordinator)
    t0 = time.monotonic()
    if process_id == 0:
        _check_port_free(coordinator)
    else:
        _wait_for_coordinator(coordinator, timeout_s, process_id, num_processes)
    left = max(1, math.ceil(timeout_s - (time.monotonic() - t0)))
    jax.distributed.initialize(coordinator, num_processes, process_id,
                               local_device_ids=local_device_ids,
                               initialization_timeout=left)
    # every process reports what it was told; a process started with another count
    # that still joined (ids below both counts) is caught here, by name
    told = np.asarray(multihost_utils.process_allgather(
        np.array([num_processes, process_id], np.int64)))
    bad = [(int(p), int(c)) for c, p in told if c != num_processes]
    if bad:
        raise ValueError(
            f"mismatched process counts: this process (id {process_id}) was started with "
            f"num_processes={num_processes}, but "
            + ", ".join(f"process {p} with num_processes={c}" for p, c in bad))
    if jax.process_count() != num_processes:
        raise ValueError(f"num_processes={num_processes} but {jax.process_count()} "
                         f"processes joined the coordinator at {coordinator}")
    return ProcessInfo(process_id, num_processes, coordinator)


def chain_block(n_chains: int, process_id: int, num_processes: int) -> tuple[int, int]:
    """The contiguous chains ``start..stop-1`` of process ``process_id``: blocks differ
    in size by at most one chain, the larger ones first.

    Example:
        >>> [chain_block(10, i, 3) for i in range(3)]
        [(0, 4), (4, 7), (7, 10)]
    """
    n_chains = _check_count("n_chains", n_chains, 1)
    num_processes = _check_count("num_processes", num_processes, 1)
    process_id = _check_count("process_id", process_id, 0)
    if process_id >= num_processes:
        raise ValueError(f"process_id must lie in 0..{num_processes - 1}; got {process_id}")
    if n_chains < num_processes:
        raise ValueError(f"n_chains={n_chains} is smaller than num_processes="
                         f"{num_processes}: every process needs at least one chain")
    q, r = divmod(n_chains, num_processes)
    start = process_id * q + min(process_id, r)
    return start, start + q + (process_id < r)


def shard_dir(out: str | os.PathLike, process_id: int, num_processes: int) -> Path:
    """Where process ``process_id`` writes its shard of a run stored at ``out``.

    Example:
        >>> shard_dir("runs/sweep", 1, 4).as_posix()
        'runs/sweep/shards/process_00001_of_00004'
    """
    return Path(out) / "shards" / f"process_{process_id:05d}_of_{num_processes:05d}"


def _local_devices_only(devices, mesh):
    if mesh is not None and not all(d.process_index == jax.process_index()
                                    for d in mesh.devices.flat):
        raise ValueError("mesh holds devices of other processes; in a multi-process run "
                         "each process shards its own chain block over its local devices: "
                         "pass a mesh of jax.local_devices() or devices=")
    if devices is not None and not isinstance(devices, int | np.integer):
        devices = list(devices)
        if not all(getattr(d, "process_index", -1) == jax.process_index() for d in devices):
            raise ValueError("devices holds devices of other processes; give this "
                             "process's own (jax.local_devices())")
    return devices


def simulate_processes(key: jax.Array, family: Any, params0: Any, *,
                       out: str | os.PathLike, n_chains: int, n_generations: int,
                       chunk_size: int | None = None, timeout_s: float = 3600.0,
                       keep_shards: bool = False, **simulate_kwargs: Any):
    """:func:`jaxcollapse.simulate` over all processes of a run, merged on disk.

    Process ``p`` of ``P`` simulates the chains ``chain_block(n_chains, p, P)`` on
    its local devices into ``shard_dir(out, p, P)`` (resumable, as
    ``simulate(..., checkpoint_dir=...)``). Process 0 then waits (polling, up to
    ``timeout_s``) for every shard to be complete and merges them chunk by chunk into
    ``out``: the same store ``simulate(..., chunk_size=chunk_size,
    checkpoint_dir=out)`` writes in one process, with the same numbers. If ``out``
    already holds the finished run, every process returns it without computing.
    With one process (no ``jax.distributed`` runtime) this is a chunked
    ``simulate`` written to ``out``.

    Args:
        out: the run's directory, visible to every process.
        n_chains, n_generations, chunk_size: as for :func:`jaxcollapse.simulate`.
        timeout_s: how long process 0 waits for the other shards.
        keep_shards: keep the per-process shards after merging.
        **simulate_kwargs: further :func:`jaxcollapse.simulate` arguments
            (``n_samples``, ``regime``, ``devices`` of this process, ...).

    Returns:
        On process 0, a :class:`jaxcollapse.StoredResult` of the merged run (call
        ``.load()`` for arrays in memory); ``None`` on the other processes, which
        return once their shard is written (with ``keep_shards=True`` it stays
        readable with ``jaxcollapse.load_run(shard_dir(out, p, P))``). If ``out``
        already holds the finished run, every process returns it.

    Example:
        >>> import jax, tempfile, jaxcollapse as jc
        >>> from jaxcollapse import distributed
        >>> fam = jc.Gaussian(dim=1, method="exact")
        >>> res = distributed.simulate_processes(
        ...     jax.random.key(0), fam, fam.params(), out=tempfile.mkdtemp(),
        ...     n_chains=6, n_generations=10, n_samples=20, chunk_size=4)
        >>> res.complete, res.n_chains, res.metric("w2sq").shape
        (True, 6, (6, 11))
    """
    from jaxcollapse.simulation import _store_fingerprint, simulate

    for bad in ("checkpoint_dir", "keep", "chain_block"):
        if bad in simulate_kwargs:
            raise TypeError(f"simulate_processes sets {bad} itself; do not pass it")
    if not (isinstance(timeout_s, int | float) and timeout_s > 0):
        raise ValueError(f"timeout_s must be a positive number of seconds; got {timeout_s!r}")
    devices = _local_devices_only(simulate_kwargs.pop("devices", None),
                                  simulate_kwargs.get("mesh"))
    out = Path(out)
    pid, nproc = jax.process_index(), jax.process_count()
    kw = dict(n_chains=n_chains, n_generations=n_generations, chunk_size=chunk_size,
              **simulate_kwargs)
    fp, _ = _store_fingerprint(key, family, params0, **kw)
    done = _finished_store(out, fp)
    if done is not None:
        return done
    lo, hi = chain_block(n_chains, pid, nproc)
    simulate(key, family, params0, checkpoint_dir=shard_dir(out, pid, nproc), keep=False,
             chain_block=(lo, hi), devices=devices, **kw)
    if pid != 0:
        return None
    shards = _wait_for_shards(key, family, params0, out, nproc, timeout_s, kw)
    merged = st.merge(out, shards, fp)
    if not keep_shards:
        for sub in sorted((out / "shards").glob("process_*_of_*")):
            st.remove_store(sub)  # the shards' store files only
        with contextlib.suppress(OSError):  # kept if a user's file is there
            (out / "shards").rmdir()
    return merged


def _finished_store(out: Path, fp: dict) -> st.StoredResult | None:
    if not (out / st.MANIFEST).exists():
        return None
    try:
        stored = st.StoredResult(out)
    except (ValueError, OSError):
        return None
    if stored.complete and stored.manifest["fingerprint"] == fp:
        return stored
    return None


def _wait_for_shards(key, family, params0, out, nproc, timeout_s, kw):
    """Process 0 polls the shared directory until every shard is complete."""
    from jaxcollapse.simulation import _store_fingerprint

    want = {p: _store_fingerprint(key, family, params0,
                                  chain_block=chain_block(kw["n_chains"], p, nproc), **kw)[0]
            for p in range(nproc)}
    ready: dict[int, st.StoredResult] = {}
    deadline = time.monotonic() + timeout_s
    while True:
        for p in range(nproc):
            if p in ready or not (shard_dir(out, p, nproc) / st.MANIFEST).exists():
                continue
            try:
                s = st.StoredResult(shard_dir(out, p, nproc))
            except (ValueError, OSError):  # being replaced right now: look again
                continue
            st.check_fingerprint(s.manifest["fingerprint"], want[p], s.directory)
            if s.complete:
                ready[p] = s
        if len(ready) == nproc:
            return [ready[p] for p in range(nproc)]
        if time.monotonic() > deadline:
            missing = sorted(set(range(nproc)) - set(ready))
            raise TimeoutError(
                f"process 0 waited {timeout_s:g} s for the shards of processes {missing} "
                f"in {str(out / 'shards')!r}; they did not finish (do all processes use "
                f"the same output directory on a shared file system?)")
        time.sleep(0.2)
