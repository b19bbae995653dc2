"""Gradients through the recursion against the forward ``simulate`` of the same run.

Gaussian (1-D, M = 100, exact path), 4,096 chains x 200 generations, the sampling
bias ``lambda = 0.9`` traced: the forward run gives E W2^2 at generation 200 (the
chain mean); reverse mode (``jax.grad``) and forward mode with one direction
(``jax.jvp``) give its derivative with respect to lambda. All three are one compiled
call each, timed in the same process; goals: reverse <= 4x forward, forward mode
<= 2x forward. Reverse mode recomputes blocks of ~sqrt(G) generations from saved
carries (``jax.checkpoint``; the exact path's few variates a chain and generation
are kept rather than drawn again), so its memory grows like sqrt(G): the compiled
program's temporary memory (XLA's ``memory_analysis``) is reported at 1,000
generations beside that of the forward run.

Run: ``PYTHONPATH=. python benchmarks/grad.py [--quick]`` (quick: 1,024 chains x 50
generations).
"""

from __future__ import annotations

import itertools

import _common as bc
import jax
import numpy as np

import jaxcollapse as jc
from jaxcollapse import steps

FAM = jc.Gaussian(dim=1, method="exact")


def _loss(key, lam, G, C, M=100):
    res = jc.simulate(key, FAM, FAM.params(), n_generations=G, n_samples=M, n_chains=C,
                      step=steps.sampling_bias(lam), metrics=["w2sq"], save_params=False)
    return res.metrics["w2sq"][:, -1].mean()


def _programs(G, C):
    fwd = jax.jit(lambda k, lam: _loss(k, lam, G, C))
    rev = jax.jit(jax.value_and_grad(lambda lam, k: _loss(k, lam, G, C)))
    jvp = jax.jit(lambda k, lam: jax.jvp(lambda x: _loss(k, x, G, C), (lam,), (1.0,)))
    return fwd, rev, jvp


def _temp_mib(fn, *args) -> float:
    stats = fn.lower(*args).compile().memory_analysis()
    return (stats.temp_size_in_bytes + stats.output_size_in_bytes) / 2**20


def run(quick: bool) -> list[dict]:
    C, G = (1024, 50) if quick else (4096, 200)
    repeats = 15  # runs of tens of milliseconds: the median of many
    seeds = itertools.count()
    lam = np.float32(0.9)
    fwd, rev, jvp = _programs(G, C)
    size = f"{C:,} chains × {G} gens × M=100"
    times = {}
    for name, fn in (("forward", lambda: fwd(jax.random.key(next(seeds)), lam)),
                     ("reverse", lambda: rev(lam, jax.random.key(next(seeds)))),
                     ("jvp", lambda: jvp(jax.random.key(next(seeds)), lam))):
        with bc.PeakMemory() as m:
            times[name] = (bc.time_jax(fn, repeats), m.mib)
    ref = times["forward"][0]
    rows = []
    for name, goal in (("reverse", 4.0), ("jvp", 2.0)):
        t, mib = times[name]
        label = ("jax.grad (reverse mode)" if name == "reverse"
                 else "jax.jvp (forward mode, one direction)")
        rows.append(bc.row(f"d E W2² / d lambda, {label}", size, t,
                           reference="forward simulate (same run)", ref=ref,
                           lower_is_better=True, goal=f"≤ {goal:g}× forward",
                           goal_value=goal, peak_rss_mib=mib,
                           note="ratio = gradient seconds / forward seconds"))
    # memory of reverse mode through 1,000 generations (compiled, not run)
    Gm, Cm = (200, 1024) if quick else (1000, 4096)
    f_m, r_m, _ = _programs(Gm, Cm)
    key = jax.random.key(0)
    mem_f, mem_r = _temp_mib(f_m, key, lam), _temp_mib(r_m, lam, key)
    rows.append(bc.row("reverse-mode memory (XLA temp + output)", f"{Cm:,} chains × {Gm} gens",
                       None, ratio=mem_r / mem_f, goal="report", note=(
                           f"reverse {mem_r:.1f} MiB, forward {mem_f:.1f} MiB; blocks of "
                           f"{int(np.sqrt(Gm))} generations recomputed from saved carries")))
    return rows


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(bc.script_main("grad", run, __doc__))
