"""Text statistics and tables of the recursive language-model runs: unigram
statistics of generated text against the human text (THEORY.md section 4's lost
mass, in text) and the generation x arm perplexity/accuracy table."""

from __future__ import annotations

import numpy as np

__all__ = ["format_table", "unigram_stats"]


def unigram_stats(tokens: np.ndarray, human_counts: np.ndarray, *,
                  zipf_ranks: int = 1000) -> dict[str, float]:
    """Unigram statistics of generated text against the human unigram distribution.

    Args:
        tokens: generated token ids (any shape).
        human_counts: ``(V,)`` token counts of the human training text.
        zipf_ranks: fit the Zipf exponent on the most frequent this-many types.

    Returns:
        ``types`` (distinct types generated), ``vanished_types`` (human types never
        generated), ``lost_mass`` (human probability mass of those types: the
        empirical analogue of THEORY.md section 4's lost mass), ``zipf`` (beta in
        frequency ~ rank^-beta, least squares in log-log) and ``entropy`` (nats).

    Example:
        >>> h = np.array([4, 2, 1, 1])
        >>> s = unigram_stats(np.array([0, 0, 1, 0]), h)
        >>> s["vanished_types"], s["lost_mass"]
        (2, 0.25)

    References:
        Dohmatob et al., ICML 2024; Shumailov et al., Nature 631 (2024).
    """
    counts = np.bincount(np.asarray(tokens).reshape(-1), minlength=len(human_counts))
    human = np.asarray(human_counts, dtype=np.float64)
    gone = (human > 0) & (counts == 0)
    f = np.sort(counts[counts > 0])[::-1][:zipf_ranks].astype(np.float64)
    zipf = float("nan")
    if len(f) >= 3:
        r = np.log(np.arange(1, len(f) + 1))
        zipf = float(-np.polyfit(r, np.log(f), 1)[0])
    p = counts[counts > 0] / counts.sum()
    return dict(types=int((counts > 0).sum()), vanished_types=int(gone.sum()),
                lost_mass=float(human[gone].sum() / human.sum()), zipf=zipf,
                entropy=float(-(p * np.log(p)).sum()))


def format_table(runs: dict[str, list[dict]] | list[dict[str, list[dict]]]) -> str:
    """A generation x arm table of test perplexity and accuracy (mean over seeds);
    where the records have it, also ``known``: top-1 accuracy on targets that are
    not ``<unk>`` (plain accuracy with a capped vocabulary mostly counts ``<unk>``).

    Example:
        >>> r = {"alpha=0": [dict(generation=0, test_ppl=100.0, test_acc=0.2)]}
        >>> print(format_table(r))
        gen  alpha=0 ppl  alpha=0 acc
          0       100.00       0.2000
    """
    runs = [runs] if isinstance(runs, dict) else list(runs)
    arms = list(runs[0])
    n_gen = max(len(r) for r in runs[0].values())
    known = all("test_accuracy" in rec for r in runs for recs in r.values() for rec in recs)
    head = "gen" + "".join(f"  {a + ' ppl':>11s}  {a + ' acc':>11s}"
                           + (f"  {a + ' known':>13s}" if known else "") for a in arms)
    lines = [head]
    for g in range(n_gen):
        row = f"{g:3d}"
        for a in arms:
            vals = [r[a][g] for r in runs if len(r[a]) > g]
            row += f"  {np.mean([v['test_ppl'] for v in vals]):11.2f}"
            row += f"  {np.mean([v['test_acc'] for v in vals]):11.4f}"
            if known:
                k = [v["test_accuracy"]["top1_known"] for v in vals]
                k = [x for x in k if x is not None]
                row += f"  {np.mean(k) if k else float('nan'):13.4f}"
        lines.append(row)
    return "\n".join(lines)
