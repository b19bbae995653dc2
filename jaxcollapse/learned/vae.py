"""The recursive protocol for a variational autoencoder on images, as a plug-in
of :func:`~jaxcollapse.learned.driver.run_recursive`.

Generation 0 trains on the human training images; generation n on as many
decoder outputs for z ~ N(0, I) from generation n - 1 (a fraction alpha of human
images mixed in, or the accumulate pool). Per generation: test ELBO and
importance-weighted bound (nats per image), the spread (RMS std per latent
dimension) of generated images under the generation-0 encoder, their pixel
variance (the variance across images, averaged over pixels), the class histogram
of generated images under a classifier trained on human data, an 8x8 PNG grid
of samples and, with ``n_prdc``, k-NN precision, recall, density and coverage on the
generation-0 encoder's features (:mod:`jaxcollapse.learned.vae_prdc`).

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8; Burda et al. (2016).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxcollapse.data.mnist import ImageData
from jaxcollapse.learned._checks import (
    check_image_data,
    check_optimiser,
    check_protocol_ints,
    check_run_key,
)
from jaxcollapse.learned.driver import Generation, fit_loop, run_recursive, training_mesh
from jaxcollapse.learned.images import save_image_grid
from jaxcollapse.learned.vae_prdc import check_n_prdc, describe, vae_prdc
from jaxcollapse.models.vae import (
    VAEConfig,
    VAEState,
    decode_prior,
    elbo,
    encode_mean,
    init_vae,
    iwae_bound,
    make_vae_train_step,
    vae_optimizer,
)


@dataclasses.dataclass(frozen=True)
class VAEProtocol:
    """Static settings of one recursive VAE run.

    Attributes:
        model: the :class:`~jaxcollapse.models.vae.VAEConfig`.
        n_generations: generations after generation 0.
        steps, batch_size, learning_rate: training of every generation (from the
            same initialisation).
        n_importance: samples of the importance-weighted test bound.
        n_eval: test images used for the ELBO / IWAE bound (``None``: all).
        n_probe: generated images encoded by the generation-0 encoder and classified.
        n_prdc: k-NN precision, recall, density and coverage (k = 5) of this many
            generated images against as many test images, on the generation-0
            encoder's features (:mod:`jaxcollapse.learned.vae_prdc`); 0: off.

    Example:
        >>> from jaxcollapse.models.vae import VAE_PRESETS
        >>> VAEProtocol(VAE_PRESETS["digits"], n_generations=2, steps=10).steps
        10
    """

    model: VAEConfig
    n_generations: int = 5
    steps: int = 1000
    batch_size: int = 64
    learning_rate: float = 1e-3
    n_importance: int = 64
    n_eval: int | None = 1000
    n_probe: int = 1000
    n_prdc: int = 0

    def __post_init__(self):
        check_protocol_ints(self, ("steps", "batch_size", "n_importance", "n_probe"))
        check_protocol_ints(self, ("n_generations",), minimum=0)
        if self.n_eval is not None:
            check_protocol_ints(self, ("n_eval",))
        check_optimiser(self.learning_rate)
        check_n_prdc(self.n_prdc)


@functools.partial(jax.jit, static_argnames=("steps",))
def _fit_softmax(x, y, steps):
    # Multinomial logistic regression on pixels, full batch, Adam: a cheap "human"
    # digit classifier for the class histograms of generated images.
    w0 = (jnp.zeros((x.shape[1], 10), x.dtype), jnp.zeros(10, x.dtype))
    tx = optax.adam(0.05)

    def loss(w):
        return optax.softmax_cross_entropy_with_integer_labels(x @ w[0] + w[1], y).mean() \
            + 1e-4 * (w[0] ** 2).sum()

    def body(carry, _):
        w, s = carry
        g = jax.grad(loss)(w)
        u, s = tx.update(g, s, w)
        return (optax.apply_updates(w, u), s), None

    (w, _), _ = jax.lax.scan(body, (w0, tx.init(w0)), None, length=steps)
    return w


@functools.lru_cache(maxsize=8)
def _compiled(model: VAEConfig, learning_rate: float, steps: int, mesh=None):
    tx = vae_optimizer(learning_rate, steps)
    return tx, make_vae_train_step(model, tx, mesh=mesh)


@functools.partial(jax.jit, static_argnames=("config", "n"))
def _probe(key, params, params0, config, n, w, b):
    # Generated images, their generation-0 encodings and predicted digit classes.
    x = decode_prior(key, params, config, n)
    z = encode_mean(params0, config, x)
    return x, z, jnp.argmax(x.reshape(n, -1) @ w + b, axis=-1)


_decode_jit = jax.jit(decode_prior, static_argnums=(2, 3))


class VAERun(NamedTuple):
    """Results of :func:`run_vae`.

    Attributes:
        records: arm name -> list of per-generation metric dicts (generation 0 first).
        samples: arm name -> list (generation 0 first) of ``(n, h, w)`` decoder
            outputs for z ~ N(0, I) in [0, 1], ``n = min(64, n_probe)``: the images
            of the PNG sample grids (generation 0 is shared by every arm).

    Example:
        >>> r = VAERun({"alpha=0": [dict(generation=0, test_elbo=-80.0)]},
        ...            {"alpha=0": [np.zeros((4, 8, 8))]})
        >>> r.records["alpha=0"][0]["test_elbo"], r.samples["alpha=0"][0].shape
        (-80.0, (4, 8, 8))
    """

    records: dict[str, list[dict]]
    samples: dict[str, list[np.ndarray]]


@functools.partial(jax.jit, static_argnames=("config", "n_importance"))
def _vae_eval(key, params, config, x, n_importance):
    k1, k2 = jax.random.split(key)
    return (elbo(k1, params, config, x).mean(),
            iwae_bound(k2, params, config, x, n_importance).mean())


class ImageVAE:
    """The VAE as a :class:`~jaxcollapse.learned.Generator`: units are images, a
    synthetic unit a decoder output for z ~ N(0, I) (unconditional: only the number
    of replaced images matters).

    Example:
        >>> from jaxcollapse.data import ImageData
        >>> x = np.zeros((20, 8, 8), np.float32)
        >>> m = ImageVAE(ImageData(x, np.arange(20) % 10, x, np.arange(20) % 10, "zeros"),
        ...              VAEProtocol(VAEConfig((8, 8), 2, 8, "mlp")))
        >>> m.human().shape
        (20, 8, 8)
    """

    key_order = ("sample", "perm", "train", "eval")
    save_synthetic = False

    def __init__(self, data: ImageData, protocol: VAEProtocol, *, out: Path | None = None,
                 mesh=None):
        cfg = protocol.model
        check_image_data(data)
        if tuple(data.train_x.shape[1:]) != tuple(cfg.image_shape):
            raise ValueError(f"images have shape {data.train_x.shape[1:]}, the model "
                             f"expects {cfg.image_shape}")
        self.data, self.protocol, self.out = data, protocol, out
        self.tx, self.step = _compiled(cfg, protocol.learning_rate, protocol.steps, mesh)
        self.test_x = jnp.asarray(data.test_x[: protocol.n_eval])
        check_n_prdc(protocol.n_prdc, len(data.test_x))
        self.prdc_real = jnp.asarray(data.test_x[: protocol.n_prdc])
        self.images = np.asarray(data.train_x)
        flat = jnp.asarray(self.images).reshape(len(self.images), -1)
        self.clf = _fit_softmax(flat, jnp.asarray(data.train_y), 300)

    def human(self) -> np.ndarray:
        return self.images

    def meta(self) -> dict:
        proto = {**dataclasses.asdict(self.protocol), "n_generations": None}
        if not self.protocol.n_prdc:  # off: the configuration of runs made before it
            del proto["n_prdc"]
        return dict(protocol=proto, data=self.data.name, n_train=len(self.images),
                    **({"prdc": describe(self.protocol.n_prdc)} if self.protocol.n_prdc
                       else {}))

    def init(self, key):
        return init_vae(key, self.protocol.model)

    def template(self, params) -> VAEState:
        return VAEState(params, self.tx.init(params), jnp.zeros((), jnp.int32))

    def params_of(self, state: VAEState):
        return state.params

    def train(self, key, images, params, label, progress):
        p, step = self.protocol, self.step
        state = VAEState(jax.tree.map(jnp.array, params), self.tx.init(params),
                         jnp.zeros((), jnp.int32))
        k_batch, k_step = jax.random.split(key)
        idx = np.asarray(jax.random.randint(k_batch, (p.steps, p.batch_size), 0, len(images)))
        keys = jax.random.split(k_step, p.steps)
        return fit_loop(lambda i, s: step(s, keys[i], images[idx[i]]), state, p.steps, label,
                        progress=progress, per_step=p.batch_size, unit="img")

    def generate(self, key, params, replaced, arm, label, progress):
        return np.asarray(_decode_jit(key, params, self.protocol.model, len(replaced)),
                          np.float32)

    def mix(self, key, kept, synthetic):
        return np.concatenate([self.images[kept], synthetic])

    def pool(self, synthetics):
        return np.concatenate([self.images, *synthetics])

    def evaluate(self, key, gen: Generation):
        p, cfg = self.protocol, self.protocol.model
        e, iw = _vae_eval(key, gen.params, cfg, self.test_x, p.n_importance)
        probe, z, pred = (np.asarray(a) for a in _probe(
            jax.random.fold_in(key, 1), gen.params, gen.params0, cfg, p.n_probe, *self.clf))
        z = z.astype(np.float64)
        hist = np.bincount(pred, minlength=10)
        pk = hist[hist > 0] / hist.sum()
        label = "human" if gen.arm is None else gen.arm.name
        if self.out is not None:
            save_image_grid(self.out / "samples" / f"{label}_gen{gen.generation}.png",
                            probe[:64])
        rec = {} if gen.arm is None else dict(
            train_images=len(gen.data), human_images=gen.n_human)
        synth = gen.synthetic
        rec.update(test_elbo=float(e), test_iwae=float(iw),
                   latent_spread=float(np.sqrt(z.var(axis=0).mean())),
                   pixel_var=float(probe.astype(np.float64).var(axis=0).mean()),
                   class_hist=hist.tolist(), class_entropy=float(-(pk * np.log(pk)).sum()),
                   synthetic_pixel_mean=None if synth is None else float(synth.mean()))
        if p.n_prdc:
            rec.update(vae_prdc(jax.random.fold_in(key, 2), gen.params, gen.params0, cfg,
                                self.prdc_real, p.n_prdc))
        return rec, dict(images=probe[:64].astype(np.float32))


def run_vae(key: jax.Array, data: ImageData, protocol: VAEProtocol, arms, *,
            out: str | Path | None = None, resume: bool = False,
            progress: bool = False, devices: int | Sequence[jax.Device] | None = None,
            mesh: jax.sharding.Mesh | None = None) -> VAERun:
    """Runs the recursive VAE protocol for one seed (see the module docstring);
    checkpoints and ``resume`` as in :func:`~jaxcollapse.learned.run_lm`.

    Args:
        key: PRNG key (one seed).
        data: :class:`~jaxcollapse.data.ImageData` whose image size matches the model.
        protocol: a :class:`VAEProtocol`.
        arms: regimes, :class:`~jaxcollapse.learned.RegimeArm`\\ s or
            :func:`~jaxcollapse.learned.make_arms`'s arms.
        out: folder for checkpoints and PNG grids (``None``: none).
        resume: continue from the checkpoints in ``out``.
        progress: show progress bars.
        devices, mesh: data-parallel training, as for :func:`~jaxcollapse.learned.run_lm`.

    Returns:
        :class:`VAERun`.

    Example:
        >>> import jax
        >>> from jaxcollapse.data import ImageData
        >>> from jaxcollapse.regimes import replace
        >>> x = np.random.default_rng(0).uniform(size=(64, 8, 8)).astype(np.float32)
        >>> y = np.arange(64) % 10
        >>> d = ImageData(x[:48], y[:48], x[48:], y[48:], "noise")
        >>> proto = VAEProtocol(VAEConfig((8, 8), 4, 16, "mlp"), n_generations=1, steps=5,
        ...                     batch_size=8, n_importance=4, n_probe=16)
        >>> r = run_vae(jax.random.key(0), d, proto, [replace()])
        >>> len(r.records["replace"]), r.samples["replace"][1].shape
        (2, (16, 8, 8))

    References:
        Shumailov et al., Nature 631 (2024), THEORY.md section 8; Burda et al. (2016).
    """
    check_run_key(key)
    if not isinstance(protocol, VAEProtocol):
        raise TypeError(f"protocol must be a VAEProtocol; got {type(protocol).__name__}")
    vae = ImageVAE(data, protocol, out=None if out is None else Path(out),
                   mesh=training_mesh(devices, mesh, protocol.batch_size))
    run = run_recursive(key, vae, arms, protocol.n_generations, out=out, resume=resume,
                        progress=progress)
    return VAERun(run.records, {a: [x["images"] for x in arts]
                                for a, arts in run.artifacts.items()})
