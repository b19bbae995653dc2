"""Figure 3: data regimes on the same axes: replace, accumulate, and mixing a
fraction alpha of fresh human data (alpha in {0, 0.01, 0.1, 0.5}).

1-D Gaussian, M = 100, exact sampler; E[W2^2] and the median variance.
"""

from __future__ import annotations

import _style as st
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse.theory import gaussian as tg

NAME = "fig03_regimes"


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 200 if args.quick else 1000
    chains = 1024 if args.quick else 4096
    M = 100
    fam = jc.Gaussian(dim=1, method="exact")
    p0 = fam.params()
    key = jax.random.key(args.seed)
    human = fam.sample(jax.random.fold_in(key, 99), p0, 20 * M)
    gens = np.arange(G + 1)
    kw = dict(n_generations=G, n_samples=M, n_chains=chains, metrics=["w2sq", "var_ratio"],
              save_params=False)
    runs = {"replace": jc.simulate(key, fam, p0, regime="replace", **kw),
            "accumulate": jc.simulate(key, fam, p0, regime="accumulate", **kw)}
    alphas = [0.0, 0.01, 0.1, 0.5]
    grid = jc.simulate_grid(key, fam, p0, regime=jc.mix(0.0, "fresh"),
                            alpha=jnp.array(alphas), human_data=human, **kw)
    for i, a in enumerate(alphas):
        runs[f"mix alpha={a}"] = jax.tree.map(lambda x, i=i: x[i], grid)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    data = dict(generations=gens)
    for c, (name, res) in zip(st.COLORS, runs.items(), strict=False):
        w2 = np.asarray(res.metrics["w2sq"]).mean(0)
        med = np.median(np.asarray(res.metrics["var_ratio"]), axis=0)
        style = dict(st.MC, linestyle=":" if name == "mix alpha=0.0" else "-")
        ax1.plot(gens, w2, color=c, label=name, **style)
        ax2.plot(gens, med, color=c, label=name, **style)
        data[f"w2sq_mean[{name}]"] = w2
        data[f"var_median[{name}]"] = med
    ax1.plot(gens, tg.w2sq_mean(gens, M), label="replace theory", **st.THEORY)
    ax1.set(yscale="log", xlabel="generation n", ylabel=r"E $W_2^2$",
            title="(a) accumulating or mixing human data bounds the error")
    ax1.legend(loc="lower right", ncol=2)
    qg = np.unique(np.linspace(1, G, 30).astype(int))
    ax2.plot(qg, [tg.variance_quantile(0.5, n, M) for n in qg], label="replace theory",
             **st.THEORY)
    ax2.set(yscale="log", xlabel="generation n", ylabel=r"median $\sigma_n^2$",
            title="(b) the variance collapses only under replace")
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, M=M,
                alphas=alphas, source="fresh", seed=args.seed,
                reference="Shumailov et al. (2024); Gerstgrasser et al. (2024); THEORY.md 1-2")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
