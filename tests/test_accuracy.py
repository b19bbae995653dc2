"""Next-token accuracy on known targets, <unk> shares and frequency bands, against an
independent NumPy computation from the same logits."""

import jax
import numpy as np
import pytest

from jaxcollapse.models import apply, init_state, make_optimizer, preset
from jaxcollapse.models.accuracy import accuracy_stats, frequency_bands, predictions

V, T = 30, 16


@pytest.fixture(scope="module")
def model():
    cfg = preset("tiny", V, max_len=T)
    return cfg, init_state(jax.random.key(0), cfg, make_optimizer()).params


def test_predictions_and_stats_against_numpy_from_the_same_logits(model):
    cfg, params = model
    rng = np.random.default_rng(1)
    stream = rng.zipf(1.3, 5 * T + 1) % V  # 5 full blocks: every position scored
    targets, top1, k5 = predictions(params, cfg, stream, seq_len=T, batch_size=2)
    blocks = stream[:-1].reshape(5, T)
    logits = np.asarray(apply(params, cfg, blocks), np.float64).reshape(-1, V)
    want_t = stream[1:]
    order = np.argsort(-logits, axis=-1, kind="stable")
    np.testing.assert_array_equal(targets, want_t)
    np.testing.assert_array_equal(top1, order[:, 0])
    np.testing.assert_array_equal(k5, (order[:, :5] == want_t[:, None]).any(-1))
    unk = int(np.bincount(want_t).argmax())  # treat the commonest target as <unk>
    counts = np.bincount(stream, minlength=V)
    bands = frequency_bands(counts)
    got = accuracy_stats(targets, top1, k5, unk_id=unk, bands=bands)
    known = [i for i in range(len(want_t)) if want_t[i] != unk]
    assert got["top1_known"] == pytest.approx(
        sum(order[i, 0] == want_t[i] for i in known) / len(known), rel=1e-12)
    assert got["top5_known"] == pytest.approx(
        sum(want_t[i] in order[i, :5] for i in known) / len(known), rel=1e-12)
    assert got["unk_targets"] == pytest.approx(1 - len(known) / len(want_t), rel=1e-12)
    assert got["unk_predictions"] == pytest.approx(np.mean(order[:, 0] == unk), rel=1e-12)
    # the bands partition the known targets
    assert sum(got["band_tokens"]) == len(known)
    for b, name in enumerate(("head", "torso", "tail")):
        idx = [i for i in known if bands[want_t[i]] == b]
        assert got["band_tokens"][b] == len(idx)
        if idx:
            assert got[f"top1_{name}"] == pytest.approx(
                np.mean([order[i, 0] == want_t[i] for i in idx]), rel=1e-12)


def test_always_the_most_frequent_token():
    rng = np.random.default_rng(2)
    counts = np.array([400, 200, 100, 50, 30, 20, 10, 5, 3, 2])
    t = rng.choice(10, size=5_000, p=counts / counts.sum())
    unk = 9
    bands = frequency_bands(counts)
    s = accuracy_stats(t, np.zeros_like(t), t == 0, unk_id=unk, bands=bands)
    known = t != unk
    share = np.mean(t[known] == 0)
    assert s["top1_known"] == pytest.approx(share, rel=1e-12)
    assert s["unk_predictions"] == 0.0
    assert bands.tolist() == [0, 0, 1, 1, 2, 2, 2, 2, 2, 2]  # head: 600 of 820 tokens
    head = known & (bands[t] == 0)
    assert s["top1_head"] == pytest.approx(np.mean(t[head] == 0), rel=1e-12)
    assert s["top1_torso"] == 0.0 and s["top1_tail"] == 0.0  # 0 on every other target
    # always predicting <unk>: plain accuracy is the <unk> share, known accuracy 0
    s = accuracy_stats(t, np.full_like(t, unk), t == unk, unk_id=unk, bands=bands)
    assert s["top1_known"] == 0.0 and s["unk_predictions"] == 1.0
    assert s["unk_targets"] == pytest.approx(np.mean(t == unk), rel=1e-12)


def test_bad_band_arguments():
    with pytest.raises(ValueError, match="cuts must satisfy"):
        frequency_bands(np.ones(3), cuts=(0.9, 0.5))
    with pytest.raises(ValueError, match="train_counts must be"):
        frequency_bands(np.zeros(3))
