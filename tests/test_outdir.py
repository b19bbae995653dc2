"""The command line's output folder: nothing it did not write is removed, a foreign
folder needs --overwrite, a folder in use is refused (an OS lock, released when the
holder dies), and bad --out, --seed and --human values exit 2 with one line."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from jaxcollapse import cli
from jaxcollapse.experiments import _common

REPO = Path(__file__).resolve().parents[1]
TINY = ["run", "gaussian", "--generations", "4", "--samples", "10", "--chains", "4",
        "--no-progress", "--chunk-size", "2"]


def _exit2(capsys, argv, message):
    with pytest.raises(SystemExit) as e:
        cli.main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    return err[0]


def test_a_users_checkpoint_folder_is_never_deleted(tmp_path, capsys):
    out = tmp_path / "mine"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "thesis.tex").write_text("years of work")
    _exit2(capsys, [*TINY, "--out", str(out)], "holds no jaxcollapse run")
    assert (out / "checkpoint" / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint"]  # nothing written
    # --overwrite writes the run beside the user's files, and removes none of them
    assert cli.main([*TINY, "--out", str(out), "--overwrite"]) == 0
    assert (out / "checkpoint" / "thesis.tex").read_text() == "years of work"
    assert sorted(p.name for p in (out / "checkpoint").iterdir()) == ["thesis.tex"]
    assert (out / "summary.json").is_file() and (out / _common.MARKER).is_file()
    # the folder is now marked as a run's: running again needs no flag
    assert cli.main([*TINY, "--out", str(out)]) == 0
    assert (out / "checkpoint" / "thesis.tex").read_text() == "years of work"


def test_a_run_folder_of_an_earlier_version_is_recognised(tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "summary.json").write_text('{"config": {"experiment": "gaussian"}}')
    assert cli.main([*TINY, "--out", str(out)]) == 0


@pytest.mark.parametrize("make, out, message", [
    (None, "", "--out must name a folder; got an empty string"),
    ("file", "f", "is a file; give a folder"),
    ("file", "f/sub/run", "passes through the file"),
])
def test_bad_out_exits_2_with_one_line(tmp_path, capsys, make, out, message):
    if make:
        (tmp_path / "f").write_text("x")
    arg = str(tmp_path / out) if out else out
    _exit2(capsys, [*TINY, "--out", arg], message)
    if make:
        assert (tmp_path / "f").read_text() == "x"


@pytest.mark.parametrize("argv, message", [
    (["--seed", str(2**64)], "--seed must be an integer in [-2**63, 2**63 - 1]"),
    (["--seed", str(-2**63 - 1)], "--seed must be an integer"),
    (["--regime", "mix", "--human", "0"], "--human must be >= 1"),
    (["--human", "50"], "--human applies to --regime mix only"),
])
def test_bad_seed_and_human_exit_2(tmp_path, capsys, argv, message):
    _exit2(capsys, [*TINY, "--out", str(tmp_path / "r"), *argv], message)


_HOLDER = """
import sys, time
from jaxcollapse.experiments._common import output_folder
with output_folder(sys.argv[1], "gaussian"):
    print("LOCKED", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_folder_in_use_is_refused_until_the_first_dies(tmp_path, capsys):
    out = tmp_path / "busy"
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(_HOLDER), str(out)],
                              stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == "LOCKED"
        line = _exit2(capsys, [*TINY, "--out", str(out)], "is in use by another")
        assert str(holder.pid) in line
    finally:
        holder.send_signal(signal.SIGKILL)  # death releases an OS lock
        holder.wait()
    assert cli.main([*TINY, "--out", str(out)]) == 0


def test_processes_of_one_multi_process_run_lock_their_own_files(tmp_path):
    with _common.output_folder(tmp_path / "o", "gaussian", process_id=0, num_processes=2):
        with _common.output_folder(tmp_path / "o", "gaussian", process_id=1,
                                   num_processes=2):
            pass
        with pytest.raises(ValueError, match="in use by another jaxcollapse run"):
            with _common.output_folder(tmp_path / "o", "gaussian", process_id=0,
                                       num_processes=2):
                pass


def test_a_folder_holding_only_another_process_lock_is_its_own(tmp_path):
    # process 1 of a multi-process run may look before process 0 wrote the marker
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / f"{_common.LOCK}.p0").write_text("123")
    with _common.output_folder(tmp_path / "o", "gaussian", process_id=1, num_processes=2):
        pass
