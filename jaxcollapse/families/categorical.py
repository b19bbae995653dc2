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
from jaxcollapse._validate import check_int_array, check_key, check_real, float_array, is_traced
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
    check_key(key)
    if not is_traced(n):
        check_int_array(n, "n", minimum=0)
    if not is_traced(p):
        check_real(p, "p", minimum=0.0, maximum=1.0)
    p = float_array(p, "p")
    try:
        n, p = jnp.broadcast_arrays(jnp.asarray(n, p.dtype), p)
    except ValueError:
        raise ValueError(f"n of shape {jnp.shape(n)} and p of shape {p.shape} do not "
                         f"broadcast together") from None
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
    check_key(key)
    if not is_traced(probs):
        check_real(probs, "probs", minimum=0.0)
        pr = np.asarray(probs, np.float64)
        if pr.ndim < 1 or pr.shape[-1] < 1:
            raise ValueError(f"probs must have shape (..., K) with K >= 1; got {pr.shape}")
        if np.any(pr.sum(-1) <= 0):
            raise ValueError("probs must have a positive sum along the last axis (K); got "
                             "an all-zero row")
    if not is_traced(n):
        check_int_array(n, "n", minimum=0)
    probs = float_array(probs, "probs")
    try:
        n0 = jnp.broadcast_to(jnp.asarray(n, probs.dtype), probs.shape[:-1])
    except ValueError:
        raise ValueError(f"n must be a scalar or have shape probs.shape[:-1] = "
                         f"{probs.shape[:-1]}; got {jnp.shape(n)}") from None
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


# The tree sampler of wright_fisher. Chains lie along the minor axis: a pool is
# (slots, chains), and the nodes of every tree level are rows of one "heap" array
# (levels bottom-up, level s at row offset ``offsets[s]``, with slack rows). One
# compiled program walks the levels top-down (lax.fori_loop) and each level in
# chunks of ``rows`` rows (every chain at once), stopping at the last row that is
# live in any chain: a single copy of the binomial kernel serves every level and
# every capacity. A node's draw depends only on its (chain key, node id, n, q), so
# the chunking, the capacity and the other chains do not change it.
_INV_STEPS = 16     # unrolled inversion steps of the fast path
_BTRS_TRIES = 2     # unrolled BTRS proposals of the fast path (each accepts 0.72-0.9)
_CHUNK = 4096       # nodes a chunk: rows x chains
_BOUND_SDS = 10.0   # inversion restarts past mean + 10 sd (numpy's bound; rounding guard)
_STRAGGLERS = 128   # nodes the exact loops finish together
_MIN_CAP = 64       # narrowest pool width


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


def _exact_binomial(kw, ids, n, qq):
    # Binomial(n, qq), qq <= 1/2, a node, from the node's own counter words: CDF
    # inversion from 0 where the mean is below 10 (restarting with the next try's
    # uniform past mean + 10 sd, which also guards against a rounded CDF that never
    # reaches u), BTRS with tries from counters (0, id), (1, id), ... above. Each
    # method runs only if some node of the batch needs it, its loop as long as
    # its slowest node.
    dtype = n.dtype
    small = n * qq < _SMALL_MEAN
    u, v = _node_uniforms(kw, ids, jnp.uint32(0), dtype)
    zero = jnp.zeros_like(n)

    def inversion():
        ns, qs = jnp.where(small, n, 0.0), jnp.where(small, qq, 0.0)
        rr = qs / (1 - qs)
        pmf0 = jnp.exp(ns * jnp.log1p(-qs))
        mu = ns * qs
        bound = jnp.minimum(ns, jnp.floor(mu + _BOUND_SDS * jnp.sqrt(mu * (1 - qs) + 1)))

        def step(c):
            k, pmf, cdf, u, j = c
            go = (u > cdf) & (k < bound)
            nxt = pmf * ((ns - k) / (k + 1)) * rr
            return (jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf),
                    jnp.where(go, cdf + nxt, cdf), u, j)

        def restart(c):
            k, pmf, cdf, u, j = c
            stuck = (u > cdf) & (k >= bound)
            j = jnp.where(stuck, j + 1, j)
            un = _node_uniforms(kw, ids, j, dtype)[0]
            return (jnp.where(stuck, 0.0, k), jnp.where(stuck, pmf0, pmf),
                    jnp.where(stuck, pmf0, cdf), jnp.where(stuck, un, u), j)

        c = (zero, pmf0, pmf0, u, jnp.zeros(n.shape, jnp.uint32))
        for _ in range(_INV_STEPS):
            c = step(c)

        def body(c):
            stuck = jnp.any((c[3] > c[2]) & (c[0] >= bound))
            return step(lax.cond(stuck, restart, lambda c: c, c))

        return lax.while_loop(lambda c: jnp.any(c[3] > c[2]), body, c)[0]

    def btrs():
        consts = _btrs_constants(jnp.where(small, 100.0, n), jnp.where(small, 0.5, qq))
        k, acc = _btrs_try(u, v, *consts)
        acc = acc | small
        for r in range(1, _BTRS_TRIES):
            un, vn = _node_uniforms(kw, ids, jnp.uint32(r), dtype)
            kn, an = _btrs_try(un, vn, *consts)
            k, acc = jnp.where(acc, k, kn), acc | an

        def body(c):
            k, acc, r = c
            un, vn = _node_uniforms(kw, ids, r, dtype)
            kn, an = _btrs_try(un, vn, *consts)
            return jnp.where(acc, k, kn), acc | an, r + 1

        init = (k, acc, jnp.uint32(_BTRS_TRIES))
        return lax.while_loop(lambda c: ~jnp.all(c[1]), body, init)[0]

    k_inv = lax.cond(jnp.any(small & (n > 0) & (qq > 0)), inversion, lambda: zero)
    k_big = lax.cond(jnp.any(~small), btrs, lambda: zero)
    return jnp.where(small, k_inv, k_big)


def _fast_binomial(kw, ids, n, qq):
    # The common case of _exact_binomial in one pass a method, each a single
    # output (XLA otherwise splits the unrolled steps into several fusions that
    # recompute them): the draw, or -1 where the node needs more inversion steps,
    # a restart or more BTRS tries.
    dtype = n.dtype
    small = n * qq < _SMALL_MEAN
    zero = jnp.zeros_like(n)

    def inversion():
        u = _node_uniforms(kw, ids, jnp.uint32(0), dtype)[0]
        ns, qs = jnp.where(small, n, 0.0), jnp.where(small, qq, 0.0)
        rr = qs / (1 - qs)
        pmf = jnp.exp(ns * jnp.log1p(-qs))
        mu = ns * qs
        bound = jnp.minimum(ns, jnp.floor(mu + _BOUND_SDS * jnp.sqrt(mu * (1 - qs) + 1)))
        k, cdf = zero, pmf
        for _ in range(_INV_STEPS):
            go = (u > cdf) & (k < bound)
            nxt = pmf * ((ns - k) / (k + 1)) * rr
            k, pmf, cdf = jnp.where(go, k + 1, k), jnp.where(go, nxt, pmf), \
                jnp.where(go, cdf + nxt, cdf)
        return jnp.where(u > cdf, -1.0, k)

    def btrs():
        consts = _btrs_constants(jnp.where(small, 100.0, n), jnp.where(small, 0.5, qq))
        k, acc = zero, small
        for r in range(_BTRS_TRIES):
            un, vn = _node_uniforms(kw, ids, jnp.uint32(r), dtype)
            kn, an = _btrs_try(un, vn, *consts)
            k, acc = jnp.where(acc, k, kn), acc | an
        return jnp.where(acc, k, -1.0)

    k_inv = lax.cond(jnp.any(small & (n > 0) & (qq > 0)), inversion, lambda: zero)
    k_big = lax.cond(jnp.any(~small), btrs, lambda: zero)
    return jnp.where(small, k_inv, k_big)


def _node_binomial(kw, ids, n, qq):
    # _fast_binomial, then the nodes it left (-1) gathered, _STRAGGLERS at a time,
    # and finished by _exact_binomial, which repeats the fast path's steps and
    # tries from the same words before going on: a node's draw is the same
    # whichever path finishes it.
    k = _fast_binomial(kw, ids, n, qq)
    shape = k.shape
    kw0 = jnp.broadcast_to(kw[0], shape).reshape(-1)
    kw1 = jnp.broadcast_to(kw[1], shape).reshape(-1)
    flat = tuple(jnp.broadcast_to(x, shape).reshape(-1) for x in (ids, n, qq))

    def finish(k):
        k = k.reshape(-1)
        pending = (k < 0).astype(jnp.int32)
        cum = _row_exclusive_prefix(pending) + pending
        total = cum[-1]
        size = min(_STRAGGLERS, k.shape[0])
        slots = jnp.arange(size, dtype=jnp.int32)

        def batch(b, k):
            want = b * size + slots + 1
            idx = jnp.searchsorted(cum, want, side="left").astype(jnp.int32)
            idx = jnp.where(want <= total, idx, k.shape[0])
            take = lambda x: x.at[idx].get(mode="fill", fill_value=0)
            vals = _exact_binomial((take(kw0), take(kw1)), take(flat[0]), take(flat[1]),
                                   take(flat[2]))
            return k.at[idx].set(vals, mode="drop")

        k = lax.fori_loop(0, (total + size - 1) // size, batch, k)
        return k.reshape(shape)

    return lax.cond(jnp.any(k < 0), finish, lambda k: k, k)


def _heap_offsets(cap: int, rows: int) -> tuple:
    # Row offset of each level's region (level 0 = the slots, level s = blocks of
    # 2^s slots), and the total: a region holds the level's ceil(cap / 2^s) nodes,
    # an even-padding row and slack for the chunks that run past the last node.
    offs, off, s = [], 0, 0
    while True:
        offs.append(off)
        size = -(-cap // 2**s)
        off += size + 1 + 2 * rows
        if size == 1:
            return tuple(offs), off
        s += 1


def _pair_rows(x):
    # Sums of adjacent rows (a zero row pads an odd count): the next level up.
    if x.shape[0] % 2:
        x = jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)])
    return x[0::2] + x[1::2]


def _row_sum(x):
    # Sum over the slot axis (0) by adjacent pairs: the same additions for a chain's
    # packed slots whatever the width (padding adds exact zeros).
    while x.shape[0] > 1:
        x = _pair_rows(x)
    return x[0]


def _write_masses(heap_m, masses, offsets):
    # The masses of every level of the tree over ``masses`` (slots, chains) into
    # their heap regions, each padded to an even number of rows.
    lv, s = masses, 0
    while True:
        if lv.shape[0] > 1 and lv.shape[0] % 2:
            lv = jnp.concatenate([lv, jnp.zeros((1,) + lv.shape[1:], lv.dtype)])
        heap_m = lax.dynamic_update_slice(heap_m, lv, (jnp.int32(offsets[s]), jnp.int32(0)))
        if lv.shape[0] == 1:
            return heap_m
        lv, s = lv[0::2] + lv[1::2], s + 1


@functools.partial(jax.jit, static_argnames=("rows",), donate_argnums=(0,))
def _tree_draw(heap_n, heap_m, chain_kw, t, n_draws, offsets, live_rows, *, rows):
    # Multinomial counts over the slots by conditional binomials down a binary
    # tree: node (s, a) (counter id 32 a + s; the block of slots [a 2^s, (a+1) 2^s),
    # whatever the width) sends Binomial(n, left mass / its mass) of its n draws to
    # its left child. The root is the lowest level whose one block covers the live
    # rows; above a chain's own packed slots the splits are deterministic. Counts
    # land in rows [0, live_rows) of level 0 (rows beyond are stale).
    c = heap_n.shape[1]
    dtype = heap_n.dtype
    w0, w1 = threefry_words((chain_kw[:, 0], chain_kw[:, 1]), jnp.uint32(0), t)
    kw = (w0[None], w1[None])
    z = jnp.int32(0)
    live_rows = jnp.asarray(live_rows, jnp.int32)
    h = jnp.maximum(1, 32 - lax.clz(jnp.maximum(live_rows, 2) - 1))
    heap_n = lax.dynamic_update_slice(heap_n, jnp.full((1, c), n_draws, dtype),
                                      (offsets[h], z))
    row_ids = jnp.arange(rows, dtype=jnp.uint32)[:, None]

    def level(i, heap_n):
        s = h - i
        nodes = (live_rows + (1 << s) - 1) >> s

        def chunk(j, heap_n):
            a0 = (j * rows).astype(jnp.int32)
            top, below = offsets[s] + a0, offsets[s - 1] + 2 * a0
            n = lax.dynamic_slice(heap_n, (top, z), (rows, c))
            m = lax.dynamic_slice(heap_m, (top, z), (rows, c))
            left = lax.dynamic_slice(heap_m, (below, z), (2 * rows, c))[0::2]
            q = jnp.clip(jnp.where(m > 0, left / jnp.where(m > 0, m, 1.0), 0.0), 0.0, 1.0)
            flip = q > 0.5
            qq = jnp.where(flip, 1.0 - q, q)
            n = jnp.where(m > 0, n, 0.0)
            ids = (a0.astype(jnp.uint32) + row_ids) * jnp.uint32(32) + s.astype(jnp.uint32)
            k = _node_binomial(kw, ids, n, qq)
            b = jnp.where(flip, n - k, k)
            kids = jnp.stack([b, n - b], 1).reshape(2 * rows, c)
            return lax.dynamic_update_slice(heap_n, kids, (below, z))

        return lax.fori_loop(0, (nodes + rows - 1) // rows, chunk, heap_n)

    return lax.fori_loop(0, h, level, heap_n)


def _chunk_rows(n_chains: int) -> int:
    return max(1, min(64, _CHUNK // n_chains))


def _tree_counts(kw_key, n_draws, masses):
    # The tree sampler on its own (tests): counts of ``n_draws`` draws over the
    # slots of ``masses`` (slots, chains) for chain keys ``kw_key`` (chains, 2),
    # generation 1.
    cap, c = masses.shape
    rows = _chunk_rows(c)
    offsets, total = _heap_offsets(cap, rows)
    heap_m = _write_masses(jnp.zeros((total, c), masses.dtype), masses, offsets)
    live = jnp.int32(cap - int(np.argmax(np.asarray(jnp.any(masses > 0, 1))[::-1])))
    heap_n = _tree_draw(jnp.zeros((total, c), masses.dtype), heap_m, kw_key, jnp.uint32(1),
                        n_draws, jnp.asarray(offsets, jnp.int32), live, rows=rows)
    return jnp.where(jnp.arange(cap)[:, None] < live, heap_n[:cap], 0.0)


def _row_min(x):
    # Minimum over the slot axis (0) by adjacent pairs (XLA's reduction, fused with
    # the elementwise work before it, runs scalar on CPU).
    while x.shape[0] > 1:
        if x.shape[0] % 2:
            x = jnp.concatenate([x, jnp.full((1,) + x.shape[1:], jnp.inf, x.dtype)])
        x = jnp.minimum(x[0::2], x[1::2])
    return x[0]


def _wf_metrics(pool, p0c, p0_sorted):
    # Metrics from the slots (pool, p0c: (slots, chains); p0c is p0 of the slot's
    # category): mass of p0 outside the live slots is lost mass. Every sum is over
    # adjacent pairs of slots (the same additions whatever the width).
    alive = pool > 0
    p = pool / _row_sum(pool)[None]
    safe = jnp.where(alive, p, 1.0)
    p0a = jnp.where(alive, p0c, 0.0)
    # Separate pairwise sums (those of a stacked array fuse badly on CPU, ~10x
    # slower), each term written out on both slots of the first pair so that the
    # products and the first add sit in one expression whatever the width (a
    # product fused into an add in one program and not in another could round
    # differently).
    def pair_terms(rows):
        return (p0a[rows], jnp.where(alive[rows], p[rows] * jnp.log(safe[rows]), 0.0),
                p[rows] * p[rows], jnp.abs(p[rows] - p0a[rows]), alive[rows].astype(p.dtype))

    if pool.shape[0] % 2:
        raise ValueError("pool rows must be even")
    ev, od = pair_terms(slice(0, None, 2)), pair_terms(slice(1, None, 2))
    inside, neg_ent, sq, dist, count = (_row_sum(a + b) for a, b in zip(ev, od, strict=True))
    z = jnp.where(inside > 0, inside, 1.0)[None]
    p0s = p0a / z

    def kl_terms(rows):
        ps = p0s[rows]
        return jnp.where(ps > 0, ps * jnp.log(jnp.where(ps > 0, ps, 1.0) / safe[rows]), 0.0)

    kl = _row_sum(kl_terms(slice(0, None, 2)) + kl_terms(slice(1, None, 2)))
    t = _row_min(jnp.where(alive, p0c, jnp.inf))
    rank = p0_sorted.shape[0] - jnp.searchsorted(p0_sorted, t, side="left")
    return jnp.stack([
        count,                                        # survivors
        jnp.maximum(1.0 - inside, 0.0),               # lost_mass
        -neg_ent,                                     # entropy
        1.0 - sq,                                     # heterozygosity
        jnp.maximum(kl, 0.0),                         # kl
        0.5 * (dist + (1.0 - inside)),                # tv
        rank.astype(p.dtype),                         # tail_rank
    ])


def _row_exclusive_prefix(x):
    # Exclusive prefix sums over the slot axis (0) by a tree of pairwise sums and a
    # top-down pass: cheaper than jnp.cumsum on CPU.
    levels = [x]
    while levels[-1].shape[0] > 1:
        levels.append(_pair_rows(levels[-1]))
    p = jnp.zeros_like(levels[-1])
    for lv in levels[-2::-1]:
        p = jnp.stack([p, p + lv[0::2]], 1).reshape((2 * p.shape[0],) + lv.shape[1:])
        p = p[:lv.shape[0]]
    return p


def _pack(pool, p0c):
    # Live slots to the front, in slot order (a function of the chain's own live
    # set): the (j+1)-th live slot's row, then gathers.
    cap = pool.shape[0]
    alive = pool > 0
    dest = jnp.where(alive, _row_exclusive_prefix(alive.astype(jnp.int32)), cap)
    cols = jnp.arange(pool.shape[1])[None]
    src = jnp.full(pool.shape, cap, jnp.int32).at[dest, cols].set(
        jnp.broadcast_to(jnp.arange(cap, dtype=jnp.int32)[:, None], pool.shape), mode="drop")
    take = lambda x: jnp.take_along_axis(
        jnp.concatenate([x, jnp.zeros((1, x.shape[1]), x.dtype)]), src, 0)
    return take(pool), take(p0c)


@functools.partial(jax.jit, static_argnames=("accumulate",), donate_argnums=(1, 2))
def _wf_counts(heap_n, pool, p0c, live_rows, pack, *, accumulate):
    # The generation's counts into the pool, packed when ``pack``; the new number
    # of rows live in some chain.
    cap = pool.shape[0]
    counts = jnp.where(jnp.arange(cap)[:, None] < live_rows, heap_n[:cap], 0.0)
    pool = pool + counts if accumulate else counts
    pool, p0c = lax.cond(pack, _pack, lambda a, b: (a, b), pool, p0c)
    live_any = jnp.any(pool > 0, 1)
    live_rows = jnp.max(jnp.where(live_any, jnp.arange(1, cap + 1), 0)).astype(jnp.int32)
    return pool, p0c, live_rows


@functools.partial(jax.jit, static_argnames=("offsets",), donate_argnums=(0,))
def _wf_masses_metrics(heap_m, pool, p0c, p0_sorted, *, offsets):
    # The generation's metrics, and the tree masses of the next generation.
    return _write_masses(heap_m, pool, offsets), _wf_metrics(pool, p0c, p0_sorted)


@functools.partial(jax.jit, static_argnames=("offsets", "total", "cap", "n_chains"))
def _wf_init(p0, *, offsets, total, cap, n_chains):
    p0c = jnp.zeros((cap, n_chains), p0.dtype).at[:p0.shape[0]].set(p0[:, None])
    heap_m = _write_masses(jnp.zeros((total, n_chains), p0.dtype), p0c, offsets)
    return heap_m, jnp.zeros((total, n_chains), p0.dtype), jnp.zeros_like(p0c), p0c


def _packs_at(t: int) -> bool:
    # Repacking costs about as much as a generation's draws, so it runs on a fixed
    # schedule (a chain's slot layout must not depend on the other chains): at
    # generations 1, 2, 4 and 8, then whenever t passes a power of 2^(1/4).
    if t <= 8:
        return t in (1, 2, 4, 8)
    return math.floor(4 * math.log2(t)) > math.floor(4 * math.log2(t - 1))


def wright_fisher(key: jax.Array, probs0: Any, *, n_generations: int, n_samples: int,
                  n_chains: int, regime: str = "replace",
                  progress: bool = False) -> WrightFisherResult:
    """Many Wright–Fisher chains of the categorical recursion, on a shrinking support.

    The same recursion as ``simulate(key, Categorical(K), ...)`` (exact multinomial
    counts each generation), organised for large K. Lost categories never return,
    so each chain's live categories are packed into the first slots (in their
    original order) and the arrays shrink to the next power of two above the
    largest live count (at least 64): after generation 1 at most M categories are alive and the
    cost a generation falls from O(K) to O(live support). Packing runs at
    generations 1, 2, 4, 8 and then on a fixed geometric schedule (see
    ``capacity``).

    The counts are drawn by conditional binomials down a binary tree over the
    slots (a node with n draws sends Binomial(n, left mass / its mass) of them to
    its left half): log2(width) vectorised levels instead of one sequential step
    a category. Each binomial is exact (inversion for means below 10, BTRS
    above) and takes its uniforms from counter-mode Threefry words keyed by
    (chain, generation, tree node). One compiled program walks every level (and
    serves every width) in chunks of rows over all chains, skipping the rows
    that are empty in every chain; a fixed number of unrolled inversion steps
    and BTRS proposals finishes almost every node, and the few left are gathered
    and finished by the exact loops.

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
    # Chains padded to a power of two (at least 8): fewer shapes to compile; the
    # extra chains are ordinary chains, dropped at the end.
    n_run = max(8, 2 ** math.ceil(math.log2(n_chains)))
    rows = _chunk_rows(n_run)
    cap = k + k % 2
    offsets, total = _heap_offsets(cap, rows)
    offsets_arr = jnp.asarray(offsets, jnp.int32)
    chain_kw = jax.random.key_data(
        jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_run)))
    heap_m, heap_n, pool, p0c = _wf_init(p0, offsets=offsets, total=total, cap=cap,
                                         n_chains=n_run)
    live_rows = jnp.int32(k - int(np.argmax(np.asarray(p0)[::-1] > 0)))
    ones = jnp.ones(n_chains, dtype)
    rows0 = jnp.stack([fn(CategoricalParams(p0), CategoricalParams(p0)) * ones
                       for fn in _METRICS.values()])
    out = [rows0]
    caps = [k]
    with Progress(n_generations, "wright-fisher", enabled=progress) as bar:
        for t in range(1, n_generations + 1):
            pack = _packs_at(t)
            heap_n = _tree_draw(heap_n, heap_m, chain_kw, jnp.uint32(t), n_samples,
                                offsets_arr, live_rows, rows=rows)
            pool, p0c, live_rows = _wf_counts(heap_n, pool, p0c, live_rows, jnp.bool_(pack),
                                              accumulate=accumulate)
            if pack:
                # Powers of two, at least _MIN_CAP (each new width compiles new
                # update steps; the tree skips empty rows anyway); the live slots
                # are packed at the front, so shrinking drops only empty ones.
                live = int(live_rows)
                new = max(_MIN_CAP, 2 ** math.ceil(math.log2(max(live, 2))))
                if new < pool.shape[0]:
                    pool, p0c = pool[:new], p0c[:new]
            heap_m, m = _wf_masses_metrics(heap_m, pool, p0c, p0_sorted, offsets=offsets)
            out.append(m[:, :n_chains])
            caps.append(pool.shape[0])
            bar.update(t)
    stacked = jnp.stack(out, axis=2)
    metrics = {name: stacked[i] for i, name in enumerate(_METRICS)}
    return WrightFisherResult(metrics, np.asarray(caps))
