"""The repository is ruff-clean (configuration in pyproject.toml)."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean():
    ruff = shutil.which("ruff") or str(Path(sys.executable).with_name("ruff"))
    if not Path(ruff).exists():
        pytest.skip("ruff is not installed (it is in the dev extra)")
    proc = subprocess.run([ruff, "check", "--quiet", str(REPO)], capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_readme_starts_with_the_two_commands():
    text = (REPO / "README.md").read_text()
    block = text.split("```")[1]
    lines = [ln for ln in block.splitlines()[1:] if ln.strip() and not ln.startswith("#")]
    assert len(lines) == 2
    assert "jaxcollapse run" in lines[0] and "pytest" in lines[1]
    assert all("venv" in ln for ln in lines)  # each does its own set-up


# Issue 12: no library file over about 500 lines (one concept a module).
MAX_LINES = 500
NOT_YET_SPLIT: set[str] = set()


def test_no_library_file_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in sorted((REPO / "jaxcollapse").rglob("*.py"))
            if (n := len(p.read_text().splitlines())) > MAX_LINES}
    over = {p: n for p, n in long.items() if p not in NOT_YET_SPLIT}
    assert not over, f"library files over {MAX_LINES} lines (split them by concept): {over}"


def test_no_module_is_shadowed_by_a_name_of_its_package():
    """``pkg.name`` is the module ``pkg/name.py`` wherever that module exists: a
    function of the same name in the package would hide the module (reachable then
    only through ``importlib``)."""
    import importlib
    import pkgutil
    import types

    import jaxcollapse

    shadowed = []

    def walk(pkg):
        for info in pkgutil.iter_modules(pkg.__path__):
            full = f"{pkg.__name__}.{info.name}"
            mod = importlib.import_module(full)
            attr = getattr(pkg, info.name, None)
            if attr is not None and not isinstance(attr, types.ModuleType):
                shadowed.append(f"{full} (hidden by a {type(attr).__name__})")
            if info.ispkg:
                walk(mod)

    walk(jaxcollapse)
    assert not shadowed, f"modules hidden by a name of their package: {shadowed}"
