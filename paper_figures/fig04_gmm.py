"""Figure 4: Gaussian mixtures refitted by EM on their own samples (Shumailov's GMM
experiment).

Generation 0 is 0.5 N((-2, 0), I) + 0.5 N((2, 0), I) in 2-D; every generation draws
M = 1,000 points from the previous fit and refits a two-component GMM by EM
(k-means++ start). (a) One chain at the paper's snapshot generations (0, 50, 100,
150, 200, 350, 2,000): log-density contours of the fit over M samples drawn from it.
(b) The closed-form squared L2 distance to the generation-0 mixture over
generations: mean, median and 10-90% band over chains. No closed form exists for
its growth; the distance itself is exact (THEORY.md section 6), not estimated from
samples. (c) What theory there is: an EM M-step reproduces the sample mean and the
MLE sample covariance exactly (sum_k w_k mu_k = mean, sum_k w_k (S_k + mu_k mu_k^T)
- m m^T = MLE covariance + reg_covar I), so the mixture's first two moments follow the
Gaussian MLE recursion of THEORY.md section 2 (ddof = 0) whatever EM does inside:
E tr Cov(p_n) = a^n tr Cov(p_0) (+ the reg_covar term) and E|m_n - m_0|^2 =
(tr Cov(p_0)/M) sum_{i<n} a^i, a = (M - 1)/M.
"""

from __future__ import annotations

import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse.theory import gaussian as tg

NAME = "fig04_gmm"
SNAPSHOTS = (0, 50, 100, 150, 200, 350, 2000)


def _log_density_grid(fam, params, xs, ys):
    gx, gy = np.meshgrid(xs, ys)
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)
    return gx, gy, np.asarray(fam.log_prob(params, pts)).reshape(gx.shape)


def mixture_moments(params):
    """Mean ``(..., d)`` and total covariance trace ``(...)`` of mixtures with leading
    axes."""
    w, mu, cov = params.weights, params.means, params.covs
    m = np.einsum("...k,...kd->...d", w, mu)
    second = np.einsum("...k,...kdd->...", w, cov) + np.einsum("...k,...kd,...kd->...", w,
                                                                 mu, mu)
    return m, second - np.einsum("...d,...d->...", m, m)


def moment_theory(gens, M, trace0, d, reg_covar):
    """E tr Cov(p_n) and E|m_n - m_0|^2 under the MLE recursion with ``reg_covar``
    added to every component covariance (so ``d reg_covar`` to the trace) each step."""
    a = (M - 1) / M
    gens = np.asarray(gens, dtype=float)
    reg = d * reg_covar * (1 - a**gens) / (1 - a)
    trace = np.asarray(tg.variance_mean(gens, M, trace0, ddof=0)) + reg
    shift = np.asarray(tg.mean_shift(gens, M, trace0, ddof=0)) \
        + d * reg_covar / M * (gens - (1 - a**gens) / (1 - a)) / (1 - a)
    return trace, shift


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 200 if args.quick else 2000
    chains = 32 if args.quick else 64
    M = 1000
    snaps = [g for g in SNAPSHOTS if g <= G]
    fam = jc.GMM(n_components=2, dim=2)
    p0 = fam.params([0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], np.stack([np.eye(2)] * 2))
    key = jax.random.key(args.seed)
    res = jc.simulate(key, fam, p0, n_generations=G, n_samples=M, n_chains=chains,
                      metrics=["l2"], save_params=True)
    params = jax.tree.map(np.asarray, res.params)
    l2 = np.asarray(res.metrics["l2"])
    gens = np.arange(G + 1)

    fig = plt.figure(figsize=(12, 6.2))
    outer = fig.add_gridspec(2, 1, height_ratios=[1, 1.3])
    top = outer[0].subgridspec(1, len(snaps))
    bottom = outer[1].subgridspec(1, 2, width_ratios=[4, 3])
    xs, ys = np.linspace(-6, 6, 241), np.linspace(-4.5, 4.5, 181)
    data = dict(generations=gens, snapshot_generations=np.array(snaps), l2=l2)
    for i, g in enumerate(snaps):
        p = jc.GMMParams(*(a[0, g] for a in params))  # chain 0
        x = np.asarray(fam.sample(jax.random.fold_in(jax.random.key(args.seed + 1), g), p, M))
        gx, gy, logd = _log_density_grid(fam, p, xs, ys)
        ax = fig.add_subplot(top[0, i])
        ax.scatter(x[:, 0], x[:, 1], s=1.5, color=st.COLORS[0], alpha=0.35, lw=0,
                   rasterized=True)
        # log-density levels below the peak: they resolve broad and collapsed fits alike
        ax.contour(gx, gy, logd, levels=logd.max() - np.array([4.5, 3.0, 1.8, 0.9, 0.3]),
                   colors="black", linewidths=0.7, linestyles="solid")
        ax.set(xlim=(xs[0], xs[-1]), ylim=(ys[0], ys[-1]), xticks=[], yticks=[],
               title=("(a) " if i == 0 else "") + f"generation {g}")
        ax.set_aspect("equal")
        ax.grid(False)
        for name, a in p._asdict().items():
            data[f"snapshot_{g}_{name}"] = a
        data[f"snapshot_{g}_samples"] = x
    ax = fig.add_subplot(bottom[0, 0])
    q10, q50, q90 = np.quantile(l2, [0.1, 0.5, 0.9], axis=0)
    mean, se = l2.mean(0), l2.std(0, ddof=1) / np.sqrt(chains)
    ax.fill_between(gens[1:], q10[1:], q90[1:], color=st.COLORS[0], alpha=st.BAND_ALPHA, lw=0,
                    label="10-90% of chains")
    ax.plot(gens[1:], mean[1:], color=st.COLORS[0], label=f"mean over {chains} chains",
            **st.MC)
    ax.plot(gens[1:], q50[1:], color=st.COLORS[1], label="median",
            **{**st.MC, "linewidth": 1.2})
    ax.plot(gens[1:], l2[0, 1:], color="0.4", lw=0.8, label="chain 0 (snapshots above)")
    for g in snaps[1:]:
        ax.axvline(g, color="0.6", lw=0.6, ls=":")
    ax.set(yscale="log", xlabel="generation n", ylabel=r"$\int (p_n - p_0)^2$",
           title=f"(b) L2 distance to generation 0 (M = {M})")
    ax.legend(loc="upper left")

    # (c) the mixture's mean and total variance against the exact MLE recursion
    m, tr = mixture_moments(jc.GMMParams(*params))  # (chain, generation)
    m0, tr0 = mixture_moments(p0)
    m0, tr0 = np.asarray(m0), float(tr0)
    shift = np.sum((m - m0) ** 2, -1)
    th_tr, th_shift = moment_theory(gens, M, tr0, fam.dim, fam.reg_covar)
    ax = fig.add_subplot(bottom[0, 1])
    for c, (lbl, y, th) in zip(st.COLORS, [
            (r"tr Cov$(p_n)$ / tr Cov$(p_0)$", tr / tr0, th_tr / tr0),
            (r"$|m_n - m_0|^2$ / tr Cov$(p_0)$", shift / tr0, th_shift / tr0)],
            strict=False):
        mu, sd = y.mean(0), y.std(0, ddof=1) / np.sqrt(chains)
        ax.fill_between(gens, mu - 2 * sd, mu + 2 * sd, color=c, alpha=st.BAND_ALPHA, lw=0)
        ax.plot(gens, mu, color=c, label=lbl + " (mean, 2 SE)", **st.MC)
        ax.plot(gens[1:], th[1:], **st.THEORY)
    ax.plot([], [], label="theory (Gaussian MLE recursion)", **st.THEORY)
    ax.set(yscale="log", xlabel="generation n",
           title="(c) the mixture's moments follow the MLE recursion")
    ax.legend(loc="lower right")
    fig.tight_layout()
    data.update(l2_mean=mean, l2_se=se, l2_q10=q10, l2_q50=q50, l2_q90=q90,
                degenerate_fraction=np.asarray(res.degenerate).mean(0),
                trace_ratio_mean=(tr / tr0).mean(0),
                trace_ratio_se=(tr / tr0).std(0, ddof=1) / np.sqrt(chains),
                theory_trace_ratio=th_tr / tr0, mean_shift_mean=(shift / tr0).mean(0),
                mean_shift_se=(shift / tr0).std(0, ddof=1) / np.sqrt(chains),
                theory_mean_shift=th_shift / tr0)
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, M=M,
                snapshots=snaps, family=dict(n_components=2, dim=2, max_iter=fam.max_iter,
                                             tol=fam.tol, reg_covar=fam.reg_covar),
                params0=dict(weights=[0.5, 0.5], means=[[-2, 0], [2, 0]], covs="identity"),
                seed=args.seed, snapshot_chain=0,
                reference="Shumailov et al. (2024), GMM experiment; THEORY.md section 6 "
                          "(L2 between mixtures) and section 2 (MLE variance recursion)")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
