"""The VAE: exact ELBO, IWAE bound vs ELBO by Monte Carlo, training, the protocol."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.special import expit

from jaxcollapse.learned import VAEProtocol, make_arms, run_vae
from jaxcollapse.models.vae import (
    VAE,
    VAE_PRESETS,
    VAEConfig,
    VAEState,
    decode_prior,
    elbo,
    init_vae,
    iwae_bound,
    make_vae_train_step,
    vae_optimizer,
)

STEPS = 400


@pytest.fixture(scope="module")
def digits():
    from jaxcollapse.data import load_digits

    pytest.importorskip("sklearn")
    return load_digits()


@pytest.fixture(scope="module")
def trained(digits):
    cfg = VAE_PRESETS["digits"]
    tx = vae_optimizer(2e-3, STEPS)
    p0 = init_vae(jax.random.key(0), cfg)
    step = make_vae_train_step(cfg, tx)
    state = VAEState(jax.tree.map(jnp.array, p0), tx.init(p0), jnp.zeros((), jnp.int32))
    idx = np.asarray(jax.random.randint(jax.random.key(1), (STEPS, 64), 0,
                                        len(digits.train_x)))
    keys = jax.random.split(jax.random.key(2), STEPS)
    for i in range(STEPS):
        state, _ = step(state, keys[i], digits.train_x[idx[i]])
    return cfg, p0, state.params, step


def test_elbo_matches_independent_computation(trained, digits):
    cfg, _, params, _ = trained
    x = jnp.asarray(digits.test_x[:16])
    key = jax.random.key(3)
    got = np.asarray(elbo(key, params, cfg, x), np.float64)
    model = VAE(cfg)
    mean, log_var = (np.asarray(a, np.float64) for a in model.apply(params, x,
                                                                    method=VAE.encode))
    eps = np.asarray(jax.random.normal(key, (16, cfg.latent_dim), x.dtype))
    z = mean + np.exp(0.5 * log_var) * eps
    s = expit(np.asarray(model.apply(params, jnp.asarray(z, jnp.float32),
                                     method=VAE.decode), np.float64))
    xn = np.asarray(x, np.float64)
    loglik = (xn * np.log(s) + (1 - xn) * np.log1p(-s)).sum(axis=(1, 2))
    kl = 0.5 * (np.exp(log_var) + mean**2 - 1 - log_var).sum(1)
    np.testing.assert_allclose(got, loglik - kl, rtol=1e-4)  # float32 network


def test_iwae_bounds_vs_elbo_monte_carlo(trained, digits):
    """E[IWAE_1] = E[ELBO] (same estimator up to the KL being analytic) and
    IWAE_64 >= E[ELBO]. |diff| <= 4.5 SE: false-failure rate ~7e-6 per check."""
    cfg, _, params, _ = trained
    x = jnp.asarray(digits.test_x[:32])
    n = 200
    keys = jax.random.split(jax.random.key(4), n)
    many = jax.jit(jax.vmap(lambda k: (elbo(k, params, cfg, x).mean(),
                                       iwae_bound(k, params, cfg, x, 1).mean())))
    e, i1 = (np.asarray(a, np.float64) for a in many(keys))
    se = np.sqrt(e.var(ddof=1) / n + i1.var(ddof=1) / n)
    assert abs(e.mean() - i1.mean()) <= 4.5 * se
    i64 = np.asarray(iwae_bound(jax.random.key(5), params, cfg, x, 64), np.float64).mean()
    assert i64 > e.mean() + 4.5 * e.std(ddof=1) / np.sqrt(n)


def test_training_improves_elbo_beyond_independent_pixels(trained, digits):
    cfg, p0, params, step = trained
    x = jnp.asarray(digits.test_x)
    before = float(iwae_bound(jax.random.key(6), p0, cfg, x, 16).mean())
    after = float(iwae_bound(jax.random.key(6), params, cfg, x, 16).mean())
    # Baseline: independent Bernoulli pixels at the training means. The VAE family
    # contains it (a decoder that ignores z, q = prior), so training must beat it.
    m = np.clip(digits.train_x.mean(0), 1e-4, 1 - 1e-4)
    xt = digits.test_x.astype(np.float64)
    indep = (xt * np.log(m) + (1 - xt) * np.log1p(-m)).sum(axis=(1, 2)).mean()
    assert after > before + 5.0
    assert after > indep
    assert step._cache_size() == 1  # STEPS calls with new batches and keys: one compile


def test_samples_shape_and_range(trained):
    cfg, _, params, _ = trained
    s = np.asarray(decode_prior(jax.random.key(7), params, cfg, 50))
    assert s.shape == (50, 8, 8)
    assert s.min() >= 0 and s.max() <= 1 and s.std() > 0.05
    conv = VAE_PRESETS["mnist"]
    pc = init_vae(jax.random.key(0), conv)

    @jax.jit
    def both(p):
        return (decode_prior(jax.random.key(1), p, conv, 3),
                elbo(jax.random.key(2), p, conv, jnp.full((2, 28, 28), 0.3)))

    imgs, e = both(pc)
    assert imgs.shape == (3, 28, 28) and e.shape == (2,) and bool(jnp.all(e < 0))


def test_bad_vae_inputs(digits):
    with pytest.raises(ValueError, match="kind must be"):
        VAEConfig(kind="rnn")
    with pytest.raises(ValueError, match="divisible by 4"):
        VAEConfig((10, 10), kind="conv")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        VAEProtocol(VAE_PRESETS["digits"], steps=0)
    proto = VAEProtocol(VAE_PRESETS["mnist"], n_generations=1, steps=2)
    with pytest.raises(ValueError, match=r"images have shape \(8, 8\)"):
        run_vae(jax.random.key(0), digits, proto, make_arms([0.0]))


def test_vae_protocol_two_generations_and_resume(digits, tmp_path):
    proto = VAEProtocol(VAEConfig((8, 8), 8, 64, "mlp"), n_generations=2, steps=60,
                        batch_size=32, n_importance=4, n_eval=128, n_probe=64)
    arms = make_arms([0.0, 0.1], accumulate=True)
    full = run_vae(jax.random.key(1), digits, proto, arms, out=tmp_path / "a")
    for name, recs in full.records.items():
        assert [r["generation"] for r in recs] == [0, 1, 2]
        assert all(np.isfinite(r["test_elbo"]) and r["test_iwae"] >= r["test_elbo"] - 5
                   for r in recs)
        assert sum(recs[2]["class_hist"]) == proto.n_probe
        grids = full.samples[name]
        assert len(grids) == 3 and grids[0] is full.samples["alpha=0"][0]  # shared gen 0
        for g, r in zip(grids, recs, strict=True):
            assert g.shape == (64, 8, 8) and g.min() >= 0 and g.max() <= 1
            # with n_probe = 64 the grid is the whole probe: the pixel variance is its own
            np.testing.assert_allclose(r["pixel_var"], g.astype(np.float64).var(0).mean(),
                                       rtol=1e-6)
    n = len(digits.train_x)
    assert full.records["alpha=0.1"][1]["human_images"] == round(0.1 * n)
    assert full.records["accumulate"][2]["train_images"] == 3 * n
    assert (tmp_path / "a" / "samples" / "alpha=0_gen2.png").read_bytes()[:4] == b"\x89PNG"
    one = VAEProtocol(**{**proto.__dict__, "n_generations": 1})
    run_vae(jax.random.key(1), digits, one, arms, out=tmp_path / "b")
    resumed = run_vae(jax.random.key(1), digits, proto, arms, out=tmp_path / "b", resume=True)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    for name in full.records:
        assert strip(resumed.records[name]) == strip(full.records[name])
        for a, b in zip(resumed.samples[name], full.samples[name], strict=True):
            np.testing.assert_array_equal(a, b)
