"""The VAE: exact ELBO, IWAE bound vs ELBO by Monte Carlo, training, the protocol,
precision/recall/density/coverage on the generation-0 encoder's features."""

import importlib.util

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
                        batch_size=32, n_importance=4, n_eval=128, n_probe=64, n_prdc=100)
    arms = make_arms([0.0, 0.1], accumulate=True)
    full = run_vae(jax.random.key(1), digits, proto, arms, out=tmp_path / "a")
    for name, recs in full.records.items():
        assert [r["generation"] for r in recs] == [0, 1, 2]
        for r in recs:  # k-NN metrics on the generation-0 encoder's features
            assert all(0.0 <= r[f] <= 1.0 for f in ("precision", "recall", "coverage")), r
            # density: balls of 100 real points holding each of 100 fakes, / (k = 5) 100
            assert 0.0 <= r["density"] <= 100 / 5
            assert abs(r["density"] * 500 - round(r["density"] * 500)) < 1e-3
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
        # generation 0 is shared by the arms; later generations' fakes differ by arm
        assert resumed.records[name][0]["coverage"] == full.records["alpha=0"][0]["coverage"]
    if importlib.util.find_spec("xarray") is not None:  # the analysis extra
        from jaxcollapse.export import to_dataframe, to_xarray

        ds = to_xarray(full)
        assert ds["coverage"].dims == ("seed", "arm", "generation")
        assert ds["recall"].sel(arm="accumulate", generation=2).values.tolist() == [
            full.records["accumulate"][2]["recall"]]
        assert {"precision", "recall", "density", "coverage"} <= set(to_dataframe(full).metric)
        for a, b in zip(resumed.samples[name], full.samples[name], strict=True):
            np.testing.assert_array_equal(a, b)



# ------------------------------------------- precision, recall, density, coverage

N_PRDC = 200


@pytest.fixture(scope="module")
def mnist_vae(shared_data):
    """A tiny MLP VAE trained 30 steps on MNIST (the generation-0 model whose encoder
    gives the features) and the 2,000 test images of the test-only split."""
    from jaxcollapse.data import load_mnist

    m = load_mnist(shared_data / "mnist")
    cfg = VAEConfig((28, 28), 8, 32, "mlp")
    tx = vae_optimizer(2e-3, 30)
    p0 = init_vae(jax.random.key(0), cfg)
    step = make_vae_train_step(cfg, tx)
    state = VAEState(jax.tree.map(jnp.array, p0), tx.init(p0), jnp.zeros((), jnp.int32))
    idx = np.asarray(jax.random.randint(jax.random.key(1), (30, 64), 0, len(m.train_x)))
    for i in range(30):
        state, _ = step(state, jax.random.key(i), m.train_x[idx[i]])
    return cfg, state.params, m.test_x


def test_vae_prdc_equals_the_package_on_the_same_features(mnist_vae):
    """What the VAE loop records (``vae_prdc``: generation-0 encoder features of real
    MNIST test images and of generated images) is jc.metrics.prdc of those features,
    and that equals the prdc package's on the same features (float64)."""
    from _prdc_reference import FIELDS, reference

    import jaxcollapse as jc
    from jaxcollapse.learned.vae_prdc import prdc_features, vae_prdc

    cfg, params, test_x = mnist_vae
    key, real_x = jax.random.key(5), jnp.asarray(test_x[:N_PRDC])
    rec = vae_prdc(key, params, params, cfg, real_x, N_PRDC)
    got = np.array([rec[f] for f in FIELDS])
    real, fake = prdc_features(key, params, params, cfg, real_x, N_PRDC)
    assert real.shape == fake.shape == (N_PRDC, 8) and real.dtype == jnp.float32
    np.testing.assert_array_equal(got, [float(v) for v in jc.metrics.prdc(real, fake, 5)])
    real64, fake64 = (np.asarray(a, np.float64) for a in (real, fake))
    ref = reference(real64, fake64, 5)
    np.testing.assert_allclose([float(v) for v in jc.metrics.prdc(real64, fake64, 5)], ref,
                               rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-12)
    # a model after 30 steps: well inside (0, 1), so the comparison is not of zeros
    assert 0.0 < got[0] < 1.0 and 0.0 < got[3] < 1.0, got


def test_bad_n_prdc(digits):
    with pytest.raises(ValueError, match="n_prdc must be 0"):
        VAEProtocol(VAE_PRESETS["digits"], n_prdc=5)
    with pytest.raises(ValueError, match="n_prdc"):
        VAEProtocol(VAE_PRESETS["digits"], n_prdc=True)
    proto = VAEProtocol(VAE_PRESETS["digits"], n_generations=0, steps=2, n_prdc=1000)
    with pytest.raises(ValueError, match=r"n_prdc must be .* 6\.\.297 .*got 1000"):
        run_vae(jax.random.key(0), digits, proto, make_arms([0.0]))

