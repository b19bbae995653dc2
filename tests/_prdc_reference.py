"""The ``prdc`` package (Naeem et al.'s reference code, a dev extra) as the reference
of ``jaxcollapse.metrics.prdc``: shared by tests/test_prdc.py and tests/test_vae.py."""

import contextlib
import io

import numpy as np
import pytest

FIELDS = ("precision", "recall", "density", "coverage")


def reference(real, fake, k):
    """The package's four values, ``[precision, recall, density, coverage]``; the
    calling test is skipped when the package is not installed."""
    prdc_pkg = pytest.importorskip("prdc")
    with contextlib.redirect_stdout(io.StringIO()):  # it prints the set sizes
        out = prdc_pkg.compute_prdc(np.asarray(real), np.asarray(fake), k)
    return np.array([out[f] for f in FIELDS])
