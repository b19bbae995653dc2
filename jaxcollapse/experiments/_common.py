"""What the ``jaxcollapse run`` experiments share: the generations they tabulate, the
printed table, and (learned generators) the loop over seeds."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def report_generations(G: int, asked: list[int] | None = None) -> list[int]:
    """The generations to tabulate: ``asked`` (sorted, once each, all in [0, G]), or
    by default 0 and about 8 log-spaced generations up to ``G``."""
    if asked:
        bad = [g for g in asked if not 0 <= g <= G]
        if bad:
            raise ValueError(f"--report generations must lie in [0, {G}]; got {bad}")
        return sorted(set(asked))
    return [0] + np.unique(np.round(np.geomspace(1, G, 8)).astype(int)).tolist()


def print_table(title: str, head: str, lines, out: Path, notes=()) -> None:
    """Prints the run's one-line summary, the table (``head``, a rule, ``lines``), any
    ``notes`` and where the results went."""
    print(title)
    print(head)
    print("-" * len(head))
    for line in lines:
        print(line)
    for note in notes:
        print(note)
    print(f"results: {out / 'summary.json'}, {out / 'arrays.npz'}")


def run_seeds(run_one, seeds, out: Path, summary: dict) -> dict:
    """``run_one(key, folder)`` (:func:`~jaxcollapse.learned.run_lm` or
    :func:`~jaxcollapse.learned.run_vae` for one seed) for each seed into
    ``out/seed{s}``; ``out/results.json`` (``summary`` and the records so far) is
    rewritten after each. Returns seed -> records."""
    import jax

    from jaxcollapse.io import save_json
    from jaxcollapse.learned import NaNLossError

    results = {}
    for s in seeds:
        try:
            r = run_one(jax.random.key(s), out / f"seed{s}")
        except NaNLossError as e:  # one clear line from the CLI, exit code 2
            raise ValueError(str(e)) from None
        results[s] = r.records
        save_json(out / "results.json", dict(summary, seeds=list(results), records=results))
    return results
