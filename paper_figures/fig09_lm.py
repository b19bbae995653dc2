"""Figure 9: a transformer language model trained on its own text (WikiText-2).

(a) Test perplexity on the human WikiText-2 test text over generations, for
alpha = 0 (every generation trains only on its predecessor's continuations of
human prompts) and alpha = 0.1 (10% of the human blocks kept each generation):
mean over seeds with the min-max band. (b, c) Histograms of the perplexity of
each generation's synthetic training text under the generation-0 model, beside
held-out human text scored the same way: later generations write text the
first model finds likelier, with a growing tail (Shumailov et al. 2024, Fig. 1,
the OPT-125m experiment). The recursion is :func:`jaxcollapse.learned.run_lm`,
one call per seed; its checkpoints go to ``--runs`` so ``--resume`` continues an
interrupted default run.
"""

from __future__ import annotations

import _data
import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np

from jaxcollapse.data import load_wikitext2
from jaxcollapse.learned import LMProtocol, make_arms, run_lm
from jaxcollapse.models import preset

NAME = "fig09_lm"
ALPHAS = (0.0, 0.1)

# Default: the `jaxcollapse run lm --preset quick` sizes (the `small` model on the
# first 32k WikiText-2 training tokens, vocabulary capped at 2,048) for 5 generations
# and 3 seeds: about 20 CPU-minutes (from a 1-generation, 1-seed run: 115 CPU-s). The
# paper fine-tunes OPT-125m on all of WikiText-2 for 10 generations (`--preset paper`
# of the CLI, a GPU job).
DEFAULT = dict(model="small", model_overrides={}, max_vocab=2_048, max_train_tokens=32_768,
               n_seeds=3,
               protocol=dict(n_generations=5, steps=120, warmup_steps=12, batch_size=16,
                             seq_len=128, prompt_len=64, gen_len=64, eval_tokens=8_192,
                             n_score=256, learning_rate=3e-3, decoding="sample",
                             temperature=0.8))
# Quick: a one-layer model with a 32-token context on 8k training tokens: the shape
# of the figure in about a minute, not its numbers.
QUICK = dict(model="tiny", model_overrides=dict(d_model=48, d_ff=96, max_len=32),
             max_vocab=1_000, max_train_tokens=8_192, n_seeds=2,
             protocol=dict(n_generations=3, steps=60, warmup_steps=6, batch_size=16,
                           seq_len=32, prompt_len=16, gen_len=16, eval_tokens=4_096,
                           n_score=128, learning_rate=1e-2, decoding="sample",
                           temperature=0.8))
MARKERS = ("train.txt", "wiki.train.tokens", "wiki.train.raw", "dataset_dict.json")


def _parser():
    p = st.parser(__doc__)
    _data.add_data_argument(p, "wikitext-2")
    p.add_argument("--seeds", type=int, nargs="+", default=None,
                   help="seeds (default: SEED, SEED + 1, SEED + 2 with SEED from --seed; "
                        "quick: SEED, SEED + 1)")
    st.add_run_arguments(p, NAME, "5; quick: 3", plural=True)
    return p


def log_bins(samples, n: int = 48) -> np.ndarray:
    """``n`` equal bins in log10 perplexity spanning every value in ``samples``."""
    allv = np.log10(np.concatenate([np.ravel(s) for s in samples]))
    return np.linspace(allv.min() - 1e-3, allv.max() + 1e-3, n + 1)


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    cfg = dict(QUICK if args.quick else DEFAULT)
    seeds = tuple(args.seeds) if args.seeds else tuple(args.seed + i
                                                        for i in range(cfg["n_seeds"]))
    proto_kw, runs = st.run_settings(p, args, NAME, cfg["protocol"])
    data_dir = _data.find(p, args.data, "wikitext-2", MARKERS)

    elapsed = st.stopwatch()
    corpus = load_wikitext2(data_dir, max_vocab=cfg["max_vocab"],
                            max_train_tokens=cfg["max_train_tokens"])
    model = preset(cfg["model"], len(corpus.vocab), **cfg["model_overrides"])
    protocol = LMProtocol(model, **proto_kw)
    arms = make_arms(ALPHAS, accumulate=False)
    G = protocol.n_generations
    results = [run_lm(jax.random.key(s), corpus, protocol, arms, out=runs / f"seed{s}",
                      resume=args.resume, progress=not args.quick) for s in seeds]

    gens = np.arange(G + 1)
    names = [a.name for a in arms]
    # (arms, seeds, generations) test perplexity and accuracy on the human test text
    ppl = np.array([[[r["test_ppl"] for r in res.records[a]] for res in results]
                    for a in names])
    acc = np.array([[[r["test_acc"] for r in res.records[a]] for res in results]
                    for a in names])
    # (seeds, generations 1..G, n) perplexities of synthetic text under generation 0
    sample_ppl = {a: np.array([res.sample_perplexities[a] for res in results]) for a in names}
    human_ppl = np.array([res.human_perplexities for res in results])
    edges = log_bins([human_ppl, *sample_ppl.values()])
    # densities of log10 perplexity: sum(density * diff(edges)) = 1 on the log axis
    dens = lambda x: np.histogram(np.log10(np.ravel(x)), bins=edges, density=True)[0]
    hists = {a: np.array([dens(sample_ppl[a][:, g]) for g in range(G)]) for a in names}
    hist_human = dens(human_ppl)

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.7))
    ax = axes[0]
    for c, (i, a) in zip(st.COLORS, enumerate(names), strict=False):
        ax.plot(gens, ppl[i].mean(0), color=c, marker="o", ms=3.5, label=a, **st.MC)
        ax.fill_between(gens, ppl[i].min(0), ppl[i].max(0), color=c, alpha=st.BAND_ALPHA)
    ax.set(yscale="log", xlabel="generation n", ylabel="test perplexity (human text)",
           title="(a) perplexity rises without human data", xticks=gens)
    ax.legend(title=f"mean, min-max over {len(seeds)} seeds")
    cmap = plt.get_cmap("viridis")
    pooled = np.concatenate([np.ravel(human_ppl)] + [np.ravel(v) for v in sample_ppl.values()])
    xlim = (10 ** edges[0], np.quantile(pooled, 0.998))  # the bins cover every value
    for ax, a, letter in zip(axes[1:], names, "bc", strict=True):
        ax.stairs(hist_human, 10 ** edges, label="human test text", **st.THEORY)
        for g in range(G):
            ax.stairs(hists[a][g], 10 ** edges, color=cmap(g / max(G - 1, 1)),
                      linewidth=1.4, label=f"written by generation {g}")
        med = {g: float(np.median(sample_ppl[a][:, g])) for g in (0, G - 1)}
        ax.set(xscale="log", xlabel="perplexity under the generation-0 model",
               ylabel="density of log10 perplexity", xlim=xlim,
               title=f"({letter}) generated text, {a} (median {med[0]:.0f} -> {med[G - 1]:.0f})")
        ax.legend(fontsize=6.5)
    fig.tight_layout()

    data = dict(generations=gens, seeds=np.array(seeds), hist_edges=edges,
                hist_human=hist_human, human_ppl=human_ppl)
    for i, a in enumerate(names):
        data[f"test_ppl[{a}]"] = ppl[i]
        data[f"test_acc[{a}]"] = acc[i]
        data[f"sample_ppl[{a}]"] = sample_ppl[a]
        data[f"hist[{a}]"] = hists[a]
    meta = dict(
        figure=NAME, quick=args.quick, seeds=list(seeds), arms=names, corpus=corpus.name,
        data=str(data_dir), train_tokens=int(len(corpus.train)), vocab=len(corpus.vocab),
        model=cfg["model"], model_params=int(model.n_params), protocol=protocol.to_dict(),
        runs=str(runs),
        test_ppl_mean={a: ppl[i].mean(0).round(3).tolist() for i, a in enumerate(names)},
        sample_ppl_median={a: np.median(sample_ppl[a], axis=(0, 2)).round(3).tolist()
                           for a in names},
        human_ppl_median=float(np.median(human_ppl)),
        **elapsed(),
        arrays="test_ppl/test_acc[arm]: (seeds, generations); sample_ppl[arm]: (seeds, "
               "generations 1..G written by models 0..G-1, n_score); human_ppl: (seeds, m); "
               "hist[arm]: (G, bins) densities of log10 perplexity over hist_edges (log10)",
        reference="Shumailov et al., Nature 631 (2024), Fig. 1; THEORY.md section 8")
    return st.save(fig, NAME, args.out, data, meta)


if __name__ == "__main__":
    main()
