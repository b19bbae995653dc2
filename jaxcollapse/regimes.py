"""Data regimes: what the training set of generation n + 1 is made of.

A regime is a small object with behaviour, in the manner of an optax
``GradientTransformation``: :meth:`Regime.init` makes a chain's pool state from
static sizes, the human data and a key; :meth:`Regime.update` takes that state and
one generation's synthetic draws (rows and weights on the samples path, or their
sufficient statistics on the statistics path) and returns the fitted parameters and
the new state. :func:`jaxcollapse.simulate` calls the pair and never asks which
regime it holds; a new regime is one class here and one line in :data:`REGIMES`.

Regimes are pytrees: what selects the compiled program (the human-data source) is
static, while what one sweeps (the human fraction ``alpha``, the weight ``w`` of
fresh data) is a traced leaf, so a sweep over it is one compiled program (see
:func:`jaxcollapse.simulate_grid`).

References:
    Shumailov et al., Nature 631 (2024) (replace, mix with 10% human data);
    Gerstgrasser et al., arXiv 2404.01413 (accumulate);
    Kazdan et al., arXiv 2410.16713 (accumulate-subsample);
    He, Xu, Cheng, arXiv 2502.18049 (weighted fresh data). THEORY.md sections 1, 11.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse import random as jcr
from jaxcollapse._regime_contract import (  # noqa: F401 (the contract's names live here too)
    Generation,
    PoolSpec,
    PyTree,
    Regime,
    _concat,
    _float_dtype,
    _n_rows,
    _take,
)
from jaxcollapse._regime_mix import (  # noqa: F401 (documented here)
    HUMAN_SOURCES,
    WEIGHTINGS,
    Mix,
    check_alpha,
)

# ---------------------------------------------------------------------- regimes


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Replace(Regime):
    """D_{n+1} = M fresh draws from the model of generation n.

    Example:
        >>> get_regime("replace") == Replace()
        True
    """

    name: ClassVar[str] = "replace"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Accumulate(Regime):
    """D_{n+1} = D_n plus M draws from the model of generation n: the pool grows.

    As in Gerstgrasser et al. and Kazdan et al., the pool starts with generation
    0's data: for a parametric family these are generation 1's draws from the
    human distribution; a data-set family (KDE) puts its own points (the human
    data) first. On the statistics path the pool is the pooled statistics.

    Example:
        >>> get_regime("accumulate").name
        'accumulate'
    """

    name: ClassVar[str] = "accumulate"
    # a family that fits through the draws' statistics (Gaussian) pools them on the
    # samples path too: about replace's cost instead of a refit of the whole pool

    def train_rows(self, spec):
        return spec.init_rows + spec.n_generations * spec.n_max

    def pool_rows(self, spec):
        return self.train_rows(spec)

    def init(self, spec, key, params0, human):
        fam = spec.family
        dt = _float_dtype(params0)
        template = jax.eval_shape(lambda: fam.sample(jax.random.key(0), params0, 1))
        if spec.exact:
            zero = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), template)
            return {"pool": fam.stats(zero, jnp.zeros((1,), dt))}
        size = self.train_rows(spec)
        pool = jax.tree.map(lambda s: jnp.zeros((size,) + s.shape[1:], s.dtype), template)
        pool_w = jnp.zeros((size,), dt)
        if spec.init_rows:
            data0, w0 = spec.family.initial_data(params0)
            pool = jax.tree.map(
                lambda p, v: lax.dynamic_update_slice_in_dim(p, v.astype(p.dtype), 0, 0),
                pool, data0)
            pool_w = lax.dynamic_update_slice_in_dim(pool_w, w0.astype(dt), 0, 0)
        return {"pool": pool, "pool_w": pool_w}

    def _grow(self, spec, state, gen):
        if spec.exact:
            st = spec.family.add_stats(state["pool"], gen.synthetic)
            return st, {"pool": st}
        x, w = gen.synthetic
        start = spec.init_rows + (gen.t - 1) * spec.n_max
        pool = jax.tree.map(
            lambda p, v: lax.dynamic_update_slice_in_dim(p, v, start, axis=0),
            state["pool"], x)
        pool_w = lax.dynamic_update_slice_in_dim(state["pool_w"], w, start, axis=0)
        return (pool, pool_w), {"pool": pool, "pool_w": pool_w}

    def update(self, spec, state, gen):
        train, state = self._grow(spec, state, gen)
        return gen.fit(train), state


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AccumulateSubsample(Accumulate):
    """The pool grows as in :class:`Accumulate`; each fit uses a uniform M-subsample.

    The pool keeps its live rows (weight > 0) first, in the order they came. A
    generation's subset is ``m`` distinct indices drawn uniformly from the ``n`` live
    rows by rejection (:func:`jaxcollapse.random.distinct_indices`: the first ``m``
    distinct values of a stream of i.i.d. uniform indices, a table of one byte a
    pooled row finding the repeats), or all live rows when ``n <= m``; the rows are
    gathered, so the fit sees ``n_max`` rows, not the pool. O(M) work a generation
    however large the pool: about 6x replace's cost at 1,024 chains x 50 generations
    x M = 100, where the former top-``M`` of uniform scores over the whole pool cost
    over 100x, and drawing, appending and gathering the rows alone about 2x
    (``benchmarks/regimes.py``; replace draws the rows' statistics, not rows).

    Numbers at a given key changed in this version (other random numbers): the subset
    was the ``m`` smallest of i.i.d. float32 uniform scores, one a pooled row, a tie
    at the ``m``-th score broken by position; it is now drawn as indices, exactly
    uniform.

    Example:
        >>> isinstance(get_regime("accumulate-subsample"), AccumulateSubsample)
        True
    """

    name: ClassVar[str] = "accumulate-subsample"
    stats_path: ClassVar[bool] = False
    pools_stats: ClassVar[bool] = False  # a subsample needs the rows

    def train_rows(self, spec):
        return spec.n_max

    def pool_rows(self, spec):
        return spec.init_rows + spec.n_generations * spec.n_max

    def init(self, spec, key, params0, human):
        fam = spec.family
        template = jax.eval_shape(lambda: fam.sample(jax.random.key(0), params0, 1))
        size = self.pool_rows(spec)
        pool = jax.tree.map(lambda s: jnp.zeros((size,) + s.shape[1:], s.dtype), template)
        n_live = jnp.zeros((), jnp.int32)
        if spec.init_rows:
            data0, w0 = fam.initial_data(params0)
            pool, n_live = _append_live(pool, n_live, data0, w0)
        # the rejection's table of repeats, zero between generations (carried, so it
        # is not cleared a whole pool at a time)
        return {"pool": pool, "n_live": n_live,
                "scratch": jcr.distinct_scratch(size, spec.n_max)}

    def update(self, spec, state, gen):
        pool, n_live = _append_live(state["pool"], state["n_live"], *gen.synthetic)
        k = spec.n_max
        # n_live <= m: every live row (they are first), where drawing all n_live
        # distinct indices would be coupon collecting; else m distinct live rows
        sub = n_live > gen.m
        idx, scratch = jcr.distinct_indices(gen.key, jnp.maximum(n_live, 1), k,
                                            state["scratch"], jnp.where(sub, gen.m, 0))
        idx = jnp.where(sub, idx, jnp.arange(k, dtype=jnp.int32))
        rows = _take(pool, idx)
        dt = _float_dtype(gen.params0)
        used = jnp.minimum(gen.m, n_live)
        weights = (jnp.arange(k) < used).astype(dt)
        return gen.fit((rows, weights)), {"pool": pool, "n_live": n_live, "scratch": scratch}


def _append_live(pool, n_live, x, w):
    """``pool`` with the rows of ``x`` whose weight is positive written from row
    ``n_live`` on, in their order, and the new count of live rows (the rows after
    them are scratch: the next append overwrites them)."""
    live = w > 0
    # the live rows first, in order, then the others: a stable partition
    rank = jnp.cumsum(live) - 1
    dead = jnp.cumsum(~live) - 1 + jnp.sum(live)
    order = jnp.zeros(w.shape, jnp.int32).at[jnp.where(live, rank, dead)].set(
        jnp.arange(w.shape[0], dtype=jnp.int32), unique_indices=True)
    pool = jax.tree.map(
        lambda p, v: lax.dynamic_update_slice_in_dim(p, v[order].astype(p.dtype), n_live,
                                                     axis=0), pool, x)
    return pool, n_live + jnp.sum(live, dtype=jnp.int32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class WeightedFresh(Regime):
    """Fit on the synthetic draws and on fresh human draws apart, then average.

    theta_t = (1 - w) thetahat(M synthetic draws) + w thetahat(n_real fresh draws from
    generation 0's distribution). With k = n_real / M the Gaussian mean's stationary
    variance is (sigma^2 / n_real) [k (1 - w)^2 + w^2] / (1 - (1 - w)^2), smallest at
    w* = (sqrt(k^2 + 4k) - k) / 2 (THEORY.md section 11).

    Attributes:
        w: weight of the fresh fit in [0, 1] (traced: sweepable).
        n_real: fresh human draws a generation (static).

    Example:
        >>> r = weighted_fresh(0.6, 50)
        >>> r.name, r.n_real
        ('weighted-fresh', 50)

    References:
        He, Xu, Cheng. arXiv 2502.18049 (2025).
    """

    w: Any = 0.5
    n_real: int = dataclasses.field(default=100, metadata=dict(static=True))
    name: ClassVar[str] = "weighted-fresh"

    def check(self):
        check_alpha(self.w, "w")
        if isinstance(self.n_real, bool) or not isinstance(self.n_real, int | np.integer) \
                or self.n_real < 2:
            raise ValueError(f"n_real must be an integer >= 2; got {self.n_real!r}")

    def check_family(self, family):
        from jaxcollapse.families.base import DataSetFamily

        if isinstance(family, DataSetFamily):
            raise ValueError(f"regime 'weighted-fresh' averages two fits' parameters, which "
                             f"needs a parametric family; {family!r} holds a data set (use "
                             f"mix(alpha, 'fresh') to add fresh human rows)")

    def fresh_rows(self):
        return self.n_real

    def update(self, spec, state, gen):
        p_syn = gen.fit(gen.synthetic)
        fresh = gen.draw(gen.key, gen.params0, self.n_real) if gen.fresh is None \
            else gen.fresh
        p_real = gen.fit(fresh)
        w = jnp.asarray(self.w)
        return jax.tree.map(lambda a, b: (1 - w).astype(a.dtype) * a + w.astype(a.dtype) * b,
                            p_syn, p_real), state


#: name -> regime class; a new regime is one class above and one line here
REGIMES: dict[str, type[Regime]] = {
    "replace": Replace,
    "accumulate": Accumulate,
    "accumulate-subsample": AccumulateSubsample,
    "mix": Mix,
    "weighted-fresh": WeightedFresh,
}


# ------------------------------------------------------------------- factories


def replace() -> Replace:
    """The replace regime.

    Example:
        >>> replace().name
        'replace'
    """
    return Replace()


def accumulate() -> Accumulate:
    """The accumulate regime.

    Example:
        >>> accumulate().name
        'accumulate'
    """
    return Accumulate()


def accumulate_subsample() -> AccumulateSubsample:
    """The accumulate-subsample regime.

    Example:
        >>> accumulate_subsample().name
        'accumulate-subsample'
    """
    return AccumulateSubsample()


def mix(alpha: Any = 0.1, source: str = "fixed", weighting: str = "count") -> Mix:
    """The mix regime with human fraction ``alpha`` (validated).

    Args:
        alpha: a fraction in [0, 1], or a schedule of one fraction a generation
            (1-D, length ``n_generations``; a sweep over constant fractions is
            ``simulate_grid(alpha=...)``).
        source: ``"fixed"`` or ``"fresh"`` human rows (:class:`Mix`).
        weighting: ``"count"`` (``round(alpha M)`` human rows) or ``"relaxed"``
            (weighted, differentiable in alpha; :class:`Mix`).

    Example:
        >>> mix(0.1).alpha
        0.1
        >>> mix([0.2, 0.1, 0.0], weighting="relaxed").weighting
        'relaxed'
        >>> mix(1.5)
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in [0, 1]; got 1.5
    """
    if not isinstance(alpha, jax.core.Tracer) and np.ndim(alpha) > 1:
        raise ValueError(f"alpha must be a fraction or a 1-D schedule of fractions, one a "
                         f"generation (use simulate_grid(alpha=...) for a sweep); got shape "
                         f"{np.shape(alpha)}")
    m = Mix(alpha=alpha, source=source, weighting=weighting)
    m.check()
    return m


def weighted_fresh(w: Any = 0.5, n_real: int = 100) -> WeightedFresh:
    """The weighted-fresh-data regime of He, Xu and Cheng (validated).

    Example:
        >>> weighted_fresh(0.618, 100).w
        0.618
        >>> weighted_fresh(1.2, 10)
        Traceback (most recent call last):
        ...
        ValueError: w must lie in [0, 1]; got 1.2
    """
    r = WeightedFresh(w=w, n_real=n_real)
    r.check()
    return r


def get_regime(regime: Any, *, alpha: Any = None, source: str = "fixed") -> Regime:
    """Turns a regime object or name (``"replace"``, ``"mix"``, ...) into a regime.

    Example:
        >>> get_regime("mix", alpha=0.1).name
        'mix'
        >>> get_regime("shuffle")
        Traceback (most recent call last):
        ...
        ValueError: regime must be one of (...); got 'shuffle'
    """
    if isinstance(regime, Regime):
        regime.check()
        return regime
    if isinstance(regime, type) and issubclass(regime, Regime):
        raise TypeError(f"regime must be a regime object such as {regime.__name__}() or a "
                        f"name; got the class {regime.__name__}")
    if not isinstance(regime, str) or regime not in REGIMES:
        raise ValueError(f"regime must be one of {tuple(REGIMES)}; got {regime!r}")
    if regime == "mix":
        return mix(0.1 if alpha is None else alpha, source)
    if alpha is not None:
        raise ValueError(f"alpha is only used by the 'mix' regime; got regime={regime!r}")
    return REGIMES[regime]()


def n_human(alpha: jax.Array, n: jax.Array) -> jax.Array:
    """Number of human points ``round(alpha * n)`` in a training set of size ``n``.

    Example:
        >>> n_human(0.1, 100).item(), n_human(0.5, 3).item()
        (10, 2)
    """
    return jnp.round(jnp.asarray(alpha) * n).astype(jnp.int32)


def schedule(kind: str, n_generations: int, start: int, *, rate: float = 1.0,
             power: float = 2.0) -> np.ndarray:
    """A per-generation sample-size schedule M_1..M_n (integers).

    Args:
        kind: ``"constant"`` (M_i = start), ``"linear"`` (M_i = start + rate (i - 1)),
            or ``"power"`` (M_i = ceil(start i^power), superlinear for power > 1,
            which keeps the Gaussian W2 bounded: THEORY.md section 2).
        n_generations: number of generations n.
        start: M_1.

    Example:
        >>> schedule("linear", 4, 10, rate=5).tolist()
        [10, 15, 20, 25]
        >>> schedule("power", 3, 10).tolist()
        [10, 40, 90]
    """
    if n_generations < 1:
        raise ValueError(f"n_generations must be >= 1; got {n_generations}")
    if start < 2:
        raise ValueError(f"start must be >= 2 samples; got {start}")
    i = np.arange(1, n_generations + 1, dtype=float)
    if kind == "constant":
        m = np.full_like(i, start)
    elif kind == "linear":
        m = start + rate * (i - 1)
    elif kind == "power":
        m = np.ceil(start * i**power)
    else:
        raise ValueError(f"kind must be 'constant', 'linear' or 'power'; got {kind!r}")
    if m.max() > 2**31 - 1 or not math.isfinite(m.max()):
        raise ValueError("schedule overflows int32; lower n_generations, rate or power")
    return m.astype(np.int64)
