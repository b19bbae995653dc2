"""``jaxcollapse run vae``: recursive training of a VAE on its own decoder outputs.

Generation 0 trains on human digits (MNIST from ``--data``, or scikit-learn's
8x8 digits by default); generation n on decoder outputs for z ~ N(0, I) from
generation n - 1, in several arms (human fraction alpha, accumulate). Prints a
generation x arm table (test ELBO, importance-weighted bound, latent spread under
the generation-0 encoder, class entropy; with ``--prdc N``, on by default, k-NN
precision, recall, density and coverage of N generated against N test images on the
generation-0 encoder's features) and writes JSON and PNG sample grids.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8; Kynkäänniemi et al.,
    NeurIPS (2019) and Naeem et al., ICML (2020) (``--prdc``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

DESCRIPTION = "Recursive training of a VAE on its own samples (MNIST or 8x8 digits)."

EXAMPLES = """examples:
  jaxcollapse run vae                                   # sklearn 8x8 digits, MLP VAE
  jaxcollapse run vae --data ../shared/data/mnist --preset paper   # conv VAE on MNIST
  jaxcollapse run vae --generations 3 --alpha 0 0.1 --seeds 0 1
  jaxcollapse run vae --prdc 0                          # no precision/recall/density/coverage
"""

DEFAULTS = dict(seed=0, chains=1, generations=None, samples=0, alpha=None)

PRESETS = {
    "tiny": dict(n_generations=2, steps=100, batch_size=32, n_importance=8, n_eval=256,
                 n_probe=256, n_prdc=200),
    "quick": dict(n_generations=5, steps=1500, batch_size=64, n_importance=32, n_eval=1000,
                  n_probe=1000, n_prdc=1000),
    "paper": dict(n_generations=10, steps=20_000, batch_size=128, n_importance=500,
                  n_eval=None, n_probe=5000, n_prdc=2000),
}


def add_arguments(p) -> None:
    """Adds this experiment's own flags to its sub-parser.

    Example:
        >>> import argparse
        >>> ap = argparse.ArgumentParser()
        >>> add_arguments(ap)
        >>> a = ap.parse_args(["--no-accumulate", "--prdc", "0"])
        >>> a.preset, a.accumulate, a.prdc
        ('quick', False, 0)
    """
    p.add_argument("--preset", choices=list(PRESETS), default="quick",
                   help="training length and evaluation sizes (default: %(default)s)")
    p.add_argument("--data", default=None,
                   help="MNIST folder with t10k-*-idx*-ubyte[.gz] (default: sklearn 8x8 digits)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, help="several seeds")
    p.add_argument("--accumulate", action=argparse.BooleanOptionalAction, default=True,
                   help="also run the accumulate arm (default: on)")
    p.add_argument("--steps", type=int, default=None, help="train steps per generation")
    p.add_argument("--prdc", type=int, default=None, metavar="N",
                   help="k-NN precision, recall, density and coverage (k=5) of N generated "
                        "against N test images, on the generation-0 encoder's features "
                        "(0: off; default: the preset's, at most the test images)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoints")


def build(args):
    """(data, protocol, arms, seeds) from parsed arguments.

    Example:
        >>> from jaxcollapse.cli import build_parser
        >>> args = build_parser().parse_args(["run", "vae", "--preset", "tiny", "--steps", "5"])
        >>> data, protocol, arms, seeds = build(args)
        >>> protocol.model.kind, protocol.steps, [a.name for a in arms], protocol.n_prdc
        ('mlp', 5, ['alpha=0', 'alpha=0.1', 'accumulate'], 200)
    """
    from jaxcollapse.data import load_digits, load_mnist
    from jaxcollapse.learned import VAEProtocol, make_arms
    from jaxcollapse.learned.vae_prdc import check_n_prdc
    from jaxcollapse.models.vae import VAE_PRESETS

    proto = dict(PRESETS[args.preset])
    if args.generations is not None:
        proto["n_generations"] = args.generations
    if args.steps is not None:
        proto["steps"] = args.steps
    arms = make_arms((0.0, 0.1) if args.alpha is None else args.alpha,
                     accumulate=args.accumulate)
    data = load_digits() if args.data is None else load_mnist(args.data)
    # the preset's size, at most the test set; an explicit --prdc is checked as given
    proto["n_prdc"] = (min(proto["n_prdc"], len(data.test_x)) if args.prdc is None
                       else args.prdc)
    check_n_prdc(proto["n_prdc"], len(data.test_x), "--prdc")
    model = VAE_PRESETS["digits" if data.train_x.shape[1:] == (8, 8) else "mnist"]
    seeds = args.seeds if args.seeds is not None else (args.seed,)
    return data, VAEProtocol(model, **proto), arms, tuple(seeds)


def format_table(records: list[dict]) -> str:
    """Generation x arm table of the test ELBO and latent spread, and of precision,
    recall, density and coverage where the records hold them (mean over seeds).

    Example:
        >>> r = {"alpha=0": [dict(test_elbo=-80.0, test_iwae=-75.0, latent_spread=1.0,
        ...                       class_entropy=2.3)]}
        >>> print(format_table([r]).splitlines()[1])
          0  alpha=0       -80.00      -75.00    1.000   2.30
        >>> r["alpha=0"][0].update(precision=0.9, recall=0.8, density=1.1, coverage=0.7)
        >>> print(format_table([r]).splitlines()[1])
          0  alpha=0       -80.00      -75.00    1.000   2.30 |  0.900  0.800  1.100  0.700
    """
    import numpy as np

    from jaxcollapse._knn import PRDC_FIELDS
    from jaxcollapse.experiments._prdc import prdc_head

    with_prdc = any("precision" in x for r in records for v in r.values() for x in v)
    lines = ["gen  arm            test ELBO   IWAE bound   spread  class H"
             + prdc_head(with_prdc)]
    arms = list(records[0])
    for g in range(max(len(v) for v in records[0].values())):
        for a in arms:
            v = [r[a][g] for r in records if len(r[a]) > g]
            line = (f"{g:3d}  {a:12s} {np.mean([x['test_elbo'] for x in v]):10.2f}  "
                    f"{np.mean([x['test_iwae'] for x in v]):10.2f}  "
                    f"{np.mean([x['latent_spread'] for x in v]):7.3f}  "
                    f"{np.mean([x['class_entropy'] for x in v]):5.2f}")
            if with_prdc:
                line += " | " + " ".join(f"{np.mean([x.get(f, np.nan) for x in v]):6.3f}"
                                         for f in PRDC_FIELDS)
            lines.append(line)
    return "\n".join(lines)


def run(args) -> int:
    """Runs every seed, prints the table, writes ``results.json`` and PNGs; returns 0."""
    from jaxcollapse.experiments._common import run_seeds
    from jaxcollapse.learned import run_vae
    from jaxcollapse.learned.vae_prdc import describe

    data, protocol, arms, seeds = build(args)
    out = Path(args.out)
    print(f"data: {data.name}: {len(data.train_x):,} train / {len(data.test_x):,} test images; "
          f"{protocol.model.kind} VAE, latent {protocol.model.latent_dim}; arms: "
          f"{', '.join(a.name for a in arms)}; seeds {list(seeds)}")
    results = run_seeds(
        lambda key, folder: run_vae(key, data, protocol, arms, out=folder, resume=args.resume,
                                    progress=not args.no_progress),
        seeds, out, dict(data=data.name, protocol=dataclasses.asdict(protocol),
                         arms=[a._asdict() for a in arms],
                         **({"prdc": describe(protocol.n_prdc)} if protocol.n_prdc else {})))
    print(f"test bounds in nats per image ({data.name}; mean over {len(seeds)} seed(s))"
          + (f"; prec/rec/dens/cov: {protocol.n_prdc} generated vs {protocol.n_prdc} test "
             f"images on the generation-0 encoder's features, k = 5" if protocol.n_prdc
             else "") + ":")
    print(format_table(list(results.values())))
    print(f"results: {out / 'results.json'}; sample grids under {out}/seed*/samples",
          file=sys.stderr)
    return 0
