"""Issue 15's "Bad input" list, one row each: every bad value is refused at the public
boundary with a message naming the argument (steps, theory and simulate alike), and a
verifier whose region accepts nothing at run time gives a finite, flagged result."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxcollapse as jc
from jaxcollapse import steps
from jaxcollapse.theory import bias as tb
from jaxcollapse.theory import curation as tc
from jaxcollapse.theory import decoding as tdec
from jaxcollapse.theory import verification as tv

R3 = jnp.array([0.0, 1.0, 2.0])
P3 = [0.2, 0.3, 0.5]


def _simulate_with(step, family=None):
    fam = jc.Categorical(3) if family is None else family
    return lambda: jc.simulate(jax.random.key(0), fam, fam.params(jnp.array(P3)),
                               n_generations=1, n_samples=10, n_chains=1, step=step)


CASES = {
    # lambda outside (0, 1]
    "lam 0": (lambda: steps.sampling_bias(0.0), ValueError, r"lam must be in \(0, 1\]"),
    "lam 1.5": (lambda: steps.sampling_bias(1.5), ValueError, "lam > 1 is refused"),
    "lam nan": (lambda: steps.sampling_bias(math.nan), ValueError, "lam must be in"),
    "lam theory": (lambda: tb.variance_mean(3, 10, 1.2), ValueError, "lam must be in"),
    # tau <= 0 or non-finite
    "tau 0": (lambda: steps.temperature(0.0), ValueError, "tau must be a finite number > 0"),
    "tau -1": (lambda: steps.temperature(-1.0), ValueError, "tau must be a finite number"),
    "tau inf": (lambda: steps.temperature(math.inf), ValueError, "tau must be a finite"),
    "tau theory": (lambda: tdec.temperature_map(P3, 0.0), ValueError, "tau must be"),
    # top-k < 1 or > K (at the step, and through simulate, which knows K)
    "top-k 0": (lambda: steps.top_k(0), ValueError, "k must be an integer >= 1"),
    "top-k > K": (_simulate_with(steps.top_k(4)), ValueError, r"k must be .*\[1, K = 3\]"),
    "top-k theory": (lambda: tdec.deterministic_path(P3, 2, k=5), ValueError, "k must be"),
    # top-p outside (0, 1]
    "top-p 0": (lambda: steps.top_p(0.0), ValueError, r"p must be in \(0, 1\]"),
    "top-p 1.5": (lambda: steps.top_p(1.5), ValueError, r"p must be in \(0, 1\]"),
    "top-p nan": (lambda: steps.top_p(math.nan), ValueError, r"p must be in \(0, 1\]"),
    # K < 2 (candidates; categories)
    "curate k 1": (lambda: steps.curate(R3, 1), ValueError, "k must be >= 2"),
    "theory k 1": (lambda: tc.curated_law(P3, R3, 1), ValueError, "k must be >= 2"),
    "categories 1": (lambda: jc.Categorical(1), ValueError, "n_categories must be >= 2"),
    # eta outside [0, 1]
    "eta 1.5": (lambda: steps.curate(R3, 2, eta=1.5, reference=P3), ValueError, "eta"),
    "eta -0.1": (lambda: steps.curate(R3, 2, eta=-0.1, reference=P3), ValueError, "eta"),
    "eta theory": (lambda: tc.curated_law(P3, R3, 2, eta=2.0), ValueError, "eta"),
    # rewards: non-finite or of the wrong shape
    "reward nan": (lambda: steps.curate(jnp.array([0.0, jnp.nan, 1.0]), 2), ValueError,
                   "reward must be finite"),
    "reward shape": (_simulate_with(steps.curate(jnp.array([0.0, 1.0]), 2)), ValueError,
                     r"reward must have shape \(3,\)"),
    "reward fn nan": (lambda: steps.curate(lambda x: jnp.log(x[0] - 1.0), 2).check(
        jc.Gaussian(dim=1, method="samples")), ValueError, "reward must return finite"),
    # an acceptance region that accepts nothing
    "region 0": (lambda: steps.verify(region=(0.0, 0.0)), ValueError, "half_width"),
    "region nan": (lambda: steps.verify(region=(math.nan, 1.0)), ValueError, "center"),
    # verifier rates outside [0, 1], or both 0 (accepts nothing)
    "tpr 1.2": (lambda: steps.verify(tpr=1.2, fpr=0.1), ValueError, "tpr"),
    "fpr -0.1": (lambda: steps.verify(tpr=0.9, fpr=-0.1), ValueError, "fpr"),
    "rates 0": (lambda: steps.verify(tpr=0.0, fpr=0.0), ValueError, "tpr and fpr"),
    "rates theory": (lambda: tv.verifier_iterate(0.5, 1.5, 0.1, 3), ValueError, "tpr"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_refused_naming_the_argument(case):
    fn, exc, match = CASES[case]
    with pytest.raises(exc, match=match):
        fn()


def test_a_region_that_accepts_nothing_at_run_time_is_flagged_not_nan():
    # the region is valid but lies far from every draw: nothing is kept, the fit is the
    # degenerate point law (variance 0), flagged, and no NaN appears
    fam = jc.Gaussian(dim=1, method="samples")
    res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=2, n_samples=20,
                      n_chains=2, step=steps.verify(region=(100.0, 1.0)))
    assert np.all(np.isfinite(np.asarray(res.params.cov)))
    assert np.all(np.isfinite(np.asarray(res.metrics["var_ratio"])))
    assert np.all(np.asarray(res.degenerate)[:, 1:])
    # its theory says so too: acceptance 0 (or tiny), finite moments
    t = tv.truncated_normal_moments(0.0, 1.0, 100.0, 1.0)
    assert np.isfinite(float(t.mean)) and np.isfinite(float(t.var))
    assert float(t.acceptance) < 1e-300 or bool(t.empty)
