"""The command line: a real run end to end, its files, and exit code 2 on bad input."""

import json

import numpy as np
import pytest

from jaxcollapse import cli


def test_run_gaussian_writes_results_and_prints_theory(tmp_path, capsys):
    out = tmp_path / "run"
    code = cli.main(["run", "gaussian", "--generations", "40", "--samples", "50",
                     "--chains", "256", "--seed", "3", "--out", str(out), "--no-progress",
                     "--report", "0", "10", "40"])
    assert code == 0
    text = capsys.readouterr().out
    assert "Gaussian collapse" in text and "theory" in text
    summary = json.loads((out / "summary.json").read_text())
    assert summary["config"]["chains"] == 256
    assert [r["generation"] for r in summary["table"]] == [0, 10, 40]
    assert "theory_var_median" in summary["table"][1]
    arrays = np.load(out / "arrays.npz")
    assert arrays["var"].shape == (256, 41)
    assert arrays["metric_w2sq"].shape == (256, 41)
    assert json.loads((out / "progress.json").read_text())["complete"] is True
    assert not (out / "chunks").exists()
    # the same seed gives the same numbers
    out2 = tmp_path / "run2"
    cli.main(["run", "gaussian", "--generations", "40", "--samples", "50", "--chains", "256",
              "--seed", "3", "--out", str(out2), "--no-progress"])
    np.testing.assert_array_equal(arrays["var"], np.load(out2 / "arrays.npz")["var"])


def test_run_gaussian_mix(tmp_path, capsys):
    code = cli.main(["run", "gaussian", "--generations", "10", "--samples", "20",
                     "--chains", "64", "--regime", "mix", "--alpha", "0.1",
                     "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["config"]["alpha"] == 0.1


@pytest.mark.parametrize("argv, message", [
    (["--samples", "1"], "n_samples must be >= 2"),
    (["--regime", "mix", "--alpha", "1.5"], "alpha must lie in [0, 1]"),
    (["--chains", "0"], "--chains must be >= 1"),
    (["--report", "5000"], "--report generations must lie in"),
])
def test_bad_arguments_exit_2_with_one_line(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "gaussian", "--generations", "10", "--out", str(tmp_path),
                  "--no-progress", *argv])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_unknown_regime_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", "gaussian", "--regime", "shuffle"])
    assert e.value.code == 2
