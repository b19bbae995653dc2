"""Figure 12: curated and verified loops against their exact theory.

(a) Expected reward E_{p_t} r and (b) entropy of a categorical law (20 categories,
uniform start, reward r_i = 3 i / 19) refitted each generation on M draws, each kept
from K candidates by the Bradley–Terry choice (Ferbach et al., NeurIPS 2024), for
K in {2, 4, ∞} and a synthetic share eta in {1, 0.9} (the rest from the uniform
reference). Lines: Monte Carlo means over chains (K = 2, 4); dashed: the deterministic
iteration of the exact map p -> (1 - eta) p_ref + eta p H_p (exact one step ahead;
the M -> ∞ limit over many), including K = ∞ (p H_p ∝ p e^r). With eta = 1 the
reward rises every generation and the entropy falls to 0; with eta = 0.9 the loop
settles at a fixed point. (c) A generator right with probability q_t and verifiers
with rates (a, b): q_t (Monte Carlo, M kept draws) against the exact finite-M mean
(binomial Markov chain), and the acceptance rate a q + b (1 - q) (Feng et al., ICLR
2025). THEORY.md section 10.
"""

from __future__ import annotations

import functools
import math

import _style as st
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np

import jaxcollapse as jc
from jaxcollapse import steps
from jaxcollapse.theory import curation as tc
from jaxcollapse.theory import verification as tv

NAME = "fig12_curation"


@functools.partial(jax.jit, static_argnames=("family", "m", "n_gen", "n_chains"))
def loop(key, step, params0, *, family, m, n_gen, n_chains):
    """Chains x generations: sample M draws from the step's exact law and refit (the
    step is traced, so steps that differ only in eta or rates share one compile)."""

    def one(params, key):
        k_draw, k_fit = jax.random.split(key)
        draws = family.sample(k_draw, step.law(family, params), m)
        new = family.fit(k_fit, draws, jnp.ones((m,)))
        return new, new.probs

    def chain(key):
        return jax.lax.scan(one, params0, jax.random.split(key, n_gen))[1]

    keys = jax.vmap(lambda i: jax.random.fold_in(key, i))(jnp.arange(n_chains))
    return jax.vmap(chain)(keys)


def entropy(p):
    return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0), axis=-1)


def main(argv=None):
    args = st.parser(__doc__).parse_args(argv)
    G = 12 if args.quick else 30
    chains = 200 if args.quick else 1000
    M = 500
    n_cat = 20
    fam = jc.Categorical(n_cat)
    p0 = np.full(n_cat, 1.0 / n_cat)
    reward = np.linspace(0.0, 3.0, n_cat)
    key = jax.random.key(args.seed)
    gens = np.arange(G + 1)
    data = dict(generations=gens, reward=reward)

    fig, (ax1, ax2, ax3) = plt.subplots(1, 3, figsize=(13, 3.8))
    for i, (k, eta) in enumerate([(k, e) for e in (1.0, 0.9) for k in (2, 4, math.inf)]):
        c = st.COLORS[[2, 4, math.inf].index(k)]
        ls = "-" if eta == 1.0 else ":"
        tag = f"K{'inf' if math.isinf(k) else k}_eta{eta:g}"
        path = tc.curation_iterate(p0, reward, k, G, eta, p0)
        data[f"theory_reward_{tag}"] = np.asarray(path.reward)
        data[f"theory_entropy_{tag}"] = np.asarray(path.entropy)
        label = f"K = {'∞' if math.isinf(k) else k}, η = {eta:g}"
        if not math.isinf(k):
            step = steps.curate(jnp.asarray(reward), k=k, eta=eta, reference=p0)
            ps = np.asarray(loop(jax.random.fold_in(key, i), step, jc.CategoricalParams(
                jnp.asarray(p0)), family=fam, m=M, n_gen=G, n_chains=chains), np.float64)
            ps = np.concatenate([np.broadcast_to(p0, (chains, 1, n_cat)), ps], axis=1)
            for name, v in (("reward", ps @ reward), ("entropy", entropy(ps))):
                data[f"{name}_mean_{tag}"] = v.mean(0)
                data[f"{name}_se_{tag}"] = v.std(0, ddof=1) / np.sqrt(chains)
            data[f"probs1_mean_{tag}"] = ps[:, 1].mean(0)
            data[f"probs1_se_{tag}"] = ps[:, 1].std(0, ddof=1) / np.sqrt(chains)
            ax1.plot(gens, data[f"reward_mean_{tag}"], color=c, ls=ls, label=label, **st.MC)
            ax2.plot(gens, data[f"entropy_mean_{tag}"], color=c, ls=ls, label=label, **st.MC)
            ax1.plot(gens, path.reward, **{**st.THEORY, "linewidth": 0.9})
            ax2.plot(gens, path.entropy, **{**st.THEORY, "linewidth": 0.9})
        else:  # K = ∞ has no step (k is an integer): the exact map only
            ax1.plot(gens, path.reward, color=c, ls=ls, lw=1.2, label=label + " (theory)")
            ax2.plot(gens, path.entropy, color=c, ls=ls, lw=1.2, label=label + " (theory)")
    ax1.plot([], [], label="exact map, iterated", **st.THEORY)
    ax1.set(xlabel="generation t", ylabel=r"expected reward $E_{p_t} r$",
            title=f"(a) curation: reward ({n_cat} categories, M = {M})")
    ax1.legend(loc="lower right", ncol=2)
    ax2.set(xlabel="generation t", ylabel="entropy (nats)", title="(b) curation: entropy")

    # (c) verifier: q_t and the acceptance rate
    Gv, Mv, q0 = (10, 50, 0.2)
    fam2 = jc.Categorical(2)
    gv = np.arange(Gv + 1)
    data["verifier_generations"] = gv
    for j, (a, b) in enumerate([(0.9, 0.3), (0.7, 0.5), (0.6, 0.6)]):
        c = st.COLORS[j]
        step = steps.verify(tpr=a, fpr=b)
        qs = np.asarray(loop(jax.random.fold_in(key, 100 + j), step, jc.CategoricalParams(
            jnp.array([q0, 1 - q0])), family=fam2, m=Mv, n_gen=Gv, n_chains=chains),
            np.float64)[..., 0]
        qs = np.concatenate([np.full((chains, 1), q0), qs], axis=1)
        pmf = np.asarray(tv.verifier_q_distribution(q0, a, b, Mv, Gv))
        exact = pmf @ (np.arange(Mv + 1) / Mv)
        exact_sd = np.sqrt(np.maximum(pmf @ (np.arange(Mv + 1) / Mv) ** 2 - exact**2, 0.0))
        acc = np.asarray(tv.verifier_acceptance(qs, a, b)).mean(0)
        tag = f"a{a:g}_b{b:g}"
        data.update({f"q_mean_{tag}": qs.mean(0),
                     f"q_se_{tag}": qs.std(0, ddof=1) / np.sqrt(chains),
                     f"theory_q_{tag}": exact, f"theory_q_sd_{tag}": exact_sd,
                     f"acceptance_mean_{tag}": acc,
                     f"theory_q_map_{tag}": np.asarray(tv.verifier_iterate(q0, a, b, gv))})
        ax3.plot(gv, qs.mean(0), color=c, label=f"q_t, a = {a:g}, b = {b:g}", **st.MC)
        ax3.plot(gv, exact, **st.THEORY)
        ax3.plot(gv, acc, color=c, ls=":", lw=1.2, label="acceptance rate")
    ax3.plot([], [], label="exact finite-M mean", **st.THEORY)
    ax3.set(xlabel="generation t", ylabel="probability",
            title=f"(c) verification (q_0 = {q0}, M = {Mv})", ylim=(0, 1.02))
    ax3.legend(loc="lower right", fontsize=6.5)
    fig.tight_layout()
    meta = dict(figure=NAME, quick=args.quick, generations=G, chains=chains, M=M,
                n_categories=n_cat, verifier=dict(generations=Gv, M=Mv, q0=q0),
                seed=args.seed,
                reference="Ferbach et al., NeurIPS 2024; Feng et al., ICLR 2025; "
                          "THEORY.md section 10")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
