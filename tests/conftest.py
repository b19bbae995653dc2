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
