"""Splitting data over devices: Gram tiles, KDE and MMD evaluation and data-parallel
training all equal their one-device results (simulations, which split chains over the
devices: tests/test_sharding.py).

The multi-device checks run in one subprocess with 8 forced host (CPU) devices (the
device count is fixed when JAX starts), so its start-up is paid once. Tolerances:
evaluations that only reorder sums are held to rtol 1e-12 in float64; two training
steps to rtol 1e-10 on the losses and parameters of a float64 LM, 1e-5 for the VAE
(whose parameters are float32).
"""

import jax
import numpy as np
import pytest
from _subproc import run_on_host_devices

import jaxcollapse as jc
from jaxcollapse import kernels as kn
from jaxcollapse import metrics as mt
from jaxcollapse.models import make_optimizer, make_train_step, preset

SCRIPT = """
    import jax.numpy as jnp, numpy as np
    import jaxcollapse as jc
    from jaxcollapse import kernels as kn, metrics as mt
    from jaxcollapse.models import init_state, make_optimizer, make_train_step, preset
    from jaxcollapse.models.vae import (VAEConfig, VAEState, init_vae, make_vae_train_step,
                                        vae_optimizer)
    close = lambda a, b, rtol=1e-12: np.testing.assert_allclose(a, b, rtol=rtol, atol=0)
    rng = np.random.default_rng(0)
    # 37 and 23 points: neither a multiple of 8 nor of the tiles
    x, y = rng.normal(size=(37, 2)), rng.normal(size=(23, 2)) + 0.5
    mesh = jax.make_mesh((8,), ("data",))

    # Gram tiles: rows split over the devices
    for kern in ("rbf", "matern32"):
        one = kn.gram(x, y, kern, 0.8, tile=4, devices=1)
        close(kn.gram(x, y, kern, 0.8, tile=4), one)
        close(kn.gram(x, y, kern, 0.8, tile=4, devices=3), one)

    # Gram sums and MMD: tiles dealt out over the devices, psum at the end
    for yy in (None, y):
        one = kn.kernel_sum(x, yy, "rbf", 0.7, tile=4, devices=1)
        close(kn.kernel_sum(x, yy, "rbf", 0.7, tile=4), one)
        close(kn.kernel_sum(x, yy, "rbf", 0.7, tile=4, mesh=mesh), one)
    # (the estimator only recombines the three sharded sums: each kernel with one of them)
    for kern, est in (("rbf", "unbiased"), ("laplace", "biased")):
        one = mt.mmd2(x, y, kern, 0.7, estimator=est, tile=4, devices=1)
        close(mt.mmd2(x, y, kern, 0.7, estimator=est, tile=4), one)
    close(mt.mmd2(x, y, "rbf", 0.7, tile=5, devices=5), mt.mmd2(x, y, "rbf", 0.7, tile=5,
                                                               devices=1))
    # the linear-time estimator runs on one device whatever is asked
    np.testing.assert_array_equal(mt.mmd2(x[:23], y, estimator="linear"),
                                  mt.mmd2(x[:23], y, estimator="linear", devices=1))

    # KDE log_prob: queries split over the devices (45 queries, tiles of 4)
    kde = jc.KDE(dim=2, bandwidth="scott", q_tile=4, p_tile=8)
    p = kde.params(x)
    q = rng.normal(size=(45, 2)) * 3.0
    one = kde.log_prob(p, q, devices=1)
    close(kde.log_prob(p, q), one)
    close(kde.log_prob(p, q, devices=3), one)
    close(kde.log_prob(p, q, mesh=mesh), one)

    # (KDE and categorical simulations split chains over the devices: tests/test_sharding.py
    # checks every family of FAMILIES, these two bitwise in their parameters)

    # Data-parallel LM training: 2 steps, batch of 8 windows over 4 devices
    cfg = preset("tiny", 24, d_model=16, n_layers=1, n_heads=2, d_ff=32, max_len=8,
                 dtype="float64")
    tx = make_optimizer(1e-2, total_steps=10, warmup_steps=1)
    batches = [rng.integers(0, 24, size=(8, 9)) for _ in range(2)]
    init = jax.jit(lambda: init_state(jax.random.key(0), cfg, tx))  # one compile, not eager
    def run(step):
        s, losses = init(), []
        for b in batches:
            s, loss = step(s, b)
            losses.append(float(loss))
        return s, losses
    # parameters near 0 carry the round-off of their gradient sums: atol 1e-12
    pclose = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    s1, l1 = run(make_train_step(cfg, tx))
    s8, l8 = run(make_train_step(cfg, tx, mesh=jax.make_mesh((4,), ("data",))))
    close(l8, l1, 1e-10)
    jax.tree.map(pclose, s8.params, s1.params)
    # parameters stay replicated on the mesh's devices
    leaf = jax.tree.leaves(s8.params)[0]
    assert len(leaf.sharding.device_set) == 4 and leaf.sharding.is_fully_replicated
    raises(lambda: make_train_step(cfg, tx, devices=8)(init(), batches[0][:6]), "multiple of 8",
           "a batch of 6 over 8 devices")
    from jaxcollapse.learned import _training_mesh  # run_lm / run_vae check it up front
    assert _training_mesh(None, None, 6) is None
    assert _training_mesh(4, None, 8).devices.size == 4
    raises(lambda: _training_mesh(8, None, 6), "batch_size=6 must be a multiple of the 8 devices",
           "batch_size=6 over 8 devices")

    # Data-parallel VAE: 2 steps; the noise drawn inside the step is the same
    vcfg = VAEConfig((8, 8), 3, 16, "mlp")
    vtx = vae_optimizer(1e-3, 10)
    imgs = rng.uniform(size=(2, 16, 8, 8))
    @jax.jit
    def vinit():
        p0 = init_vae(jax.random.key(0), vcfg)
        return VAEState(p0, vtx.init(p0), jnp.zeros((), jnp.int32))
    def vrun(step):
        s, losses = vinit(), []
        for i in range(2):
            s, loss = step(s, jax.random.key(10 + i), imgs[i])
            losses.append(float(loss))
        return s, losses
    v1, vl1 = vrun(make_vae_train_step(vcfg, vtx))
    v8, vl8 = vrun(make_vae_train_step(vcfg, vtx, devices=8))
    # the VAE parameters are float32 (Flax's default): float32 round-off
    close(vl8, vl1, 1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
                 v8.params, v1.params)

    # bad meshes
    for call in (lambda: mt.mmd2(x, y, mesh=jax.make_mesh((8,), ("chains",))),
                 lambda: kde.log_prob(p, q, mesh=jax.make_mesh((8,), ("chains",))),
                 lambda: make_train_step(cfg, tx, mesh=jax.make_mesh((8,), ("batch",)))):
        raises(call, "axis named 'data'", "a mesh without a 'data' axis")
    raises(lambda: kn.gram(x, y, devices=9), "devices=9 requested but 8 exist", "devices=9")
"""


def test_data_sharded_equals_single_device_in_subprocess():
    run_on_host_devices(SCRIPT)


def test_bad_device_arguments_on_one_device():
    x = np.zeros((4, 2))
    n = len(jax.devices())
    with pytest.raises(ValueError, match=f"devices={n + 1} requested"):
        mt.mmd2(x, x + 1.0, devices=n + 1)
    with pytest.raises(TypeError, match="mesh must be a jax.sharding.Mesh"):
        kn.kernel_sum(x, None, mesh="data")
    with pytest.raises(ValueError, match="either devices= or mesh="):
        kn.gram(x, x, devices=1, mesh=jax.make_mesh((1,), ("data",)))
    fam = jc.KDE(dim=2, bandwidth=1.0)
    with pytest.raises(TypeError, match="devices must be an int"):
        fam.log_prob(fam.params(x), x, devices="all")
    cfg = preset("tiny", 10, d_model=8, n_heads=2, d_ff=8, max_len=4)
    with pytest.raises(ValueError, match=f"devices={n + 1} requested"):
        make_train_step(cfg, make_optimizer(), devices=n + 1)
