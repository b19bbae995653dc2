"""Figure 6: categorical distributions refitted on their own samples: Wright–Fisher
drift and lost tails.

(a) Heterozygosity H = 1 - sum p_i^2 of a Zipf(1.1) law over K = 100 categories,
M = 100 draws a generation: Monte Carlo mean against E[H_n] = (1 - 1/M)^n H_0.
(b) Surviving categories: replace against the exact expectation (each category
against the rest is a two-type Wright–Fisher chain on counts 0..M, so
P(category i alive at n) follows from powers of its (M + 1) x (M + 1) binomial
transition matrix), and accumulate, whose support freezes after generation 1 at
E = sum_i 1 - (1 - p_i)^M. (c) Tale of Tails: the mass never seen in T draws from
a Zipf(beta) law, U(T) = sum p_i (1 - p_i)^T, against T (exact, and its power law
T^-(1 - 1/beta) for an infinite Zipf law), and the same when the sampled law has
its tail cut at rank k: U(T) plateaus at the floor sum_{i > k} p_i ~ k^-(beta - 1).
THEORY.md section 4.
"""

from __future__ import annotations

import math

import _style as st
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from jax.scipy.special import gammaln, zeta

import jaxcollapse as jc
from jaxcollapse.families import categorical as cat
from jaxcollapse.theory import discrete as td

NAME = "fig06_categorical"


def survival_theory(probs, M, G):
    """Exact E[survivors_n] and E[lost mass_n], n = 0..G, of the replace recursion.

    Category i's count c_n (out of M) is a two-type Wright–Fisher chain: c_1 ~
    Binomial(M, p_i), then c_{n+1} ~ Binomial(M, c_n / M).
    """
    p = np.asarray(probs, dtype=np.float64)
    k = np.arange(M + 1)
    log_choose = np.asarray(gammaln(M + 1.0) - gammaln(k + 1.0) - gammaln(M - k + 1.0))

    def binom_pmf(x):  # rows: success probabilities x; columns: counts 0..M
        x = np.clip(np.asarray(x, dtype=np.float64)[:, None], 0.0, 1.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            logp = log_choose + k * np.log(x) + (M - k) * np.log1p(-x)
        pmf = np.exp(np.where(np.isnan(logp), -np.inf, logp))
        pmf[x[:, 0] == 0.0] = (k == 0)
        pmf[x[:, 0] == 1.0] = (k == M)
        return pmf

    trans = binom_pmf(k / M)  # (M + 1, M + 1)
    dist = binom_pmf(p)  # generation 1, (K, M + 1)
    surv, lost = [float(np.sum(p > 0))], [0.0]
    for _ in range(G):
        surv.append(float(np.sum(1.0 - dist[:, 0])))
        lost.append(float(np.sum(p * dist[:, 0])))
        dist = dist @ trans
    return np.array(surv), np.array(lost)


def first_seen_fn(family, t_max):
    """For chains of ``t_max`` draws from ``probs``: the index of the first draw of each
    category (``t_max`` if never drawn), shape ``(chains, K)``."""
    K = family.n_categories

    @jax.jit
    def run(keys, probs):
        def one(key):
            x = family.sample(key, jc.CategoricalParams(probs), t_max)
            first = jnp.full((K,), t_max, jnp.int32)
            return first.at[x].min(jnp.arange(t_max, dtype=jnp.int32))

        return jax.lax.map(one, keys, batch_size=8)

    return run


def unseen_asymptote(beta, T):
    """U(T) ~ Gamma(1 - 1/beta) / (beta zeta(beta)^(1/beta)) T^-(1 - 1/beta) for an
    infinite Zipf(beta) law (the sum as an integral)."""
    c = math.gamma(1 - 1 / beta) / (beta * float(zeta(beta, 1.0)) ** (1 / beta))
    return c * np.asarray(T, dtype=float) ** td.unseen_mass_exponent(beta)


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 150 if args.quick else 500
    chains = 1024 if args.quick else 4096
    chains_acc = 256 if args.quick else 1024
    K, M, beta0 = 100, 100, 1.1
    K_tail, beta = (10_000, 1.5) if args.quick else (100_000, 1.5)
    t_max = 100_000 if args.quick else 1_000_000
    chains_tail = 64 if args.quick else 256
    cuts = [100, 1000]
    key = jax.random.key(args.seed)
    gens = np.arange(G + 1)
    p0 = cat.zipf(K, beta0)
    probs0 = np.asarray(p0.probs, dtype=np.float64)
    h0 = 1.0 - float(np.sum(probs0**2))

    # (a), (b): the samples path (M indices a chain and generation) is the cheapest
    # here; in law it is the same recursion as the exact multinomial path
    res = jc.simulate(key, jc.Categorical(K, method="samples"), p0, n_generations=G,
                      n_samples=M, n_chains=chains,
                      metrics=["heterozygosity", "survivors", "lost_mass"], save_params=False)
    acc = jc.simulate(jax.random.fold_in(key, 1), jc.Categorical(K), p0, n_generations=G,
                      n_samples=M, n_chains=chains_acc, regime="accumulate",
                      metrics=["survivors"], save_params=False)
    het = np.asarray(res.metrics["heterozygosity"], dtype=np.float64)
    surv = np.asarray(res.metrics["survivors"], dtype=np.float64)
    lost = np.asarray(res.metrics["lost_mass"], dtype=np.float64)
    surv_acc = np.asarray(acc.metrics["survivors"], dtype=np.float64)
    th_het = np.asarray(td.expected_heterozygosity(h0, M, gens))
    th_surv, th_lost = survival_theory(probs0, M, G)
    th_acc = np.full(G + 1, float(td.expected_survivors(probs0, M)))
    th_acc[0] = K

    def mean_se(a):
        return a.mean(0), a.std(0, ddof=1) / np.sqrt(a.shape[0])

    data = dict(generations=gens, theory_heterozygosity=th_het, theory_survivors=th_surv,
                theory_lost_mass=th_lost, theory_survivors_accumulate=th_acc)
    for name, a in (("heterozygosity", het), ("survivors", surv), ("lost_mass", lost),
                    ("survivors_accumulate", surv_acc)):
        data[f"{name}_mean"], data[f"{name}_se"] = mean_se(a)

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    q = np.quantile(het, [0.1, 0.9], axis=0)
    ax1.fill_between(gens, q[0], q[1], color=st.COLORS[0], alpha=st.BAND_ALPHA, lw=0,
                     label="10-90% of chains")
    ax1.plot(gens, data["heterozygosity_mean"], color=st.COLORS[0],
             label=f"mean over {chains} chains", **st.MC)
    ax1.plot(gens, th_het, label=r"$(1 - 1/M)^n H_0$", **st.THEORY)
    ax1.set(xlabel="generation n", ylabel=r"heterozygosity $1 - \sum_i p_i^2$",
            title=f"(a) Wright-Fisher drift (Zipf({beta0}), K = {K}, M = {M})")
    ax1.legend(loc="upper right")

    ax2.plot(gens, data["survivors_mean"], color=st.COLORS[0], label="replace", **st.MC)
    ax2.plot(gens, data["survivors_accumulate_mean"], color=st.COLORS[1], label="accumulate",
             **st.MC)
    ax2.plot(gens, th_surv, label="theory (exact)", **st.THEORY)
    ax2.plot(gens[1:], th_acc[1:], **st.THEORY)
    ax2.set(yscale="log", xlabel="generation n", ylabel="surviving categories (mean)",
            title="(b) lost categories never return")
    ax2.legend(loc="lower left")

    # (c) unseen mass: one run of t_max draws a chain gives U(T) for every T <= t_max
    fam_tail = jc.Categorical(K_tail)
    p_tail = np.asarray(cat.zipf(K_tail, beta).probs, dtype=np.float64)
    Ts = np.unique(np.round(np.geomspace(1, t_max, 41)).astype(np.int64))
    first_seen = first_seen_fn(fam_tail, t_max)
    keys = jax.random.split(jax.random.fold_in(key, 2), chains_tail)
    data.update(T=Ts, tail_cuts=np.array(cuts))
    for c, cut in zip(st.COLORS, [None, *cuts], strict=False):
        q_cut = p_tail.copy()
        if cut is not None:
            q_cut[cut:] = 0.0
            q_cut /= q_cut.sum()
        params = fam_tail.check_params(jc.CategoricalParams(q_cut.astype(np.float32)))
        first = np.asarray(first_seen(keys, params.probs))
        u = np.stack([((first >= T) * p_tail).sum(1) for T in Ts], axis=1)
        floor = 0.0 if cut is None else float(td.tail_floor(p_tail, cut))
        exact = floor + (1.0 - floor) * np.asarray(td.unseen_mass(q_cut, Ts))
        tag = "full" if cut is None else f"cut{cut}"
        um, use = mean_se(u)
        ax3.plot(Ts, um, color=c, label="no cut" if cut is None else f"tail cut at k = {cut}",
                 **st.MC)
        ax3.plot(Ts, exact, **st.THEORY)
        if cut is not None:
            ax3.axhline(floor, color=c, lw=0.8, ls=":")
        data.update({f"unseen_mean_{tag}": um, f"unseen_se_{tag}": use,
                     f"theory_unseen_{tag}": exact, f"tail_floor_{tag}": floor})
    asym = unseen_asymptote(beta, Ts)
    ax3.plot(Ts, asym, color="0.5", lw=1.0, ls="-.",
             label=r"$\propto T^{-(1-1/\beta)}$ (infinite Zipf)")
    ax3.plot([], [], label=r"exact $\sum_i p_i(1-p_i)^T$ (+ floor)", **st.THEORY)
    ax3.set(xscale="log", yscale="log", xlabel="draws T", ylabel="unseen mass U(T)",
            title=rf"(c) unseen mass of Zipf($\beta$ = {beta}), K = {K_tail:,}")
    ax3.legend(loc="lower left")
    data["unseen_asymptote"] = asym
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains,
                chains_accumulate=chains_acc, K=K, M=M, zipf_beta=beta0, h0=h0,
                tail=dict(K=K_tail, beta=beta, t_max=t_max, chains=chains_tail, cuts=cuts,
                          exponent=td.unseen_mass_exponent(beta),
                          floor_exponent=td.tail_floor_exponent(beta)),
                seed=args.seed,
                reference="Shumailov et al. (2024), discrete case; Dohmatob et al., A Tale "
                          "of Tails (2024); THEORY.md section 4")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
