"""Every loop step against the same ``simulate`` without it, in the same process.

Gaussian (1-D, M = 100): 4,096 chains x 200 generations. ``sampling_bias`` acts
through the law, so it runs on the exact path (sufficient statistics) against the exact
path; ``curate`` (Bradley–Terry among k candidates, reward ``-(x - 1)^2``) and ``verify``
(keep ``|x| <= 1.5``) select among draws, so they run on the samples path. Without a
step the samples path fits through the sums of the drawn normals (a shortcut that any
select step disables), so their references are step-free runs that materialise rows:
``verify`` against ``verify`` accepting every row (the same M rows drawn and fitted),
``curate(k)`` against ``curate(k)`` with a constant reward (the same k·M candidate rows,
one of each k kept uniformly); second rows compare curation with the M-row reference
(cost linear in k, shown at k = 2, 4, 8) and both with the shortcut (no goal: that
ratio measures the shortcut).

Categorical (K = 10^4 categories, M = 10^4, exact count path, 64 chains x 20
generations): ``temperature``, ``top_k``, ``top_p`` and ``verify(tpr, fpr)`` change the
law (O(K), or O(K log K) for the sorts of top-k/top-p); ``curate`` computes the exact
law of a kept draw, ``p H_p``, by a trapezoid quadrature (n_nodes from the stated error
bound, :func:`jaxcollapse.theory.curation.nodes_for`, in the dtype of the law: 85
nodes in float32 for this reward, 302 in float64): one table of n_nodes x K
exponentials that depends on the reward only (so vmap over the chains does not repeat
it) and two n_nodes x K matrix-vector products per chain and generation, shown
at K = 10^3 and 10^4 to show the cost linear in K (the full run's categorical rows
time one call after the compile: about 40 s each at K = 10^4). The
categorical rows are dominated by the exact multinomial sampler, whose cost depends on
the law (temperature < 1 and truncation concentrate it and cost less than the
reference). Each ratio is (with step) / (without), the
goal at most 1.5x; the metric is the entropy (Gaussian: the variance ratio) of every
generation, no parameters are kept.

The Gaussian exact path takes milliseconds a call, so its two cases take the median of
15 calls, alternating for three rounds and keeping each one's best (elsewhere the median
of 3 calls).

Run: ``PYTHONPATH=. python benchmarks/steps.py [--quick]`` (quick: 1,024 chains x 50
generations; categorical 16 chains x 10 generations).
"""

from __future__ import annotations

import itertools

import _common as bc
import jax
import jax.numpy as jnp
import numpy as np

import jaxcollapse as jc
from jaxcollapse import steps


def _reward(x):
    return -jnp.sum((x - 1.0) ** 2)


def _flat_reward(x):
    return 0.0 * jnp.sum(x)


def _time(fam, p0, step, *, G, M, C, metric, repeats):
    seeds = itertools.count()

    def call():
        return jc.simulate(jax.random.key(next(seeds)), fam, p0, n_generations=G,
                           n_samples=M, n_chains=C, step=step, metrics=[metric],
                           save_params=False).metrics[metric]

    with bc.PeakMemory() as m:
        t = bc.time_jax(call, repeats)
    return t, m.mib


def _best_of(*cases, rounds=3):
    """Each case's ``_time`` with the least steady seconds over ``rounds`` alternating
    rounds (compile seconds from the first round, the only one that compiles)."""
    runs = [[case() for case in cases] for _ in range(rounds)]
    out = []
    for i in range(len(cases)):
        first = runs[0][i]
        t = min((r[i] for r in runs), key=lambda r: r[0].steady_s)[0]
        mibs = [r[i][1] for r in runs if r[i][1] is not None]
        out.append((t._replace(compile_s=first[0].compile_s), max(mibs) if mibs else None))
    return out


def _rows(cases, ref, ref_name, size, note, goal=True):
    rows = []
    for name, (t, mib) in cases.items():
        rows.append(bc.row(name, size, t, reference=ref_name, ref=ref[0],
                           lower_is_better=True,
                           goal="≤ 1.5× the reference" if goal else "",
                           goal_value=1.5 if goal else None, peak_rss_mib=mib, note=note))
    return rows


def run(quick: bool) -> list[dict]:
    C, G, M = (1024, 50, 100) if quick else (4096, 200, 100)
    repeats = 3
    rows = []
    note = "ratio = seconds with the step / seconds without (lower is better)"
    # Gaussian, exact path: the law steps
    fam = jc.Gaussian(dim=1, method="exact")
    kw = dict(G=G, M=M, C=C, metric="var_ratio", repeats=repeats)
    # milliseconds a call: more repeats, and the two cases alternate for three rounds,
    # each keeping its best median, so that a loaded machine's jitter is not the ratio
    kwe = dict(kw, repeats=15)
    ref, bias = _best_of(
        lambda: _time(fam, fam.params(), None, **kwe),
        lambda: _time(fam, fam.params(), steps.sampling_bias(0.9), **kwe))
    rows += _rows({"sampling_bias(0.9), Gaussian exact path": bias},
                  ref, "no step, exact path", f"{C:,} chains × {G} gens × M={M}", note)
    # Gaussian, samples path: the select steps. Without a step the samples path fits
    # through the sums of the drawn normals (a noise-statistics shortcut that a select
    # step disables), so the references are step-free runs that also materialise rows:
    # verify accepting every row (M rows drawn and fitted, as verify does) and curate
    # with a constant reward (the same k M candidate rows, one of each k kept
    # uniformly: the work of curation without the reward's preference)
    fam = jc.Gaussian(dim=1, method="samples")
    size = f"{C:,} chains × {G} gens × M={M}"
    shortcut = _time(fam, fam.params(), None, **kw)
    accept_all = _time(fam, fam.params(), steps.verify(region=(0.0, 1e30)), **kw)
    verify = _time(fam, fam.params(), steps.verify(region=(0.0, 1.5)), **kw)
    rows += _rows({"verify(region=(0, 1.5)), Gaussian samples path": verify}, accept_all,
                  "verify accepting every row (M rows materialised)", size,
                  note + "; reference: the same rows drawn and fitted, none rejected")
    rows += _rows({"verify(region=(0, 1.5)) vs the shortcut": verify}, shortcut,
                  "no step, samples path (noise-statistics shortcut)", size,
                  note + "; the reference fits through the sums of the drawn normals: the "
                         "ratio measures that shortcut, not the step", goal=False)
    for k in (2, 4, 8):
        cur = _time(fam, fam.params(), steps.curate(_reward, k), **kw)
        flat = _time(fam, fam.params(), steps.curate(_flat_reward, k), **kw)
        rows += _rows({f"curate(k={k}), Gaussian samples path": cur}, flat,
                      f"curate(k={k}) with a constant reward (k·M rows, kept uniformly)",
                      size, note + "; reference: the same k·M candidate rows drawn and one "
                                   "of each k kept uniformly (the selection without the "
                                   "reward's preference)")
        rows += _rows({f"curate(k={k}) vs M rows": cur}, accept_all,
                      "verify accepting every row (M rows materialised)", size,
                      note + "; curate draws k candidates per kept draw: linear in k",
                      goal=False)
        if k == 4:
            rows += _rows({"curate(k=4) vs the shortcut": cur}, shortcut,
                          "no step, samples path (noise-statistics shortcut)", size,
                          note + "; the reference fits through the sums of the drawn "
                                 "normals: the ratio measures that shortcut and k",
                          goal=False)
    # Categorical, exact count path
    Cc, Gc = (16, 10) if quick else (64, 20)
    for K in (1000, 10_000):
        famc = jc.Categorical(K)
        p0 = jc.families.categorical.zipf(K, 1.1)
        # full size: about 40 s a call at K = 10^4, so one timed call after the compile
        kwc = dict(G=Gc, M=10_000, C=Cc, metric="entropy", repeats=repeats if quick else 1)
        reward = jnp.linspace(0.0, 3.0, K)
        ref = _time(famc, p0, None, **kwc)
        cases = {f"curate(k=4), K={K:,}": _time(famc, p0, steps.curate(reward, 4), **kwc)}
        if K == 10_000:
            cases.update({
                f"temperature(0.8), K={K:,}": _time(famc, p0, steps.temperature(0.8), **kwc),
                f"top_k(100), K={K:,}": _time(famc, p0, steps.top_k(100), **kwc),
                f"top_p(0.9), K={K:,}": _time(famc, p0, steps.top_p(0.9), **kwc),
                f"verify(tpr=0.9, fpr=0.2), K={K:,}":
                    _time(famc, p0, steps.verify(tpr=0.9, fpr=0.2), **kwc)})
        n_nodes = steps.curate(reward, 4).nodes(p0.probs.dtype)  # float32 here: the f32 bound
        rows += _rows(cases, ref, f"no step, K={K:,}",
                      f"{Cc} chains × {Gc} gens × M=10,000",
                      note + f"; curate: exact law by quadrature, one table of {n_nodes} "
                             f"nodes × K exponentials shared by the chains, two "
                             f"matrix-vector products per chain and generation")
    return rows


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(bc.script_main("steps", run, __doc__))
