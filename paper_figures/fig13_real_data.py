"""Figure 13: how much real data. The Gaussian loop under mix(alpha, "fresh") and
mix(alpha, "fixed") settles at an error set by alpha; Shumailov et al. kept alpha = 0.1.

(a) E(mu_n - mu_0)^2 after n generations (M = 100 a generation, human pool of 1000
draws from N(0, 1)) against alpha: exact theory (jaxcollapse.theory.mixing, lines)
and Monte Carlo through jc.simulate_grid (points, 2 SE bars); the dotted line is
replace's n/M. (b) E sigma_n^2 against alpha, same runs.
"""

from __future__ import annotations

import _style as st
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse.theory import mixing as tm

NAME = "fig13_real_data"


def _var(params, params0):
    return params.cov[..., 0, 0]


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 50 if args.quick else 200
    chains = 512 if args.quick else 4096
    M, N = 100, 1000
    key = jax.random.key(args.seed)
    pool = np.asarray(jax.random.normal(jax.random.fold_in(key, 99), (N, 1)), np.float64)
    m, S = pool.mean(0), np.cov(pool.T, ddof=0).reshape(1, 1)
    alphas = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0])
    fine = np.arange(1, M + 1) / M
    fam = jc.Gaussian(dim=1, method="exact")
    data = dict(alphas=alphas, alpha_theory=fine)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for j, (c, source) in enumerate(zip(st.COLORS, ("fresh", "fixed"), strict=False)):
        kw = dict(source=source, human_mean=m, human_cov=S, mean0=[0.0], cov0=[[1.0]],
                  n_pool=N)
        th = tm.mix_moments(G, M, fine, **kw)
        res = jc.simulate_grid(jax.random.fold_in(key, j), fam, fam.params(),
                               n_generations=G, n_samples=M, n_chains=chains,
                               regime=jc.mix(0.1, source), alpha=jnp.asarray(alphas),
                               human_data=pool,
                               metrics={"ms": jc.families.gaussian.mean_shift, "v": _var})
        for ax, name, theory in ((ax1, "ms", th.mean_shift[:, G]),
                                 (ax2, "v", th.cov[:, G, 0, 0])):
            x = np.asarray(res.metrics[name][:, :, G], np.float64)
            mean, se = x.mean(1), x.std(1, ddof=1) / np.sqrt(chains)
            ax.plot(fine, theory, color=c, lw=1.2, label=f"{source}: theory")
            ax.errorbar(alphas, mean, yerr=2 * se, fmt="o", ms=4, color=c,
                        label=f"{source}: Monte Carlo (2 SE)")
            data.update({f"{name}_mean_{source}": mean, f"{name}_se_{source}": se,
                         f"{name}_theory_{source}": theory,
                         f"{name}_theory_at_alphas_{source}":
                         (tm.mix_moments(G, M, alphas, **kw).mean_shift[:, G] if name == "ms"
                          else tm.mix_moments(G, M, alphas, **kw).cov[:, G, 0, 0])})
    for ax in (ax1, ax2):
        ax.axvline(0.1, color="0.4", lw=0.9, ls=":", label=r"Shumailov et al.: $\alpha$ = 0.1")
        ax.set(xscale="log", xlabel=r"human fraction $\alpha$")
    ax1.axhline(G / M, color="0.5", lw=0.8, ls="-.", label=r"replace: $n/M$")
    ax1.set(yscale="log", ylabel=r"E$(\mu_n - \mu_0)^2$", title=f"(a) mean error, n = {G}")
    ax2.set(ylabel=r"E$\sigma_n^2$", title=f"(b) variance, n = {G}")
    ax1.legend(loc="lower left", fontsize=7)
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, M=M,
                n_pool=N, seed=args.seed,
                reference="Shumailov et al. (2024); THEORY.md section 11")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
