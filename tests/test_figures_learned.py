"""Figures 9 (language model) and 10 (VAE) render in --quick mode on the shared
real data, write PNG/PDF/npz/JSON, and the data behind them is what it claims:
generation-0 numbers recomputed from the restored generation-0 model, normalised
histograms of the stored samples, and the collapse the figures are meant to show."""

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxcollapse.data import load_mnist, load_wikitext2
from jaxcollapse.learned.checkpoints import load_params
from jaxcollapse.models import (
    TransformerConfig,
    evaluate,
    init_state,
    make_optimizer,
    sequence_perplexity,
)

REPO = Path(__file__).resolve().parents[1]
pytest.importorskip("matplotlib")


def _render(name, out, data):
    env = {**os.environ, "JAXCOLLAPSE_DATA": str(data)}
    proc = subprocess.run([sys.executable, str(REPO / "paper_figures" / "run_all.py"),
                           "--quick", "--only", name, "--out", str(out)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    for ext in ("png", "pdf", "npz", "json"):
        assert (out / f"{name}.{ext}").stat().st_size > 0
    return dict(np.load(out / f"{name}.npz")), json.loads((out / f"{name}.json").read_text())


@pytest.mark.slow
def test_figure_9_language_model(tmp_path, shared_data):
    d, meta = _render("fig09_lm", tmp_path, shared_data)
    proto = meta["protocol"]
    arms, seeds = meta["arms"], [int(s) for s in d["seeds"]]
    G, S, n = proto["n_generations"], len(seeds), proto["n_score"]
    assert arms == ["alpha=0", "alpha=0.1"] and S >= 2
    edges = d["hist_edges"]
    for a in arms:
        ppl, samples = d[f"test_ppl[{a}]"], d[f"sample_ppl[{a}]"]
        assert ppl.shape == (S, G + 1) and samples.shape == (S, G, n)
        assert np.all(np.isfinite(ppl)) and np.all(ppl > 1)
        assert np.all(np.isfinite(samples)) and np.all(samples >= 1)
        # one generation-0 model per seed, shared by the arms
        np.testing.assert_array_equal(ppl[:, 0], d["test_ppl[alpha=0]"][:, 0])
        # each histogram is the density of log10 perplexity of the stored samples
        for g in range(G):
            h = d[f"hist[{a}]"][g]
            np.testing.assert_allclose(h, np.histogram(np.log10(samples[:, g]), bins=edges,
                                                       density=True)[0], rtol=1e-12)
            assert np.sum(h * np.diff(edges)) == pytest.approx(1, abs=1e-12)
    assert np.sum(d["hist_human"] * np.diff(edges)) == pytest.approx(1, abs=1e-12)

    # generation 0, recomputed from its checkpoint: test perplexity by evaluate() and
    # the human-text reference of the histograms by sequence_perplexity()
    corpus = load_wikitext2(shared_data / "wikitext-2", max_vocab=meta["vocab"],
                            max_train_tokens=meta["train_tokens"])
    cfg = TransformerConfig(**proto["model"])
    tx = make_optimizer(proto["learning_rate"], total_steps=proto["steps"],
                        warmup_steps=proto["warmup_steps"], weight_decay=proto["weight_decay"])
    block = proto["prompt_len"] + proto["gen_len"]
    human = d["human_ppl"]
    assert human.shape[0] == S and np.all(np.isfinite(human))
    rows = np.asarray(corpus.test[: human.shape[1] * block]).reshape(-1, block)
    for i, s in enumerate(seeds):
        state, _ = load_params(Path(meta["runs"]) / f"seed{s}" / "checkpoints" / "gen0",
                               lambda: init_state(jax.random.key(0), cfg, tx))
        ev = evaluate(state.params, cfg, corpus.test[: proto["eval_tokens"]],
                      seq_len=proto["seq_len"])
        assert d["test_ppl[alpha=0]"][i, 0] == pytest.approx(ev.perplexity, rel=1e-5)
        assert d["test_acc[alpha=0]"][i, 0] == pytest.approx(ev.accuracy, rel=1e-5)
        np.testing.assert_allclose(human[i], sequence_perplexity(
            state.params, cfg, rows, start=proto["prompt_len"]), rtol=1e-5)

    # the effect the figure shows (fixed seeds, margins of several times in quick mode):
    # without human data the test perplexity grows and ends far above the alpha = 0.1
    # arm; generated text is likelier under generation 0 than human text, and more so
    # each generation
    p0, p1 = d["test_ppl[alpha=0]"].mean(0), d["test_ppl[alpha=0.1]"].mean(0)
    assert p0[-1] > 2 * p0[0] and p0[-1] > 2 * p1[-1]
    med = np.median(d["sample_ppl[alpha=0]"], axis=(0, 2))
    assert med[0] < np.median(human) and med[-1] < med[0]


@pytest.mark.slow
def test_figure_10_vae(tmp_path, shared_data):
    d, meta = _render("fig10_vae", tmp_path, shared_data)
    proto = meta["protocol"]
    G, arms = proto["n_generations"], meta["arms"]
    h, w = proto["model"]["image_shape"]
    grids = d["grids"]
    assert grids.shape == (G + 1, 36, h, w) and grids.min() >= 0 and grids.max() <= 1
    for a in arms:
        for k in ("test_elbo", "latent_spread", "pixel_var"):
            v = d[f"{k}[{a}]"]
            assert v.shape == (G + 1,) and np.all(np.isfinite(v))
            assert v[0] == d[f"{k}[alpha=0]"][0]  # one generation-0 model
        np.testing.assert_array_equal(d[f"class_hist[{a}]"].sum(1), proto["n_probe"])
    # the human reference, recomputed from the loader
    data = load_mnist(shared_data / "mnist")
    assert meta["test_images"] == len(data.test_x) == 2_000
    assert d["human_pixel_var"] == pytest.approx(
        np.asarray(data.test_x, np.float64).var(axis=0).mean(), rel=1e-12)
    np.testing.assert_array_equal(d["human_grid"], data.test_x[:36])
    # collapse without human data: samples lose their spread under the generation-0
    # encoder and their diversity (margins of several times in quick mode), and fit the
    # human test digits worse, worse than with 10% human images (a margin of ~20 nats
    # in quick mode); the sample grids grow more alike
    sp, pv = d["latent_spread[alpha=0]"], d["pixel_var[alpha=0]"]
    assert sp[-1] < 0.5 * sp[0] and pv[-1] < 0.5 * pv[0] < 0.5 * d["human_pixel_var"]
    e0, e1 = d["test_elbo[alpha=0]"], d["test_elbo[alpha=0.1]"]
    assert e0[-1] < e0[0] and e0[-1] < e1[-1]
    spread = grids.reshape(G + 1, 36, -1).var(axis=1).mean(axis=1)
    assert spread[-1] < spread[0]


def test_missing_data_is_a_clear_error(tmp_path):
    for name, what in (("fig09_lm", "wikitext-2"), ("fig10_vae", "mnist")):
        proc = subprocess.run([sys.executable, str(REPO / "paper_figures" / f"{name}.py"),
                               "--quick", "--data", str(tmp_path), "--out", str(tmp_path)],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert f"--data: {what} not found" in proc.stderr and str(tmp_path) in proc.stderr
        assert not list(tmp_path.glob(f"{name}.*"))
