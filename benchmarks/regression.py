"""Fixed-design linear regression retrained on its own labels, jaxcollapse vs numpy.

d = 50, T = 200, σ = 1, 1,000 chains x 100 generations, replace and accumulate (OLS).
Reference: numpy vectorised over chains with a precomputed pseudo-inverse (relabel
every chain's design, y = X w + σ ε with T normals a chain, then one (chains, T) x
(T, d) product a generation). jaxcollapse: ``regression.simulate_fixed_design``
(the same recursion, exact in law, in the eigenbasis of XᵀX: d normals and O(d)
work a chain and generation; goal >= 3x), and the general family through
``jaxcollapse.simulate`` (exact sufficient-statistic path, O(T d²) a chain and
generation; no goal). ``max err`` is the relative difference of the mean final
excess risk from numpy's (a Monte Carlo difference).

Run: ``PYTHONPATH=. python benchmarks/regression.py [--quick]`` (quick: 20 generations,
not 100).
"""

from __future__ import annotations

import itertools

import _common as bc
import jax
import jax.numpy as jnp
import numpy as np

import jaxcollapse as jc
from jaxcollapse.families import regression as fr


def numpy_reference(rng, x, w0, noise, chains, gens, accumulate):
    """Excess risk (chains, gens + 1) with numpy, vectorised over chains."""
    t, d = x.shape
    gram = x.T @ x
    pinv = np.linalg.solve(gram, x.T)  # (d, T)
    w = np.broadcast_to(w0, (chains, d)).copy()
    s = np.zeros((chains, d))
    risk = np.zeros((chains, gens + 1))
    for g in range(1, gens + 1):
        y = w @ x.T + noise * rng.standard_normal((chains, t))
        if accumulate:
            s += y @ x
            w = np.linalg.solve(g * gram, s.T).T
        else:
            w = y @ pinv.T
        risk[:, g] = np.sum((w - w0) ** 2, axis=1)
    return risk


def run(quick: bool) -> list[dict]:
    d, t, noise = 50, 200, 1.0
    chains, gens = (1000, 20) if quick else (1000, 100)
    repeats = 3 if quick else 5
    size = f"d={d}, T={t}, {chains:,} chains × {gens} gens"
    x = np.random.default_rng(1).standard_normal((t, d))
    w0 = np.ones(d) / np.sqrt(d)
    fam = fr.LinearRegression(dim=d, noise=noise, n_design=t)
    p0 = fam.params(jnp.asarray(w0), jnp.asarray(x))
    seeds = itertools.count()
    rows = []
    for regime in ("replace", "accumulate"):
        rng = np.random.default_rng(0)
        ref = bc.time_host(lambda regime=regime, rng=rng: numpy_reference(
            rng, x, w0, noise, chains, gens, regime == "accumulate"), repeats)
        ref_risk = float(np.mean(ref.out[:, -1]))

        def fast(regime=regime):
            return fr.simulate_fixed_design(jax.random.key(next(seeds)), fam, p0,
                                            n_generations=gens, n_chains=chains,
                                            regime=regime).excess_risk

        def general(regime=regime):
            return jc.simulate(jax.random.key(next(seeds)), fam, p0, n_generations=gens,
                               n_samples=t, n_chains=chains, regime=regime,
                               save_params=False, metrics=["excess_risk"]
                               ).metrics["excess_risk"]

        for case, fn, reps, goal in (("simulate_fixed_design", fast, repeats, 3.0),
                                     ("simulate (family, exact stats)", general,
                                      max(1, repeats // 2), None)):
            with bc.PeakMemory() as m:
                ours = bc.time_jax(fn, reps)
            risk = float(np.mean(np.asarray(ours.out)[:, -1]))
            rows.append(bc.row(
                f"{case}, {regime}", size, ours, reference="numpy, vectorised over chains",
                ref=ref, goal=f"≥ {goal:g}×" if goal else "", goal_value=goal,
                peak_rss_mib=m.mib, max_err=abs(risk - ref_risk) / ref_risk,
                note=f"E excess risk at gen {gens}: ours {risk:.3f}, numpy {ref_risk:.3f}"))
    return rows


if __name__ == "__main__":
    raise SystemExit(bc.script_main("regression", run, __doc__))
