"""Property-based checks of the public boundary (hypothesis).

For drawn shapes, dtypes, ranges and special values (NaN, inf, 0, negative, huge,
tiny, complex, strings) every entry point here must either

* raise a ``ValueError``/``TypeError`` from jaxcollapse's own validation (the
  innermost frame of the traceback lies in the jaxcollapse package, not in JAX or
  NumPy) whose message names the offending argument, or
* return a result without NaN (an overflow to inf is counted apart, and allowed
  only where the exact value is beyond the float range), and, for the families,
  never a NaN metric unless the state is flagged degenerate.

The example budget is bounded (``max_examples`` per test, derandomised, no
deadline); the whole module runs in well under a minute and a half. Set
``JAXCOLLAPSE_TALLY=path.json`` to write the outcomes by class (clear errors,
results, still wrong).
"""

from __future__ import annotations

import collections
import json
import math
import os
import traceback
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import jaxcollapse as jc
from jaxcollapse import _report
from jaxcollapse import random as jcr
from jaxcollapse.families import categorical as cat
from jaxcollapse.theory import discrete as td
from jaxcollapse.theory import gaussian as tg
from jaxcollapse.theory import kde as tk
from jaxcollapse.theory import regression as tr

PACKAGE = Path(jc.__file__).resolve().parent
# examples per property (the CI budget); raise it locally for a deeper search
_N = int(os.environ.get("JAXCOLLAPSE_PROPERTY_EXAMPLES", "8"))
FEW = settings(max_examples=max(1, _N // 2), deadline=None, derandomize=True, database=None,
               suppress_health_check=[HealthCheck.too_slow])
SOME = settings(FEW, max_examples=_N)

TALLY: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)


@pytest.fixture(scope="module", autouse=True)
def _write_tally():
    yield
    path = os.environ.get("JAXCOLLAPSE_TALLY")
    if path:
        Path(path).write_text(json.dumps({k: dict(v) for k, v in TALLY.items()}, indent=1))


def _has_nan(out) -> bool:
    leaves = jax.tree_util.tree_leaves(out)
    return any(np.isnan(np.asarray(x, np.float64)).any() for x in leaves
               if np.asarray(x).dtype.kind in "fc")


def _has_inf(out) -> bool:
    leaves = jax.tree_util.tree_leaves(out)
    return any(np.isinf(np.asarray(x, np.float64)).any() for x in leaves
               if np.asarray(x).dtype.kind in "f")


def _innermost_file(exc: BaseException) -> Path:
    return Path(traceback.extract_tb(exc.__traceback__)[-1].filename).resolve()


def check(cls: str, fn, *args, names=(), allow_inf=False, **kwargs):
    """Calls ``fn``; asserts the contract of the module docstring and tallies the
    outcome under ``cls``. Returns the result, or None after a clear error."""
    try:
        out = fn(*args, **kwargs)
    except (ValueError, TypeError) as e:
        where = _innermost_file(e)
        ours = PACKAGE in where.parents
        named = not names or any(n in str(e) for n in names)
        TALLY[cls]["clear error" if ours and named else "still wrong: opaque error"] += 1
        assert ours, f"{type(e).__name__} raised inside {where}, not by jaxcollapse: {e}"
        assert named, f"message does not name any of {names}: {e}"
        return None
    except Exception as e:  # noqa: BLE001 - anything else is a failure of the contract
        TALLY[cls]["still wrong: other exception"] += 1
        raise AssertionError(f"{type(e).__name__} from {_innermost_file(e)}: {e}") from e
    if _has_nan(out):
        TALLY[cls]["still wrong: NaN"] += 1
        raise AssertionError(f"NaN result from {getattr(fn, '__name__', fn)}{args}")
    if _has_inf(out):
        TALLY[cls]["overflow to inf" if allow_inf else "still wrong: inf"] += 1
        assert allow_inf, f"inf result from {getattr(fn, '__name__', fn)}{args}"
    else:
        TALLY[cls]["result"] += 1
    return out


# ----------------------------------------------------------------- value strategies

SPECIAL = [math.nan, math.inf, -math.inf, 0.0, -0.0, -1.0, -0.5, 0.5, 1.0, 2.0, 3.0,
           10.0, 101.0, 1e-300, 1e-38, 1e30, 1e300, 2.5, 7]
WEIRD = [1j, 2 + 0j, "3", None, True, [2.0, 3.0], np.array([2, 3]), np.array([[2.0]]),
         np.float16(4.0), np.int64(5)]
scalars = st.one_of(st.sampled_from(SPECIAL), st.floats(-1e3, 1e6, allow_nan=False),
                    st.integers(-5, 10_000))
values = st.one_of(scalars, scalars, scalars, st.sampled_from(WEIRD))
ddofs = st.sampled_from([0, 1, 1, 0, 2, -1, 0.5, True, None])

# ------------------------------------------------------------- Gaussian closed forms

NMS = [tg.log_variance_mean, tg.log_variance_var, tg.cov_mean_factor]
NM_S = [tg.variance_mean, tg.std_mean, tg.mean_shift, tg.draw_variance, tg.w2sq_mean]
M_ONLY = [tg.variance_factor, tg.log_std_factor, tg.log_variance_factor, tg.std_factor]


@SOME
@given(fn=st.sampled_from(NMS + NM_S + M_ONLY), n=values, M=values, s=values, ddof=ddofs)
def test_gaussian_closed_forms(fn, n, M, s, ddof):
    names = ("n", "M", "sigma0", "ddof")
    if fn in M_ONLY:
        args = (M,) if fn is not tg.std_factor else (M,)
        kw = {} if ddof is None else {"ddof": ddof}
    elif fn in NMS:
        args, kw = (n, M), ({} if ddof is None or fn is tg.log_variance_var else
                            {"ddof": ddof})
    else:
        args, kw = (n, M, s), ({} if ddof is None else {"ddof": ddof})
    # a true value beyond the float range (sigma0_sq = 1e300 times a growth) may be inf
    check("theory.gaussian closed forms", fn, *args, names=names, allow_inf=True, **kw)


@FEW
@given(fn=st.sampled_from(["drift", "mean", "mv_approx", "shift_mv"]), n=values, M=values,
       d=st.sampled_from([1, 2, 3, 10, 0, -1, 2.5, "2", True]), x=values)
def test_gaussian_multivariate_forms(fn, n, M, d, x):
    names = ("n", "M", "d", "logdet0", "trace_cov0", "sigma0_sq")
    call = {"drift": lambda: tg.logdet_drift(M, d),
            "mean": lambda: tg.logdet_mean(n, M, d, x),
            "mv_approx": lambda: tg.w2sq_mean_mv_approx(n, M, d, x),
            "shift_mv": lambda: tg.mean_shift_mv(n, M, x)}[fn]
    check("theory.gaussian multivariate forms", call, names=names, allow_inf=True)


def test_gaussian_domain_errors_name_the_argument():
    with pytest.raises(ValueError, match="M must be > 1"):
        tg.w2sq_mean(3, 1)
    with pytest.raises(ValueError, match="n must be >= 0"):
        tg.w2sq_mean(-1, 10)
    with pytest.raises(ValueError, match="M must be > 3"):
        tg.logdet_mean(1, 3, 3)
    with pytest.raises(ValueError, match="q must be >= 0 and <= 1"):
        tg.variance_quantile(1.5, 3, 10)
    with pytest.raises(ValueError, match="sigma0_sq must be >= 0"):
        tg.variance_mean(1, 10, -1.0)
    with pytest.raises(ValueError, match="M must be > 1"):
        tg.w2sq_mean_schedule(np.array([10, 0, 10]))
    with pytest.raises(TypeError, match="M must be real"):
        tg.variance_factor(10 + 1j)


@FEW
@given(q=values, n=values, M=values, s=st.sampled_from([1.0, 0.0, -1.0, 2.0, math.nan]))
def test_exact_variance_law(q, n, M, s):
    names = ("q", "n", "M", "sigma0_sq", "eps")
    out = check("theory.gaussian exact law (host)", tg.variance_quantile, q, n, M, s,
                names=names)
    if out is not None:
        assert np.all(np.asarray(out) >= 0)
    check("theory.gaussian exact law (host)", tg.prob_variance_below, q, n, M, s,
          names=names)


# ------------------------------------------------------------ distances between Gaussians

def _cov(rng, d, kind, scale, dtype):
    a = rng.normal(size=(d, d))
    c = a @ a.T + 0.1 * np.eye(d)
    if kind == "neg":
        c = c - (np.linalg.eigvalsh(c).max() + 1.0) * np.eye(d)
    elif kind == "nan":
        c[0, 0] = np.nan
    elif kind == "asym" and d > 1:
        c[0, 1] += 1.0
    elif kind == "singular":
        v = rng.normal(size=(d, 1))
        c = v @ v.T
    elif kind == "complex":
        return (c * scale).astype(np.complex64)
    elif kind == "shape":
        return np.ones((d, d + 1))
    return (c * scale).astype(dtype)


@SOME
@given(d=st.sampled_from([1, 2, 3]), seed=st.integers(0, 2**16),
       kinds=st.tuples(*[st.sampled_from(["ok", "ok", "ok", "neg", "nan", "asym", "singular",
                                          "complex", "shape"])] * 2),
       e=st.integers(-40, 37), dtype=st.sampled_from([np.float32, np.float64]),
       mean_kind=st.sampled_from(["ok", "ok", "nan", "big", "scalar", "complex", "short"]),
       fn=st.sampled_from([tg.w2sq, tg.kl]))
def test_gaussian_distances(d, seed, kinds, e, dtype, mean_kind, fn):
    rng = np.random.default_rng(seed)
    scale = 10.0**e
    if dtype is np.float32 and not 1e-30 < scale < 1e30:
        scale = 1e30 if e > 0 else 1e-30  # keep float32 covariances representable
    c1, c2 = (_cov(rng, d, k, scale, dtype) for k in kinds)
    m1 = rng.normal(size=d).astype(dtype)
    m2 = {"ok": np.zeros(d, dtype), "nan": np.full(d, np.nan, dtype),
          "big": np.full(d, 1e15, dtype), "scalar": np.float64(0.0),
          "complex": np.zeros(d, np.complex64), "short": np.zeros(d + 1, dtype)}[mean_kind]
    out = check("theory.gaussian w2sq/kl", fn, m1, c1, m2, c2,
                names=("mean1", "mean2", "cov1", "cov2"))
    if out is not None:
        assert float(out) >= 0.0


# --------------------------------------------------------------------- discrete theory

probs = st.one_of(
    st.sampled_from([[0.5, 0.5], [0.2, 0.3, 0.5], [1.0, 0.0], [0.7, 0.7], [1.5, -0.5],
                     [np.nan, 1.0], [np.inf, 0.0], [1.0], [[0.5, 0.5]], [0.5 + 0j, 0.5],
                     "ab", []]),
    st.integers(2, 50).map(lambda k: list(np.full(k, 1.0 / k))))


@SOME
@given(fn=st.sampled_from(["surv", "surv_p", "lost", "fix", "unseen", "tail", "time",
                           "het", "exact", "exps"]),
       p=probs, m=values, n=values)
def test_discrete_theory(fn, p, m, n):
    names = ("probs", "n_samples", "n_generations", "n_draws", "rank", "h0", "count0",
             "beta")
    call = {"surv": lambda: td.expected_survivors(p, m),
            "surv_p": lambda: td.survival_probability(p, m),
            "lost": lambda: td.expected_lost_mass(p, m),
            "fix": lambda: td.fixation_probabilities(p),
            "unseen": lambda: td.unseen_mass(p, n),
            "tail": lambda: td.tail_floor(p, n),
            "time": lambda: td.expected_fixation_time(p, m),
            "het": lambda: td.expected_heterozygosity(n, m, 3),
            "exact": lambda: td.fixation_time_exact(n, m) if isinstance(m, int) and
            abs(m) < 200 else td.fixation_time_exact(n, 7),
            "exps": lambda: (td.unseen_mass_exponent(m), td.tail_floor_exponent(m))}[fn]
    check("theory.discrete", call, names=names)


def test_heterozygosity_above_one_is_refused():
    with pytest.raises(ValueError, match="h0 must be >= 0 and <= 1"):
        td.expected_heterozygosity(1.5, 10, 3)
    with pytest.raises(ValueError, match="n_samples must be >= 1"):
        td.expected_survivors([0.5, 0.5], float("inf"))


# -------------------------------------------------------------------- KDE theory

@SOME
@given(fn=st.sampled_from(["factor", "growth", "rule", "fixed", "point", "step"]),
       n=values, m=values, h=values, rule=st.sampled_from(["scott", "silverman", "x", 1]),
       dim=st.sampled_from([1, 2, 0, 1.5]))
def test_kde_theory(fn, n, m, h, rule, dim):
    names = ("M", "n", "h", "s0sq", "s_sq", "h_sq", "rule", "dim")
    call = {"factor": lambda: tk.rule_factor_sq(m, dim, rule),
            "growth": lambda: tk.growth_factor(m, dim, rule),
            "rule": lambda: tk.expected_var_rule(n, m, h, dim, rule),
            "fixed": lambda: tk.expected_var_fixed(n, m, h, 1.0),
            "point": lambda: tk.fixed_point_var(m, h),
            "step": lambda: tk.one_step_var(h, m, h)}[fn]
    check("theory.kde", call, names=names, allow_inf=True)


# --------------------------------------------------------------- regression theory

def _design(rng, kind, t, d, dtype):
    x = rng.normal(size=(t, d)).astype(dtype)
    if kind == "rank" and d > 1:
        x[:, -1] = 2.0 * x[:, 0]
    elif kind == "nan":
        x[0, 0] = np.nan
    elif kind == "complex":
        x = x.astype(np.complex64)
    elif kind == "wide":
        x = rng.normal(size=(d, d + 2))
    elif kind == "int":
        x = (10 * x).astype(np.int32)
    return x


@SOME
@given(kind=st.sampled_from(["ok", "ok", "rank", "nan", "complex", "wide", "int"]),
       t=st.integers(1, 12), d=st.integers(1, 4), seed=st.integers(0, 2**16),
       n=st.sampled_from([0, 1, 5, -1, 2.5, 200_000, np.arange(3)]),
       noise=st.sampled_from([1.0, 0.0, -1.0, math.nan, 1j, True]),
       ridge=st.sampled_from([0.0, 1.0, -1.0, math.inf]),
       fn=st.sampled_from(["trace", "rep", "acc", "ridge", "rep_avg", "acc_avg"]),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_regression_theory(kind, t, d, seed, n, noise, ridge, fn, dtype):
    x = _design(np.random.default_rng(seed), kind, t, d, dtype)
    names = ("design", "n_generations", "noise", "ridge", "w0", "dim", "n_design")
    call = {"trace": lambda: tr.inverse_gram_trace(x),
            "rep": lambda: tr.excess_replace_fixed(n, x, noise),
            "acc": lambda: tr.excess_accumulate_fixed(n, x, noise),
            "ridge": lambda: tr.excess_ridge_replace_fixed(n, x, np.ones(x.shape[-1]),
                                                           noise, ridge),
            "rep_avg": lambda: tr.excess_replace(n, d, t, noise),
            "acc_avg": lambda: tr.excess_accumulate(n, d, t, noise)}[fn]
    out = check("theory.regression", call, names=names)
    if out is not None:
        assert np.all(np.asarray(out) >= 0)


def test_rank_deficient_design_is_refused():
    x = np.random.default_rng(0).normal(size=(20, 3))
    x[:, 2] = x[:, 0] - x[:, 1]
    with pytest.raises(ValueError, match="design must have full column rank"):
        tr.excess_replace_fixed(5, x)
    fam = jc.LinearRegression(dim=3, n_design=20)
    with pytest.raises(ValueError, match="params0.design must have full column rank"):
        fam.params(np.ones(3), x)
    # with a ridge the fit is identified: accepted
    jc.LinearRegression(dim=3, n_design=20, ridge=1.0).params(np.ones(3), x)


# -------------------------------------------------------------------------- samplers

KEY = jax.random.key(0)
sampler_vals = st.sampled_from([2.0, 0.0, 0.3, -1.0, math.nan, math.inf, 1e30, 1e-30, 1j,
                                "2"])


@SOME
@given(fn=st.sampled_from(["gamma", "log_gamma", "chisquare", "normal_gamma"]),
       a=sampler_vals, dtype=st.sampled_from([np.float32, np.float64, np.float16]))
def test_gamma_samplers(fn, a, dtype):
    arr = np.full(3, a, dtype) if isinstance(a, float) else a
    names = ("a", "df", "key", "shape")
    call = {"gamma": lambda: jcr.gamma(KEY, arr, (3,)),
            "log_gamma": lambda: jcr.log_gamma_variate(KEY, arr, (3,)),
            "chisquare": lambda: jcr.chisquare(KEY, arr, (3,)),
            "normal_gamma": lambda: jcr.normal_gamma(KEY, arr, np.arange(3))}[fn]
    # log of Gamma(0) is -inf by definition; Gamma(1e30) is about 1e30 (finite)
    check("random samplers", call, names=names, allow_inf=fn == "log_gamma")


@FEW
@given(shape=st.sampled_from([(3,), 3, (2, 2), (-1,), (2.5,), "ab", None, (0,)]),
       key=st.sampled_from(["key", 0, "keys"]),
       dtype=st.sampled_from([None, "float32", "float64", "int32", "float16", "x"]),
       fn=st.sampled_from([jcr.uniform, jcr.normal, jcr.complex_normal, jcr.bits]))
def test_plain_samplers(shape, key, dtype, fn):
    k = {"key": KEY, 0: 0, "keys": jax.random.split(KEY, 2)}[key]
    args = (k, shape) if fn is jcr.bits else (k, shape, dtype)
    check("random samplers", fn, *args, names=("key", "shape", "dtype"))


@SOME
@given(n=st.sampled_from([5, 0, -3, 2.5, math.nan, math.inf, 1e6, "5", np.array([3, 4])]),
       p=st.sampled_from([[0.2, 0.8], [0.0, 1.0], [-0.5, 1.5], [math.nan, 1.0],
                          [0.0, 0.0], [0.3 + 0j, 0.7], [2.0, 6.0], [[0.5, 0.5], [0.1, 0.9]]]),
       fn=st.sampled_from(["multinomial", "binomial"]))
def test_count_samplers(n, p, fn):
    names = ("n", "p", "probs", "key")
    if fn == "multinomial":
        out = check("categorical samplers", cat.multinomial, KEY, n, jnp.asarray(p)
                    if not isinstance(p[0], complex) else np.asarray(p), names=names)
        if out is not None:
            assert np.all(np.asarray(out) >= 0)
            np.testing.assert_allclose(np.asarray(out).sum(-1), np.broadcast_to(
                np.asarray(n, np.float64), np.shape(out)[:-1]))
    else:
        q = np.asarray(p)[..., 0]
        out = check("categorical samplers", cat.binomial, KEY, n, q, names=names)
        if out is not None:
            assert np.all((np.asarray(out) >= 0) & (np.asarray(out) <= np.asarray(n)))


# ------------------------------------------------------------- family boundaries

DTYPES = [np.float32, np.float64, np.float16, "bfloat16", np.int32, np.bool_, np.complex64]


@np.errstate(invalid="ignore", over="ignore")  # casting nan/inf to ints is the point
def _as(x, dtype):
    return jnp.asarray(x, jnp.bfloat16) if dtype == "bfloat16" else np.asarray(x).astype(dtype)


@SOME
@given(family=st.sampled_from(["gaussian1", "gaussian2", "gmm", "regression", "categorical"]),
       dtype=st.sampled_from(DTYPES), special=st.sampled_from([None, math.nan, math.inf,
                                                                -1.0, 0.0, 1e30]),
       what=st.sampled_from(["params", "data"]))
def test_family_boundaries(family, dtype, special, what):
    rng = np.random.default_rng(0)
    if family.startswith("gaussian"):
        d = int(family[-1])
        fam = jc.Gaussian(dim=d)
        params = jc.GaussianParams(np.zeros(d), np.eye(d))
        data = rng.normal(size=(20, d))
    elif family == "gmm":
        fam = jc.GMM(2, 1)
        params = jc.GMMParams(np.array([0.5, 0.5]), np.array([[-1.0], [1.0]]),
                              np.ones((2, 1, 1)))
        data = rng.normal(size=(20, 1))
    elif family == "regression":
        fam = jc.LinearRegression(dim=2, n_design=6)
        params = jc.RegressionParams(np.ones(2), rng.normal(size=(6, 2)))
        data = (rng.normal(size=(6, 2)), rng.normal(size=6))
    else:
        fam = jc.Categorical(3)
        params = jc.CategoricalParams(np.array([0.2, 0.3, 0.5]))
        data = np.array([0, 1, 2, 2])

    def spoil(a):
        a = np.array(a, np.float64)
        if special is not None:
            a.flat[0] = special
        return _as(a, dtype)

    if what == "params":
        bad = type(params)(*(spoil(a) for a in params))
        out = check(f"family check_params ({family})", fam.check_params, bad,
                    names=("params0", "params"))
    else:
        bad = tuple(spoil(a) for a in data) if family == "regression" else spoil(data)
        out = check(f"family check_data ({family})", fam.check_data, bad, names=("data",))
    if out is not None:  # accepted: a float32/float64 result (integers for categories)
        for leaf in jax.tree_util.tree_leaves(out):
            assert leaf.dtype in (jnp.float32, jnp.float64) or (
                family == "categorical" and what == "data")


@FEW
@given(d=st.sampled_from([1, 2, 3]), e=st.integers(-45, 38), seed=st.integers(0, 999))
def test_extreme_gaussians_are_finite_or_flagged(d, e, seed):
    """float32 Gaussians from 1e-45 to 1e38: refused as degenerate, or every default
    metric against N(0, I) (both ways) is free of NaN, or the state is flagged."""
    fam = jc.Gaussian(dim=d)
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(d, d))
    cov = ((a @ a.T + d * np.eye(d)) / (2 * d) * 10.0**e).astype(np.float32)
    p = check("extreme Gaussians (float32)", fam.params, np.zeros(d, np.float32), cov,
              names=("params0",))
    if p is None:
        return
    p0 = fam.params(np.zeros(d, np.float32), np.eye(d, dtype=np.float32))
    flagged = bool(fam.is_degenerate(p))
    for name, metric in fam.default_metrics().items():
        for x, y in ((p, p0), (p0, p)):
            v = float(metric(x, y))
            TALLY["extreme Gaussians (float32) metrics"][
                "result" if np.isfinite(v) else "inf/NaN, flagged" if flagged
                else "still wrong: NaN/inf unflagged"] += 1
            assert np.isfinite(v) or flagged, (name, e, v)


def test_near_singular_float64_covariance_is_flagged():
    """Eigenvalues at rounding level (condition number 1e17; THEORY.md's d = 10,
    M = 32 replace chains reach it by generation 100) make log det meaningless."""
    fam = jc.Gaussian(dim=10)
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(10, 10)))
    w = np.geomspace(1.0, 1e-17, 10)
    near = jc.GaussianParams(jnp.zeros(10), jnp.asarray((q * w) @ q.T))
    assert bool(fam.is_degenerate(near))
    ok = jc.GaussianParams(jnp.zeros(10), jnp.asarray((q * np.geomspace(1, 1e-6, 10)) @ q.T))
    assert not bool(fam.is_degenerate(ok))


def test_em_on_huge_data_is_refused_with_the_float_range():
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32) * 1e30
    with pytest.raises(ValueError, match=r"x must have magnitudes below 1.84e\+17 for EM "
                                         r"in float32"):
        jc.GMM(2, 2).em(KEY, x)


# ------------------------------------------------------------------------- report

def test_report_never_prints_a_floor_as_an_estimate():
    rows = [dict(generation=0, logdet_mean=0.0, theory_logdet_mean=0.0, degenerate=0.0),
            dict(generation=500, logdet_mean=-87.34, theory_logdet_mean=-410.9,
                 degenerate=0.25)]
    text = _report.format_table(rows)
    assert "-87.34" not in text and "collapsed(25%)" in text and "-410.9" in text
    at = [dict(generation=9, metric_kl_mean=43.2, metric_kl_se=1.0, degenerate_mean=1.0,
               metric_w2sq_mean=1.0)]
    text = _report.format_table(at)
    assert "43.2" not in text and "collapsed(100%)" in text and "1" in text
