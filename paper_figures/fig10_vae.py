"""Figure 10: a VAE trained on its own samples (MNIST test split).

Top: decoder outputs for z ~ N(0, I) across generations when every generation
trains only on its predecessor's samples (alpha = 0): the digit modes blur into
one another and the samples become alike (Shumailov et al. 2024, the VAE
figure). Bottom: per generation, for alpha = 0 and alpha = 0.1 (10% fresh human
images each generation), the test ELBO on human digits, the spread of generated
images under the generation-0 encoder, and their pixel variance (variance across
images, averaged over pixels) beside that of the human test images. The recursion
is :func:`jaxcollapse.learned.run_vae`; its checkpoints go to ``--runs``.
"""

from __future__ import annotations

import dataclasses

import _data
import _style as st
import jax
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from jaxcollapse.data import load_mnist
from jaxcollapse.learned import VAEProtocol, make_arms, run_vae
from jaxcollapse.models.vae import VAE_PRESETS, VAEConfig

NAME = "fig10_vae"
ALPHAS = (0.0, 0.1)

# Default: the convolutional VAE (latent size 20, as in the paper) on the first 8,000
# images of the MNIST test split (the last 2,000 are the test set), 10 generations of
# 1,000 steps (8 epochs) each: about 25 CPU-minutes (a 1-generation run: 224 CPU-s).
DEFAULT = dict(model=VAE_PRESETS["mnist"],
               protocol=dict(n_generations=10, steps=1_000, batch_size=64, learning_rate=1e-3,
                             n_importance=32, n_eval=1_000, n_probe=1_000))
# Quick: an MLP VAE with few steps: the shape of the figure in about a minute.
QUICK = dict(model=VAEConfig((28, 28), 20, 128, "mlp"),
             protocol=dict(n_generations=4, steps=600, batch_size=64, learning_rate=2e-3,
                           n_importance=8, n_eval=500, n_probe=500))
MARKERS = ("t10k-images-idx3-ubyte*", "train-images-idx3-ubyte*")
N_SHOW = 36  # images per grid (6 x 6)


def _parser():
    p = st.parser(__doc__)
    _data.add_data_argument(p, "mnist")
    st.add_run_arguments(p, NAME, "10; quick: 4")
    return p


def tile(images: np.ndarray, ncol: int) -> np.ndarray:
    """``(n, h, w)`` images as one ``(rows * (h + 1) - 1, ncol * (w + 1) - 1)`` array."""
    n, h, w = images.shape
    nrow = -(-n // ncol)
    out = np.zeros((nrow * (h + 1) - 1, ncol * (w + 1) - 1))  # white gaps under gray_r
    for i, im in enumerate(images):
        r, c = divmod(i, ncol)
        out[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = im
    return out


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)
    cfg = QUICK if args.quick else DEFAULT
    proto_kw, runs = st.run_settings(p, args, NAME, cfg["protocol"])
    data_dir = _data.find(p, args.data, "mnist", MARKERS)

    elapsed = st.stopwatch()
    data = load_mnist(data_dir)
    protocol = VAEProtocol(cfg["model"], **proto_kw)
    arms = make_arms(ALPHAS, accumulate=False)
    res = run_vae(jax.random.key(args.seed), data, protocol, arms, out=runs,
                  resume=args.resume, progress=not args.quick)
    G = protocol.n_generations
    gens = np.arange(G + 1)
    names = [a.name for a in arms]
    metrics = ("test_elbo", "latent_spread", "pixel_var")
    m = {(k, a): np.array([r[k] for r in res.records[a]]) for k in metrics for a in names}
    grids = np.stack(res.samples[names[0]])[:, :N_SHOW]  # (G + 1, N_SHOW, h, w)
    human_var = float(np.asarray(data.test_x, np.float64).var(axis=0).mean())
    human_grid = np.asarray(data.test_x[:N_SHOW], np.float32)

    shown = np.unique(np.linspace(0, G, min(G + 1, 6)).round().astype(int))
    fig = plt.figure(figsize=(max(10.0, 2.0 * (len(shown) + 1)), 5.2))
    gs = fig.add_gridspec(2, 1, height_ratios=[1.05, 1], hspace=0.25)
    top = gs[0].subgridspec(1, len(shown) + 1, wspace=0.06)
    panels = [("human test images", human_grid)] + [
        (f"generation {g}", grids[g]) for g in shown]
    for j, (title, imgs) in enumerate(panels):
        ax = fig.add_subplot(top[j])
        ax.imshow(tile(imgs, 6), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        ax.set_title(title, fontsize=8.5)
        ax.axis("off")
    bottom = gs[1].subgridspec(1, 3, wspace=0.35)
    labels = dict(test_elbo=("test ELBO (nats per image)", "(a) fit to human digits"),
                  latent_spread=("RMS std under generation-0 encoder",
                                 "(b) spread of generated images"),
                  pixel_var=("pixel variance across images", "(c) diversity of samples"))
    for j, k in enumerate(metrics):
        ax = fig.add_subplot(bottom[j])
        for c, a in zip(st.COLORS, names, strict=False):
            ax.plot(gens, m[k, a], color=c, marker="o", ms=3, label=a, **st.MC)
        if k == "pixel_var":
            ax.axhline(human_var, label="human test images", **st.THEORY)
            ax.set_yscale("log")
        ax.set(xlabel="generation n", ylabel=labels[k][0], title=labels[k][1])
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(loc="lower left" if k == "pixel_var" else "best")

    data_out = dict(generations=gens, grids=grids, shown=shown, human_grid=human_grid,
                    human_pixel_var=human_var)
    for k in metrics:
        for a in names:
            data_out[f"{k}[{a}]"] = m[k, a]
    for a in names:
        data_out[f"class_hist[{a}]"] = np.array([r["class_hist"] for r in res.records[a]])
    meta = dict(
        figure=NAME, quick=args.quick, seed=args.seed, arms=names, data=data.name,
        data_dir=str(data_dir), train_images=len(data.train_x), test_images=len(data.test_x),
        protocol=dataclasses.asdict(protocol), runs=str(runs),
        grids_arm=names[0],
        **{f"{k}[{a}]": m[k, a].round(4).tolist() for k in metrics for a in names},
        human_pixel_var=human_var,
        **elapsed(),
        arrays="grids: (generations, images, h, w) samples of the alpha=0 arm in [0, 1]; "
               "metric[arm]: (generations,); class_hist[arm]: (generations, 10) predicted "
               "digit classes of generated images",
        reference="Shumailov et al., Nature 631 (2024), VAE figure; THEORY.md section 8")
    return st.save(fig, NAME, args.out, data_out, meta)


if __name__ == "__main__":
    main()
