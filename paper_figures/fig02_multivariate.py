"""Figure 2: the multivariate Gaussian: log det drift and W2^2 against theory.

d in {1, 3, 10, 31}, M = 100 samples, unbiased covariance, exact Bartlett sampler.
(a) E[log det S_n - log det S_0] (theory: n times the digamma drift, exact);
(b) E[W2^2] (theory: exact mean term plus the small-n/M covariance approximation).
"""

from __future__ import annotations

import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse.theory import gaussian as tg

NAME = "fig02_multivariate"


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 100 if args.quick else 500
    chains = 512 if args.quick else 2048
    M = 100
    dims = [1, 3, 10, 31]
    key = jax.random.key(args.seed)
    gens = np.arange(G + 1)
    data = dict(generations=gens)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for c, d in zip(st.COLORS, dims, strict=False):
        fam = jc.Gaussian(dim=d, method="exact")
        res = jc.simulate(jax.random.fold_in(key, d), fam, fam.params(), n_generations=G,
                          n_samples=M, n_chains=chains, metrics=["logdet_ratio", "w2sq"],
                          save_params=False)
        ld = np.asarray(res.metrics["logdet_ratio"])
        w2 = np.asarray(res.metrics["w2sq"])
        se = ld.std(0) / np.sqrt(chains)
        ax1.fill_between(gens, ld.mean(0) - 2 * se, ld.mean(0) + 2 * se, color=c,
                         alpha=st.BAND_ALPHA, lw=0)
        ax1.plot(gens, ld.mean(0), color=c, label=f"d = {d}", **st.MC)
        ax1.plot(gens, tg.logdet_mean(gens, M, d), **st.THEORY)
        ax2.plot(gens, w2.mean(0), color=c, label=f"d = {d}", **st.MC)
        ax2.plot(gens, tg.w2sq_mean_mv_approx(gens, M, d), **st.THEORY)
        data.update({f"logdet_mean_d{d}": ld.mean(0), f"logdet_se_d{d}": se,
                     f"theory_logdet_d{d}": tg.logdet_mean(gens, M, d),
                     f"w2sq_mean_d{d}": w2.mean(0),
                     f"theory_w2sq_approx_d{d}": tg.w2sq_mean_mv_approx(gens, M, d)})
    ax1.plot([], [], label="theory", **st.THEORY)
    ax1.set(xlabel="generation n", ylabel=r"E log det $\Sigma_n$ / det $\Sigma_0$",
            title=f"(a) log-determinant drift (M = {M})")
    ax1.legend(loc="lower left")
    ax2.set(xscale="log", yscale="log", xlabel="generation n", ylabel=r"E $W_2^2$",
            title="(b) W2 (dashed: small-n/M theory)")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, M=M, dims=dims,
                seed=args.seed, reference="THEORY.md section 3")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
