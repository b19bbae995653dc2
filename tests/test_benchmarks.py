"""The benchmark runner (``python -m benchmarks``): report files, README table, errors.

The suite itself is timed work, not a test: here fake scripts stand in for it, and
one real script (``mmd``, quick size) runs to check that it keeps the row contract.
No assertion is about speed.
"""

import ast
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed: import it from the checkout

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import _common as bc  # noqa: E402

FAKE = """
import sys
sys.path.insert(0, {bench!r})
import _common as bc

def run(quick):
    ours = bc.Timing(0.5, 0.01 if quick else 0.02, 0.01, None)
    ref = bc.Timing(None, 0.2, 0.3, None)
    return [bc.row("fast case", "n=1", ours, reference="numpy", ref=ref, goal="≥ 10×",
                   goal_value=10.0, peak_rss_mib=bc.peak_rss_mib(), max_err=1e-12),
            bc.row("slow case", "n=2", ours, reference="numpy", ref=ref, goal="≥ 40×",
                   goal_value=40.0)]

if __name__ == "__main__":
    raise SystemExit(bc.script_main("fake", run, "A fake benchmark."))
"""

README = """# project

## Benchmarks

Intro text stays.

<!-- bench:start -->
| old | table |
|---|---|
<!-- bench:end -->

## After
Tail stays.
"""


@pytest.fixture
def fake_suite(tmp_path, monkeypatch):
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    (scripts / "fake.py").write_text(FAKE.format(bench=str(ROOT / "benchmarks")))
    (scripts / "broken.py").write_text("raise RuntimeError('boom: the fake failure')\n")
    monkeypatch.setattr(runner, "SCRIPTS", ("fake", "broken"))
    monkeypatch.setattr(runner, "SCRIPTS_DIR", scripts)
    readme = tmp_path / "README.md"
    readme.write_text(README)
    return tmp_path, readme


def test_runner_writes_json_markdown_and_readme_table(fake_suite, capsys):
    tmp, readme = fake_suite
    out = tmp / "out"
    code = runner.main(["--quick", "--out", str(out), "--readme", str(readme)])
    assert code == 1  # one script failed; the other's rows are still reported
    (json_path,) = out.glob("*-quick.json")
    (md_path,) = out.glob("*-quick.md")
    report = json.loads(json_path.read_text())
    assert report["quick"] is True
    for k in ("cpu", "cores", "backend", "device", "jax", "load_average"):
        assert k in report["machine"]
    assert report["columns"] == ["benchmark", *bc.COLUMNS]
    rows = report["rows"]
    assert [r["benchmark"] for r in rows] == ["fake", "fake", "broken"]
    for r in rows:
        assert set(bc.COLUMNS) <= set(r)
    fast, slow, broken = rows
    assert fast["ratio"] == pytest.approx(0.2 / 0.01)  # quick sizes were passed on
    assert fast["cpu_ratio"] == pytest.approx(0.3 / 0.01)
    assert fast["met"] is True and slow["met"] is False
    assert fast["peak_rss_mib"] > 10  # the child's own resident set, in MiB
    assert broken["case"] == "FAILED" and "boom: the fake failure" in broken["note"]
    assert report["scripts"]["fake"]["returncode"] == 0
    assert report["scripts"]["broken"]["returncode"] not in (0, None)

    md = md_path.read_text()
    header = [h for h in md.splitlines() if h.startswith("| benchmark |")][0]
    for col in ("case", "size", "compile s", "steady s", "cpu s", "reference", "ratio",
                "goal", "met", "peak MiB", "max err"):
        assert f"| {col} |" in header
    assert "| fake | fast case | n=1 |" in md and "20×" in md and "**no**" in md

    text = readme.read_text()
    assert "| old | table |" not in text
    assert text.startswith(README.split("<!-- bench:start -->")[0])
    assert text.endswith(README.split("<!-- bench:end -->")[1])
    inner = text.split("<!-- bench:start -->")[1].split("<!-- bench:end -->")[0]
    assert "Measured " in inner and "cores" in inner and "| fake | fast case |" in inner

    # --only replaces the named script's rows in the day's file and keeps the others
    assert runner.main(["--quick", "--only", "broken", "--out", str(out), "--no-readme"]) == 1
    again = json.loads(json_path.read_text())
    assert [r["benchmark"] for r in again["rows"]] == ["fake", "fake", "broken"]
    assert set(again["scripts"]) == {"fake", "broken"}


def test_gpu_run_writes_its_own_file_and_leaves_the_readme(fake_suite, monkeypatch):
    tmp, readme = fake_suite
    monkeypatch.setattr(runner, "probe_machine", lambda: dict(
        cpu="x", cores=2, backend="gpu", device="H100", jax="0", load_average=[0, 0, 0],
        date="2026-01-01T00:00:00+00:00"))
    out = tmp / "out"
    assert runner.main(["--only", "fake", "--out", str(out), "--readme", str(readme)]) == 0
    assert [p.name[10:] for p in out.glob("*.json")] == ["-gpu.json"]
    assert readme.read_text() == README


def test_bad_arguments_exit_2_with_a_message(capsys):
    assert runner.main(["--only", "gaussian", "nope"]) == 2
    err = capsys.readouterr().err
    assert "unknown benchmark 'nope'" in err and "choose from gaussian, regimes, kde" in err
    assert runner.main(["--frobnicate"]) == 2
    assert "unrecognized arguments: --frobnicate" in capsys.readouterr().err


def test_marker_replacement():
    new = runner.replace_between_markers(README, "NEW TABLE")
    assert "<!-- bench:start -->\nNEW TABLE\n<!-- bench:end -->" in new
    assert runner.replace_between_markers(new, "NEW TABLE") == new
    with pytest.raises(ValueError, match="bench:start"):
        runner.replace_between_markers("# no markers\n", "x")
    text = (ROOT / "README.md").read_text()
    assert text.count(runner.START) == 1 and text.count(runner.END) == 1
    assert text.index(runner.START) < text.index(runner.END)


def test_every_script_has_the_uniform_interface():
    for name in runner.SCRIPTS:
        tree = ast.parse((ROOT / "benchmarks" / f"{name}.py").read_text())
        runs = [f for f in tree.body if isinstance(f, ast.FunctionDef) and f.name == "run"]
        assert runs and [a.arg for a in runs[0].args.args] == ["quick"], name
        calls = [c for c in ast.walk(tree) if isinstance(c, ast.Call)
                 and getattr(c.func, "attr", None) == "script_main"]
        assert [ast.literal_eval(c.args[0]) for c in calls] == [name], name


def test_a_real_script_through_the_runner(tmp_path):
    out = tmp_path / "out"
    assert runner.main(["--quick", "--only", "mmd", "--out", str(out)]) == 0
    (path,) = out.glob("*-quick.json")
    (r,) = json.loads(path.read_text())["rows"]
    assert r["benchmark"] == "mmd" and r["reference"].startswith("numpy")
    assert r["steady_s"] > 0 and r["reference_s"] > 0 and r["compile_s"] >= 0
    assert r["goal_value"] == 10 and isinstance(r["met"], bool)
    assert r["max_err"] < 1e-10  # same formula, float64
