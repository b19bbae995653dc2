"""Categorical distributions: Wright–Fisher drift and lost tails.

A :class:`Categorical` over ``K`` categories has parameters
``CategoricalParams(probs)`` (shape ``(K,)``) and data that are integer category
indices (shape ``(n,)``). Fitting takes (weighted) empirical frequencies, so the
recursion ``p_{n+1} = counts(M draws from p_n) / M`` is the neutral Wright–Fisher
model: a category whose count hits zero is lost for good.

Because the fit only needs the count vector, the family is *exact*: ``simulate``
draws the count vector directly with :func:`multinomial` (a binary tree of
conditional binomials, O(K) work and no samples materialised). For very many
categories use :func:`wright_fisher`, which additionally exploits that lost
categories never return: it compacts the live support as it shrinks.

Lost categories and KL. ``KL(p0 || p_n)`` is infinite as soon as one category is
lost. The ``kl`` metric reports the KL divergence from ``p0`` *conditioned on the
surviving support* ``S`` of ``p_n`` (``p0`` restricted to ``S`` and renormalised)
to ``p_n``; the mass that conditioning removes is the ``lost_mass`` metric. Both
together describe the distance: ``kl`` measures distortion of what survives,
``lost_mass`` what is gone.

References:
    Shumailov et al., Nature 631 (2024) (discrete case); Dohmatob et al., A Tale
    of Tails, ICML 2024 (Zipf tails); Kachitvichyanukul & Schmeiser (1988) and
    Hormann (1993) (binomial sampling, BTRS). THEORY.md section 4.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse._validate import check_choice, float_array
from jaxcollapse.families._counts import binomial, multinomial
from jaxcollapse.families.base import StatsFit

__all__ = [
    "Categorical",
    "CategoricalParams",
    "binomial",
    "entropy",
    "heterozygosity",
    "kl_surviving",
    "lost_mass",
    "multinomial",
    "survivors",
    "tail_rank",
    "total_variation",
    "uniform",
    "zipf",
]

METHODS = ("exact", "samples")
# Tolerance on sum(probs) == 1 in check_params (covers float32 normalisation of
# 10^5 categories).
SUM_TOL = 1e-4


class CategoricalParams(NamedTuple):
    """Parameters of a categorical distribution.

    Attributes:
        probs: category probabilities, shape ``(K,)``, non-negative, summing to 1.

    Example:
        >>> uniform(4).probs.tolist()
        [0.25, 0.25, 0.25, 0.25]
    """

    probs: jax.Array


# --------------------------------------------------------------------------------------
# Distributions.
# --------------------------------------------------------------------------------------


def _check_k(n_categories: Any) -> int:
    if isinstance(n_categories, bool) or not isinstance(n_categories, int | np.integer):
        raise TypeError(f"n_categories must be an int; got {n_categories!r}")
    if n_categories < 2:
        raise ValueError(f"n_categories must be >= 2; got {n_categories}")
    return int(n_categories)


def zipf(n_categories: int, beta: float, dtype: Any = None) -> CategoricalParams:
    """Zipf law over K categories: ``p_i ∝ i^(-beta)``, i = 1..K (sorted descending).

    Any ``beta > 0`` normalises over finitely many categories (the infinite-K
    results in :mod:`jaxcollapse.theory.discrete` need ``beta > 1``).

    References:
        Dohmatob et al., A Tale of Tails, ICML 2024. THEORY.md section 4.

    Example:
        >>> p = zipf(4, 1.0).probs
        >>> [round(float(x), 3) for x in p]
        [0.48, 0.24, 0.16, 0.12]
        >>> zipf(4, 0.0)
        Traceback (most recent call last):
        ...
        ValueError: beta must be a finite number > 0; got 0.0
    """
    k = _check_k(n_categories)
    if not isinstance(beta, int | float | np.floating | np.integer) or not (
            math.isfinite(beta) and beta > 0):
        raise ValueError(f"beta must be a finite number > 0; got {beta!r}")
    w = np.arange(1, k + 1, dtype=np.float64) ** (-float(beta))
    return CategoricalParams(jnp.asarray(w / w.sum(), dtype=dtype))


def uniform(n_categories: int, dtype: Any = None) -> CategoricalParams:
    """The uniform distribution over K categories.

    References:
        THEORY.md section 4.

    Example:
        >>> uniform(4).probs.tolist()
        [0.25, 0.25, 0.25, 0.25]
    """
    k = _check_k(n_categories)
    return CategoricalParams(jnp.full((k,), 1.0 / k, dtype=dtype))


# --------------------------------------------------------------------------------------
# Metrics: module-level functions (stable identity: repeated runs do not recompile).
# --------------------------------------------------------------------------------------


def survivors(params: CategoricalParams, params0: CategoricalParams) -> jax.Array:
    """Number of categories with positive probability.

    Example:
        >>> p = CategoricalParams(jnp.array([0.5, 0.0, 0.5]))
        >>> int(survivors(p, p))
        2
    """
    del params0
    return jnp.sum(params.probs > 0).astype(params.probs.dtype)


def lost_mass(params: CategoricalParams, params0: CategoricalParams) -> jax.Array:
    """Probability under ``p0`` of the categories that ``p_n`` has lost.

    Example:
        >>> p0 = CategoricalParams(jnp.array([0.5, 0.2, 0.3]))
        >>> p = CategoricalParams(jnp.array([0.6, 0.0, 0.4]))
        >>> round(float(lost_mass(p, p0)), 3)
        0.2
    """
    return jnp.sum(jnp.where(params.probs > 0, 0.0, params0.probs))


def entropy(params: CategoricalParams, params0: CategoricalParams) -> jax.Array:
    """Shannon entropy ``-Σ p log p`` in nats (``0 log 0 = 0``).

    Example:
        >>> p = CategoricalParams(jnp.array([0.5, 0.0, 0.5]))
        >>> round(float(entropy(p, p)), 4)
        0.6931
    """
    del params0
    p = params.probs
    return -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))


def heterozygosity(params: CategoricalParams, params0: CategoricalParams) -> jax.Array:
    """Heterozygosity ``1 - Σ p_i²``: the chance two draws differ.

    References:
        THEORY.md section 4 (E[H_n] = (1 - 1/M)^n H_0).

    Example:
        >>> p = CategoricalParams(jnp.array([0.5, 0.5]))
        >>> float(heterozygosity(p, p))
        0.5
    """
    del params0
    return 1.0 - jnp.sum(params.probs**2)


def _kl_conditioned(p: jax.Array, p0: jax.Array) -> jax.Array:
    alive = p > 0
    z = jnp.sum(jnp.where(alive, p0, 0.0))
    p0s = jnp.where(alive, p0, 0.0) / jnp.where(z > 0, z, 1.0)
    ratio = jnp.where(alive & (p0s > 0), p0s / jnp.where(alive, p, 1.0), 1.0)
    return jnp.maximum(jnp.sum(jnp.where(p0s > 0, p0s * jnp.log(ratio), 0.0)), 0.0)


def kl_surviving(params: CategoricalParams, params0: CategoricalParams) -> jax.Array:
    """KL(p0 | S  ||  p_n) with ``p0`` conditioned on the surviving support S.

    Finite even after categories are lost (plain KL(p0 || p_n) is then infinite);
    report it together with :func:`lost_mass`. Equals KL(p0 || p_n) while nothing
    is lost.

    Example:
        >>> p0 = CategoricalParams(jnp.array([0.5, 0.25, 0.25]))
        >>> p = CategoricalParams(jnp.array([0.5, 0.5, 0.0]))
        >>> round(float(kl_surviving(p, p0)), 4)  # p0|S = (2/3, 1/3)
        0.0566
    """
    return _kl_conditioned(params.probs, params0.probs)


def total_variation(params: CategoricalParams, params0: CategoricalParams) -> jax.Array:
    """Total variation distance ``½ Σ |p_i - p0_i|``.

    Example:
        >>> p0 = CategoricalParams(jnp.array([0.5, 0.5]))
        >>> p = CategoricalParams(jnp.array([1.0, 0.0]))
        >>> float(total_variation(p, p0))
        0.5
    """
    return 0.5 * jnp.sum(jnp.abs(params.probs - params0.probs))


def tail_rank(params: CategoricalParams, params0: CategoricalParams) -> jax.Array:
    """The rank (under ``p0``, 1 = most probable) beyond which every category is lost.

    It is the number of categories at least as probable under ``p0`` as the least
    probable (under ``p0``) survivor: for Zipf, everything ranked beyond it is
    gone. Ties count in full (uniform ``p0`` gives K while anything survives).

    Example:
        >>> p0 = CategoricalParams(jnp.array([0.4, 0.3, 0.2, 0.1]))
        >>> p = CategoricalParams(jnp.array([0.5, 0.0, 0.5, 0.0]))
        >>> int(tail_rank(p, p0))
        3
    """
    p0 = params0.probs
    t = jnp.min(jnp.where(params.probs > 0, p0, jnp.inf))
    return jnp.sum(p0 >= t).astype(p0.dtype)


_METRICS = {
    "survivors": survivors,
    "lost_mass": lost_mass,
    "entropy": entropy,
    "heterozygosity": heterozygosity,
    "kl": kl_surviving,
    "tv": total_variation,
    "tail_rank": tail_rank,
}


# --------------------------------------------------------------------------------------
# The family.
# --------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Categorical(StatsFit):
    """Categorical distributions over ``n_categories`` categories.

    Data are integer category indices of shape ``(n,)``. ``fit`` returns the
    weighted empirical frequencies; the sufficient statistic is the count vector
    (shape ``(K,)``, floating), drawn exactly by :func:`multinomial`.

    Attributes:
        n_categories: K >= 2 (static).
        method: ``"exact"`` (draw the count vector with :func:`multinomial`) or
            ``"samples"`` (draw M indices and count them), identical in law.

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md section 4.

    Example:
        >>> import jax
        >>> fam = Categorical(3)
        >>> p0 = fam.check_params(uniform(3))
        >>> x = fam.sample(jax.random.key(0), p0, 5)
        >>> x.shape
        (5,)
        >>> fam.fit(jax.random.key(1), jnp.array([0, 0, 2, 2]), jnp.ones(4)).probs.tolist()
        [0.5, 0.0, 0.5]
    """

    n_categories: int
    method: str = "exact"
    #: draws have no pathwise derivative: a traced simulate stops their gradient and
    #: differentiates draws_log_prob (the score function)
    discrete_draws: ClassVar[bool] = True

    def __post_init__(self):
        _check_k(self.n_categories)
        check_choice(self.method, "method", METHODS)

    @property
    def exact(self) -> bool:
        return self.method == "exact"

    def params(self, probs: Any = None) -> CategoricalParams:
        """Builds (and checks) parameters; defaults to the uniform distribution.

        Example:
            >>> Categorical(2).params().probs.tolist()
            [0.5, 0.5]
        """
        if probs is None:
            return uniform(self.n_categories)
        return self.check_params(CategoricalParams(probs))

    def min_samples(self) -> int:
        """Smallest training-set size: 1."""
        return 1

    # -- validation -------------------------------------------------------------------
    def check_params(self, params: Any, name: str = "params") -> CategoricalParams:
        """Validates probabilities on the host: shape (K,), finite, >= 0, sum 1.

        dtypes: float32 and float64 are kept, float16 and bfloat16 become float32;
        integer, boolean and complex probabilities are refused (a ``TypeError``).
        """
        probs = params.probs if isinstance(params, CategoricalParams) else params
        a = np.asarray(probs)
        if a.shape != (self.n_categories,):
            raise ValueError(f"{name}.probs must have shape ({self.n_categories},); "
                             f"got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating) and a.dtype.name != "bfloat16":
            raise TypeError(f"{name}.probs must be floating point; got dtype {a.dtype}")
        a64 = a.astype(np.float64)
        if not np.all(np.isfinite(a64)):
            raise ValueError(f"{name}.probs must be finite; got non-finite values")
        if np.any(a64 < 0):
            raise ValueError(f"{name}.probs must be >= 0; got minimum {a64.min()}")
        s = a64.sum()
        if abs(s - 1.0) > SUM_TOL:
            raise ValueError(f"{name}.probs must sum to 1 (within {SUM_TOL}); got {s}")
        # float16/bfloat16 become float32 (the samplers' loops need it)
        return CategoricalParams(float_array(probs, f"{name}.probs"))

    def check_data(self, data: Any, name: str = "data") -> jax.Array:
        """Validates category indices on the host: 1-D integers in [0, K) (floats,
        booleans and complex numbers are refused with a ``TypeError``)."""
        a = np.asarray(data)
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name} must hold integer category indices; got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"{name} must have shape (n,); got {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= self.n_categories):
            raise ValueError(f"{name} must lie in [0, {self.n_categories}); "
                             f"got range [{a.min()}, {a.max()}]")
        return jnp.asarray(data)

    # -- model --------------------------------------------------------------------------
    def sample(self, key: jax.Array, params: CategoricalParams, n: int) -> jax.Array:
        """``n`` category indices (int32, shape ``(n,)``) by inverse-CDF search."""
        p = params.probs
        cdf = jnp.cumsum(p)
        u = jax.random.uniform(key, (n,), cdf.dtype) * cdf[-1]
        idx = jnp.searchsorted(cdf, u, side="right")
        last = self.n_categories - 1 - jnp.argmax((p > 0)[::-1])
        return jnp.minimum(idx, last).astype(jnp.int32)

    def log_prob(self, params: CategoricalParams, x: jax.Array) -> jax.Array:
        """``log p_x`` (``-inf`` for a lost category)."""
        p = params.probs[x]
        return jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)

    def default_metrics(self) -> dict:
        """survivors, lost_mass, entropy, heterozygosity, kl, tv, tail_rank."""
        return dict(_METRICS)

    def is_degenerate(self, params: CategoricalParams) -> jax.Array:
        """True once a category is lost (KL(p0 || p) is then infinite)."""
        return jnp.any(params.probs <= 0)

    # -- exact path ----------------------------------------------------------------------
    def fast_simulate(self, key: jax.Array, params0: CategoricalParams, *, regime: str,
                      n_generations: int, n_samples: int, n_chains: int,
                      metrics: tuple[str, ...], progress: bool = False,
                      check_only: bool = False):
        """The Wright–Fisher live-support runner (:func:`wright_fisher`), which
        :func:`jaxcollapse.simulate` calls by itself for replace and accumulate with
        a constant sample size, the default metrics and no parameter history: equal
        in law to the generic path (not in numbers: another sampler), and O(live
        support) a generation instead of O(K). Returns ``(metrics, degenerate)`` with
        leading axes (chain, generation); with ``check_only``, only whether it
        applies (nothing runs).

        Example:
            >>> import jax
            >>> fam = Categorical(100)
            >>> m, deg = fam.fast_simulate(jax.random.key(0), zipf(100, 1.1),
            ...                            regime="replace", n_generations=3,
            ...                            n_samples=50, n_chains=2, metrics=("survivors",))
            >>> m["survivors"].shape, deg.shape
            ((2, 4), (2, 4))
        """
        from jaxcollapse.families.wright_fisher import wright_fisher

        applies = self.method == "exact" and regime in ("replace", "accumulate") and \
            set(metrics) <= set(_METRICS)
        if check_only:
            return applies
        if not applies:
            raise ValueError(f"the Wright–Fisher runner takes method='exact', replace or "
                             f"accumulate and the default metrics; got method="
                             f"{self.method!r}, regime={regime!r}, metrics={metrics}")
        res = wright_fisher(key, params0, n_generations=n_generations, n_samples=n_samples,
                            n_chains=n_chains, regime=regime, progress=progress)
        k = params0.probs.shape[-1]
        degenerate = res.metrics["survivors"] < k
        return {name: res.metrics[name] for name in metrics}, degenerate

    def stats(self, data: jax.Array, weights: jax.Array) -> jax.Array:
        """Weighted count vector, shape ``(K,)``."""
        w = jnp.asarray(weights)
        if not jnp.issubdtype(w.dtype, jnp.floating):
            w = w.astype(jnp.result_type(float))
        return jnp.zeros((self.n_categories,), w.dtype).at[data].add(w)

    def sample_stats(self, key: jax.Array, params: CategoricalParams, n: Any) -> jax.Array:
        """Exact multinomial count vector of ``n`` (traced) draws."""
        return multinomial(key, n, params.probs)

    def add_stats(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return a + b

    def scale_stats(self, stats: jax.Array, c: Any) -> jax.Array:
        """The counts of the same draws with every weight multiplied by ``c``."""
        return stats * jnp.asarray(c, stats.dtype)

    def draws_log_prob(self, params: CategoricalParams, draws: Any) -> jax.Array:
        """log P(draws | params) up to a term free of ``params``: ``sum_i c_i log p_i``
        for counts ``c`` (the exact path), ``sum_j w_j log p_{x_j}`` for rows and
        weights ``(x, w)`` (the samples path). The score-function estimator of
        ``simulate``'s gradients differentiates it with respect to the law
        (temperature, top-p, curation...). Finite where a probability is 0 and its
        count is 0.

        Example:
            >>> import jax.numpy as jnp
            >>> fam = Categorical(2)
            >>> round(float(fam.draws_log_prob(fam.params([0.5, 0.5]), jnp.array([3.0, 0.0]))), 4)
            -2.0794
        """
        p = params.probs
        if isinstance(draws, tuple):
            x, w = draws
            px = p[x]
            return jnp.sum(jnp.where(w > 0, w * jnp.log(jnp.where(w > 0, px, 1.0)), 0.0))
        c = draws.astype(p.dtype)
        return jnp.sum(jnp.where(c > 0, c * jnp.log(jnp.where(c > 0, p, 1.0)), 0.0))

    def fit_stats(self, stats: jax.Array) -> CategoricalParams:
        """Frequencies ``counts / total`` (all zero, flagged degenerate, if empty)."""
        total = jnp.sum(stats)
        return CategoricalParams(stats / jnp.where(total > 0, total, 1.0))


# --------------------------------------------------------------------------------------
# Fast Wright–Fisher simulation on a shrinking support.
# --------------------------------------------------------------------------------------


def __getattr__(name):
    # the Wright–Fisher runner lives in its own module (which imports this one)
    if name in ("wright_fisher", "WrightFisherResult"):
        from jaxcollapse.families import wright_fisher as wf

        return getattr(wf, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
