"""VAE train-step throughput (images/s), public API only.

The MLP VAE on 8x8 digits and the convolutional VAE on 28x28 MNIST-shaped images,
batch 128, float32; compile time and steady-state median apart, every output
blocked on. There is no reference tool and no goal; the ratio column is the
model's images/s relative to the 8x8 MLP model. When run on a GPU the same rows
report the GPU figures.

Run: ``PYTHONPATH=. python benchmarks/vae.py [--quick]`` (quick: 3 repeats, not 10).
"""

from __future__ import annotations

import itertools

import _common as bc
import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse.models.vae import (
    VAE_PRESETS,
    VAEState,
    init_vae,
    make_vae_train_step,
    vae_optimizer,
)


def run(quick: bool) -> list[dict]:
    batch, repeats = 128, (3 if quick else 10)
    rows, base = [], None
    for name in ("digits", "mnist"):
        cfg = VAE_PRESETS[name]
        tx = vae_optimizer(1e-3, 1000)
        p = init_vae(jax.random.key(0), cfg)
        state = [VAEState(p, tx.init(p), jnp.zeros((), jnp.int32))]
        step = make_vae_train_step(cfg, tx)
        x = np.random.default_rng(0).uniform(size=(repeats + 1, batch, *cfg.image_shape))
        x = x.astype(np.float32)
        idx = itertools.count()

        def train(step=step, state=state, x=x, idx=idx):
            i = next(idx)
            state[0], loss = step(state[0], jax.random.key(i), x[i])
            return state[0], loss

        with bc.PeakMemory() as m:
            t = bc.time_jax(train, repeats)
        ips = batch / t.steady_s
        base = base or ips
        rows.append(bc.row(
            f"VAE train step, {name} ({cfg.kind})",
            f"batch {batch} × {'×'.join(map(str, cfg.image_shape))}", t, ratio=ips / base,
            peak_rss_mib=m.mib, note=f"{ips:,.0f} images/s; ratio vs the digits model",
            images_per_s=ips))
    return rows


if __name__ == "__main__":
    raise SystemExit(bc.script_main("vae", run, __doc__))
