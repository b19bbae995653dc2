"""Figure 15: the best per-generation human-data schedule under a budget, found by
differentiating through the recursion (jaxcollapse.design).

A 1-D Gaussian loop under the relaxed mix (fresh human subsets of a pool): generation t
trains on M synthetic draws of weight 1 - alpha_t and human rows of weight alpha_t M,
with sum_t alpha_t M = B human rows in all. The schedule minimises E W2^2 averaged over
generations 1..n (projected Adam on one fixed set of chains, iterates averaged).

(a) the optimised alpha_t against the constant alpha = B/(nM) of the same budget;
(b) E W2^2_t under both (Monte Carlo on independent chains, bands 2 SE), with the gain
in the averaged error and its standard error (paired chains); the dotted lines are the
exact E|mu_t - mu_0|^2 of the relaxed mix (theory.mixing_relaxed), the part of W2^2
with a closed form, beside its Monte Carlo.
"""

from __future__ import annotations

import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxcollapse import design
from jaxcollapse.theory import mixing_relaxed as mr

NAME = "fig15_design"


def _curve(traj):
    traj = np.asarray(traj, np.float64)
    return traj.mean(0), traj.std(0, ddof=1) / np.sqrt(traj.shape[0])


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    jax.config.update("jax_enable_x64", True)
    M, G, chains, steps = (20, 8, 256, 25) if args.quick else (50, 20, 2048, 120)
    budget = 2 * M if args.quick else 4 * M
    key = jax.random.key(args.seed)
    k_pool, k_opt, k_eval = jax.random.split(key, 3)
    n_pool = 5 * M
    human = design.loops.human_pool(k_pool, n_pool)
    loss = design.loops.mix_loss(human, n_samples=M, n_generations=G, n_chains=chains,
                                 metric="w2sq")
    b = design.budget(budget / M, G)
    r = design.minimize(loss, b.constant(), key=k_opt, n_steps=steps, projection=b,
                        generation="mean")
    const = b.constant()
    e_best = design.value_and_grad(loss, k_eval, r.theta, generation="mean")
    e_const = design.value_and_grad(loss, k_eval, const, generation="mean")
    gain = e_const.chain_values - e_best.chain_values
    g, g_se = float(gain.mean()), float(gain.std(ddof=1) / np.sqrt(gain.size))
    shift = design.loops.mix_loss(human, n_samples=M, n_generations=G, n_chains=chains)
    h = np.asarray(human, np.float64)
    moments = dict(source="fresh", human_mean=float(h.mean()), human_cov=float(h.var()),
                   n_pool=n_pool, mean0=0.0, cov0=1.0)
    data = dict(alpha=r.theta, alpha_constant=const, history_value=r.history.value,
                history_value_se=r.history.value_se)
    gens = np.arange(G + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.5, 3.6))
    ax1.bar(np.arange(1, G + 1), r.theta, color=st.COLORS[0], alpha=0.8,
            label="optimised $\\alpha_t$")
    ax1.axhline(const[0], color=st.COLORS[1], lw=1.5, label=f"constant {const[0]:.3g}")
    ax1.set(xlabel="generation t", ylabel=r"human fraction $\alpha_t$", ylim=(0, 1.02),
            title=f"(a) schedule: B = {budget} human rows, M = {M}")
    ax1.legend(loc="upper left")
    for tag, theta, c in (("best", r.theta, st.COLORS[0]), ("constant", const, st.COLORS[1])):
        mean, se = _curve(loss(k_eval, theta))
        ax2.plot(gens, mean, color=c, label=f"E W2$^2$, {tag}", **st.MC)
        ax2.fill_between(gens, mean - 2 * se, mean + 2 * se, color=c, alpha=st.BAND_ALPHA)
        ms, ms_se = _curve(shift(k_eval, theta))
        th = mr.relaxed_moments(G, M, theta, **moments).mean_shift
        ax2.plot(gens, th, color=c, lw=1.0, ls=":")
        data.update({f"w2sq_mean_{tag}": mean, f"w2sq_se_{tag}": se,
                     f"mean_shift_mean_{tag}": ms, f"mean_shift_se_{tag}": ms_se,
                     f"theory_mean_shift_{tag}": th})
    ax2.set(xlabel="generation t", ylabel=r"E W2$^2$ (dotted: exact E$|\mu_t-\mu_0|^2$)",
            title=f"(b) mean E W2$^2$ gain {g:.3g} $\\pm$ {g_se:.2g} (paired)")
    ax2.legend(loc="upper left")
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, seed=args.seed, M=M, generations=G,
                chains=chains, steps=steps, budget_rows=budget, n_pool=n_pool,
                value_best=e_best.value, value_best_se=e_best.value_se,
                value_constant=e_const.value, value_constant_se=e_const.value_se,
                gain=g, gain_se=g_se,
                reference="Shumailov et al., Nature 631 (2024); THEORY.md section 11")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
