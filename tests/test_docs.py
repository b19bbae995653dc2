"""The pages in docs/ run as written: every ```python block of a page is executed,
in order, in one namespace per page (as tests/test_readme.py does for the README).

Each page's blocks also assert Monte Carlo against theory (within 5 standard
errors) where they state a result, so a page that drifts from the code fails here.
"""

import importlib
import importlib.util
import inspect
import os
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import pytest

import jaxcollapse.theory as jc_theory

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
PAGES = sorted(p.name for p in DOCS.glob("*.md"))
NO_CODE: set[str] = set()  # pages without a python block


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_the_expected_pages_exist():
    assert {"families.md", "regimes.md", "theory.md", "cli.md"} <= set(PAGES)


# A page's blocks run in a fresh Python, as a reader runs them (float64 on, as in the
# rest of the suite): a page never depends on what the test process ran before it.
RUNNER = r"""
import re, sys
text = open(sys.argv[1], encoding="utf-8").read()
ns = {}
for i, block in enumerate(re.findall(r"```python\n(.*?)```", text, flags=re.S)):
    exec(compile(block, f"{sys.argv[2]} (python block {i + 1})", "exec"), ns)
"""


@pytest.mark.parametrize("page", PAGES)
def test_page_python_blocks_run(page, tmp_path):
    assert python_blocks((DOCS / page).read_text()) or page in NO_CODE, page
    env = dict(os.environ, PYTHONPATH=str(REPO), JAX_ENABLE_X64="1", JAX_PLATFORMS="cpu")
    proc = subprocess.run([sys.executable, "-c", RUNNER, str(DOCS / page), f"docs/{page}"],
                          cwd=tmp_path, capture_output=True, text=True, env=env, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def test_theory_page_covers_every_theory_function():
    text = (DOCS / "theory.md").read_text()
    missing = []
    # every public module of jaxcollapse.theory (a new one is covered without editing this)
    subs = [m.name for m in pkgutil.iter_modules(jc_theory.__path__) if not m.name.startswith("_")]
    for sub in subs:
        modname = f"jaxcollapse.theory.{sub}"
        mod = importlib.import_module(modname)
        names = getattr(mod, "__all__", None) or [
            n for n, o in vars(mod).items()
            if not n.startswith("_") and inspect.isfunction(o) and o.__module__ == modname]
        missing += [f"{sub}.{n}" for n in names if f"`{n}(" not in text]
    assert not missing, f"docs/theory.md does not document {missing}"


def test_docs_links_resolve():
    for page in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(((?:docs/|\.\./|\./)?[\w./-]+\.(?:md|py|png))\)",
                                 page.read_text()):
            assert (page.parent / target).exists() or target.startswith("docs/gallery/"), \
                f"{page.name} links to missing {target}"


def test_make_gallery_downscales_and_reports_missing_figures(tmp_path, capsys):
    pil = pytest.importorskip("PIL.Image")
    spec = importlib.util.spec_from_file_location(
        "make_gallery", REPO / "paper_figures" / "make_gallery.py")
    mg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mg)
    out, dest = tmp_path / "out", tmp_path / "gallery"
    out.mkdir()
    pil.new("RGB", (1200, 900), (10, 20, 30)).save(out / "fig01_gaussian_1d.png")
    pil.new("RGB", (300, 100), (0, 0, 0)).save(out / "fig03_regimes.png")
    assert mg.main([str(out), "--dest", str(dest)]) == len(mg.GALLERY) - 2
    with pil.open(dest / "fig01_gaussian_1d.png") as im:
        assert im.size == (400, 300)
    with pil.open(dest / "fig03_regimes.png") as im:  # smaller ones are not upscaled
        assert im.size == (300, 100)
    assert "fig10_vae" in capsys.readouterr().err
    # every gallery figure has its cell in the README
    readme = (REPO / "README.md").read_text()
    assert all(f"docs/gallery/{name}.png" in readme for name in mg.GALLERY)
