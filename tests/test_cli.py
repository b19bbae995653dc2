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
    with pytest.raises(SystemExit) as e:  # unknown flags: only bench passes them on
        cli.main(["report", "runs/x", "--timeout", "5"])
    assert e.value.code == 2
    assert "unrecognized arguments: --timeout 5" in capsys.readouterr().err


# ------------------------------------------------------------- shared flags, --help

@pytest.mark.parametrize("name", list(cli.RUNNERS))
def test_every_experiment_has_the_shared_flags_and_examples(name, capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", name, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and f"jaxcollapse run {name}" in text
    for flag in ("--seed", "--chains", "--generations", "--samples", "--regime", "--alpha",
                 "--out", "--x64", "--quick"):
        assert flag in text


@pytest.mark.parametrize("argv, message", [
    (["lm", "--chains", "4"], "--chains does not apply to 'run lm' (use --seeds)"),
    (["vae", "--regime", "mix"], "--regime does not apply to 'run vae'"),
    (["vae", "--samples", "10"], "--samples does not apply to 'run vae'"),
    (["categorical", "--alpha", "0.2"], "--alpha does not apply to 'run categorical'"),
    (["decompose", "--alpha", "0.2"], "--alpha does not apply to 'run decompose'"),
    (["kde", "--alpha", "0.2"], "--alpha applies to --regime mix only"),
    (["gmm", "--generations", "0"], "--generations must be >= 1"),
    (["regression", "--samples", "0"], "--samples must be >= 1"),
    (["lm", "--alpha", "0", "1.5"], "--alpha must lie in [0, 1]"),
    (["lm", "--quick", "--preset", "paper"], "--quick selects --preset tiny"),
    (["decompose", "--regime", "accumulate"], "invalid choice: 'accumulate'"),
    (["kde", "--coordinator", "127.0.0.1:1"], "--coordinator does not apply to 'run kde'"),
    (["lm", "--num-processes", "2"], "--num-processes does not apply to 'run lm'"),
])
def test_unused_or_contradictory_shared_flags_exit_2(tmp_path, capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        cli.main(["run", *argv, "--out", str(tmp_path), "--no-progress"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert message in err[-1]
    assert not (tmp_path / "summary.json").exists()


def test_quick_selects_the_tiny_preset_of_the_learned_generators():
    for name in ("lm", "vae"):
        args = cli.build_parser().parse_args(["run", name, "--quick"])
        cli._check_shared(args)
        assert args.preset == "tiny"


# ------------------------------------------------------------------------ report

@pytest.fixture(scope="module")
def gaussian_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "g"
    # the shapes of the first test above: its compiled program is reused
    assert cli.main(["run", "gaussian", "--generations", "40", "--samples", "50",
                     "--chains", "256", "--seed", "1", "--out", str(out), "--no-progress",
                     "--report", "0", "4", "40"]) == 0
    return out


def _table(text):
    """header -> column of a printed report table block (the first block)."""
    lines = [ln for ln in text.splitlines() if ln.strip()]
    i = next(i for i, ln in enumerate(lines) if ln.split()[0] == "gen")
    head = lines[i].split()
    rows = [ln.split() for ln in lines[i + 1:]]
    rows = rows[:next((j for j, r in enumerate(rows) if not r[0].isdigit()), len(rows))]
    return head, rows


def test_report_prints_settings_and_table_beside_theory(gaussian_run, capsys):
    from jaxcollapse.theory import gaussian as tg

    assert cli.main(["report", str(gaussian_run)]) == 0
    text = capsys.readouterr().out
    assert "gaussian run in" in text and "chains=256" in text and "samples=50" in text
    head, rows = _table(text)
    assert [r[0] for r in rows] == ["0", "4", "40"]
    w = head.index("w2sq")
    assert head[w + 1] == "theory"  # theory sits beside its Monte Carlo column
    summary = json.loads((gaussian_run / "summary.json").read_text())
    for r, s in zip(rows, summary["table"], strict=True):
        mean, se = (float(x) for x in r[w].split("±"))
        assert mean == pytest.approx(s["w2sq_mean"], rel=1e-3)
        assert se == pytest.approx(s["w2sq_se"], rel=0.05)
        assert float(r[w + 1]) == pytest.approx(float(tg.w2sq_mean(s["generation"], 50)),
                                                rel=1e-3)


def test_report_at_recomputes_from_the_arrays(gaussian_run, capsys):
    assert cli.main(["report", str(gaussian_run), "--at", "3", "40"]) == 0
    head, rows = _table(capsys.readouterr().out)
    a = np.load(gaussian_run / "arrays.npz")["metric_w2sq"].astype(np.float64)
    col = head.index("w2sq")
    for r, g in zip(rows, (3, 40), strict=True):
        mean, se = (float(x) for x in r[col].split("±"))
        assert mean == pytest.approx(a[:, g].mean(), rel=1e-3)
        assert se == pytest.approx(a[:, g].std() / 16.0, rel=0.05)


def test_report_plot(gaussian_run, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    png = tmp_path / "g.png"
    assert cli.main(["report", str(gaussian_run), "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_report_plot_without_matplotlib_says_what_to_install(gaussian_run, tmp_path,
                                                              monkeypatch, capsys):
    import sys

    for name in ("matplotlib", "matplotlib.figure"):  # importing them fails
        monkeypatch.setitem(sys.modules, name, None)
    assert cli.main(["report", str(gaussian_run), "--plot", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'jaxcollapse[figures]'" in err[0]


def test_report_of_a_learned_run_averages_seeds(tmp_path, capsys):
    # results.json as run_lm writes it: seed -> arm -> one record a generation
    recs = {s: {"alpha=0": [dict(generation=g, test_ppl=100.0 + 10 * g + int(s), test_acc=0.2)
                            for g in range(3)]} for s in ("0", "1")}
    (tmp_path / "results.json").write_text(json.dumps(dict(
        corpus="toy", protocol=dict(model=dict(d_model=8), steps=5), seeds=[0, 1],
        records=recs)))
    assert cli.main(["report", str(tmp_path)]) == 0
    head, rows = _table(capsys.readouterr().out)
    c = head.index("test_ppl")
    mean, spread = rows[2][c].split("±")
    assert float(mean) == pytest.approx(120.5) and float(spread) == pytest.approx(0.71, 0.01)


@pytest.mark.parametrize("setup, message", [
    (None, "is not a directory"),
    ({}, "holds no summary.json or results.json"),
    ({"progress.json": '{"generations_done": 7, "complete": false}'}, "unfinished (7 "),
    ({"summary.json": "{not json"}, "cannot read"),
    ({"summary.json": '{"config": {}}'}, "is not a jaxcollapse result"),
])
def test_report_of_a_bad_directory_exits_2_with_one_line(tmp_path, capsys, setup, message):
    d = tmp_path / "run"
    if setup is not None:
        d.mkdir()
        for name, text in setup.items():
            (d / name).write_text(text)
    assert cli.main(["report", str(d)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("jaxcollapse report:")


def test_report_at_out_of_range(gaussian_run, capsys):
    assert cli.main(["report", str(gaussian_run), "--at", "41"]) == 2
    assert "--at generations must lie in [0, 40]" in capsys.readouterr().err


# ------------------------------------------------------------------------- bench

def test_bench_calls_the_suite_of_the_checkout(tmp_path, monkeypatch):
    import sys

    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "__init__.py").write_text("")
    (bench / "__main__.py").write_text(
        "CALLS = []\n\ndef main(argv, prog='python -m benchmarks'):\n"
        "    CALLS.append((list(argv), prog))\n    return 3\n")
    monkeypatch.chdir(tmp_path)
    for name in [m for m in sys.modules if m.split(".")[0] == "benchmarks"]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert cli.main(["bench", "--quick", "--only", "gaussian", "kde", "--out", "o",
                     "--timeout", "5"]) == 3
    assert sys.modules["benchmarks.__main__"].CALLS == [
        (["--quick", "--only", "gaussian", "kde", "--out", "o", "--timeout", "5"],
         "jaxcollapse bench")]
    for name in [m for m in sys.modules if m.split(".")[0] == "benchmarks"]:
        del sys.modules[name]


def test_bench_outside_a_checkout_exits_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "__file__", str(tmp_path / "site" / "jaxcollapse" / "cli.py"))
    assert cli.main(["bench", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "source checkout" in err[0]
