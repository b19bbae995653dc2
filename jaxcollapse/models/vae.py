"""A variational autoencoder for greyscale digits (convolutional 28x28, MLP 8x8).

Pixels in [0, 1] are modelled as Bernoulli probabilities (the usual binarised-
likelihood surrogate for MNIST); the prior is N(0, I) with a diagonal Gaussian
posterior q(z | x) (latent size 20, as in the seed study's MNIST setting).
:func:`elbo` is the evidence lower bound and :func:`iwae_bound` the tighter
importance-weighted bound log (1/K) sum_k p(x, z_k) / q(z_k | x), which tends to
log p(x) as K grows. Noise is passed explicitly (no Flax RNG streams), so every
function takes ``key`` first and is pure.

References:
    Kingma & Welling, Auto-Encoding Variational Bayes, arXiv 1312.6114 (2013);
    Burda, Grosse, Salakhutdinov, Importance Weighted Autoencoders, ICLR 2016;
    Shumailov et al., Nature 631 (2024), THEORY.md section 8.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxcollapse.models.train import data_parallel


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """Static hyperparameters of :class:`VAE`.

    Attributes:
        image_shape: ``(h, w)``; ``"conv"`` needs ``h`` and ``w`` divisible by 4.
        latent_dim: size of z (20 in the seed study).
        hidden: width of the MLP layers / of the dense layer of the conv net.
        kind: ``"mlp"`` or ``"conv"``.

    Example:
        >>> VAEConfig((8, 8), latent_dim=4, hidden=16, kind="mlp").latent_dim
        4
        >>> VAEConfig((30, 30), kind="conv")
        Traceback (most recent call last):
        ...
        ValueError: a conv VAE needs image sides divisible by 4; got (30, 30)
    """

    image_shape: tuple[int, int] = (28, 28)
    latent_dim: int = 20
    hidden: int = 256
    kind: str = "conv"

    def __post_init__(self):
        if self.kind not in ("mlp", "conv"):
            raise ValueError(f"kind must be 'mlp' or 'conv'; got {self.kind!r}")
        h, w = self.image_shape
        if self.kind == "conv" and (h % 4 or w % 4):
            raise ValueError(f"a conv VAE needs image sides divisible by 4; got {(h, w)}")
        if self.latent_dim < 1 or self.hidden < 1:
            raise ValueError(f"latent_dim and hidden must be >= 1; got {self.latent_dim}, "
                             f"{self.hidden}")


VAE_PRESETS = {
    "mnist": VAEConfig((28, 28), 20, 256, "conv"),
    "digits": VAEConfig((8, 8), 20, 128, "mlp"),
}


class VAE(nn.Module):
    """Encoder ``x -> (mean, log_var)`` and decoder ``z -> pixel logits``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = VAE_PRESETS["digits"]
        >>> p = init_vae(jax.random.key(0), cfg)
        >>> VAE(cfg).apply(p, jnp.zeros((3, 20)), method=VAE.decode).shape
        (3, 8, 8)
    """

    config: VAEConfig

    @nn.compact
    def encode(self, x):
        c = self.config
        if c.kind == "conv":
            h = x[..., None]
            h = nn.relu(nn.Conv(32, (3, 3), strides=2, name="enc_conv1")(h))
            h = nn.relu(nn.Conv(64, (3, 3), strides=2, name="enc_conv2")(h))
            h = h.reshape(h.shape[0], -1)
        else:
            h = x.reshape(x.shape[0], -1)
            h = nn.relu(nn.Dense(c.hidden, name="enc_dense0")(h))
        h = nn.relu(nn.Dense(c.hidden, name="enc_dense1")(h))
        out = nn.Dense(2 * c.latent_dim, name="enc_out")(h)
        mean, log_var = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_var, -12.0, 8.0)

    @nn.compact
    def decode(self, z):
        c = self.config
        hh, ww = c.image_shape
        h = nn.relu(nn.Dense(c.hidden, name="dec_dense0")(z))
        if c.kind == "conv":
            h = nn.relu(nn.Dense(64 * (hh // 4) * (ww // 4), name="dec_dense1")(h))
            h = h.reshape(h.shape[0], hh // 4, ww // 4, 64)
            h = nn.relu(nn.ConvTranspose(32, (3, 3), strides=(2, 2), name="dec_deconv1")(h))
            h = nn.ConvTranspose(1, (3, 3), strides=(2, 2), name="dec_deconv2")(h)
            return h[..., 0]
        h = nn.relu(nn.Dense(c.hidden, name="dec_dense1")(h))
        return nn.Dense(hh * ww, name="dec_out")(h).reshape(z.shape[0], hh, ww)

    def __call__(self, x, eps):
        mean, log_var = self.encode(x)
        z = mean + jnp.exp(0.5 * log_var) * eps
        return self.decode(z), mean, log_var


def init_vae(key: jax.Array, config: VAEConfig):
    """Initial VAE parameters.

    Example:
        >>> import jax
        >>> p = init_vae(jax.random.key(0), VAE_PRESETS["mnist"])
        >>> sorted(p["params"])[:2]
        ['dec_deconv1', 'dec_deconv2']
    """
    x = jnp.zeros((1, *config.image_shape))
    return VAE(config).init(key, x, jnp.zeros((1, config.latent_dim)))


def _log_bernoulli(logits, x):
    # log p(x | logits) = x log s + (1 - x) log(1 - s), summed over pixels, stable form.
    return -optax.sigmoid_binary_cross_entropy(logits, x).sum(axis=(-2, -1))


def _log_normal(z, mean, log_var):
    return -0.5 * (jnp.log(2 * jnp.pi) + log_var + (z - mean) ** 2 / jnp.exp(log_var)).sum(-1)


def elbo(key: jax.Array, params, config: VAEConfig, x: jax.Array) -> jax.Array:
    """Per-image ELBO ``(B,)`` in nats, one posterior sample, analytic KL.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = VAE_PRESETS["digits"]
        >>> e = elbo(jax.random.key(1), init_vae(jax.random.key(0), cfg), cfg,
        ...          jnp.full((4, 8, 8), 0.5))
        >>> e.shape, bool(jnp.all(e < 0))
        ((4,), True)

    References:
        Kingma & Welling (2013), eq. 10.
    """
    eps = jax.random.normal(key, (x.shape[0], config.latent_dim), x.dtype)
    logits, mean, log_var = VAE(config).apply(params, x, eps)
    kl = 0.5 * (jnp.exp(log_var) + mean**2 - 1.0 - log_var).sum(-1)
    return _log_bernoulli(logits, x) - kl


def iwae_bound(key: jax.Array, params, config: VAEConfig, x: jax.Array,
               n_importance: int = 64) -> jax.Array:
    """Per-image importance-weighted bound ``(B,)`` on log p(x) with K samples.

    ``iwae_bound(K=1)`` has the same expectation as :func:`elbo`; the bound rises
    with K towards log p(x).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = VAE_PRESETS["digits"]
        >>> p, x = init_vae(jax.random.key(0), cfg), jnp.full((2, 8, 8), 0.5)
        >>> iwae_bound(jax.random.key(1), p, cfg, x, 16).shape
        (2,)

    References:
        Burda et al., ICLR 2016, eq. 8.
    """
    model = VAE(config)
    mean, log_var = model.apply(params, x, method=VAE.encode)
    eps = jax.random.normal(key, (n_importance, *mean.shape), mean.dtype)
    z = mean + jnp.exp(0.5 * log_var) * eps  # (K, B, L)
    logits = model.apply(params, z.reshape(-1, config.latent_dim), method=VAE.decode)
    logits = logits.reshape(n_importance, x.shape[0], *config.image_shape)
    log_w = (_log_bernoulli(logits, x[None]) + _log_normal(z, 0.0, jnp.zeros_like(z))
             - _log_normal(z, mean, log_var))
    return jax.nn.logsumexp(log_w, axis=0) - math.log(n_importance)


def decode_prior(key: jax.Array, params, config: VAEConfig, n: int) -> jax.Array:
    """``n`` generated images ``(n, h, w)`` in [0, 1]: decoder means for z ~ N(0, I).

    Example:
        >>> import jax
        >>> cfg = VAE_PRESETS["digits"]
        >>> x = decode_prior(jax.random.key(1), init_vae(jax.random.key(0), cfg), cfg, 5)
        >>> x.shape, bool((x >= 0).all() & (x <= 1).all())
        ((5, 8, 8), True)
    """
    z = jax.random.normal(key, (n, config.latent_dim))
    return jax.nn.sigmoid(VAE(config).apply(params, z, method=VAE.decode))


def encode_mean(params, config: VAEConfig, x: jax.Array) -> jax.Array:
    """Posterior means ``(B, latent_dim)`` of images ``x``.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg = VAE_PRESETS["digits"]
        >>> encode_mean(init_vae(jax.random.key(0), cfg), cfg, jnp.zeros((2, 8, 8))).shape
        (2, 20)
    """
    return VAE(config).apply(params, x, method=VAE.encode)[0]


class VAEState(NamedTuple):
    """Parameters, optimiser state and step counter.

    Example:
        >>> import jax.numpy as jnp
        >>> tx = vae_optimizer()
        >>> p = {"w": jnp.zeros(3)}
        >>> s = VAEState(p, tx.init(p), jnp.zeros((), jnp.int32))
        >>> int(s.step), s.params["w"].shape
        (0, (3,))
    """

    params: object
    opt_state: object
    step: jax.Array


def vae_optimizer(learning_rate: float = 1e-3, total_steps: int = 1000,
                  clip_norm: float = 10.0) -> optax.GradientTransformation:
    """Adam with cosine decay and gradient clipping for the VAE.

    Example:
        >>> tx = vae_optimizer(1e-3, 10)
        >>> callable(tx.update)
        True
    """
    if not learning_rate > 0:
        raise ValueError(f"learning_rate must be > 0; got {learning_rate}")
    sched = optax.cosine_decay_schedule(learning_rate, max(total_steps, 1), alpha=0.1)
    return optax.chain(optax.clip_by_global_norm(clip_norm), optax.adam(sched))


def vae_train_step(state: VAEState, key: jax.Array, x: jax.Array, *, config: VAEConfig,
                   tx: optax.GradientTransformation) -> tuple[VAEState, jax.Array]:
    """One step on images ``x`` ``(B, h, w)``; returns the state and the mean -ELBO.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg, tx = VAE_PRESETS["digits"], vae_optimizer()
        >>> p = init_vae(jax.random.key(0), cfg)
        >>> s = VAEState(p, tx.init(p), jnp.zeros((), jnp.int32))
        >>> step = jax.jit(vae_train_step, static_argnames=("config", "tx"))
        >>> s, loss = step(s, jax.random.key(1), jnp.full((4, 8, 8), 0.5), config=cfg, tx=tx)
        >>> int(s.step), bool(loss > 0)
        (1, True)
    """
    loss_fn = lambda p: -elbo(key, p, config, x).mean()
    loss, grads = jax.value_and_grad(loss_fn)(state.params)
    updates, opt_state = tx.update(grads, state.opt_state, state.params)
    return VAEState(optax.apply_updates(state.params, updates), opt_state, state.step + 1), loss


def make_vae_train_step(config: VAEConfig, tx: optax.GradientTransformation, *,
                        devices: int | Sequence[jax.Device] | None = None,
                        mesh: jax.sharding.Mesh | None = None):
    """:func:`vae_train_step` jitted once with the state donated.

    ``devices``/``mesh`` make it data-parallel (images split over a ``"data"`` mesh
    axis, parameters replicated, gradients averaged; see
    :func:`jaxcollapse.models.train.data_parallel`); the default runs on one device.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> cfg, tx = VAE_PRESETS["digits"], vae_optimizer()
        >>> p = init_vae(jax.random.key(0), cfg)
        >>> step = make_vae_train_step(cfg, tx)
        >>> s, _ = step(VAEState(p, tx.init(p), jnp.zeros((), jnp.int32)),
        ...             jax.random.key(1), jnp.zeros((2, 8, 8)))
        >>> int(s.step)
        1
    """
    return data_parallel(functools.partial(vae_train_step, config=config, tx=tx),
                         devices=devices, mesh=mesh, batch_argnums=(2,))
