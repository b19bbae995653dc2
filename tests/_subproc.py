"""Runs a check script in a fresh Python with forced host (CPU) devices.

JAX fixes its device count when it starts, so multi-device checks run in a
subprocess (one per test module, so that its start-up is paid once). The script
runs after a prelude that turns on float64, asserts the device count and defines
``raises(call, text, what)``: ``call()`` must raise a ValueError whose message
contains ``text`` (``what`` names the call in the failure).
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

PRELUDE = """
import jax
jax.config.update("jax_enable_x64", True)
assert len(jax.devices()) == {n}, jax.devices()
def raises(call, text, what):
    try:
        call()
    except ValueError as e:
        assert text in str(e), e
    else:
        raise AssertionError(f"{{what}} did not raise")
"""
DONE = "SUBPROCESS-CHECKS-OK"


def run_on_host_devices(script: str, n: int = 8, timeout: float = 900) -> None:
    """Runs ``script`` (dedented, after the prelude) with ``n`` host devices; fails
    the calling test with the end of its stderr unless it ran to the end."""
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={n}",
               JAX_PLATFORMS="cpu", PYTHONPATH=str(REPO))
    code = PRELUDE.format(n=n) + textwrap.dedent(script) + f"\nprint({DONE!r})\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=timeout)
    assert proc.returncode == 0 and DONE in proc.stdout, proc.stderr[-3000:]
