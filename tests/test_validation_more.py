"""Issue 13, the rest: memory estimates before compiling, a family class for an
instance, the KDE dtype rule, learned-model boundaries and the remaining opaque
errors. Every case is refused by jaxcollapse's own validation before anything is
traced or compiled, so the file runs in seconds."""

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import _memory as mem
from jaxcollapse.families._counts import multinomial
from jaxcollapse.simulation._setup import _check_memory, _prepare

KEY = jax.random.key(0)
GAUSS = jc.Gaussian(dim=1, method="exact")


@pytest.fixture
def limit(monkeypatch):
    """Pretend the machine has ``size`` of memory (the documented override)."""
    def set_(size):
        monkeypatch.setenv(mem.ENV_VAR, size)
    return set_


@pytest.fixture
def detected(monkeypatch):
    """The real memory detection (no override from the environment)."""
    monkeypatch.delenv(mem.ENV_VAR, raising=False)


# ----------------------------------------------------------------- memory estimates


def test_memory_error_is_both_kinds_and_parses_sizes(limit):
    assert issubclass(mem.InsufficientMemoryError, MemoryError)
    assert issubclass(mem.InsufficientMemoryError, ValueError)
    assert mem.parse_bytes("1.5G") == 3 * 2**29
    assert mem.parse_bytes("100") == 100
    assert mem.parse_bytes("off") is None
    limit("plenty")
    with pytest.raises(ValueError, match="JAXCOLLAPSE_MAX_MEMORY"):
        mem.available_bytes()
    limit("off")
    mem.check_memory(2**80, "anything", "nothing")  # the check is skipped


def test_huge_simulate_refused_quickly_with_advice(limit):
    limit("8G")
    t = time.perf_counter()
    with pytest.raises(mem.InsufficientMemoryError,
                       match=r"(?s)100,000,000 chains.*needs about.*8.0 GiB is available"
                             r".*fewer chains.*save_params=False.*chunk_size=.*devices="):
        jc.simulate(KEY, GAUSS, GAUSS.params(), n_generations=10, n_samples=100,
                    n_chains=10**8)
    assert time.perf_counter() - t < 10  # nothing compiled (about 0.1 s when warm)
    with pytest.raises(mem.InsufficientMemoryError, match="simulate_grid"):
        jc.simulate_grid(KEY, GAUSS, GAUSS.params(), n_generations=10, n_samples=[10, 20],
                         n_chains=10**8)


def test_estimate_follows_the_run_layout(limit):
    """One program holds every generation (twice with saved parameters); chunks with
    keep=False hold one chunk; more devices share the device memory (accelerators)."""
    cfg, _, n, p0, *_ = _prepare(KEY, GAUSS, GAUSS.params(), n_generations=100,
                                 n_samples=10, n_chains=10**6, regime="replace",
                                 human_data=None, metrics=None, save_params=True)
    # per chain and generation: the parameters, one value per metric and the flag
    leaves = jax.tree.leaves(p0)
    per_gen = sum(x.nbytes for x in leaves) + 5 * leaves[0].dtype.itemsize + 1
    outputs = mem.format_bytes(n * 101 * per_gen)
    limit("1G")
    with pytest.raises(mem.InsufficientMemoryError, match=rf"outputs {outputs}"):
        _check_memory(cfg, p0, n)
    _check_memory(cfg, p0, n, gens=3)  # chunk_size=2 with keep=False
    with pytest.raises(mem.InsufficientMemoryError, match="host copy"):
        _check_memory(cfg, p0, n, gens=3, host_gens=101)  # keep=True


def test_kde_pairwise_metrics_and_decompose_population_refused(detected):
    """No machine holds these (TiB): refused whatever the detected memory."""
    kde = jc.KDE(dim=1, bandwidth=0.5)
    p0 = _kde_params(np.linspace(-1.0, 1.0, 20_000, dtype=np.float32)[:, None])
    with pytest.raises(mem.InsufficientMemoryError,
                       match=r"(?s)5,000 chains.*TiB.*Gram matrix"):
        jc.simulate(KEY, kde, p0, n_generations=10, n_samples=20_000, n_chains=5_000,
                    save_params=False)
    with pytest.raises(mem.InsufficientMemoryError,
                       match=r"(?s)n_population=1,000,000,000.*smaller n_population"):
        jc.decompose(KEY, n_generations=5, n_population=10**9)


def test_fast_runner_estimate_counts_no_parameters(limit):
    """The Categorical fast runner keeps no parameters: 10^5 categories x 10^3 chains
    would be 17 GB of saved parameters, but it holds one count vector a chain."""
    fam = jc.Categorical(n_categories=10**5)
    cfg, _, n, p0, *_ = _prepare(KEY, fam, fam.params(), n_generations=10,
                                 n_samples=100, n_chains=10**3, regime="replace",
                                 human_data=None, metrics=None, save_params=True)
    limit("1G")
    _check_memory(cfg, p0, n, fast=True)
    with pytest.raises(mem.InsufficientMemoryError):
        _check_memory(cfg, p0, n)


# --------------------------------------------------------- a family class, not instance


@pytest.mark.parametrize("cls", [jc.Gaussian, jc.KDE, jc.Categorical, jc.GMM])
@pytest.mark.parametrize("entry", ["simulate", "simulate_grid"])
def test_family_class_is_refused_by_name(cls, entry):
    fn = getattr(jc, entry)
    with pytest.raises(TypeError, match=rf"family must be an instance.*{cls.__name__}\(\)"):
        fn(KEY, cls, None, n_generations=2, n_samples=[10, 20], n_chains=2)


def test_family_class_is_refused_by_the_other_entry_points():
    from jaxcollapse.experiments.gmm import gmm_experiment
    from jaxcollapse.experiments.kde import kde_experiment
    for call in (lambda: jc.metrics.prdc_metric(jc.KDE),
                 lambda: kde_experiment(KEY, jc.KDE, jnp.zeros(10), n_chains=2,
                                        n_generations=2),
                 lambda: gmm_experiment(KEY, jc.GMM, n_chains=2, n_generations=2),
                 lambda: jc.distributed.simulate_processes(
                     KEY, jc.Gaussian, None, n_generations=2, n_samples=10, n_chains=2,
                     out="unused")):
        with pytest.raises(TypeError, match="family must be an instance"):
            call()


# --------------------------------------------------------------------- KDE dtype rule


def _kde_params(points):
    """KDE parameters without a fit (nothing compiled): bandwidth 0.5^2 I."""
    d = points.shape[1]
    return jc.KDEParams(jnp.asarray(points), jnp.ones(points.shape[0], points.dtype),
                        jnp.asarray(0.25 * np.eye(d), points.dtype))


@pytest.mark.parametrize("dtype, want", [(np.float16, "float32"), (jnp.bfloat16, "float32"),
                                         (np.int32, "float64"), (np.float32, "float32")])
def test_kde_data_follow_the_dtype_rule(dtype, want):
    kde = jc.KDE(dim=1, bandwidth=0.5)
    assert kde.check_data(np.arange(3).astype(dtype)).dtype == want  # x64 in the suite


@pytest.mark.parametrize("call", ["check_data", "params", "log_prob"])
def test_kde_refuses_complex(call):
    kde = jc.KDE(dim=1, bandwidth=0.5)
    z = np.ones(3, np.complex64)
    name = "x" if call == "log_prob" else "data"
    args = (_kde_params(np.arange(3.0)[:, None]), z) if call == "log_prob" else (z,)
    with pytest.raises(TypeError, match=rf"{name} must be real"):
        getattr(kde, call)(*args)


def test_kde_log_prob_of_no_queries_is_empty():
    kde = jc.KDE(dim=2, bandwidth=0.5)
    out = kde.log_prob(_kde_params(np.eye(2)), jnp.zeros((0, 2)))
    assert out.shape == (0,)


# ------------------------------------------------------------------- opaque errors


def test_simulate_arguments_refused_before_any_chunk(tmp_path):
    fp = GAUSS.params()
    kw = dict(n_generations=4, n_chains=2)
    with pytest.raises(TypeError, match="on_chunk must be a callable"):
        jc.simulate(KEY, GAUSS, fp, n_samples=10, chunk_size=2, on_chunk=5,
                    checkpoint_dir=tmp_path / "run", save_params=True, **kw)
    assert not (tmp_path / "run").exists()  # nothing computed or written
    with pytest.raises(TypeError, match="progress must be True or False"):
        jc.simulate(KEY, GAUSS, fp, n_samples=10, progress="yes", **kw)
    with pytest.raises(ValueError, match=r"n_samples must be .*1-D schedule.*simulate_grid"):
        jc.simulate(KEY, GAUSS, fp, n_samples=np.full((2, 4), 10), **kw)
    with pytest.raises(ValueError, match="n_samples must not be empty"):
        jc.simulate(KEY, GAUSS, fp, n_samples=np.zeros((0,), int), **kw)
    with pytest.raises(TypeError, match="n_samples"):
        jc.simulate_grid(KEY, GAUSS, fp, n_samples=2.5, regime="mix",
                         alpha=jnp.array([0.0, 0.5]), human_data=jnp.zeros(10), **kw)


def test_decompose_plain_integer_key():
    with pytest.raises(TypeError, match=r"key must be a JAX PRNG key"):
        jc.decompose(0, n_generations=2, n_chains=2, n_population=100)


@pytest.mark.parametrize("n, probs, match", [
    (-3, [0.5, 0.5], "n must be >= 0"),
    (2.5, [0.5, 0.5], "n must be integer valued"),
    (3, [1.5, -0.5], "probs must be >= 0"),
    (3, [0.0, 0.0], "probs must have a positive sum"),
    (3, [0.5, float("nan")], "probs must be"),
])
def test_multinomial_refuses_bad_counts_and_probabilities(n, probs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        multinomial(KEY, n, jnp.asarray(probs))


# ----------------------------------------------------------------- learned models


@pytest.fixture(scope="module")
def lm_bits():
    from jaxcollapse.data import TextCorpus, build_vocab
    from jaxcollapse.learned import make_arms
    from jaxcollapse.learned.lm import LMProtocol
    from jaxcollapse.models import preset
    toks = (np.arange(400) % 40).astype(np.int32)
    corpus = TextCorpus(toks, toks[:64], toks[64:128],
                        build_vocab([[str(i) for i in range(40)]]), "toy")
    kw = dict(n_generations=1, steps=5, warmup_steps=1, batch_size=4, seq_len=16,
              prompt_len=8, gen_len=8, n_score=16)
    return LMProtocol, preset("tiny", 40, d_model=16, max_len=16), kw, corpus, \
        make_arms([0.0], accumulate=False)


@pytest.mark.parametrize("field, value, exc, match", [
    ("weight_decay", -0.1, ValueError, "weight_decay must be finite and >= 0"),
    ("weight_decay", "0.1", TypeError, "weight_decay must be a real number"),
    ("learning_rate", 0.0, ValueError, "learning_rate must be finite and > 0"),
    ("learning_rate", float("nan"), ValueError, "learning_rate must be finite"),
    ("eval_tokens", 0, ValueError, "eval_tokens must be an integer >= 2"),
    ("eval_tokens", -5, ValueError, "eval_tokens must be an integer >= 2"),
    ("eval_tokens", 2.5, TypeError, "eval_tokens must be an integer"),
    ("steps", True, TypeError, "steps must be a positive integer"),
    ("top_k", -1, ValueError, "top_k must be an integer >= 0"),
])
def test_lm_protocol_refuses(lm_bits, field, value, exc, match):
    LMProtocol, model, kw, *_ = lm_bits
    with pytest.raises(exc, match=match):
        LMProtocol(model, **{**kw, field: value})


def test_run_lm_plain_key_and_out_of_vocabulary_tokens(lm_bits):
    from jaxcollapse.data import TextCorpus
    from jaxcollapse.learned.lm import run_lm
    LMProtocol, model, kw, corpus, arms = lm_bits
    proto = LMProtocol(model, **kw)
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        run_lm(0, corpus, proto, arms)
    bad = np.asarray(corpus.train).copy()
    bad[5] = 45  # not a learning-rate problem: refused before training
    with pytest.raises(ValueError, match=r"train holds token id 45, outside the vocabulary"):
        run_lm(KEY, TextCorpus(bad, corpus.valid, corpus.test, corpus.vocab, "toy"), proto,
               arms)


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(max_vocab=2.5), TypeError, "max_vocab must be an integer"),
    (dict(max_vocab="100"), TypeError, "max_vocab must be an integer"),
    (dict(max_vocab=1), ValueError, "max_vocab must be an integer >= 2"),
    (dict(max_train_tokens=2.5), TypeError, "max_train_tokens must be an integer"),
])
def test_wikitext_caps_checked_before_reading(tmp_path, kwargs, exc, match):
    from jaxcollapse.data.wikitext import load_wikitext2
    with pytest.raises(exc, match=match):
        load_wikitext2(tmp_path, **kwargs)  # an empty folder: the caps fail first


def _toy_wikitext(folder):
    # train: "a" x 6, "b" x 3, <eos> x 2, "c" and "d" once; test: 11 tokens, 2 of them "c"
    (folder / "train.txt").write_text("a a b a c \n a b a a b d \n")
    (folder / "valid.txt").write_text("a b \n")
    (folder / "test.txt").write_text("a c b a <unk> \n c a b a \n")
    return folder


def test_vocabulary_cap_over_the_unk_share_is_refused_naming_the_share(tmp_path):
    from jaxcollapse.data.wikitext import cap_unk_share, load_wikitext2
    d = _toy_wikitext(tmp_path)
    # 4 kept types (a, b, <eos>, <unk>): both "c" of the 11 test tokens (with <eos>)
    # become <unk>; the text's own <unk> does not count
    c = load_wikitext2(d, max_vocab=4)
    assert c.name == "wikitext-2 (vocab capped at 4)"
    assert cap_unk_share(d, c.vocab) == pytest.approx(2 / 11)
    with pytest.raises(ValueError, match=r"max_vocab=4 maps 18.2% of the test tokens to "
                                         r"<unk> \(allowed: max_unk_share=0.1\)"):
        load_wikitext2(d, max_vocab=4, max_unk_share=0.1)
    assert load_wikitext2(d, max_vocab=4, max_unk_share=0.2).name == c.name
    with pytest.raises(ValueError, match="max_unk_share must be >= 0 and <= 1"):
        load_wikitext2(d, max_vocab=3, max_unk_share=1.5)


def test_cli_max_vocab_needs_allow_unk_but_a_presets_own_cap_does_not(tmp_path, capsys):
    from jaxcollapse.cli import build_parser
    from jaxcollapse.experiments import lm
    d = str(_toy_wikitext(tmp_path))

    def corpus(*flags):
        args = build_parser().parse_args(["run", "lm", "--preset", "tiny", "--data", d,
                                          *flags])
        return lm._corpus(args, lm.PRESETS[args.preset])

    assert "tiny" in lm.PRESETS and lm.PRESETS["tiny"]["allow_unk"]
    corpus()  # the tiny preset caps at 1,000 words on purpose (nothing lost here)
    assert "0.0% of the test tokens become <unk>" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"max_vocab=4 maps 18.2%.*--allow-unk"):
        corpus("--max-vocab", "4")
    assert corpus("--max-vocab", "4", "--allow-unk").name.endswith("capped at 4)")
    assert lm.PRESETS["full"]["max_vocab"] is None


def _images(scale=1.0, dtype=np.float32, labels_shift=0, nan=False):
    from jaxcollapse.data import ImageData
    x = (np.random.default_rng(0).uniform(size=(20, 8, 8)) * scale).astype(dtype)
    if nan:
        x[0, 0, 0] = np.nan
    y = (np.arange(20) % 10) + labels_shift
    return ImageData(x[:16], y[:16], x[16:], y[16:], "toy")


@pytest.mark.parametrize("data, exc, match", [
    (dict(scale=255.0), ValueError, r"train_x must hold pixels in \[0, 1\].*divide by 255"),
    (dict(scale=255.0, dtype=np.uint8), TypeError, "train_x must be floating.*divide uint8"),
    (dict(labels_shift=5), ValueError, "train_y must hold labels 0..9"),
    (dict(nan=True), ValueError, "train_x must be finite"),
])
def test_run_vae_refuses_bad_images(data, exc, match):
    from jaxcollapse.learned.vae import VAEProtocol, run_vae
    from jaxcollapse.models.vae import VAEConfig
    proto = VAEProtocol(VAEConfig((8, 8), 2, 8, "mlp"), n_generations=1, steps=2,
                        batch_size=4, n_importance=2, n_probe=4)
    with pytest.raises(exc, match=match):
        run_vae(KEY, _images(**data), proto, [jc.replace()])
    with pytest.raises(TypeError, match="key must be a JAX PRNG key"):
        run_vae(0, _images(), proto, [jc.replace()])


def test_learned_runs_refuse_wrong_argument_types(lm_bits):
    from jaxcollapse.learned.lm import run_lm
    from jaxcollapse.learned.vae import VAEProtocol, run_vae
    from jaxcollapse.models.vae import VAEConfig
    LMProtocol, model, kw, corpus, arms = lm_bits
    proto = VAEProtocol(VAEConfig((8, 8), 2, 8, "mlp"), n_generations=1, steps=2,
                        batch_size=4, n_importance=2, n_probe=4)
    with pytest.raises(TypeError, match="data must be a jaxcollapse.data.ImageData.*ndarray"):
        run_vae(KEY, _images().train_x, proto, [jc.replace()])
    with pytest.raises(TypeError, match="protocol must be a VAEProtocol; got dict"):
        run_vae(KEY, _images(), {"steps": 2}, [jc.replace()])
    with pytest.raises(TypeError, match="corpus must be a jaxcollapse.data.TextCorpus.*ndarray"):
        run_lm(KEY, np.asarray(corpus.train), LMProtocol(model, **kw), arms)


@pytest.mark.parametrize("field, value, match", [
    ("learning_rate", -1.0, "learning_rate must be finite and > 0"),
    ("n_eval", 0, "n_eval must be a positive integer"),
    ("steps", 1.5, "steps must be a positive integer"),
])
def test_vae_protocol_refuses(field, value, match):
    from jaxcollapse.learned.vae import VAEProtocol
    from jaxcollapse.models.vae import VAEConfig
    with pytest.raises((ValueError, TypeError), match=match):
        VAEProtocol(VAEConfig((8, 8), 2, 8, "mlp"), **{field: value})
