"""Figure 5: the KDE recursion: variance against theory under fixed, Scott and
Silverman bandwidths, and the MMD to the human distribution.

The human distribution is p = 0.5 N(-2, 1) + 0.5 N(2, 1); D_0 is M = 100 draws from
it, shared by every chain. Generation n + 1 draws M points from the Gaussian KDE of
D_n (a data point plus N(0, h_n^2) noise) and refits. (a) E[s_n^2] / s_0^2 (MLE
variance of D_n): a fixed h diffuses towards (M - 1) h^2, Scott's and Silverman's
rules (as scipy applies them) grow by g = (M - 1)/M + factor^2 a generation, both
exactly (THEORY.md section 6). (b) The squared MMD (RBF kernel, lengthscale 1)
between the KDE of generation n and p, in closed form (the KDE is a mixture of
Gaussians): the modes wash out whichever way the variance goes.
"""

from __future__ import annotations

import _style as st
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse.theory import kde as tk

NAME = "fig05_kde"
HUMAN = dict(weights=(0.5, 0.5), means=(-2.0, 2.0), stds=(1.0, 1.0))
LENGTHSCALE = 1.0


def _rbf_expectation_1d(m1, v1, m2, v2):
    # E k(X, Y) for X ~ N(m1, v1), Y ~ N(m2, v2), RBF kernel (THEORY.md section 6) in
    # 1-D: the scalar case of jaxcollapse.metrics.rbf_expectation, written out so that
    # the M x M pairs of a KDE need no batched 1 x 1 linear algebra
    ell2 = LENGTHSCALE**2
    s = v1 + v2
    return jax.lax.rsqrt(1.0 + s / ell2) * jnp.exp(-0.5 * (m1 - m2) ** 2 / (s + ell2))


def mmd2_to_human(params, params0):
    """Closed-form MMD^2 between the KDE ``params`` (1-D) and the human mixture."""
    del params0
    dt = params.points.dtype
    w = params.weights.astype(dt) / jnp.sum(params.weights)
    x, v = params.points[:, 0], params.bandwidth[0, 0]
    a, mu = jnp.asarray(HUMAN["weights"], dt), jnp.asarray(HUMAN["means"], dt)
    s2 = jnp.asarray(HUMAN["stds"], dt) ** 2
    kk = w @ _rbf_expectation_1d(x[:, None], v, x[None, :], v) @ w
    pp = a @ _rbf_expectation_1d(mu[:, None], s2[:, None], mu[None, :], s2[None, :]) @ a
    kp = w @ _rbf_expectation_1d(x[:, None], v, mu[None, :], s2[None, :]) @ a
    return jnp.maximum(kk + pp - 2.0 * kp, 0.0)


def human_params():
    fam = jc.GMM(2, 1)
    return fam, fam.params(HUMAN["weights"], np.asarray(HUMAN["means"])[:, None],
                           (np.asarray(HUMAN["stds"]) ** 2)[:, None, None])


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 30 if args.quick else 100
    chains = 512 if args.quick else 2048
    M, h = 100, 0.15
    key = jax.random.key(args.seed)
    gfam, p_human = human_params()
    x0 = gfam.sample(jax.random.fold_in(key, 10_000), p_human, M)
    s0sq = float(np.var(np.asarray(x0)))
    gens = np.arange(G + 1)
    bandwidths = {f"fixed h = {h}": h, "Scott": "scott", "Silverman": "silverman"}
    data = dict(generations=gens, data0=np.asarray(x0))
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    for i, (c, (label, bw)) in enumerate(zip(st.COLORS, bandwidths.items(), strict=False)):
        fam = jc.KDE(dim=1, bandwidth=bw)
        p0 = fam.params(x0)
        res = jc.simulate(jax.random.fold_in(key, i), fam, p0, n_generations=G, n_samples=M,
                          n_chains=chains, save_params=False,
                          metrics={"data_var": fam.default_metrics()["data_var"],
                                   "mmd2_human": mmd2_to_human})
        v = np.asarray(res.metrics["data_var"])
        mmd = np.asarray(res.metrics["mmd2_human"])
        if isinstance(bw, float):
            theory = tk.expected_var_fixed(gens, M, bw, s0sq) / s0sq
        else:
            theory = tk.expected_var_rule(gens, M, 1.0, 1, bw)
        tag = bw if isinstance(bw, str) else "fixed"
        mean, se = v.mean(0), v.std(0, ddof=1) / np.sqrt(chains)
        ax1.fill_between(gens, *np.quantile(v, [0.1, 0.9], axis=0), color=c,
                         alpha=st.BAND_ALPHA, lw=0)
        ax1.plot(gens, mean, color=c, label=label, **st.MC)
        ax1.plot(gens, theory, **st.THEORY)
        q10, q50, q90 = np.quantile(mmd, [0.1, 0.5, 0.9], axis=0)
        ax2.fill_between(gens, q10, q90, color=c, alpha=st.BAND_ALPHA, lw=0)
        ax2.plot(gens, mmd.mean(0), color=c, label=label, **st.MC)
        data.update({f"var_mean_{tag}": mean, f"var_se_{tag}": se,
                     f"var_q50_{tag}": np.median(v, 0), f"theory_var_{tag}": theory,
                     f"mmd2_mean_{tag}": mmd.mean(0),
                     f"mmd2_se_{tag}": mmd.std(0, ddof=1) / np.sqrt(chains),
                     f"mmd2_q10_{tag}": q10, f"mmd2_q50_{tag}": q50, f"mmd2_q90_{tag}": q90})
    fp = float(tk.fixed_point_var(M, h)) / s0sq
    ax1.axhline(fp, color="0.5", lw=0.8, ls=":", label=r"fixed point $(M-1)h^2$")
    ax1.plot([], [], label="theory", **st.THEORY)
    ax1.set(yscale="log", xlabel="generation n", ylabel=r"E $s_n^2 / s_0^2$ (mean, 10-90%)",
            title=f"(a) variance of the data (M = {M})")
    ax1.legend(loc="upper left")
    # a KDE spread out to infinity keeps only the human self-similarity E k(X, X')
    a, mu = np.asarray(HUMAN["weights"]), np.asarray(HUMAN["means"])
    s2 = np.asarray(HUMAN["stds"]) ** 2
    ceiling = float(a @ _rbf_expectation_1d(mu[:, None], s2[:, None], mu[None], s2[None]) @ a)
    ax2.axhline(ceiling, color="0.5", lw=0.8, ls=":",
                label=r"spread-out limit: E $k(X, X')$ under p")
    ax2.set(yscale="log", xlabel="generation n",
            ylabel=r"MMD$^2$(KDE$_n$, human) (mean, 10-90%)",
            title="(b) distance to the human distribution")
    ax2.legend(loc="lower right")
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, M=M,
                fixed_bandwidth=h, s0sq=s0sq, fixed_point_ratio=fp, mmd2_ceiling=ceiling,
                growth_factor=dict(scott=tk.growth_factor(M, 1, "scott"),
                                   silverman=tk.growth_factor(M, 1, "silverman")),
                human=HUMAN, mmd_kernel="rbf", mmd_lengthscale=LENGTHSCALE, seed=args.seed,
                reference="Shumailov et al. (2024); Scott (1992); Silverman (1986); "
                          "THEORY.md section 6")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
