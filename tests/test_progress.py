"""jaxcollapse._progress: rich progress bars, silent off a terminal or when disabled."""

import io

import jax
import numpy as np

import jaxcollapse as jc
from jaxcollapse._progress import Progress


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_bar_draws_on_a_terminal_with_rate_in_chain_generations():
    out = Terminal()
    with Progress(10, "simulate", stream=out, scale=64) as p:
        p.update(4, "half way")
        p.update(10)
    text = out.getvalue()
    assert "simulate" in text and "10/10" in text and "chain·gen/s" in text
    assert p.done == 10


def test_silent_off_a_terminal_or_when_disabled():
    for stream, enabled in ((io.StringIO(), True), (Terminal(), False)):
        with Progress(5, "x", stream=stream, enabled=enabled) as p:
            p.update(5)
        assert stream.getvalue() == "" and p.done == 5


def test_simulate_with_progress_is_quiet_in_a_pipe_and_unchanged(capfd):
    fam = jc.Gaussian(dim=1, method="exact")
    kw = dict(n_generations=6, n_samples=20, n_chains=4, chunk_size=2)
    a = jc.simulate(jax.random.key(0), fam, fam.params(), progress=True, **kw)
    b = jc.simulate(jax.random.key(0), fam, fam.params(), progress=False, **kw)
    assert capfd.readouterr().err == ""  # pytest's stderr is not a terminal
    np.testing.assert_array_equal(a.metrics["w2sq"], b.metrics["w2sq"])


def test_cli_quiet_is_no_progress():
    from jaxcollapse import cli

    args = cli.build_parser().parse_args(["run", "gaussian", "--quiet"])
    assert args.no_progress
