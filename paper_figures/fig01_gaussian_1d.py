"""Figure 1: a 1-D Gaussian refitted on its own samples, Monte Carlo beside theory.

(a) sigma_n^2 over generations for M in {100, 500, 1000, 10000}: Monte Carlo median
and 5-95% band against the exact quantiles of the log-chi-square law;
(b) E[W2^2] against theory, with a superlinear schedule M_i = M i^2 that stays bounded.
"""

from __future__ import annotations

import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse.theory import gaussian as tg

NAME = "fig01_gaussian_1d"


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 200 if args.quick else 1000
    chains = 1024 if args.quick else 4096
    sizes = [100, 500, 1000, 10000]
    fam = jc.Gaussian(dim=1, method="exact")
    key = jax.random.key(args.seed)
    gens = np.arange(G + 1)
    qgens = np.unique(np.linspace(1, G, 40).astype(int))
    data, fig = {}, plt.figure(figsize=(9.5, 3.6))
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    for c, M in zip(st.COLORS, sizes, strict=False):
        res = jc.simulate(jax.random.fold_in(key, M), fam, fam.params(), n_generations=G,
                          n_samples=M, n_chains=chains, metrics=["var_ratio", "w2sq"],
                          save_params=False)
        v = np.asarray(res.metrics["var_ratio"])
        w2 = np.asarray(res.metrics["w2sq"])
        q05, q50, q95 = np.quantile(v, [0.05, 0.5, 0.95], axis=0)
        t05, t50, t95 = (np.array([tg.variance_quantile(q, n, M) for n in qgens])
                         for q in (0.05, 0.5, 0.95))
        ax1.fill_between(gens, q05, q95, color=c, alpha=st.BAND_ALPHA, lw=0)
        ax1.plot(gens, q50, color=c, label=f"M = {M}", **st.MC)
        ax1.plot(qgens, t50, **st.THEORY)
        ax1.plot(qgens, t05, **{**st.THEORY, "linewidth": 0.8})
        ax1.plot(qgens, t95, **{**st.THEORY, "linewidth": 0.8})
        ax2.plot(gens, w2.mean(0), color=c, label=f"M = {M}", **st.MC)
        ax2.plot(gens, tg.w2sq_mean(gens, M), **st.THEORY)
        data.update({f"var_q05_M{M}": q05, f"var_q50_M{M}": q50, f"var_q95_M{M}": q95,
                     f"theory_q50_M{M}": t50, f"w2sq_mean_M{M}": w2.mean(0),
                     f"theory_w2sq_M{M}": tg.w2sq_mean(gens, M)})
    sched = jc.schedule("power", G, 100, power=2.0)
    res = jc.simulate(jax.random.fold_in(key, 1), fam, fam.params(), n_generations=G,
                      n_samples=sched, n_chains=chains, metrics=["w2sq"], save_params=False)
    w2s = np.asarray(res.metrics["w2sq"]).mean(0)
    ax2.plot(gens, w2s, color=st.COLORS[5], label="M_i = 100 i^2", **st.MC)
    ax2.plot(gens, tg.w2sq_mean_schedule(sched), **st.THEORY)
    data.update(w2sq_mean_superlinear=w2s, theory_w2sq_superlinear=tg.w2sq_mean_schedule(sched),
                generations=gens, quantile_generations=qgens)
    ax1.set(yscale="log", xlabel="generation n", ylabel=r"$\sigma_n^2$ (median, 5-95%)",
            title="(a) variance collapses (dashed: exact quantiles)")
    ax1.plot([], [], label="theory", **st.THEORY)
    ax1.legend(loc="lower left")
    ax2.set(yscale="log", xlabel="generation n", ylabel=r"E $W_2^2$",
            title="(b) Wasserstein distance (dashed: theory)")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, sizes=sizes,
                seed=args.seed, reference="Shumailov et al. (2024); THEORY.md section 2")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
