"""Shared test fixtures.

The whole suite runs in float64 (``jax_enable_x64``) so that comparisons with
scipy / scikit-learn / closed forms can use rtol 1e-6; tests of float32 behaviour
pass float32 inputs explicitly.
"""

import gc
import os
from pathlib import Path

import jax
import pytest

jax.config.update("jax_enable_x64", True)

REPO = Path(__file__).resolve().parents[1]


def data_dir() -> Path | None:
    """Where the shared real data sets live: $JAXCOLLAPSE_DATA or ../shared/data."""
    env = os.environ.get("JAXCOLLAPSE_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = data_dir()
    if d is None:
        pytest.skip("real data not found: set JAXCOLLAPSE_DATA or place it at ../shared/data")
    return d


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Frees every compiled program after each test module.

    A single pytest process compiles thousands of XLA programs; keeping them all
    alive exhausts the process's memory mappings and XLA:CPU then crashes while
    compiling (a segfault two thirds into the suite). Programs shared within a
    module stay cached; later modules recompile what they need.
    """
    yield
    jax.clear_caches()
    gc.collect()


# ---------------------------------------------------------------- xdist scheduling
# The suite runs as `pytest -n auto --dist loadfile`: whole files go to the workers,
# each taking the next file of a queue when it runs dry. xdist orders that queue by
# the number of tests a file holds (most first), which puts the long files of one or
# two tests (subprocess checks, figure renders, the README tour) last: the run ended
# with one worker rendering figures alone for minutes. Instead the long files go
# first, longest first (a worker that starts the last long file then finishes it
# while the other works through the many short files: the longest-first rule of
# scheduling), and the rest follow in collection order (short files, then the
# doctests of the package).
#
# Heaviest first, from the CI timings (seconds a file on a 2-core machine, 2 workers,
# 2026-12): a file not listed here that holds a test marked `slow` goes after these.
SCHEDULE_FIRST = [
    "tests/test_contracts.py",
    "tests/test_figures_more.py",
    "tests/test_docs.py",
    "tests/test_sharding.py",
    "tests/test_figures_learned.py",
    "tests/test_grad.py",
    "tests/test_scale.py",
    "tests/test_readme.py",
    "tests/test_figures_realdata.py",
    "tests/test_sharding_data.py",
    "tests/test_figures.py",
    "tests/test_figures_bias.py",
    "tests/test_figures_curation.py",
    "tests/test_design_cli.py",
    "tests/test_figures_design.py",
    "tests/test_design.py",
]


def pytest_configure(config):
    if hasattr(config.option, "loadscopereorder"):  # pytest-xdist: keep our file order
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config, items):
    """Long files first (see SCHEDULE_FIRST); a file's tests stay together and in
    order. Only under xdist: a plain run keeps pytest's order."""
    if not hasattr(config, "workerinput"):
        return
    rank = {name: i for i, name in enumerate(SCHEDULE_FIRST)}
    slow_files = {_file_of(it) for it in items if it.get_closest_marker("slow")}

    def key(item):
        f = _file_of(item)
        return rank.get(f, len(SCHEDULE_FIRST) if f in slow_files else len(SCHEDULE_FIRST) + 1)

    items.sort(key=key)  # stable


def _file_of(item) -> str:
    return item.nodeid.split("::", 1)[0]
