"""Scaling of ``jaxcollapse.simulate`` over devices (memory of long runs: long_run.py).

Weak and strong scaling over 1, 2, 4 and 8 host devices: each device count runs in
its own process with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` and
``JAX_PLATFORMS=cpu``, and shards the chains with ``simulate(..., devices=N)``. The
work is the Gaussian samples path (M = 100, 1-D): strong scaling keeps 8,192 chains
x 100 generations in all; weak scaling gives every device 1,024 chains. Rows report
chains per second and parallel efficiency (strong: t_1 / (N t_N); weak: t_1 / t_N).
Forced host devices share the machine's cores, so on C cores efficiency is capped
at min(N, C) / N; the note says that cap beside the measured figure. There is no
goal: the point is to show honestly what sharding costs and gains here.

When a GPU is present (``nvidia-smi`` on the path), a further process runs the same
work on it: chains per second against the 1-device CPU figure, at the strong-scaling
size and at 64 times as many chains.

Run: ``PYTHONPATH=. python benchmarks/scaling.py [--quick]`` (quick: 50 generations,
not 100).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import _common as bc

DEVICE_COUNTS = (1, 2, 4, 8)
M = 100


def _sizes(quick: bool) -> dict:
    if quick:
        return dict(strong=8192, per_device=1024, generations=50)
    return dict(strong=8192, per_device=1024, generations=100)


# --------------------------------------------------------------------- child processes

def child_scaling(n_devices: int, quick: bool, gpu: bool) -> dict:
    import itertools

    import jax

    import jaxcollapse as jc

    sz = _sizes(quick)
    G = sz["generations"]
    fam = jc.Gaussian(dim=1, method="samples")
    p0 = fam.params()
    seeds = itertools.count()
    cases = {"strong": sz["strong"], "weak": sz["per_device"] * n_devices}
    if gpu:
        cases = {"gpu": sz["strong"], "gpu_64x": 64 * sz["strong"]}
    out = dict(backend=jax.default_backend(), device_count=jax.device_count())
    if gpu and out["backend"] == "cpu":
        return out
    for case, chains in cases.items():
        def call(chains=chains):
            res = jc.simulate(jax.random.key(next(seeds)), fam, p0, n_generations=G,
                              n_samples=M, n_chains=chains, metrics={}, devices=n_devices)
            return res.params.cov[:, -1, 0, 0]

        with bc.PeakMemory() as m:
            t = bc.time_jax(call, repeats=5)
        out[case] = dict(chains=chains, compile_s=t.compile_s, steady_s=t.steady_s,
                         cpu_s=t.cpu_s, peak_rss_mib=m.mib)
    return out


def _child(args: list[str], env_extra: dict, drop: tuple[str, ...] = ()) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    cmd = [sys.executable, os.path.abspath(__file__), "--child", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"scaling child {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.split("RESULT", 1)[1])


def _host_env(n: int) -> dict:
    flags = os.environ.get("XLA_FLAGS", "")
    return dict(JAX_PLATFORMS="cpu",
                XLA_FLAGS=f"{flags} --xla_force_host_platform_device_count={n}".strip())


# ----------------------------------------------------------------------------- parent

def run(quick: bool) -> list[dict]:
    sz = _sizes(quick)
    G = sz["generations"]
    cores = os.cpu_count() or 1
    res = {n: _child(["scaling", str(n), str(int(quick)), "0"], _host_env(n))
           for n in DEVICE_COUNTS}
    for n, r in res.items():
        if r["device_count"] != n:
            raise RuntimeError(f"asked for {n} host devices, the child saw {r['device_count']}")

    def timing(d):
        return bc.Timing(d["compile_s"], d["steady_s"], d["cpu_s"], None)

    rows = []
    for mode in ("strong", "weak"):
        one = res[1][mode]
        for n in DEVICE_COUNTS:
            r = res[n][mode]
            speedup = one["steady_s"] / r["steady_s"] * (n if mode == "weak" else 1)
            eff, cap = speedup / n, min(n, cores) / n
            cps = r["chains"] / r["steady_s"]
            size = (f"{r['chains']:,} chains × {G} gens × M={M}" if mode == "strong" else
                    f"{sz['per_device']:,} chains/device × {G} gens × M={M}")
            # weak: the reference is 1 device's time for 1/N of the work, scaled to all
            ref = timing(one) if mode == "strong" else bc.scaled(timing(one), n)
            rows.append(bc.row(
                f"{mode} scaling, {n} host device{'s' * (n > 1)}", size, timing(r),
                reference="1 host device" + (f" (time × {n})" if mode == "weak" else ""),
                ref=ref, ratio=speedup,
                peak_rss_mib=r["peak_rss_mib"],
                note=f"{cps:,.0f} chains/s; efficiency {eff:.0%} (cap {cap:.0%} on "
                     f"{cores} cores); ratio = throughput vs 1 device",
                chains_per_s=cps, efficiency=eff, efficiency_cap=cap, n_devices=n))

    if shutil.which("nvidia-smi"):
        gpu = _child(["scaling", "1", str(int(quick)), "1"], {}, drop=("JAX_PLATFORMS",))
        if gpu.get("backend") != "cpu":
            cpu_cps = res[1]["strong"]["chains"] / res[1]["strong"]["steady_s"]
            for case in ("gpu", "gpu_64x"):
                r = gpu[case]
                cps = r["chains"] / r["steady_s"]
                rows.append(bc.row(
                    f"{gpu['backend']} device", f"{r['chains']:,} chains × {G} gens × M={M}",
                    timing(r), reference="1 host device (CPU, strong size)",
                    ref=timing(res[1]["strong"]), ratio=cps / cpu_cps,
                    peak_rss_mib=r["peak_rss_mib"],
                    note=f"{cps:,.0f} chains/s vs {cpu_cps:,.0f} on CPU; ratio = chains/s",
                    chains_per_s=cps))

    return rows


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        rest = sys.argv[3:]
        out = child_scaling(int(rest[0]), bool(int(rest[1])), bool(int(rest[2])))
        print("RESULT" + json.dumps(out))
    else:
        raise SystemExit(bc.script_main("scaling", run, __doc__))
