"""The recursive LM protocol end to end (tiny model, small WikiText-2 slice)."""

import json

import jax
import numpy as np
import pytest
from scipy.special import logsumexp

from jaxcollapse import cli
from jaxcollapse.data import load_wikitext2
from jaxcollapse.learned import (
    LMProtocol,
    NaNLossError,
    RegimeArm,
    make_arms,
    run_lm,
    unigram_stats,
)
from jaxcollapse.learned.checkpoints import load_params
from jaxcollapse.learned.decoding import Decoding, decoding_arms, format_text_table
from jaxcollapse.models import apply, init_state, make_optimizer, preset

P = 8  # prompt and continuation length


def _strip(recs):
    """Records without wall-clock times (the only field that may differ)."""
    return [{k: v for k, v in r.items() if k != "seconds"} for r in recs]


@pytest.fixture(scope="module")
def setup(shared_data):
    corpus = load_wikitext2(shared_data / "wikitext-2", max_train_tokens=2_048, max_vocab=300)
    corpus = corpus._replace(valid=corpus.valid[:1_024], test=corpus.test[:1_024])
    proto = LMProtocol(preset("tiny", len(corpus.vocab), max_len=16), n_generations=2,
                       steps=50, warmup_steps=5, batch_size=8, seq_len=16, prompt_len=P,
                       gen_len=P, learning_rate=1e-2, n_score=64, gen_batch=128)
    return corpus, proto


@pytest.fixture(scope="module")
def full_run(setup, tmp_path_factory):
    corpus, proto = setup
    out = tmp_path_factory.mktemp("lm_full")
    arms = make_arms([0.0, 0.1], accumulate=True)
    return run_lm(jax.random.key(7), corpus, proto, arms, out=out), out


def test_two_generations_all_arms(setup, full_run):
    corpus, proto = setup
    run, out = full_run
    n_blocks = len(corpus.train) // P
    assert list(run.records) == ["alpha=0", "alpha=0.1", "accumulate"]
    for name, recs in run.records.items():
        assert [r["generation"] for r in recs] == [0, 1, 2]
        assert recs[0] == run.records["alpha=0"][0]  # generation 0 is shared
        for r in recs:
            assert np.isfinite([r["test_ppl"], r["valid_ppl"], r["train_loss"]]).all()
            assert 1 < r["test_ppl"] < proto.model.vocab_size
            assert r["test_tokens"] == len(corpus.test) - 1
        assert len(run.sample_perplexities[name]) == 2
    a0, a1, acc = (run.records[k] for k in ("alpha=0", "alpha=0.1", "accumulate"))
    # replace: all synthetic; alpha=0.1: round(0.1 * blocks) human blocks are kept
    assert a0[1]["human_tokens"] == 0 and a0[1]["train_tokens"] == n_blocks * P
    n_h = round(0.1 * n_blocks)
    assert a1[1]["human_tokens"] == n_h * P and a1[1]["train_tokens"] == n_blocks * P
    assert a1[1]["synthetic"]["types"] <= proto.model.vocab_size
    # accumulate: the pool grows by one synthetic set a generation
    assert [r["train_tokens"] for r in acc] == [len(corpus.train)] + [
        len(corpus.train) + g * n_blocks * P for g in (1, 2)]
    with np.load(out / "gen0_perplexities.npz") as z:
        assert z["alpha=0/gen2"].shape == (proto.n_score,)
        assert np.all(z["alpha=0/gen2"] >= 1)
        np.testing.assert_array_equal(z["human/test"], run.human_perplexities)


def test_human_reference_perplexities_recomputed_independently(setup, full_run):
    # The histogram reference: held-out human blocks, the last P tokens scored given
    # the first P, under the generation-0 model (restored from its checkpoint) by a
    # log-softmax written here, not by the library's scoring code.
    corpus, proto = setup
    run, out = full_run
    cfg = proto.model
    tx = make_optimizer(proto.learning_rate, total_steps=proto.steps,
                        warmup_steps=proto.warmup_steps, weight_decay=proto.weight_decay)
    state0, _ = load_params(out / "checkpoints" / "gen0",
                            lambda: init_state(jax.random.key(0), cfg, tx))
    m = min(proto.n_score, len(corpus.test) // (2 * P))
    assert run.human_perplexities.shape == (m,) and m == 1_024 // 16
    rows = np.asarray(corpus.test[: m * 2 * P]).reshape(m, 2 * P)
    logits = np.asarray(apply(state0.params, cfg, rows[:, :-1]), np.float64)
    logp = logits - logsumexp(logits, axis=-1, keepdims=True)
    nll = -np.take_along_axis(logp, rows[:, 1:, None], axis=-1)[..., 0]
    want = np.exp(nll[:, P - 1:].mean(axis=1))
    np.testing.assert_allclose(run.human_perplexities, want, rtol=1e-4)
    # generation-0 text is likelier than uniform under the model that wrote it
    assert np.median(run.sample_perplexities["alpha=0"][0]) < cfg.vocab_size


def test_resume_equals_uninterrupted(setup, full_run, tmp_path):
    corpus, proto = setup
    run, _ = full_run
    arms = make_arms([0.0, 0.1], accumulate=True)
    key = jax.random.key(7)
    first = run_lm(key, corpus, proto.__class__(**{**proto.__dict__, "n_generations": 1}),
                   arms, out=tmp_path)
    resumed = run_lm(key, corpus, proto, arms, out=tmp_path, resume=True)
    for name in run.records:
        assert _strip(resumed.records[name]) == _strip(run.records[name])
        # finished generations were loaded, not redone (identical wall-clock record)
        assert resumed.records[name][1]["seconds"] == first.records[name][1]["seconds"]
        for a, b in zip(resumed.sample_perplexities[name], run.sample_perplexities[name],
                        strict=True):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(resumed.human_perplexities, run.human_perplexities)


def test_resume_mismatches(setup, full_run, shared_data):
    corpus, proto = setup
    _, out = full_run
    arms = make_arms([0.0])
    other = load_wikitext2(shared_data / "wikitext-2", max_train_tokens=2_048, max_vocab=299)
    other_proto = proto.__class__(**{**proto.__dict__,
                                     "model": preset("tiny", 299, max_len=16)})
    with pytest.raises(ValueError, match="vocabulary mismatch on resume"):
        run_lm(jax.random.key(7), other, other_proto, arms, out=out, resume=True)
    with pytest.raises(ValueError, match=r"different config \(steps: 50 vs 60\)"):
        run_lm(jax.random.key(7), corpus, proto.__class__(**{**proto.__dict__, "steps": 60}),
               arms, out=out, resume=True)


def test_decoding_arms_share_keys_and_report_text_statistics(setup, full_run, tmp_path):
    corpus, proto = setup
    run, out = full_run
    beam = Decoding("beam", n_beams=2, repetition_penalty=3.0)
    one = proto.__class__(**{**proto.__dict__, "n_generations": 1})
    arms = decoding_arms(make_arms([0.0], accumulate=False), [proto.default_decoding, beam])
    r = run_lm(jax.random.key(7), corpus, one, arms)
    # the arm that decodes as the protocol does is bitwise the plain alpha=0 arm
    assert _strip(r.records["alpha=0 | sample"]) == _strip(run.records["alpha=0"][:2])
    np.testing.assert_array_equal(r.sample_perplexities["alpha=0 | sample"][0],
                                  run.sample_perplexities["alpha=0"][0])
    b = r.records["alpha=0 | beam2 rp3"][1]
    s = r.records["alpha=0 | sample"][1]
    assert b["train_tokens"] == s["train_tokens"] and b["human_tokens"] == s["human_tokens"]
    for rec in (b, s):  # per arm: unigram entropy and lost mass of the generated text
        assert 0 < rec["synthetic"]["entropy"] <= np.log(proto.model.vocab_size)
        assert 0 <= rec["synthetic"]["lost_mass"] <= 1
    assert b["synthetic"] != s["synthetic"]
    table = format_text_table(r.records)
    assert "alpha=0 | beam2 rp3" in table and f"{b['synthetic']['entropy']:8.4f}" in table
    # a checkpoint written with one decoding is not resumed with another
    with pytest.raises(ValueError, match=r"different config \(arm: .*decoding"):
        run_lm(jax.random.key(7), corpus, proto,
               [RegimeArm("alpha=0", make_arms([0.0])[0].regime, (("decoding", beam),))],
               out=out, resume=True)


def test_nan_loss_stops_with_clear_message(setup, tmp_path):
    corpus, proto = setup
    bad = proto.__class__(**{**proto.__dict__, "learning_rate": 1e30})
    with pytest.raises(NaNLossError, match="loss became nan at step"):
        run_lm(jax.random.key(0), corpus, bad, make_arms([0.0]), out=tmp_path)
    assert not list((tmp_path / "checkpoints").glob("gen0/[0-9]*"))  # no step committed


def test_bad_protocol_settings(setup):
    corpus, proto = setup
    with pytest.raises(ValueError, match="alpha must lie in"):
        make_arms([0.0, 1.2])
    with pytest.raises(ValueError, match="exceeds the model's context"):
        LMProtocol(proto.model, prompt_len=12, gen_len=8)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        LMProtocol(proto.model, seq_len=16, prompt_len=8, gen_len=8, temperature=0.0)
    with pytest.raises(ValueError, match="repetition_penalty must be >= 1"):
        LMProtocol(proto.model, seq_len=16, prompt_len=8, gen_len=8, repetition_penalty=0.5)
    with pytest.raises(ValueError, match="vocab_size"):
        run_lm(jax.random.key(0), corpus,
               proto.__class__(**{**proto.__dict__, "model": preset("tiny", 7, max_len=16)}),
               make_arms([0.0]))
    with pytest.raises(ValueError, match="resume=True needs"):
        run_lm(jax.random.key(0), corpus, proto, make_arms([0.0]), resume=True)


def test_finetune_protocol_fine_tunes_the_base_model(setup):
    """The paper's protocol (issue 18): later generations start from generation 0's
    model and train finetune_steps steps; the records state steps and epochs."""
    corpus, proto = setup
    ft = proto.__class__(**{**proto.__dict__, "n_generations": 1, "training": "finetune",
                            "finetune_steps": 3})
    run = run_lm(jax.random.key(3), corpus, ft, make_arms([0.0], accumulate=False))
    rec0, rec1 = run.records["alpha=0"]
    assert (rec0["train_steps"], rec1["train_steps"]) == (proto.steps, 3)
    for rec in (rec0, rec1):
        assert rec["epochs"] == pytest.approx(
            rec["train_steps"] * proto.batch_size * proto.seq_len / rec["train_tokens"])
    # three steps from the trained base stay near it; three from scratch do not
    assert rec1["test_ppl"] < 1.5 * rec0["test_ppl"]
    with pytest.raises(ValueError, match="training must be one of"):
        proto.__class__(**{**proto.__dict__, "training": "pretrain"})
    with pytest.raises(ValueError, match="finetune_steps must be None or a positive integer"):
        proto.__class__(**{**proto.__dict__, "finetune_steps": 0})


def test_unigram_stats_against_counts():
    human = np.array([50, 30, 10, 5, 3, 2])
    toks = np.array([0, 0, 0, 1, 1, 2, 0, 1])
    s = unigram_stats(toks, human)
    assert s["types"] == 3 and s["vanished_types"] == 3
    assert s["lost_mass"] == pytest.approx(10 / 100, rel=1e-12)
    # an exact power law f ~ r^-2 gives back beta = 2
    ranks = np.arange(1, 11)
    toks = np.repeat(np.arange(10), (1000 / ranks**2).round().astype(int))
    assert unigram_stats(toks, np.ones(10))["zipf"] == pytest.approx(2.0, abs=0.02)


def test_cli_end_to_end(shared_data, tmp_path, capsys):
    rc = cli.main(["run", "lm", "--preset", "tiny", "--data", str(shared_data / "wikitext-2"),
                   "--generations", "1", "--steps", "20", "--no-accumulate",
                   "--max-train-tokens", "2048", "--out", str(tmp_path), "--no-progress"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "wikitext-2" in out and "alpha=0.1 ppl" in out
    res = json.loads((tmp_path / "results.json").read_text())
    assert set(res["records"]["0"]) == {"alpha=0", "alpha=0.1"}
    # every generation of a new run may start from a base checkpoint instead
    base = tmp_path / "seed0" / "checkpoints" / "gen0"
    rc = cli.main(["run", "lm", "--preset", "tiny", "--data", str(shared_data / "wikitext-2"),
                   "--generations", "0", "--steps", "20", "--no-accumulate",
                   "--max-train-tokens", "2048", "--out", str(tmp_path / "b"), "--no-progress",
                   "--init-checkpoint", str(base)])
    res_b = json.loads((tmp_path / "b" / "results.json").read_text())
    # starting from the trained generation 0 and training again lowers its loss further
    assert (res_b["records"]["0"]["alpha=0"][0]["train_loss"]
            < res["records"]["0"]["alpha=0"][0]["train_loss"])
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "lm", "--alpha", "1.5", "--out", str(tmp_path)])
    assert e.value.code == 2
    with pytest.raises(SystemExit):
        cli.main(["run", "lm", "--data", str(tmp_path / "missing"), "--out", str(tmp_path)])
    assert "data directory does not exist" in capsys.readouterr().err


def test_cli_decoding_flags_build_arms_or_the_protocol_decoding():
    from jaxcollapse.experiments.lm import build

    parse = cli.build_parser().parse_args
    _, proto, arms, _ = build(parse(["run", "lm", "--preset", "tiny", "--no-accumulate",
                                     "--alpha", "0", "0.1", "--decoding", "sample:t=0.8",
                                     "beam:rp=3", "--beams", "3"]))
    assert [a.name for a in arms] == ["alpha=0 | sample T0.8", "alpha=0 | beam3 rp3",
                                      "alpha=0.1 | sample T0.8", "alpha=0.1 | beam3 rp3"]
    _, proto, arms, _ = build(parse(["run", "lm", "--preset", "tiny", "--decoding",
                                     "beam:rp=3"]))
    assert (proto.decoding, proto.n_beams, proto.repetition_penalty) == ("beam", 5, 3.0)
    assert [a.name for a in arms] == ["alpha=0", "alpha=0.1", "accumulate"]
    with pytest.raises(ValueError, match="top_p must lie in"):
        build(parse(["run", "lm", "--preset", "tiny", "--decoding", "sample:p=2"]))
