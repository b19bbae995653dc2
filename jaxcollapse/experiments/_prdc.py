"""The ``--prdc N`` option of ``run gmm`` and ``run kde``: k-NN precision, recall,
density and coverage (k = 5) of N draws of each generation's model against N draws
of generation 0, averaged over the chains in the printed table.

References:
    Kynkäänniemi et al., NeurIPS (2019); Naeem et al., ICML (2020).
"""

from __future__ import annotations

import numpy as np

from jaxcollapse._knn import PRDC_FIELDS

PRDC_K = 5


def add_prdc_argument(p) -> None:
    """Adds ``--prdc N`` (0: off) to an experiment's parser.

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser(); add_prdc_argument(p)
        >>> p.parse_args(["--prdc", "200"]).prdc
        200
    """
    p.add_argument("--prdc", type=int, default=0, metavar="N",
                   help="also report k-NN precision, recall, density and coverage (k=5) of "
                        "N draws of each generation against N of generation 0 (0: off; "
                        "N=200 is cheap; default: %(default)s)")


def check_prdc(n: int) -> None:
    """``--prdc`` must be 0 or an integer > k.

    Example:
        >>> check_prdc(3)
        Traceback (most recent call last):
        ...
        ValueError: --prdc must be 0 (off) or an integer > 5 (k); got 3
    """
    if n != 0 and n <= PRDC_K:
        raise ValueError(f"--prdc must be 0 (off) or an integer > {PRDC_K} (k); got {n}")


def prdc_columns(metrics, g: int) -> dict:
    """Chain means of the four values at generation ``g`` (empty without ``prdc``).

    Example:
        >>> prdc_columns({"prdc": np.ones((2, 3, 4))}, 1)["coverage_mean"]
        1.0
    """
    if "prdc" not in metrics:
        return {}
    v = np.asarray(metrics["prdc"][:, g])
    return {f"{f}_mean": float(v[:, i].mean()) for i, f in enumerate(PRDC_FIELDS)}


def prdc_head(n: int) -> str:
    """The table header of the four columns, or '' when ``--prdc`` is off.

    Example:
        >>> prdc_head(200)
        ' |   prec    rec   dens    cov'
    """
    return " | " + " ".join(f"{h:>6}" for h in ("prec", "rec", "dens", "cov")) if n else ""


def prdc_text(row: dict) -> str:
    """The four means of a table row, or '' without them.

    Example:
        >>> prdc_text({})
        ''
    """
    if "precision_mean" not in row:
        return ""
    return " | " + " ".join(f"{row[f + '_mean']:6.3f}" for f in PRDC_FIELDS)
