"""Closed forms for categorical recursions (neutral Wright–Fisher drift, Zipf tails).

Notation as in THEORY.md section 4: ``p`` (shape ``(K,)``) the current
probabilities, ``M`` draws a generation (replace regime: ``p_{n+1}`` = empirical
frequencies of M draws from ``p_n``).

References:
    Shumailov et al., Nature 631 (2024); Dohmatob et al., A Tale of Tails, ICML
    2024; Kimura, Solution of a process of random genetic drift with a continuous
    model, PNAS 41 (1955); Kimura & Ohta, The average number of generations until
    fixation of a mutant gene, Genetics 61 (1969); Littler, Loss of variability at
    one locus in a finite population, Math. Biosci. 25 (1975). THEORY.md section 4.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from jaxcollapse._validate import check_int, check_int_array, check_real

__all__ = [
    "expected_fixation_time",
    "expected_heterozygosity",
    "expected_lost_mass",
    "expected_survivors",
    "fixation_probabilities",
    "fixation_time_exact",
    "survival_probability",
    "tail_floor",
    "tail_floor_exponent",
    "unseen_mass",
    "unseen_mass_exponent",
]

_SUM_TOL = 1e-4


def _check_probs(probs: Any, name: str = "probs") -> jax.Array:
    check_real(probs, name)  # real and finite (no complex, no strings)
    a = np.asarray(probs, dtype=np.float64)
    if a.ndim != 1 or a.shape[0] < 2:
        raise ValueError(f"{name} must have shape (K,) with K >= 2; got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; got non-finite values")
    if np.any(a < 0):
        raise ValueError(f"{name} must be >= 0; got minimum {a.min()}")
    if abs(a.sum() - 1.0) > _SUM_TOL:
        raise ValueError(f"{name} must sum to 1 (within {_SUM_TOL}); got {a.sum()}")
    return jnp.asarray(probs)


def _check_count(value: Any, name: str, lo: int = 1) -> None:
    check_int_array(value, name, minimum=lo)


def _check_beta(beta: Any, lo: float, what: str) -> float:
    if isinstance(beta, bool) or not isinstance(beta, int | float | np.integer | np.floating) \
            or not math.isfinite(beta):
        raise ValueError(f"beta must be a finite number; got {beta!r}")
    if beta <= lo:
        raise ValueError(f"beta must be > {lo:g} ({what}); got {beta}")
    return float(beta)


def expected_heterozygosity(h0: Any, n_samples: int, n_generations: Any) -> jax.Array:
    """``E[H_n] = (1 - 1/M)^n H_0`` with ``H = 1 - Σ p_i²`` (replace regime).

    Args:
        h0: initial heterozygosity ``1 - Σ p_i²``, in [0, 1].
        n_samples: M >= 1.
        n_generations: n (scalar or array of generations).

    References:
        Shumailov et al. (2024) SI; THEORY.md section 4.

    Example:
        >>> round(float(expected_heterozygosity(0.5, 10, 2)), 4)
        0.405
    """
    check_real(h0, "h0", minimum=0.0, maximum=1.0)
    _check_count(n_samples, "n_samples")
    _check_count(n_generations, "n_generations", lo=0)
    n = jnp.asarray(n_generations)
    return jnp.asarray(h0) * (1.0 - 1.0 / n_samples) ** n


def survival_probability(probs: Any, n_samples: int) -> jax.Array:
    """Per category, the chance it survives one generation: ``1 - (1 - p_i)^M``.

    References:
        THEORY.md section 4.

    Example:
        >>> [round(float(x), 3) for x in survival_probability([0.5, 0.5], 2)]
        [0.75, 0.75]
    """
    p = _check_probs(probs)
    _check_count(n_samples, "n_samples")
    return -jnp.expm1(n_samples * jnp.log1p(-p))


def expected_survivors(probs: Any, n_samples: int) -> jax.Array:
    """Expected number of categories that survive one generation: ``Σ 1 - (1-p_i)^M``.

    References:
        THEORY.md section 4.

    Example:
        >>> round(float(expected_survivors([0.5, 0.5], 2)), 3)
        1.5
    """
    return jnp.sum(survival_probability(probs, n_samples))


def expected_lost_mass(probs: Any, n_samples: int) -> jax.Array:
    """Expected mass lost in one generation: ``Σ p_i (1 - p_i)^M``.

    References:
        THEORY.md section 4.

    Example:
        >>> round(float(expected_lost_mass([0.5, 0.5], 2)), 3)
        0.25
    """
    p = _check_probs(probs)
    _check_count(n_samples, "n_samples")
    return jnp.sum(p * jnp.exp(n_samples * jnp.log1p(-p)))


def fixation_probabilities(probs: Any) -> jax.Array:
    """Probability that each category ends as the sole survivor: ``p_{0,i}``.

    ``p_n`` is a martingale and the chain is absorbed in a delta, so category i
    fixes with probability equal to its initial frequency.

    References:
        Kimura (1955); THEORY.md section 4.

    Example:
        >>> fixation_probabilities([0.25, 0.75]).tolist()
        [0.25, 0.75]
    """
    return _check_probs(probs)


def unseen_mass(probs: Any, n_draws: Any) -> jax.Array:
    """Mass never seen in T draws, ``U(T) = Σ p_i (1 - p_i)^T`` (T scalar or array).

    References:
        Dohmatob et al., A Tale of Tails (2024); THEORY.md section 4.

    Example:
        >>> [round(float(u), 3) for u in unseen_mass([0.5, 0.5], jnp.array([1, 2]))]
        [0.5, 0.25]
    """
    p = _check_probs(probs)
    _check_count(n_draws, "n_draws", lo=0)
    t = jnp.asarray(n_draws)[..., None]
    return jnp.sum(p * jnp.exp(t * jnp.log1p(-p)), axis=-1)


def unseen_mass_exponent(beta: float) -> float:
    """Power-law exponent of U(T) for an infinite Zipf(beta): ``-(1 - 1/beta)``.

    Needs ``beta > 1`` (an infinite Zipf law normalises only then).

    References:
        Dohmatob et al., A Tale of Tails (2024); THEORY.md section 4.

    Example:
        >>> unseen_mass_exponent(2.0)
        -0.5
        >>> unseen_mass_exponent(1.0)
        Traceback (most recent call last):
        ...
        ValueError: beta must be > 1 (infinite Zipf law must normalise); got 1.0
    """
    b = _check_beta(beta, 1.0, "infinite Zipf law must normalise")
    return -(1.0 - 1.0 / b)


def tail_floor(probs: Any, rank: Any) -> jax.Array:
    """Mass beyond rank k, ``Σ_{i > k} p_(i)`` with p sorted in decreasing order.

    Training on data whose tail is cut at rank k cannot do better than this floor.

    References:
        Dohmatob et al., A Tale of Tails (2024); THEORY.md section 4.

    Example:
        >>> round(float(tail_floor([0.1, 0.6, 0.3], 1)), 3)
        0.4
    """
    p = _check_probs(probs)
    _check_count(rank, "rank", lo=0)
    s = jnp.sort(p)[::-1]
    tail = jnp.concatenate([jnp.cumsum(s[::-1])[::-1], jnp.zeros((1,), s.dtype)])
    return tail[jnp.minimum(jnp.asarray(rank), s.shape[0])]


def tail_floor_exponent(beta: float) -> float:
    """Exponent of the tail floor ``Σ_{i>k} p_i ≍ k^-(beta - 1)`` for infinite Zipf.

    References:
        Dohmatob et al., A Tale of Tails (2024); THEORY.md section 4.

    Example:
        >>> tail_floor_exponent(1.5)
        -0.5
    """
    b = _check_beta(beta, 1.0, "infinite Zipf law must normalise")
    return -(b - 1.0)


def expected_fixation_time(probs: Any, n_samples: int) -> jax.Array:
    """Diffusion approximation of the mean time until one category is left.

    Two categories (Kimura's diffusion, haploid Wright–Fisher with M draws, drift
    variance x(1-x)/M a generation): ``T(x) = -2M [x ln x + (1-x) ln(1-x)]``.
    K categories (Littler's extension: the time until all but one allele are
    lost): ``T = -2M Σ_i (1 - p_i) ln(1 - p_i)``, which reduces to Kimura's for
    K = 2. Relative error O(1/M) against the discrete chain (see
    :func:`fixation_time_exact`).

    References:
        Kimura & Ohta (1969); Littler (1975); THEORY.md section 4.

    Example:
        >>> round(float(expected_fixation_time([0.5, 0.5], 100)), 2)
        138.63
    """
    p = _check_probs(probs)
    _check_count(n_samples, "n_samples")
    q = 1.0 - p
    terms = jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0)
    return -2.0 * n_samples * jnp.sum(terms)


def fixation_time_exact(count0: int, n_samples: int) -> jax.Array:
    """Exact mean absorption time of the two-category chain started at count ``c``.

    Solves ``(I - Q) t = 1`` over the transient counts 1..M-1 of the Wright–Fisher
    chain (counts of M draws at frequency c/M). O(M^3); meant for M up to ~2000.

    References:
        Ewens, Mathematical Population Genetics (2004), sec. 3.3.

    Example:
        >>> round(float(fixation_time_exact(1, 2)), 3)  # leaves {1} w.p. 1/2 a step
        2.0
    """
    n_samples = check_int(n_samples, "n_samples", minimum=2)
    count0 = check_int(count0, "count0", minimum=0)
    if count0 > n_samples:
        raise ValueError(f"count0 must be <= n_samples = {n_samples}; got {count0}")
    if count0 in (0, n_samples):
        return jnp.zeros(())
    m = n_samples
    i = jnp.arange(1, m, dtype=jnp.result_type(float))[:, None]
    j = jnp.arange(1, m, dtype=i.dtype)[None, :]
    x = i / m
    logc = gammaln(m + 1.0) - gammaln(j + 1.0) - gammaln(m - j + 1.0)
    q = jnp.exp(logc + j * jnp.log(x) + (m - j) * jnp.log1p(-x))
    t = jnp.linalg.solve(jnp.eye(m - 1, dtype=q.dtype) - q, jnp.ones((m - 1,), q.dtype))
    return t[count0 - 1]
