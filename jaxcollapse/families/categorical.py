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
import functools
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._progress import Progress
from jaxcollapse.random import threefry_words

__all__ = [
    "Categorical",
    "CategoricalParams",
    "WrightFisherResult",
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
    "wright_fisher",
    "zipf",
]

# Mean n*q below which a binomial is drawn by CDF inversion (few steps); above it
# the BTRS rejection sampler is valid and needs about 1.1 tries on average.
_SMALL_MEAN = 10.0
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
# Exact binomial and multinomial samplers.
# --------------------------------------------------------------------------------------

_STIRLING_TABLE = (0.08106146679532726, 0.04134069595540929, 0.02767792568499834,
                   0.02079067210376509, 0.01664469118982119, 0.01387612882307075,
                   0.01189670994589177, 0.01041126526197209, 0.009255462182712733,
                   0.008330563433362871)


def _stirling_tail(k: jax.Array) -> jax.Array:
    # log k! - [(k + 1/2) log(k + 1) - (k + 1) + log(2 pi)/2]: exact below 10.
    k1 = k + 1.0
    kk = k1 * k1
    approx = (1.0 / 12 - (1.0 / 360 - 1.0 / 1260 / kk) / kk) / k1
    table = jnp.asarray(_STIRLING_TABLE, dtype=k.dtype)
    return jnp.where(k < 10, table[jnp.clip(k, 0, 9).astype(jnp.int32)], approx)


def _btrs_constants(n, q):
    spq = jnp.sqrt(n * q * (1 - q))
    b = 1.15 + 2.53 * spq
    a = -0.0873 + 0.0248 * b + 0.01 * q
    c = n * q + 0.5
    vr = 0.92 - 4.2 / b
    r = q / (1 - q)
    alpha = (2.83 + 5.1 / b) * spq
    m = jnp.floor((n + 1) * q)
    lpm = ((m + 0.5) * jnp.log((m + 1) / (r * (n - m + 1)))
           + _stirling_tail(m) + _stirling_tail(n - m))
    return n, b, a, c, vr, r, alpha, m, lpm


def _btrs_try(u, v, n, b, a, c, vr, r, alpha, m, lpm):
    # One proposal of Hormann's transformed rejection with squeeze (BTRS).
    u = u - 0.5
    us = 0.5 - jnp.abs(u)
    k = jnp.floor((2 * a / us + b) * u + c)
    quick = (us >= 0.07) & (v <= vr)
    inside = (k >= 0) & (k <= n)
    kc = jnp.clip(k, 0, n)
    lv = jnp.log(v * alpha / (a / (us * us) + b))
    bound = (lpm + (n + 1) * jnp.log((n - m + 1) / (n - kc + 1))
             + (kc + 0.5) * jnp.log(r * (n - kc + 1) / (kc + 1))
             - _stirling_tail(kc) - _stirling_tail(n - kc))
    return kc, quick | (inside & (lv <= bound))


def _inversion(u, n, q):
    # Sequential search of the Binomial(n, q) CDF from 0; q <= 1/2 so r is finite.
    r = q / (1 - q)
    pmf = jnp.exp(n * jnp.log1p(-q))

    def cond(c):
        k, _, cdf = c
        return jnp.any((u > cdf) & (k < n))

    def body(c):
        k, pmf, cdf = c
        go = (u > cdf) & (k < n)
        nxt = pmf * (n - k) / (k + 1) * r
        return jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf), jnp.where(go, cdf + nxt, cdf)

    # A few unrolled steps fuse into one pass and finish almost every element of a
    # small-mean batch; the loop then usually runs zero times.
    state = (jnp.zeros_like(n), pmf, pmf)
    for _ in range(4):
        state = body(state)
    return lax.while_loop(cond, body, state)[0]


def _btrs(key, u, n, q):
    consts = _btrs_constants(n, q)
    if key.ndim == 0:
        k_v, k_loop = jax.random.split(key)
        v0 = jax.random.uniform(k_v, n.shape, n.dtype)

        def draws(key):
            key, k1, k2 = jax.random.split(key, 3)
            return (jax.random.uniform(k1, n.shape, n.dtype),
                    jax.random.uniform(k2, n.shape, n.dtype), key)
    else:
        # One key per element: try r takes both uniforms from fold_in(key, r), so
        # an element's draws do not depend on the rest of the batch.
        def pair(r):
            one = lambda k: jax.random.uniform(jax.random.fold_in(k, r), (2,), n.dtype)
            uv = jax.vmap(one)(key.reshape(-1))
            return uv[:, 0].reshape(n.shape), uv[:, 1].reshape(n.shape)

        v0, k_loop = pair(0)[0], jnp.int32(1)

        def draws(r):
            return (*pair(r), r + 1)

    k, acc = _btrs_try(u, v0, *consts)

    def body(c):
        k, acc, state = c
        un, vn, state = draws(state)
        kn, an = _btrs_try(un, vn, *consts)
        return jnp.where(acc, k, kn), acc | an, state

    return lax.while_loop(lambda c: jnp.any(~c[1]), body, (k, acc, k_loop))[0]


def binomial(key: jax.Array, n: jax.Array, p: jax.Array) -> jax.Array:
    """Exact Binomial(n, p) draws, vectorised over arrays.

    Means ``n min(p, 1-p) < 10`` use sequential CDF inversion from zero (one
    uniform, a few cheap steps); larger means use BTRS rejection (two uniforms a
    proposal, accepted about 90% of the time), run only when some element of the
    batch needs it. Each loop lasts as long as its slowest element, so batches of
    similar (n, p) (one category across chains) are the cheap case.

    Args:
        key: a PRNG key.
        n: numbers of trials (non-negative integer values, float or int array).
        p: success probabilities in [0, 1], broadcastable with ``n``.

    Returns:
        Counts with the broadcast shape of ``n`` and ``p`` (floating dtype).

    References:
        Hormann, The generation of binomial random variates, J. Stat. Comput.
        Simul. 46 (1993) (BTRS); Devroye, Non-Uniform Random Variate Generation
        (1986), ch. X (inversion).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> k = binomial(jax.random.key(0), jnp.array([0., 5., 1000.]), jnp.array([.3, 1., .5]))
        >>> [int(k[0]), int(k[1]), 400 < int(k[2]) < 600]
        [0, 5, True]
    """
    p = jnp.asarray(p)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.result_type(float))
    n, p = jnp.broadcast_arrays(jnp.asarray(n, p.dtype), p)
    if n.size == 0:
        return n
    k_u, k_bt = jax.random.split(key)
    return _binomial_given_u(k_bt, jax.random.uniform(k_u, n.shape, p.dtype), n, p)


def _binomial_given_u(key, u, n, p):
    # ``u``: the uniform of the inversion / first BTRS proposal; ``key`` feeds the
    # BTRS branch (its second uniform and any retries) only when it is needed. It is
    # one key, or a function returning one key per element (shape ``n.shape``),
    # called only inside that branch; with per-element keys an element's draw does
    # not depend on the rest of the batch.
    flip = p > 0.5
    q = jnp.clip(jnp.where(flip, 1 - p, p), 0.0, 0.5)
    small = n * q < _SMALL_MEAN
    k_inv = _inversion(u, jnp.where(small, n, 0.0), jnp.where(small, q, 0.0))
    # Dummy (n, q) = (100, 1/2) where the inversion applies keeps BTRS finite.
    k_big = lax.cond(jnp.any(~small),
                     lambda: _btrs(key() if callable(key) else key, u,
                                   jnp.where(small, 100.0, n), jnp.where(small, 0.5, q)),
                     lambda: jnp.zeros_like(n))
    k = jnp.where(small, k_inv, k_big)
    return jnp.where(flip, n - k, k)


def _sequential(key: jax.Array, n: jax.Array, probs: jax.Array) -> jax.Array:
    # Conditional binomials along the last axis: category j gets
    # Binomial(n - counts so far, p_j / Σ_{i >= j} p_i).
    k = probs.shape[-1]
    p = jnp.moveaxis(probs, -1, 0)
    rest = jnp.cumsum(p[::-1], axis=0)[::-1]
    # Every step's first uniform is drawn up front in one call: far cheaper than a
    # small random-number call inside each of the K steps.
    k_u, k_steps = jax.random.split(key)
    u = jax.random.uniform(k_u, p.shape, p.dtype)
    keys = jax.random.split(k_steps, k)
    return jnp.moveaxis(_conditional_binomials(n, p, rest, u, lambda j: keys[j]), 0, -1)


def _conditional_binomials(n, w, rest, u, step_key):
    # ``w``, ``rest`` (suffix sums of ``w``), ``u``: shape (K, *n.shape), category
    # first; ``step_key(j)`` is the BTRS key of step j (see _binomial_given_u).
    k = w.shape[0]
    ratio = jnp.clip(jnp.where(rest > 0, w / jnp.where(rest > 0, rest, 1.0), 0.0), 0.0, 1.0)

    def cond(c):
        # Once nothing remains anywhere the later counts are all 0: stop early (on
        # a packed support this skips the empty slots).
        j, remaining, _ = c
        return (j < k) & jnp.any(remaining > 0)

    def body(c):
        j, remaining, counts = c
        cj = _binomial_given_u(step_key(j), u[j], remaining,
                               jnp.broadcast_to(ratio[j], remaining.shape))
        return j + 1, remaining - cj, counts.at[j].set(cj)

    _, left, counts = lax.while_loop(
        cond, body, (jnp.int32(0), n, jnp.zeros((k,) + n.shape, ratio.dtype)))
    # Rounding in the suffix sums can leave draws unassigned (ratio of the last live
    # category a hair below 1): they go to the last live category.
    last = k - 1 - jnp.argmax((w > 0)[::-1], axis=0)
    return counts + jnp.where(jnp.arange(k).reshape((k,) + (1,) * n.ndim) == last, left, 0)


def multinomial(key: jax.Array, n: Any, probs: jax.Array) -> jax.Array:
    """Exact multinomial counts by sequential conditional binomials.

    Category ``j`` gets ``Binomial(n - counts so far, p_j / Σ_{i >= j} p_i)``: a
    loop over the K categories (stopping once every count is placed) whose steps
    are vectorised over the leading (batch, e.g. chain) axes. A step's batch holds
    one category across chains, so its binomials have similar means and the
    samplers' loops stay short; no sample is materialised. ``n`` may be traced
    (and 0). Put probable categories first for the best rounding behaviour.

    Args:
        key: a PRNG key.
        n: number of draws, scalar or shape ``probs.shape[:-1]`` (integer valued).
        probs: probabilities, shape ``(..., K)``, non-negative (normalised
            internally through the suffix sums).

    Returns:
        Counts of shape ``(..., K)`` (floating dtype) summing to ``n``.

    References:
        Devroye, Non-Uniform Random Variate Generation (1986), ch. XI.1
        (conditional binomials); numpy's ``Generator.multinomial`` does the same
        one chain at a time.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> c = multinomial(jax.random.key(0), 100, jnp.array([0.5, 0.0, 0.3, 0.2]))
        >>> int(c.sum()), int(c[1])
        (100, 0)
    """
    probs = jnp.asarray(probs)
    if not jnp.issubdtype(probs.dtype, jnp.floating):
        probs = probs.astype(jnp.result_type(float))
    n0 = jnp.broadcast_to(jnp.asarray(n, probs.dtype), probs.shape[:-1])
    return _sequential(key, n0, probs)


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
class Categorical:
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

    def __post_init__(self):
        _check_k(self.n_categories)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}; got {self.method!r}")

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
        """Validates probabilities on the host: shape (K,), finite, >= 0, sum 1."""
        probs = params.probs if isinstance(params, CategoricalParams) else params
        a = np.asarray(probs)
        if a.shape != (self.n_categories,):
            raise ValueError(f"{name}.probs must have shape ({self.n_categories},); "
                             f"got {a.shape}")
        if not np.issubdtype(a.dtype, np.floating):
            raise TypeError(f"{name}.probs must be floating point; got dtype {a.dtype}")
        a64 = a.astype(np.float64)
        if not np.all(np.isfinite(a64)):
            raise ValueError(f"{name}.probs must be finite; got non-finite values")
        if np.any(a64 < 0):
            raise ValueError(f"{name}.probs must be >= 0; got minimum {a64.min()}")
        s = a64.sum()
        if abs(s - 1.0) > SUM_TOL:
            raise ValueError(f"{name}.probs must sum to 1 (within {SUM_TOL}); got {s}")
        return CategoricalParams(jnp.asarray(probs))

    def check_data(self, data: Any, name: str = "data") -> jax.Array:
        """Validates category indices on the host: 1-D integers in [0, K)."""
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

    def fit(self, key: jax.Array, data: jax.Array, weights: jax.Array) -> CategoricalParams:
        """Weighted empirical frequencies (``key`` unused: the fit is exact)."""
        del key
        return self.fit_stats(self.stats(data, weights))

    def default_metrics(self) -> dict:
        """survivors, lost_mass, entropy, heterozygosity, kl, tv, tail_rank."""
        return dict(_METRICS)

    def is_degenerate(self, params: CategoricalParams) -> jax.Array:
        """True once a category is lost (KL(p0 || p) is then infinite)."""
        return jnp.any(params.probs <= 0)

    # -- exact path ----------------------------------------------------------------------
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

    def fit_stats(self, stats: jax.Array) -> CategoricalParams:
        """Frequencies ``counts / total`` (all zero, flagged degenerate, if empty)."""
        total = jnp.sum(stats)
        return CategoricalParams(stats / jnp.where(total > 0, total, 1.0))


# --------------------------------------------------------------------------------------
# Fast Wright–Fisher simulation on a shrinking support.
# --------------------------------------------------------------------------------------


class WrightFisherResult(NamedTuple):
    """Output of :func:`wright_fisher`.

    Attributes:
        metrics: name -> array ``(n_chains, n_generations + 1)`` (the metrics of
            :meth:`Categorical.default_metrics`; generation 0 is ``p0``).
        capacity: live-support capacity used at each generation, ``(n_generations + 1,)``.

    Example:
        >>> r = WrightFisherResult({"survivors": np.full((2, 4), 50.0)}, np.full(4, 64))
        >>> r.metrics["survivors"].shape, r.capacity.tolist()   # (chain, generation)
        ((2, 4), [64, 64, 64, 64])
    """

    metrics: dict
    capacity: np.ndarray


# Unrolled inversion steps of the first pass over a tree level: they finish almost
# every node of small mean; the rest (and the BTRS nodes) are gathered and finished
# in chunks whose sizes come from _CHUNKS (one compilation each, whatever the
# number of chains, categories or the level).
_UNROLL = 6
_FINISH_UNROLL = 20
_CHUNKS = (2**10, 2**13, 2**16)


def _word_uniform(w0, w1, dtype):
    # Uniforms on (0, 1) as in jaxcollapse.random.uniform: 23 bits of w0 in float32,
    # 52 bits of (w0, w1) in float64.
    if dtype == jnp.float64:
        m = (w0.astype(jnp.uint64) << 20) | (w1.astype(jnp.uint64) >> 12)
        return (m.astype(jnp.float64) + 0.5) * 2.0**-52
    return ((w0 >> 9).astype(jnp.float32) + 0.5) * jnp.float32(2.0**-23)


def _node_uniforms(kw, ids, r, dtype):
    # The (u, v) pair of try r of the nodes ``ids`` under the chain keys ``kw``:
    # counter (r, id) in float32, (2r, id) and (2r + 1, id) in float64.
    if dtype == jnp.float64:
        a = threefry_words(kw, 2 * r, ids)
        b = threefry_words(kw, 2 * r + 1, ids)
        return _word_uniform(*a, dtype), _word_uniform(*b, dtype)
    w0, w1 = threefry_words(kw, r, ids)
    return _word_uniform(w0, w1, dtype), _word_uniform(w1, w0, dtype)


def _finish_nodes(kw, ids, n, q, small, inversion=True, btrs=True):
    # Binomial(n, q), q <= 1/2, from the node's own counter words: inversion where
    # ``small``, else BTRS with tries from counters (0, id), (1, id), ... Every
    # element's draw is a function of its own (key, id, n, q) only. The first steps
    # and tries are unrolled: a loop iteration costs far more than the arithmetic
    # on these small batches, so the loops almost never run.
    dtype = n.dtype
    u, v = _node_uniforms(kw, ids, jnp.uint32(0), dtype)
    ns, qs = jnp.where(small, n, 0.0), jnp.where(small, q, 0.0)
    r = qs / (1 - qs)
    pmf = jnp.exp(ns * jnp.log1p(-qs))
    state = (jnp.zeros_like(n), pmf, pmf)

    def step(c):
        k, pmf, cdf = c
        go = (u > cdf) & (k < ns)
        nxt = pmf * (ns - k) / (k + 1) * r
        return jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf), jnp.where(go, cdf + nxt, cdf)

    if inversion:
        for _ in range(_FINISH_UNROLL):
            state = step(state)
        k_inv = lax.while_loop(lambda c: jnp.any((u > c[2]) & (c[0] < ns)), step, state)[0]
    else:
        k_inv = jnp.zeros_like(n)
    if not btrs:
        return k_inv

    consts = _btrs_constants(jnp.where(small, 100.0, n), jnp.where(small, 0.5, q))
    k, acc = _btrs_try(u, v, *consts)
    acc = acc | small

    def body(c):
        k, acc, r = c
        un, vn = _node_uniforms(kw, ids, r, dtype)
        kn, an = _btrs_try(un, vn, *consts)
        return jnp.where(acc, k, kn), acc | an, r + 1

    k = lax.while_loop(lambda c: jnp.any(~c[1]), body, body((k, acc, jnp.uint32(1))))[0]
    return jnp.where(small, k_inv, k)


def _row_exclusive_prefix(x):
    # Exclusive prefix sums along the last axis (a power of two) by a tree of
    # pairwise sums, then a top-down pass: cheaper than jnp.cumsum on CPU.
    levels = [x]
    while levels[-1].shape[-1] > 1:
        lv = levels[-1]
        levels.append(lv[..., 0::2] + lv[..., 1::2])
    p = jnp.zeros_like(levels[-1])
    for lv in levels[-2::-1]:
        p = jnp.stack([p, p + lv[..., 0::2]], -1).reshape(lv.shape)
    return p, levels[-1][..., 0]


@jax.jit
def _level_first_pass(kw, s, n, tot, left_and_right):
    # Tree level s: node a (counter id 32 a + s, the same node whatever the width)
    # sends Binomial(n, left mass / its mass) draws to its left child. A few
    # inversion steps from each node's try-0 uniform finish most nodes; the rest
    # are listed (flat indices, in order) for _finish_chunk.
    c, w = n.shape
    ids = jnp.arange(w, dtype=jnp.uint32)[None] * jnp.uint32(32) + s
    left = left_and_right[:, 0::2]
    q = jnp.clip(jnp.where(tot > 0, left / jnp.where(tot > 0, tot, 1.0), 0.0), 0.0, 1.0)
    flip = q > 0.5
    qq = jnp.broadcast_to(jnp.clip(jnp.where(flip, 1.0 - q, q), 0.0, 0.5), (c, w))
    small = n * qq < _SMALL_MEAN
    u = _node_uniforms(kw, ids, jnp.uint32(0), n.dtype)[0]
    ns, qs = jnp.where(small, n, 0.0), jnp.where(small, qq, 0.0)
    r = qs / (1 - qs)
    pmf = jnp.exp(ns * jnp.log1p(-qs))
    k, cdf = jnp.zeros_like(n), pmf
    for _ in range(_UNROLL):
        go = (u > cdf) & (k < ns)
        pmf = pmf * (ns - k) / (k + 1) * r
        k, cdf = jnp.where(go, k + 1, k), jnp.where(go, cdf + pmf, cdf)
    size = c * w

    def listed(need):
        # Flat indices of the needy nodes, in order, then padding (index ``size``).
        pos, cnt = _row_exclusive_prefix(need.astype(jnp.int32))
        dest = jnp.where(need, pos + (jnp.cumsum(cnt) - cnt)[:, None], size).reshape(-1)
        order = jnp.full((size + _CHUNKS[-1],), size, jnp.int32).at[dest].set(
            jnp.arange(size, dtype=jnp.int32), mode="drop")
        return order, jnp.sum(cnt)

    # Two lists: BTRS nodes and unfinished inversions (each finisher runs one
    # method only).
    lists = (listed(~small), listed((u > cdf) & (k < ns)))
    inputs = tuple(jnp.broadcast_to(x, (c, w)).reshape(-1) for x in (kw[0], kw[1], ids, n, qq))
    return k.reshape(-1), jnp.broadcast_to(flip, (c, w)), lists, inputs


@functools.partial(jax.jit, static_argnames=("chunk",))
def _gather_chunk(inputs, order, start, *, chunk):
    idx = lax.dynamic_slice(order, (start,), (chunk,))
    return idx, tuple(x.at[idx].get(mode="fill", fill_value=0) for x in inputs)


@functools.partial(jax.jit, static_argnames=("large",))
def _finish_chunk(k0, k1, ids, n, qq, *, large):
    # One compilation a chunk size, kind and dtype; a node's draw is a function of
    # its own inputs, so the chunk it lands in does not matter (padding: n = 0).
    return _finish_nodes((k0, k1), ids, n, qq, n * qq < _SMALL_MEAN, inversion=not large,
                         btrs=large)


@jax.jit
def _scatter_chunk(k, idx, vals):
    return k.at[idx].set(vals, mode="drop")


@jax.jit
def _level_children(k, flip, n):
    # (left, right) = (b, n - b), interleaved.
    c, w = n.shape
    b = jnp.where(flip, n - k.reshape(c, w), k.reshape(c, w))
    return jnp.stack([b, n - b], -1).reshape(c, 2 * w)


def _level_binomials(kw, s, n, tot, left_and_right):
    k, flip, lists, inputs = _level_first_pass(kw, s, n, tot, left_and_right)
    for large, (order, total) in zip((True, False), lists, strict=True):
        k = _finish_listed(k, inputs, order, int(total), large)
    return _level_children(k, flip, n)


def _finish_listed(k, inputs, order, total, large):
    start = 0
    while start < total:
        # The smallest chunk that holds the rest if at most 4x too big, else the
        # largest that the rest fills.
        rest = total - start
        fits = [c for c in _CHUNKS if c >= rest]
        if fits and (fits[0] <= 4 * rest or fits[0] == _CHUNKS[0]):
            chunk = fits[0]
        else:
            chunk = max(c for c in _CHUNKS if c <= rest)
        idx, args = _gather_chunk(inputs, order, start, chunk=chunk)
        k = _scatter_chunk(k, idx, _finish_chunk(*args, large=large))
        start += chunk
    return k


def _pair_sums(x):
    # Sums of adjacent pairs, level by level, down to one value: levels[s] has the
    # masses of the blocks of 2^s slots.
    levels = [x]
    while levels[-1].shape[-1] > 1:
        lv = levels[-1]
        levels.append(lv[..., 0::2] + lv[..., 1::2])
    return levels


def _tree_counts(kw, n_draws, levels):
    # Multinomial counts over the slots by conditional binomials down a binary
    # tree: a node with n draws sends Binomial(n, left mass / its mass) of them to
    # its left child. The tree pairs adjacent slots bottom-up, so a block of slots
    # is the same node whatever the width: a chain whose live slots are packed at
    # the front sees only deterministic splits (all to the left) above them.
    h = len(levels) - 1
    c = kw[0].shape[0]
    n = jnp.full((c, 1), n_draws, levels[0].dtype)
    for s in range(h, 0, -1):
        n = _level_binomials(kw, jnp.uint32(s), n, levels[s], levels[s - 1])
    return n


def _tree_sum(x):
    # Sum over the last axis by adjacent pairs: the same additions for a chain's
    # packed slots whatever the width (the padding adds exact zeros). The barrier
    # keeps products out of the adds (an FMA would round differently).
    return _pair_sums(lax.optimization_barrier(x))[-1][..., 0]


def _wf_metrics(pool, p0c, p0_sorted):
    # Metrics from the slots (p0c: p0 of the live slots, zero elsewhere): mass of p0
    # outside them is lost mass.
    p = pool / _tree_sum(pool)[:, None]
    alive = p > 0
    safe = jnp.where(alive, p, 1.0)
    inside, neg_ent, sq, dist = _tree_sum(jnp.stack([
        p0c, jnp.where(alive, p * jnp.log(safe), 0.0), p * p, jnp.abs(p - p0c)]))
    z = jnp.where(inside > 0, inside, 1.0)[..., None]
    p0s = p0c / z
    kl = _tree_sum(jnp.where(p0s > 0, p0s * jnp.log(jnp.where(p0s > 0, p0s, 1.0) / safe),
                             0.0))
    t = jnp.min(jnp.where(alive, p0c, jnp.inf), -1)
    rank = p0_sorted.shape[0] - jnp.searchsorted(p0_sorted, t, side="left")
    return {
        "survivors": jnp.sum(alive, -1).astype(p.dtype),
        "lost_mass": jnp.maximum(1.0 - inside, 0.0),
        "entropy": -neg_ent,
        "heterozygosity": 1.0 - sq,
        "kl": jnp.maximum(kl, 0.0),
        "tv": 0.5 * (dist + (1.0 - inside)),
        "tail_rank": rank.astype(p.dtype),
    }


@jax.jit
def _generation_words(chain_kw, t):
    # Chain i's generation-t key words: those of fold_in(fold_in(key, i), t).
    w0, w1 = threefry_words((chain_kw[:, 0], chain_kw[:, 1]), jnp.uint32(0), t)
    return w0[:, None], w1[:, None]


_level_masses = jax.jit(_pair_sums)


@functools.partial(jax.jit, static_argnames=("accumulate", "pack"))
def _wf_update(pool, counts, cat_id, p0_pad, p0_sorted, *, accumulate, pack):
    pool = pool + counts if accumulate else counts
    alive = pool > 0
    if pack:
        # Live slots to the front, in slot order: slot j goes to slot (live slots
        # before it); the layout is then a function of the chain's own live set.
        pos, _ = _row_exclusive_prefix(alive.astype(jnp.int32))
        dest = jnp.where(alive, pos, pool.shape[-1])
        rows = jnp.arange(pool.shape[0])[:, None]
        put = lambda x: jnp.zeros_like(x).at[rows, dest].set(x, mode="drop")
        pool, cat_id = put(pool), put(cat_id)
        alive = pool > 0
    p0c = jnp.where(alive, p0_pad[cat_id], 0.0)
    return pool, cat_id, _wf_metrics(pool, p0c, p0_sorted)


def _wf_step(chain_kw, t, pool, cat_id, p0_pad, p0_sorted, *, n_samples, accumulate,
             from_p0, pack):
    kw = _generation_words(chain_kw, jnp.uint32(t))
    levels = _level_masses(p0_pad[None] if from_p0 else pool)
    counts = _tree_counts(kw, n_samples, levels)
    return _wf_update(pool, counts, cat_id, p0_pad, p0_sorted, accumulate=accumulate,
                      pack=pack)


def _packs_at(t: int) -> bool:
    # Repacking costs about as much as a generation's draws, so it runs on a fixed
    # schedule (a chain's slot layout must not depend on the other chains): every
    # generation up to 8, then whenever t passes a power of 2^(1/4).
    if t <= 8:
        return True
    return math.floor(4 * math.log2(t)) > math.floor(4 * math.log2(t - 1))


def wright_fisher(key: jax.Array, probs0: Any, *, n_generations: int, n_samples: int,
                  n_chains: int, regime: str = "replace",
                  progress: bool = False) -> WrightFisherResult:
    """Many Wright–Fisher chains of the categorical recursion, on a shrinking support.

    The same recursion as ``simulate(key, Categorical(K), ...)`` (exact multinomial
    counts each generation), organised for large K. Lost categories never return,
    so each chain's live categories are packed into the first slots (in their
    original order) and the arrays shrink to the next power of two above the
    largest live count: after generation 1 at most M categories are alive and the
    cost a generation falls from O(K) to O(live support). Packing runs every
    generation up to 8 and then on a fixed geometric schedule (see ``capacity``).

    The counts are drawn by conditional binomials down a binary tree over the
    slots (a node with n draws sends Binomial(n, left mass / its mass) of them to
    its left half): log2(width) vectorised levels instead of one sequential step
    a category. Each binomial is exact (inversion for means below 10, BTRS
    above) and takes its uniforms from counter-mode Threefry words keyed by
    (chain, generation, tree node); a few unrolled inversion steps finish most
    nodes, the rest are gathered and finished in chunks.

    Chain i uses ``fold_in(key, i)`` and generation t ``fold_in(chain_key, t)``.
    A chain's slot layout and tree are functions of its own live set, a tree
    node is the same block of slots whatever the width the other chains force
    (the levels above a chain's packed slots split deterministically), and the
    metrics are sums over adjacent pairs of slots, so a chain's path is the same
    (bitwise) whatever ``n_chains``. (Counts are exact integers in the floating
    dtype: this needs the pool size, ``M`` or ``M t`` when accumulating, below
    2^24 in float32.)

    Args:
        key: a PRNG key.
        probs0: initial probabilities ``(K,)`` (or :class:`CategoricalParams`).
        n_generations: generations after generation 0 (>= 1).
        n_samples: M, draws a generation (>= 1).
        n_chains: independent chains (>= 1).
        regime: ``"replace"`` (fit on the newest M draws) or ``"accumulate"`` (fit on
            all draws so far).
        progress: print a progress bar to stderr.

    Returns:
        A :class:`WrightFisherResult` with the default metrics per chain and
        generation.

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md sections 1 and 4.

    Example:
        >>> import jax
        >>> res = wright_fisher(jax.random.key(0), zipf(1000, 1.1), n_generations=3,
        ...                     n_samples=100, n_chains=4)
        >>> res.metrics["survivors"].shape
        (4, 4)
        >>> bool((res.metrics["survivors"][:, 1:] <= 100).all())
        True
    """
    probs = probs0.probs if isinstance(probs0, CategoricalParams) else probs0
    if np.ndim(probs) != 1 or np.shape(probs)[0] < 2:
        raise ValueError(f"probs0 must have shape (K,) with K >= 2; got {np.shape(probs)}")
    probs = Categorical(int(np.shape(probs)[0])).check_params(
        CategoricalParams(probs), name="probs0").probs
    for name, v, lo in (("n_generations", n_generations, 1), ("n_samples", n_samples, 1),
                        ("n_chains", n_chains, 1)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
            raise ValueError(f"{name} must be an int >= {lo}; got {v!r}")
    if regime not in ("replace", "accumulate"):
        raise ValueError(f"regime must be 'replace' or 'accumulate'; got {regime!r}")
    accumulate = regime == "accumulate"
    k = probs.shape[0]
    dtype = jnp.float64 if probs.dtype == jnp.float64 else jnp.float32
    p0 = (probs / jnp.sum(probs)).astype(dtype)
    p0_sorted = jnp.sort(p0)
    width = 2 ** math.ceil(math.log2(k))
    p0_pad = jnp.zeros(width, dtype).at[:k].set(p0)
    # Chains padded to a power of two (at least 8): fewer shapes to compile; the
    # extra chains are ordinary chains, dropped at the end.
    n_run = max(8, 2 ** math.ceil(math.log2(n_chains)))
    chain_kw = jax.random.key_data(
        jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_run)))
    cat_id = jnp.broadcast_to(jnp.arange(width, dtype=jnp.int32), (n_run, width))
    pool = jnp.zeros((n_run, width), dtype)
    ones = jnp.ones(n_chains, dtype)
    rows = {name: [fn(CategoricalParams(p0), CategoricalParams(p0)) * ones]
            for name, fn in _METRICS.items()}
    caps = [k]
    with Progress(n_generations, "wright-fisher", enabled=progress) as bar:
        for t in range(1, n_generations + 1):
            pack = _packs_at(t)
            pool, cat_id, m = _wf_step(chain_kw, t, pool, cat_id, p0_pad,
                                       p0_sorted, n_samples=n_samples,
                                       accumulate=accumulate, from_p0=t == 1, pack=pack)
            for name in rows:
                rows[name].append(m[name][:n_chains])
            if pack:
                live = int(jnp.max(m["survivors"]))
                # Powers of two (each new width compiles a new step); the live slots
                # are packed at the front, so shrinking drops only empty ones.
                cap = 2 ** max(1, math.ceil(math.log2(max(live, 2))))
                if cap < pool.shape[-1]:
                    pool, cat_id = pool[:, :cap], cat_id[:, :cap]
            caps.append(pool.shape[-1])
            bar.update(t)
    metrics = {name: jnp.stack(v, axis=1) for name, v in rows.items()}
    return WrightFisherResult(metrics, np.asarray(caps))
