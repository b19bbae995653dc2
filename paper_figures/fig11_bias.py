"""Figure 11: loops whose sampling is biased, Monte Carlo beside the exact theory.

(a) The variance sigma_n^2 of a 1-D Gaussian refitted (unbiased) each generation on M
draws from N(mu_n, lambda sigma_n^2), for lambda in {1, 0.95, 0.9} (the MAD paper's
sampling bias; Alemohammad et al., ICLR 2024): Monte Carlo median and mean over chains
against the exact law (median from the law of a product of scaled chi-squares; mean
lambda^n). (b) E W2^2 to generation 0 against its closed form. (c) The entropy of a
categorical law (Zipf, 20 categories) refitted on M draws decoded at temperature tau
(0.8 and 1.25) or with nucleus (top-p 0.9) sampling: Monte Carlo means against the
deterministic M -> infinity map p -> q(p) iterated (Marchi et al., 2024); one
generation ahead E[p_1] = q(p_0) exactly. All lambdas run as one compiled program
(``simulate_grid`` over the step's traced lambda), and so do both temperatures.
THEORY.md section 9.
"""

from __future__ import annotations

import _style as st
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse import steps
from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import decoding as tdec

NAME = "fig11_bias"
LAMS = (1.0, 0.95, 0.9)
TAUS = (0.8, 1.25)
TOP_P = 0.9


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    clock = st.stopwatch()
    G, C = (60, 2000) if args.quick else (300, 20000)
    Gc, Cc = (20, 300) if args.quick else (60, 2000)
    M, Mc, n_cat = 100, 1000, 20
    key = jax.random.key(args.seed)
    k_gauss, k_temp, k_top = jax.random.split(key, 3)
    gens = np.arange(G + 1)
    data = dict(generations=gens, lams=np.asarray(LAMS))

    fam = jc.Gaussian(dim=1, method="exact")
    res = jc.simulate_grid(k_gauss, fam, fam.params(), n_generations=G, n_samples=M,
                           n_chains=C, step=steps.sampling_bias(jnp.asarray(LAMS)),
                           metrics=["var_ratio", "w2sq"])
    var = np.asarray(res.metrics["var_ratio"], np.float64)  # (lam, chain, generation)
    w2 = np.asarray(res.metrics["w2sq"], np.float64)
    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, lam in enumerate(LAMS):
        c, tag = st.COLORS[i], f"lam{lam:g}"
        med = np.asarray([float(tb.variance_quantile(0.5, g, M, lam)) if g else 1.0
                          for g in gens])
        data.update({
            f"var_median_{tag}": np.median(var[i], axis=0),
            f"var_below_theory_median_{tag}": np.mean(var[i] < med, axis=0),
            f"var_mean_{tag}": var[i].mean(0),
            f"var_se_{tag}": var[i].std(0, ddof=1) / np.sqrt(C),
            f"theory_var_median_{tag}": med,
            f"theory_var_mean_{tag}": np.asarray(tb.variance_mean(gens, M, lam)),
            f"w2sq_mean_{tag}": w2[i].mean(0),
            f"w2sq_se_{tag}": w2[i].std(0, ddof=1) / np.sqrt(C),
            f"theory_w2sq_{tag}": np.asarray(tb.w2sq_mean(gens, M, lam))})
        label = f"λ = {lam:g}"
        ax1.semilogy(gens, data[f"var_median_{tag}"], color=c, label=label + " median",
                     **st.MC)
        ax1.semilogy(gens, data[f"var_mean_{tag}"], color=c, ls=":", lw=1.2,
                     label=label + " mean")
        ax1.semilogy(gens, med, **st.THEORY)
        ax1.semilogy(gens, data[f"theory_var_mean_{tag}"], **{**st.THEORY, "linewidth": 0.8})
        ax2.plot(gens, data[f"w2sq_mean_{tag}"], color=c, label=label, **st.MC)
        ax2.fill_between(gens, data[f"w2sq_mean_{tag}"] - 2 * data[f"w2sq_se_{tag}"],
                         data[f"w2sq_mean_{tag}"] + 2 * data[f"w2sq_se_{tag}"], color=c,
                         alpha=st.BAND_ALPHA, lw=0)
        ax2.plot(gens, data[f"theory_w2sq_{tag}"], **st.THEORY)
    ax1.plot([], [], label="exact law", **st.THEORY)
    ax1.set(xlabel="generation n", ylabel=r"$\sigma_n^2 / \sigma_0^2$",
            title=f"(a) Gaussian variance (M = {M}, {C:,} chains)")
    ax1.legend(loc="lower left", ncol=2, fontsize=6.5)
    ax2.plot([], [], label="closed form", **st.THEORY)
    ax2.set(xlabel="generation n", ylabel=r"$E\,W_2^2$ to generation 0",
            title="(b) Wasserstein distance")
    ax2.legend(loc="upper left")

    # (c) categorical decoding: temperature (one grid) and top-p
    famc = jc.Categorical(n_cat)
    p0 = jc.families.categorical.zipf(n_cat, 1.1, dtype=jnp.float32)
    p0n = np.asarray(p0.probs, np.float64)
    gc = np.arange(Gc + 1)
    data["categorical_generations"] = gc
    data["p0"] = p0n
    temp = jc.simulate_grid(k_temp, famc, p0, n_generations=Gc, n_samples=Mc, n_chains=Cc,
                            step=steps.temperature(jnp.asarray(TAUS)), metrics=["entropy"],
                            save_params=True)
    topp = jc.simulate(k_top, famc, p0, n_generations=Gc, n_samples=Mc, n_chains=Cc,
                       step=steps.top_p(TOP_P), metrics=["entropy"], save_params=True)
    runs = [(f"tau{t:g}", f"τ = {t:g}", np.asarray(temp.metrics["entropy"][i], np.float64),
             np.asarray(temp.params.probs[i, :, 1], np.float64),
             np.asarray(tdec.temperature_path(p0n, t, Gc)))
            for i, t in enumerate(TAUS)]
    runs.append((f"topp{TOP_P:g}", f"top-p {TOP_P:g}",
                 np.asarray(topp.metrics["entropy"], np.float64),
                 np.asarray(topp.params.probs[:, 1], np.float64),
                 np.asarray(tdec.deterministic_path(p0n, Gc, p=TOP_P))))
    for j, (tag, label, ent, p1, path) in enumerate(runs):
        c = st.COLORS[3 + j]
        data.update({f"entropy_mean_{tag}": ent.mean(0),
                     f"entropy_se_{tag}": ent.std(0, ddof=1) / np.sqrt(Cc),
                     f"theory_entropy_{tag}": np.asarray(tdec.entropy(path)),
                     f"probs1_mean_{tag}": p1.mean(0),
                     f"probs1_se_{tag}": p1.std(0, ddof=1) / np.sqrt(Cc),
                     f"theory_probs1_{tag}": path[1]})
        ax3.plot(gc, data[f"entropy_mean_{tag}"], color=c, label=label, **st.MC)
        ax3.plot(gc, data[f"theory_entropy_{tag}"], **st.THEORY)
    ax3.axhline(float(tdec.entropy(p0n)), color="grey", lw=0.8, ls=":")
    ax3.axhline(np.log(n_cat), color="grey", lw=0.8, ls=":")
    ax3.plot([], [], label="deterministic map (M → ∞)", **st.THEORY)
    ax3.set(xlabel="generation t", ylabel="entropy (nats)",
            title=f"(c) categorical decoding (Zipf, {n_cat} categories, M = {Mc})")
    ax3.legend(loc="center right", fontsize=6.5)
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, seed=args.seed,
                gaussian=dict(generations=G, chains=C, M=M, lams=list(LAMS)),
                categorical=dict(generations=Gc, chains=Cc, M=Mc, n_categories=n_cat,
                                 zipf=1.1, taus=list(TAUS), top_p=TOP_P),
                reference="Alemohammad et al., ICLR 2024; Marchi et al. (2024); "
                          "THEORY.md section 9",
                **clock())
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
