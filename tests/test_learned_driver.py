"""The recursive driver with a tiny plug-in (a Gaussian mean/scale 'model'), so the
generation loop, arms, keys, mixing, checkpoints and the NaN guard are checked in
seconds, apart from any network."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse.learned import (
    Arm,
    ArrayGenerator,
    NaNLossError,
    RegimeArm,
    as_arms,
    fit_loop,
    make_arms,
    run_recursive,
)
from jaxcollapse.learned.decoding import Decoding, decoding_arms, parse_decoding


class GaussianPlugin(ArrayGenerator):
    """'Trains' by taking the mean and standard deviation of its data; records the
    training set and the indices the driver chose, so the test can check them."""

    def __init__(self, data, nan_at=None):
        self.data = np.asarray(data, np.float64)
        self.config = dict(kind="gauss", n=len(data))
        self.nan_at = nan_at
        self.seen = []

    def init(self, key):
        return dict(mu=jnp.zeros(2), sd=jnp.ones(2))

    def train(self, key, data, params, label, progress):
        x = jnp.asarray(data)
        bad = self.nan_at is not None and label.endswith(self.nan_at)

        def step(i, s):
            loss = jnp.nan if bad else jnp.mean(x**2)
            return dict(mu=x.mean(0), sd=x.std(0)), loss

        return fit_loop(step, params, 3, label)

    def generate(self, key, params, replaced, arm, label, progress):
        z = np.asarray(jax.random.normal(key, (len(replaced), 2)))
        return np.asarray(params["mu"]) + np.asarray(params["sd"]) * z

    def evaluate(self, key, gen):
        self.seen.append((gen.arm and gen.arm.name, gen.generation, gen.kept, gen.data))
        sd = np.asarray(gen.params["sd"], np.float64)
        return dict(sd=sd.tolist(), n_train=len(gen.data), n_human=gen.n_human), \
            dict(sd=sd)


@pytest.fixture(scope="module")
def human():
    return np.random.default_rng(0).normal(size=(40, 2)) * np.array([1.0, 3.0])


ARMS = [jc.replace(), jc.mix(0.25, "fresh"), jc.mix(0.25, "fixed"), jc.accumulate()]


def test_regimes_drive_the_training_sets(human):
    g = GaussianPlugin(human)
    run = run_recursive(jax.random.key(0), g, ARMS, 3)
    assert list(run.records) == ["replace", "alpha=0.25", "alpha=0.25 fixed", "accumulate"]
    n = len(human)
    kept = {}
    for arm, gen, k, data in g.seen:
        if gen == 0:
            np.testing.assert_array_equal(data, human)  # generation 0: the human data
            continue
        rec = run.records[arm][gen]
        if arm == "accumulate":  # the pool grows by one synthetic set a generation
            assert len(data) == rec["n_train"] == (gen + 1) * n and rec["n_human"] == n
            np.testing.assert_array_equal(data[:n], human)
        else:
            n_h = 0 if arm == "replace" else round(0.25 * n)
            assert len(data) == n and rec["n_human"] == len(k) == n_h
            np.testing.assert_array_equal(data[:n_h], human[k])  # the kept rows, in order
            kept.setdefault(arm, []).append(np.asarray(k))
    fresh, fixed = kept["alpha=0.25"], kept["alpha=0.25 fixed"]
    assert all(np.array_equal(fixed[0], f) for f in fixed)  # the same human rows
    assert not all(np.array_equal(fresh[0], f) for f in fresh)  # new rows each time
    # replace and a fresh mix of 0 are the same arm (same key id): same numbers
    again = run_recursive(jax.random.key(0), GaussianPlugin(human),
                          {"zero": jc.mix(0.0, "fresh")}, 3)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert strip(again.records["zero"]) == strip(run.records["replace"])


def test_old_arm_encoding_is_an_alias(human):
    old = make_arms([0.0, 0.1], accumulate=True)
    new = as_arms([jc.mix(0.0, "fresh"), jc.mix(0.1, "fresh"), jc.accumulate()])
    assert [a.name for a in as_arms(old)] == [a.name for a in new]
    assert [a.key_id for a in old] == [a.key_id for a in new] == [0, 100_000, 10_000_001]
    r_old = run_recursive(jax.random.key(3), GaussianPlugin(human), old, 2)
    r_new = run_recursive(jax.random.key(3), GaussianPlugin(human), new, 2)
    strip = lambda rs: [{k: v for k, v in r.items() if k != "seconds"} for r in rs]
    assert all(strip(r_old.records[a]) == strip(r_new.records[a]) for a in r_old.records)


def test_resume_and_refusal(human, tmp_path):
    full = run_recursive(jax.random.key(1), GaussianPlugin(human), ARMS, 3)
    run_recursive(jax.random.key(1), GaussianPlugin(human), ARMS, 1, out=tmp_path)
    g = GaussianPlugin(human)
    resumed = run_recursive(jax.random.key(1), g, ARMS, 3, out=tmp_path, resume=True)
    # only generations 2 and 3 of each arm were trained again
    assert sorted({gen for _, gen, _, _ in g.seen}) == [2, 3]
    for a in full.records:
        assert [dict(r, seconds=0) for r in resumed.records[a]] == \
            [dict(r, seconds=0) for r in full.records[a]]
        for x, y in zip(resumed.artifacts[a], full.artifacts[a], strict=True):
            np.testing.assert_array_equal(x["sd"], y["sd"])
    other = GaussianPlugin(human[:30])
    with pytest.raises(ValueError, match=r"different config \(n: 40 vs 30\)"):
        run_recursive(jax.random.key(1), other, ARMS, 3, out=tmp_path, resume=True)
    with pytest.raises(ValueError, match="different config .*arm: .*source: fresh vs fixed"):
        run_recursive(jax.random.key(1), GaussianPlugin(human),
                      {"alpha=0.25": jc.mix(0.25, "fixed")}, 3, out=tmp_path, resume=True)
    with pytest.raises(ValueError, match="resume=True needs an output folder"):
        run_recursive(jax.random.key(1), GaussianPlugin(human), ARMS, 3, resume=True)


class _Counter(ArrayGenerator):
    """A 'model' whose training adds 1 to the parameters it starts from (10 when it
    fine-tunes, if it declares ``finetune``), so the start of every generation shows."""

    def __init__(self, finetune=False):
        self.data, self.config = np.arange(6.0)[:, None], {}
        if finetune:
            self.finetune = lambda key, data, params, label, progress: (params + 10.0, 0.0)

    def init(self, key):
        return np.zeros(1)

    def train(self, key, data, params, label, progress):
        return params + 1.0, 0.0

    def generate(self, key, params, replaced, arm, label, progress):
        return np.repeat(np.asarray(params)[None], len(replaced), 0)

    def evaluate(self, key, gen):
        return dict(p=float(gen.params[0])), {}


def test_start_from_init_or_from_generation_0(tmp_path):
    """Issue 18's two protocols: train from scratch every generation (start="init")
    or fine-tune the one generation-0 model every generation (start="generation0",
    with the generator's own ``finetune`` where it declares one)."""
    key = jax.random.key(0)
    p = lambda r: [x["p"] for x in r.records["replace"]]  # noqa: E731
    assert p(run_recursive(key, _Counter(), [jc.replace()], 3)) == [1.0, 1.0, 1.0, 1.0]
    assert p(run_recursive(key, _Counter(), [jc.replace()], 3, start="generation0")) == \
        [1.0, 2.0, 2.0, 2.0]  # always from generation 0's model, never chained
    ft = _Counter(finetune=True)
    assert isinstance(ft, jc.learned.FineTuner) and not isinstance(_Counter(), jc.learned.FineTuner)
    assert p(run_recursive(key, ft, [jc.replace()], 2, start="generation0")) == [1.0, 11.0, 11.0]
    assert p(run_recursive(key, ft, [jc.replace()], 2)) == [1.0, 1.0, 1.0]  # train, not finetune
    with pytest.raises(ValueError, match="start must be one of"):
        run_recursive(key, _Counter(), [jc.replace()], 2, start="base")
    # the start is part of the configuration: a run is not resumed under the other one
    run_recursive(key, _Counter(), [jc.replace()], 1, out=tmp_path, start="generation0")
    with pytest.raises(ValueError, match="different config .*start"):
        run_recursive(key, _Counter(), [jc.replace()], 2, out=tmp_path, resume=True)


def test_nan_loss_keeps_finished_generations(human, tmp_path):
    g = GaussianPlugin(human, nan_at="replace gen 2 train")
    with pytest.raises(NaNLossError, match="loss became nan at step 1"):
        run_recursive(jax.random.key(2), g, [jc.replace()], 3, out=tmp_path)
    resumed = run_recursive(jax.random.key(2), GaussianPlugin(human), [jc.replace()], 3,
                            out=tmp_path, resume=True)
    clean = run_recursive(jax.random.key(2), GaussianPlugin(human), [jc.replace()], 3)
    assert [r["sd"] for r in resumed.records["replace"]] == \
        [r["sd"] for r in clean.records["replace"]]


def test_bad_arms_and_generations(human):
    g = GaussianPlugin(human)
    with pytest.raises(ValueError, match="arm names must be distinct"):
        run_recursive(jax.random.key(0), g, [jc.replace(), jc.mix(0.0, "fresh"),
                                             RegimeArm("replace", jc.accumulate())], 1)
    with pytest.raises(ValueError, match="regime of arm 'x' must be"):
        RegimeArm("x", jc.accumulate_subsample())
    with pytest.raises(ValueError, match="n_generations must be an integer >= 0"):
        run_recursive(jax.random.key(0), g, [jc.replace()], -1)
    with pytest.raises(TypeError, match="arms must be a sequence"):
        run_recursive(jax.random.key(0), g, jc.replace(), 1)
    with pytest.raises(ValueError, match="arm name must be a non-empty string"):
        RegimeArm("a/b", jc.replace())
    assert Arm("alpha=0", 0.0, False).regime == jc.mix(0.0, "fresh")


def test_decoding_specs_and_arms():
    d = parse_decoding("beam:rp=3,beams=4")
    assert (d.method, d.n_beams, d.repetition_penalty) == ("beam", 4, 3.0)
    assert parse_decoding("sample", temperature=0.8).temperature == 0.8
    for spec, match in (("greedy", "decoding method must be one of"),
                        ("sample:t=0", "temperature must be > 0"),
                        ("sample:k=-1", "top_k must be an integer >= 0"),
                        ("sample:p=1.5", r"top_p must lie in \(0, 1\]"),
                        ("sample:rp=0.5", "repetition_penalty must be >= 1"),
                        ("beam:beams=0", "n_beams must be a positive integer"),
                        ("sample:t=hot", "t.* must be a number|temperature must be a number")):
        with pytest.raises(ValueError, match=match):
            parse_decoding(spec)
    arms = decoding_arms([jc.replace(), jc.accumulate()], [Decoding(), d])
    assert [a.name for a in arms] == ["replace | sample", "replace | beam4 rp3",
                                      "accumulate | sample", "accumulate | beam4 rp3"]
    assert arms[0].key_id == arms[1].key_id  # common random numbers across decodings
    assert arms[1].describe()["decoding"]["repetition_penalty"] == 3.0
    with pytest.raises(ValueError, match="decodings must be distinct"):
        decoding_arms([jc.replace()], [d, d])
