"""Figure 14: strong model collapse. OLS on n rows (d = 10, N(0, I) inputs, noise
sigma = 1) of which a share p2 is labelled by a shifted model w* + Delta (|Delta| = 1):
the excess test error E|w - w*|^2 does not vanish with more data unless p2 = 0.

(a) error against n for p2 in {0, 0.001, 0.01, 0.1}: exact theory
sigma^2 d/(n - d - 1) + c(n, p2 n) |Delta|^2 (jaxcollapse.theory.regression_mix,
lines), its floor p2^2 |Delta|^2 (dotted) and a NumPy Monte Carlo (points, 2 SE).
(b) the iterative version: each generation's share p2 comes from the previous fit;
the error settles at E_clean/(1 - c) ~ E_clean/(1 - p2^2).
"""

from __future__ import annotations

import _style as st
import matplotlib.pyplot as plt
import numpy as np

from jaxcollapse.theory import regression_mix as trm

NAME = "fig14_strong_collapse"


def _mc(rng, n, p2, delta, reps):
    d = delta.shape[0]
    n2 = int(np.round(p2 * n))
    errs = np.empty(reps)
    for r in range(reps):
        X = rng.normal(size=(n, d))
        y = X[:n2] @ delta
        y = np.concatenate([y, np.zeros(n - n2)]) + rng.normal(size=n)
        w = np.linalg.lstsq(X, y, rcond=None)[0]
        errs[r] = w @ w
    return errs.mean(), errs.std(ddof=1) / np.sqrt(reps)


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    reps = 100 if args.quick else 1000
    d = 10
    delta = np.zeros(d)
    delta[0] = 1.0
    p2s = [0.0, 0.001, 0.01, 0.1]
    ns = np.unique(np.round(np.logspace(np.log10(20), 5, 40)).astype(int))
    ns_mc = np.array([20, 100, 1000, 5000] if args.quick else [20, 50, 100, 300, 1000,
                                                                3000, 10000])
    rng = np.random.default_rng(args.seed)
    data = dict(n=ns, n_mc=ns_mc)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for c, p2 in zip(st.COLORS, p2s, strict=False):
        th = trm.strong_collapse_excess(ns, p2, delta)
        mc = np.array([_mc(rng, int(n), p2, delta, reps) for n in ns_mc])
        ax1.plot(ns, th, color=c, lw=1.3, label=f"p2 = {p2}")
        ax1.errorbar(ns_mc, mc[:, 0], yerr=2 * mc[:, 1], fmt="o", ms=3.5, color=c)
        if p2 > 0:
            ax1.axhline(p2**2, color=c, lw=0.9, ls=":")
        data.update({f"theory_p{p2}": th, f"mc_mean_p{p2}": mc[:, 0], f"mc_se_p{p2}": mc[:, 1],
                     f"theory_at_mc_p{p2}": trm.strong_collapse_excess(ns_mc, p2, delta)})
    ax1.set(xscale="log", yscale="log", xlabel="samples n",
            ylabel=r"excess test error E$\|\hat w - w^*\|^2$",
            title=r"(a) a share $p_2$ from $w^* + \Delta$; floors $p_2^2\|\Delta\|^2$")
    ax1.legend(loc="lower left", fontsize=7)
    gens = np.arange(31)
    n_it = 200
    for c, p2 in zip(st.COLORS, [0.1, 0.5, 0.9], strict=False):
        it = trm.strong_collapse_iterative(30, n_it, p2, d)
        ax2.plot(gens, it, color=c, label=f"p2 = {p2}")
        ax2.axhline(it[1] / (1 - p2**2), color=c, lw=0.9, ls=":")
        data[f"iterative_p{p2}"] = it
    ax2.set(xlabel="generation", ylabel=r"E$\|\hat w_t - w^*\|^2$",
            title=rf"(b) iterative, n = {n_it}: $\to E/(1 - p_2^2)$ (dotted)")
    ax2.legend(loc="lower right", fontsize=7)
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, reps=reps, d=d, delta_norm=1.0, noise=1.0,
                seed=args.seed,
                reference="Dohmatob, Feng, Subramonian, Kempe, Strong Model Collapse "
                          "(ICLR 2025); THEORY.md section 11")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
