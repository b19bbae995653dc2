"""Figure 8: the three sources of model-collapse error, each switched on alone.

One recursion (fit a 1-D Gaussian, sample, refit) run four ways
(:func:`jaxcollapse.decompose`): statistical approximation (Gaussian truth, M draws,
exact fit), functional expressivity (mixture truth 0.5 N(-2, 1) + 0.5 N(2, 1),
population-sized data, exact Gaussian fit), functional approximation (Gaussian
truth, population-sized data, a few gradient steps from a poor start) and all
three together. (a) W2^2 to the Gaussian truth: the statistical arm against the
exact E[W2^2] of THEORY.md section 2; the approximation arm against its
population limit (the same fitter on N_pop = 10^9, which is deterministic to
1e-4). (b) L2^2 to the mixture truth: the expressivity arm against the L2 distance
between the mixture and its moment-matched Gaussian (the best the family can do,
reached at generation 1; it then drifts slowly: the statistical error of N_pop
draws). (c) At the last generation, against M: the statistical error vanishes like
1/M, the error with all three sources does not.
THEORY.md section 7.
"""

from __future__ import annotations

import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse import decomposition as dc
from jaxcollapse.theory import gaussian as tg

NAME = "fig08_decomposition"
POPULATION_LIMIT = 10**9


def _check_finite(arm, v):
    # The gradient fitter's curvature-bounded step keeps every chain finite (its
    # plain-descent predecessor diverged on collapsed chains); a NaN would bias every
    # mean below, so it stops the figure rather than being left out.
    bad = int((~np.isfinite(v)).any(-1).sum())
    if bad:
        raise RuntimeError(f"{bad} chains of the {arm} arm are not finite")


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 50 if args.quick else 200
    chains = 512 if args.quick else 4096
    M, n_pop = 100, 20_000
    sizes = [M, 1000, 10_000]
    mix = dc.Mixture([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    key = jax.random.key(args.seed)
    gens = np.arange(G + 1)
    res = jc.decompose(key, n_generations=G, n_samples=M, n_population=n_pop,
                       n_chains=chains, mixture=mix)
    dist = {a: np.asarray(v, dtype=np.float64) for a, v in res.distance.items()}
    var0 = res.truth_var
    th_stat = np.asarray(tg.w2sq_mean(gens, M, var0))
    best = float(dc.gaussian_l2sq(mix, res.truth_mean, var0))
    th_expr = np.where(gens == 0, 0.0, best)
    # the population limit of the approximation arm: one chain with N_pop = 10^9, whose
    # sampling noise (relative 1/sqrt(N_pop)) is far below the Monte Carlo error
    lim = jc.decompose(jax.random.fold_in(key, 1), n_generations=G, n_samples=M,
                       n_population=POPULATION_LIMIT, n_chains=1, mixture=mix,
                       arms=("approximation",))
    th_approx = np.asarray(lim.distance["approximation"][0], dtype=np.float64)

    data = dict(generations=gens, truth_mean=res.truth_mean, truth_var=var0,
                theory_statistical=th_stat, theory_expressivity=th_expr,
                population_limit_approximation=th_approx, sizes=np.array(sizes))
    for arm, v in dist.items():
        _check_finite(arm, v)
        data[f"{arm}_mean"] = v.mean(0)
        data[f"{arm}_se"] = v.std(0, ddof=1) / np.sqrt(v.shape[0])
        data[f"{arm}_q10"], data[f"{arm}_q90"] = np.quantile(v, [0.1, 0.9], axis=0)

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    color = dict(zip(dc.ARMS, st.COLORS, strict=False))
    for ax, arms in ((ax1, ("statistical", "approximation")), (ax2, ("expressivity", "all"))):
        for arm in arms:
            ax.fill_between(gens[1:], data[f"{arm}_q10"][1:], data[f"{arm}_q90"][1:],
                            color=color[arm], alpha=st.BAND_ALPHA, lw=0)
            ax.plot(gens[1:], data[f"{arm}_mean"][1:], color=color[arm], label=arm, **st.MC)
    ax1.plot(gens[1:], th_stat[1:], label=r"theory: E $W_2^2$ (exact)", **st.THEORY)
    ax1.plot(gens[1:], th_approx[1:], color="black", lw=1.2, ls=":",
             label=r"approximation, $N_{pop} \to \infty$")
    ax1.set(xscale="log", yscale="log", xlabel="generation n",
            ylabel=r"$W_2^2$ to the Gaussian truth (mean, 10-90%)",
            title=f"(a) statistical (M = {M}) and approximation")
    ax1.legend(loc="upper left")
    ax2.plot(gens[1:], th_expr[1:], label="theory: mixture vs its moment match", **st.THEORY)
    ax2.set(xscale="log", yscale="log", xlabel="generation n",
            ylabel=r"$\int (p_n - p_0)^2$ to the mixture (mean, 10-90%)",
            title=f"(b) expressivity (N_pop = {n_pop:,}) and all")
    ax2.legend(loc="upper left")

    # (c) the last generation against M (the arms that use M; the N_pop arms do not
    # depend on it).
    last = {m: (dist["statistical"][:, -1], dist["all"][:, -1]) for m in sizes[:1]}
    for m in sizes[1:]:
        r = jc.decompose(jax.random.fold_in(key, 2 + m), n_generations=G, n_samples=m,
                         n_population=n_pop, n_chains=chains, mixture=mix,
                         arms=("statistical", "all"))
        last[m] = tuple(np.asarray(r.distance[k][:, -1], dtype=np.float64)
                        for k in ("statistical", "all"))
    stat = np.array([last[m][0] for m in sizes])  # (size, chain)
    allv = np.array([last[m][1] for m in sizes])
    _check_finite("all (sweep over M)", allv)
    stat_m, stat_se = stat.mean(1), stat.std(1, ddof=1) / np.sqrt(chains)
    all_m, all_se = allv.mean(1), allv.std(1, ddof=1) / np.sqrt(chains)
    m_grid = np.geomspace(sizes[0], sizes[-1], 30)
    th_stat_m = np.asarray(tg.w2sq_mean(G, m_grid, var0))
    ax3.errorbar(sizes, stat_m, yerr=2 * stat_se, color=color["statistical"], marker="o",
                 label=r"statistical ($W_2^2$)", **st.MC)
    ax3.plot(m_grid, th_stat_m, label=r"theory: E $W_2^2$", **st.THEORY)
    ax3.errorbar(sizes, all_m, yerr=2 * all_se, color=color["all"], marker="s",
                 label=r"all ($L_2^2$)", **st.MC)
    ax3.axhline(data["expressivity_mean"][-1], color=color["expressivity"], lw=1.0, ls=":",
                label=r"expressivity ($L_2^2$, any M)")
    ax3.axhline(data["approximation_mean"][-1], color=color["approximation"], lw=1.0, ls=":",
                label=r"approximation ($W_2^2$, any M)")
    ax3.set(xscale="log", yscale="log", xlabel="training-set size M",
            ylabel=f"distance at generation {G} (mean, 2 SE)",
            title="(c) only the statistical error vanishes")
    ax3.legend(loc="upper right")
    data.update(M_statistical_mean=stat_m, M_statistical_se=stat_se,
                M_theory_statistical=np.asarray(tg.w2sq_mean(G, np.array(sizes), var0)),
                M_all_mean=all_m, M_all_se=all_se)
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, M=M,
                n_population=n_pop, population_limit=POPULATION_LIMIT, sizes=sizes,
                mixture=dict(weights=[0.5, 0.5], means=[-2.0, 2.0], stds=[1.0, 1.0]),
                metric=res.metric, sgd=dict(steps=50, learning_rate=0.5,
                                           init="(truth mean + truth std, truth std / 2)",
                                           step="lr * gradient / max(1, curvature)"),
                best_gaussian_l2sq=best,
                seed=args.seed,
                reference="Shumailov et al. (2024), the three sources of error; "
                          "THEORY.md sections 2, 6 and 7")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
