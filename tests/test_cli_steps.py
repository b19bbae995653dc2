"""The loop-step flags of ``jaxcollapse run`` (issue 15): runs with Monte Carlo beside the
theory the table prints, the settings in summary.json, and exit code 2 with one line
naming the flag for every bad value.

Monte Carlo against theory: |mean - theory| <= 5 SE (+ a float floor), SE from the
chains; a false failure has probability about 6e-7 per comparison."""

import json

import numpy as np
import pytest

from jaxcollapse import cli
from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import curation as tc
from jaxcollapse.theory import decoding as tdec

Z = 5.0


def _close(mean, se, theory, floor=1e-6):
    assert abs(mean - theory) <= Z * se + floor, (mean, se, theory)


def _run(argv, capsys):
    code = cli.main(["run", *argv, "--no-progress"])
    assert code == 0
    return capsys.readouterr().out


def test_gaussian_sampling_bias_matches_theory_bias(tmp_path, capsys):
    lam, M, G = 0.9, 50, 20
    text = _run(["gaussian", "--sampling-bias", str(lam), "--generations", str(G),
                 "--samples", str(M), "--chains", "512", "--seed", "1", "--report", "0", "1",
                 "20", "--out", str(tmp_path)], capsys)
    assert "sampling bias 0.9" in text
    s = json.loads((tmp_path / "summary.json").read_text())
    assert s["config"]["sampling_bias"] == lam
    ld = np.load(tmp_path / "arrays.npz")["metric_logdet_ratio"].astype(float)
    for row in s["table"][1:]:
        g = row["generation"]
        # the printed theory is the biased one, not the faithful loop's
        assert row["theory_w2sq_mean"] == pytest.approx(float(tb.w2sq_mean(g, M, lam)))
        assert row["theory_logdet_mean"] == pytest.approx(g * float(tb.logdet_drift(M, 1, lam)))
        _close(row["w2sq_mean"], row["w2sq_se"], row["theory_w2sq_mean"])
        _close(ld[:, g].mean(), ld[:, g].std() / np.sqrt(ld.shape[0]),
               row["theory_logdet_mean"], floor=1e-4)


@pytest.mark.slow  # ~30 s of CPU: the exact count path with the curation quadrature compiles
def test_categorical_steps_run_in_the_documented_order_beside_the_exact_map(tmp_path,
                                                                            capsys):
    K, M, C = 20, 200, 400
    reward = np.linspace(0.0, 3.0, K)
    np.save(tmp_path / "r.npy", reward)
    out = tmp_path / "run"
    # curation first on the command line: the steps still apply in the fixed order
    text = _run(["categorical", "--curate", "4", "--reward", str(tmp_path / "r.npy"),
                 "--eta", "0.9", "--top-p", "0.95", "--temperature", "1.3",
                 "--categories", str(K), "--samples", str(M), "--chains", str(C),
                 "--generations", "3", "--report", "0", "1", "3", "--seed", "2",
                 "--out", str(out)], capsys)
    assert "temperature 1.3 -> top-p 0.95 -> curate K=4 eta=0.9" in text
    s = json.loads((out / "summary.json").read_text())
    cfg = s["config"]
    assert cfg["step_order"] == ["temperature", "top_p", "curate"]
    assert (cfg["temperature"], cfg["top_p"], cfg["curate"], cfg["eta"]) == (1.3, 0.95, 4, 0.9)
    assert cfg["runner"] == "simulate"
    # the theory: temperature, top-p, then curation with the Zipf law as reference
    p0 = np.arange(1, K + 1, dtype=float) ** -1.1
    p0 /= p0.sum()
    q1 = np.asarray(tc.curated_law(tdec.top_p_map(tdec.temperature_map(p0, 1.3), 0.95),
                                   reward, 4, 0.9, p0))
    row1 = s["table"][1]
    assert row1["theory_reward"] == pytest.approx(float(q1 @ reward), rel=1e-5)
    assert row1["theory_entropy"] == pytest.approx(float(tdec.entropy(q1)), rel=1e-5)
    # E[p_1] = q1 exactly at every M, so the expected reward at generation 1 is exact
    _close(row1["reward_mean"], row1["reward_se"], row1["theory_reward"], floor=1e-5)
    # curation raises the reward over generations (the loop is far from its fixed point)
    assert s["table"][2]["reward_mean"] > row1["reward_mean"] > s["table"][0]["reward_mean"]


@pytest.mark.parametrize("name, argv, message", [
    ("gaussian", ["--sampling-bias", "0"], "--sampling-bias must be in (0, 1]"),
    ("gaussian", ["--sampling-bias", "1.5"], "--sampling-bias must be in (0, 1]"),
    ("gaussian", ["--sampling-bias", "nan"], "--sampling-bias must be in (0, 1]"),
    ("gmm", ["--sampling-bias", "-0.1"], "--sampling-bias must be in (0, 1]"),
    ("kde", ["--sampling-bias", "inf"], "--sampling-bias must be in (0, 1]"),
    ("categorical", ["--temperature", "0"], "--temperature must be a finite number > 0"),
    ("categorical", ["--temperature", "-1"], "--temperature must be a finite number > 0"),
    ("categorical", ["--temperature", "inf"], "--temperature must be a finite number > 0"),
    ("categorical", ["--top-k", "0"], "--top-k must be an integer in [1, --categories = 20]"),
    ("categorical", ["--top-k", "21"], "--top-k must be an integer in [1, --categories = 20]"),
    ("categorical", ["--top-p", "0"], "--top-p must be in (0, 1]"),
    ("categorical", ["--top-p", "1.01"], "--top-p must be in (0, 1]"),
    ("categorical", ["--curate", "1", "--reward", "linear:1"], "--curate must be an integer >= 2"),
    ("categorical", ["--curate", "2"], "--curate needs --reward"),
    ("categorical", ["--reward", "linear:1"], "--reward applies to --curate only"),
    ("categorical", ["--eta", "0.5"], "--eta applies to --curate only"),
    ("categorical", ["--curate", "2", "--reward", "linear:1", "--eta", "1.5"],
     "--eta must be in [0, 1]"),
    ("categorical", ["--curate", "2", "--reward", "linear:1", "--eta", "-0.1"],
     "--eta must be in [0, 1]"),
    ("categorical", ["--curate", "2", "--reward", "linear:nan"], "--reward must be linear:"),
    ("categorical", ["--curate", "2", "--reward", "cubic:2"], "--reward must be linear:"),
    ("categorical", ["--curate", "2", "--reward", "NOFILE.npy"], "no such file"),
    ("categorical", ["--curate", "2", "--reward", "SHAPE.npy"], "shape (20,)"),
    ("categorical", ["--curate", "2", "--reward", "NONFINITE.npy"], "finite rewards"),
    ("categorical", ["--categories", "1"], "--categories must be an integer >= 2"),
])
def test_bad_step_values_exit_2_naming_the_flag(tmp_path, capsys, name, argv, message):
    np.save(tmp_path / "SHAPE.npy", np.zeros(19))
    np.save(tmp_path / "NONFINITE.npy", np.r_[np.zeros(19), np.inf])
    argv = [str(tmp_path / a) if a.endswith(".npy") else a for a in argv]
    size = ["--categories", "20"] if name == "categorical" and "--categories" not in argv \
        else []
    with pytest.raises(SystemExit) as e:
        cli.main(["run", name, "--generations", "2", "--chains", "2", *size, *argv,
                  "--out", str(tmp_path / "out"), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not (tmp_path / "out" / "summary.json").exists()
