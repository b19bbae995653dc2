"""Benchmark: VAE train-step throughput (images/s), public API only.

The MLP VAE on 8x8 digits and the convolutional VAE on 28x28 MNIST-shaped
images, batch 128; compile time and steady-state median apart, every output
blocked on; the ratio column is images/s relative to the 8x8 MLP model. Writes
``benchmarks/results/vae.json``.

Run: ``PYTHONPATH=. python benchmarks/vae.py [--repeats 10]``
"""

import argparse
import json
import statistics
import time
from pathlib import Path

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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    dev = jax.devices()[0]
    print(f"device: {dev.platform} {dev.device_kind}")
    res = {}
    for name in ("digits", "mnist"):
        cfg = VAE_PRESETS[name]
        tx = vae_optimizer(1e-3, 1000)
        p = init_vae(jax.random.key(0), cfg)
        state = VAEState(p, tx.init(p), jnp.zeros((), jnp.int32))
        step = make_vae_train_step(cfg, tx)
        x = np.random.default_rng(0).uniform(size=(args.repeats + 1, args.batch,
                                                   *cfg.image_shape)).astype(np.float32)
        t = time.perf_counter()
        state, loss = step(state, jax.random.key(0), x[0])
        jax.block_until_ready(loss)
        compile_s = time.perf_counter() - t
        times = []
        for i in range(args.repeats):
            t = time.perf_counter()
            state, loss = step(state, jax.random.key(i + 1), x[i + 1])
            jax.block_until_ready((state, loss))
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        res[name] = dict(kind=cfg.kind, image_shape=cfg.image_shape, batch=args.batch,
                         compile_s=compile_s, median_s=med, images_per_s=args.batch / med)
    base = res["digits"]["images_per_s"]
    print(f"{'model':8s} {'kind':5s} {'compile s':>9s} {'median s':>9s} {'images/s':>10s} ratio")
    for k, r in res.items():
        print(f"{k:8s} {r['kind']:5s} {r['compile_s']:9.2f} {r['median_s']:9.4f} "
              f"{r['images_per_s']:10,.0f} {r['images_per_s'] / base:.2f}")
    out = Path(__file__).parent / "results" / "vae.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(dict(device=f"{dev.platform} {dev.device_kind}", results=res),
                              indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
