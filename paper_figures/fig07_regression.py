"""Figure 7: linear regression retrained on its own labels: replace grows linearly,
accumulate stays bounded by pi^2/6 times the one-generation error.

A fixed design X (T = 100 rows, N(0, I)) is relabelled every generation with the
previous OLS fit plus N(0, sigma^2) noise (sigma = 1). The excess test error
E||w_n - w*||^2 (the test MSE minus sigma^2 for N(0, I) inputs) against
THEORY.md section 5 given the design: n sigma^2 tr((X^T X)^-1) (replace) and
sigma^2 tr((X^T X)^-1) sum_{i<=n} 1/i^2 <= (pi^2/6) sigma^2 tr((X^T X)^-1)
(accumulate). (a) d = 10; (b) d in {2, 10, 50}, each divided by its one-generation
error sigma^2 tr((X^T X)^-1), so that every d falls on n and on sum 1/i^2.
"""

from __future__ import annotations

import math

import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse.theory import regression as tr

NAME = "fig07_regression"


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 50 if args.quick else 200
    chains = 1024 if args.quick else 4096
    T, noise, dims, d_main = 100, 1.0, [2, 10, 50], 10
    key = jax.random.key(args.seed)
    gens = np.arange(G + 1)
    data = dict(generations=gens)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for c, d in zip(st.COLORS, dims, strict=False):
        fam = jc.LinearRegression(dim=d, noise=noise, n_design=T)
        X = jax.random.normal(jax.random.fold_in(key, 1000 + d), (T, d))
        p0 = fam.params(np.ones(d, np.float32), X)
        one = float(noise**2 * tr.inverse_gram_trace(X))  # sigma^2 tr((X^T X)^-1)
        theory = {"replace": np.asarray(tr.excess_replace_fixed(gens, X, noise)),
                  "accumulate": np.asarray(tr.excess_accumulate_fixed(gens, X, noise))}
        data[f"one_generation_d{d}"] = one
        data[f"theory_design_average_replace_d{d}"] = np.asarray(
            tr.excess_replace(gens, d, T, noise))
        for j, regime in enumerate(("replace", "accumulate")):
            res = jc.simulate(jax.random.fold_in(key, 10 * d + j), fam, p0, n_generations=G,
                              n_samples=T, n_chains=chains, regime=regime,
                              metrics=["excess_risk"], save_params=False)
            err = np.asarray(res.metrics["excess_risk"], dtype=np.float64)
            mean, se = err.mean(0), err.std(0, ddof=1) / np.sqrt(chains)
            data.update({f"excess_mean_{regime}_d{d}": mean, f"excess_se_{regime}_d{d}": se,
                         f"theory_{regime}_d{d}": theory[regime]})
            ls = "-" if regime == "replace" else "--"
            ax2.plot(gens[1:], mean[1:] / one, color=c, ls=ls,
                     label=f"d = {d}, {regime}", **{**st.MC, "linewidth": 1.4})
            if d == d_main:
                col = st.COLORS[0] if regime == "replace" else st.COLORS[1]
                ax1.fill_between(gens, mean - 2 * se, mean + 2 * se, color=col,
                                 alpha=st.BAND_ALPHA, lw=0)
                ax1.plot(gens, mean, color=col, label=f"{regime} (mean, 2 SE)", **st.MC)
                ax1.plot(gens, theory[regime], **st.THEORY)
        if d == d_main:
            ax1.axhline(math.pi**2 / 6 * one, color="0.4", lw=0.9, ls=":",
                        label=r"$(\pi^2/6)\,\sigma^2 \mathrm{tr}(X^TX)^{-1}$")
            ax1.plot(gens, data[f"theory_design_average_replace_d{d}"], color="0.5", lw=0.8,
                     ls="-.", label=r"$n\sigma^2 d/(T-d-1)$ (design average)")
    ax1.plot([], [], label="theory given X", **st.THEORY)
    ax1.set(xlabel="generation n", ylabel=r"excess test error E$\|\hat w_n - w^*\|^2$",
            title=f"(a) d = {d_main}, T = {T}")
    ax1.legend(loc="upper left")
    g1 = gens[1:]
    ax2.plot(g1, g1, label=r"theory: $n$, $\sum_{i\leq n} 1/i^2$", **st.THEORY)
    ax2.plot(g1, np.cumsum(1.0 / g1**2), **st.THEORY)
    ax2.axhline(math.pi**2 / 6, color="0.4", lw=0.9, ls=":", label=r"$\pi^2/6$")
    ax2.set(xscale="log", yscale="log", xlabel="generation n",
            ylabel=r"error / $\sigma^2 \mathrm{tr}(X^TX)^{-1}$",
            title=r"(b) every d on $n$ (replace) and $\sum_{i\leq n} 1/i^2$ (accumulate)")
    ax2.legend(loc="upper left", ncol=2)
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, T=T,
                noise=noise, dims=dims, w_star="ones", design="N(0, I) rows, fixed",
                seed=args.seed,
                reference="Gerstgrasser et al. (2024); Dohmatob, Feng, Kempe (2024); "
                          "THEORY.md section 5")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
