"""``jaxcollapse design``: the optimum beside its closed form in summary.json, the output
folder's rules, and bad flags exiting with code 2. Statistical checks: |optimum -
closed form| <= 5 SE (false-failure rate ~6e-7 for a normal estimate)."""

import json

import numpy as np
import pytest

from jaxcollapse import cli

Z = 5.0


def _run(argv, out):
    return cli.main(["design", *argv, "--out", str(out), "--x64"])


@pytest.mark.slow  # a compiled KDE loop (~15 s)
def test_bandwidth_summary_and_report(tmp_path, capsys):
    out = tmp_path / "bw"
    assert _run(["bandwidth", "--chains", "256", "--generations", "2"], out) == 0
    text = capsys.readouterr().out
    assert "closed form sqrt(s_0^2/(M - 1))" in text
    s = json.loads((out / "summary.json").read_text())
    o = s["optimum"]
    assert abs(o["h"] - o["h_closed_form"]) <= Z * o["h_se"], o
    np.testing.assert_allclose(o["h_closed_form"] ** 2, o["s0_sq"] / 19, rtol=1e-12)
    assert [r["generation"] for r in s["table"]] == [0, 1, 2]
    assert cli.main(["report", str(out)]) == 0  # the stored table prints
    assert "optimum:" in capsys.readouterr().out
    # a second run into the same folder is its own: allowed; a user's folder is not
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    assert _run(["bandwidth", "--chains", "256", "--generations", "2"],
                tmp_path / "mine") == 2
    assert "non-empty folder" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"


@pytest.mark.parametrize("argv,message", [
    (["schedule", "--budget", "1000", "--generations", "3"], "budget total=50.0 is "
                                                             "infeasible"),
    (["smallest-alpha", "--target", "-1"], "--target must be > 0"),
    (["weighted-fresh", "--chains", "1"], "--chains must be >= 2"),
])
def test_bad_flags_exit_2(tmp_path, capsys, argv, message):
    assert _run(argv, tmp_path / "bad") == 2
    assert message in capsys.readouterr().err


def test_unknown_problem_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["design", "nonsense"])
    assert e.value.code == 2


@pytest.mark.slow  # three more compiled loops (~1 min on 2 cores)
@pytest.mark.parametrize("problem,argv", [
    ("weighted-fresh", ["--steps", "60"]),
    ("smallest-alpha", ["--target", "0.15"]),
    ("schedule", ["--steps", "20", "--generations", "6"]),
])
def test_other_problems(tmp_path, problem, argv):
    out = tmp_path / problem
    assert _run([problem, "--chains", "256", *argv], out) == 0
    o = json.loads((out / "summary.json").read_text())["optimum"]
    if problem == "weighted-fresh":
        assert abs(o["w"] - o["w_closed_form"]) <= Z * o["w_se"], o
    elif problem == "smallest-alpha":
        assert abs(o["alpha"] - o["alpha_closed_form"]) <= Z * o["alpha_se"], o
    else:
        np.testing.assert_allclose(np.sum(o["alpha"]), 2.0, rtol=1e-9)
        assert o["gain"] > -Z * o["gain_se"]  # no worse than the constant schedule
