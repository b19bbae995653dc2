"""Categorical under ``mix(alpha, "fresh"|"fixed")``: Wright–Fisher with migration
from the human pool (THEORY.md section 11), re-exported by
:mod:`jaxcollapse.theory.mixing`. :func:`wf_mix_moments` gives E p_t and
E sum p_i^2, :func:`wf_mix_survivors` the exact law of each category's count (a
Markov chain on 0..M). Host NumPy float64.

References:
    Ewens, Mathematical Population Genetics (2004) (Wright–Fisher with migration);
    Shumailov et al., Nature 631 (2024). THEORY.md section 11.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
from scipy import stats

from jaxcollapse.theory._mix_common import _check_int, _check_source, _check_unit, _n_human

# ---------------------------------------------------- categorical: WF with migration


class WFMixMoments(NamedTuple):
    """Exact moments of the categorical loop under mix, generations 0..n.

    Attributes:
        mean: E p_t, shape ``(n + 1, K)``.
        homozygosity: E sum_i p_{t,i}^2, shape ``(n + 1,)``; heterozygosity is 1 minus it.

    Example:
        >>> wf_mix_moments(2, 10, 0.1, [0.5, 0.5]).mean.shape
        (3, 2)
    """

    mean: np.ndarray
    homozygosity: np.ndarray

    @property
    def heterozygosity(self) -> np.ndarray:
        return 1.0 - self.homozygosity


def _wf_setup(n_samples, alpha, probs0, pool_probs, n_pool, source):
    M = _check_int(n_samples, "n_samples", 1)
    _check_source(source)
    h = float(_n_human(float(_check_unit(alpha, "alpha")), M))
    p0 = np.asarray(probs0, float)
    q = p0 if pool_probs is None else np.asarray(pool_probs, float)
    for name, v in (("probs0", p0), ("pool_probs", q)):
        if v.ndim != 1 or np.any(v < 0) or abs(v.sum() - 1) > 1e-6 or v.shape != p0.shape:
            raise ValueError(f"{name} must be probabilities of shape (K,) summing to 1")
    if n_pool is not None:
        n_pool = _check_int(n_pool, "n_pool", max(int(h), 2))
    fpc = 1.0 if n_pool is None else (n_pool - h) / (n_pool - 1.0)
    EH2 = h * q * (1 - q) * fpc + h * h * q * q  # E H_i^2 (hypergeometric)
    return M, h, p0, q, n_pool, EH2


def _wf_step(state, M, h, q, EH2, fixed):
    e, r, c = state
    s = M - h
    if not fixed:
        c = h * q * e
    e_new = (h * q + s * e) / M
    r_new = (EH2 + 2 * s * c + s * e + s * (s - 1) * r) / M**2
    c_new = (EH2 + s * c) / M if fixed else c
    return e_new, r_new, c_new


def wf_mix_moments(n_generations: int, n_samples: int, alpha: float, probs0: Any, *,
                   pool_probs: Any = None, n_pool: int | None = None,
                   source: str = "fresh") -> WFMixMoments:
    """E p_t and E sum p_i^2 (Wright–Fisher with migration from the human pool).

    The training set of generation t + 1 holds H_i human draws of category i (a random
    subset of h = round(alpha M) of the pool's N labels, frequencies ``pool_probs``) and
    S ~ Multinomial(M - h, p_t); per category (e = E p_i, r = E p_i^2, c = E H_i p_i):
    e' = (h q + s e)/M, r' = (E H^2 + 2 s c + s e + s (s - 1) r)/M^2, with
    c = h q e (fresh) or c' = (E H^2 + s c)/M (fixed).

    References:
        Shumailov et al., Nature 631 (2024); Ewens (2004). THEORY.md sections 4, 11.

    Example:
        >>> r = wf_mix_moments(1, 10, 0.0, [0.5, 0.5])  # E H_1 = (1 - 1/M) H_0
        >>> round(float(r.heterozygosity[1]), 6)
        0.45
    """
    n = _check_int(n_generations, "n_generations", 0)
    M, h, p0, q, n_pool, EH2 = _wf_setup(n_samples, alpha, probs0, pool_probs, n_pool,
                                         source)
    state = (p0, p0**2, h * q * p0)
    es, rs = [p0], [np.sum(p0**2)]
    for _ in range(n):
        state = _wf_step(state, M, h, q, EH2, source == "fixed")
        es.append(state[0])
        rs.append(np.sum(state[1]))
    return WFMixMoments(np.stack(es), np.asarray(rs))


def wf_mix_stationary(n_samples: int, alpha: float, probs0: Any, *, pool_probs: Any = None,
                      n_pool: int | None = None, source: str = "fresh") -> WFMixMoments:
    """The fixed point of :func:`wf_mix_moments` (needs round(alpha M) >= 1).

    Per category: e = q, c = h q^2 (fresh) or E H^2/h (fixed) and
    r = (E H^2 + 2 s c + s q)/(M^2 - s (s - 1)).

    References:
        Ewens (2004); THEORY.md section 11.

    Example:
        >>> r = wf_mix_stationary(10, 1.0, [0.5, 0.5])  # all human: multinomial of M
        >>> round(float(r.heterozygosity), 6)  # (1 - 1/M) H
        0.45
    """
    M, h, p0, q, n_pool, EH2 = _wf_setup(n_samples, alpha, probs0, pool_probs, n_pool,
                                         source)
    if h < 1:
        raise ValueError(f"alpha={alpha} gives no human draws: the chain is absorbed "
                         "(no migration fixed point)")
    fixed = source == "fixed"
    s = M - h
    e = q.copy()  # e' = (h q + s e)/M has the fixed point q
    if fixed:
        c = EH2 / (M - s)
    else:
        c = h * q * e
    r = (EH2 + 2 * s * c + s * e) / (M**2 - s * (s - 1))
    return WFMixMoments(e, np.asarray(np.sum(r)))


def _count_laws(p0i, qi, M, h, n_pool, n, fixed):
    """Law of one category's count (0..M) at generations 1..n, shape (n, M + 1)."""
    s = M - h
    c = np.arange(M + 1)
    if n_pool is None:
        ph = stats.binom.pmf(np.arange(h + 1), h, qi)
    else:
        ph = stats.hypergeom.pmf(np.arange(h + 1), n_pool, int(round(qi * n_pool)), h)
    syn = stats.binom.pmf(np.arange(s + 1)[None, :], s, (c / M)[:, None])  # (M+1, s+1)
    first = stats.binom.pmf(np.arange(s + 1), s, p0i)

    def shift(v, a):  # law of a + S for S with law v (length s + 1)
        out = np.zeros(v.shape[:-1] + (M + 1,))
        out[..., a:a + s + 1] = v
        return out

    if not fixed:
        T = sum(ph[a] * shift(syn, a) for a in range(h + 1))
        law = sum(ph[a] * shift(first, a) for a in range(h + 1))
        laws = [law]
        for _ in range(n - 1):
            law = law @ T
            laws.append(law)
        return np.stack(laws)
    total = np.zeros((n, M + 1))
    for a in range(h + 1):  # the fixed subset holds a of this category
        if ph[a] == 0:
            continue
        T = shift(syn, a)
        law = shift(first, a)
        laws = [law]
        for _ in range(n - 1):
            law = law @ T
            laws.append(law)
        total += ph[a] * np.stack(laws)
    return total


def wf_mix_survivors(n_generations: int, n_samples: int, alpha: float, probs0: Any, *,
                     pool_probs: Any = None, n_pool: int | None = None,
                     source: str = "fresh") -> np.ndarray:
    """Expected number of categories with positive probability, generations 0..n.

    Exact: each category's count is a Markov chain on 0..M (human count plus a
    binomial of the synthetic draws), run for every category; O(n K M^2) work (times
    h + 1 for "fixed"), for moderate M. With alpha = 0 it is pure Wright–Fisher.

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md sections 4 and 11.

    Example:
        >>> s = wf_mix_survivors(1, 5, 0.0, [0.5, 0.5])
        >>> round(float(s[1]), 6)  # 2 - 2 (1/2)^5
        1.9375
    """
    n = _check_int(n_generations, "n_generations", 0)
    M, h, p0, q, n_pool, _ = _wf_setup(n_samples, alpha, probs0, pool_probs, n_pool,
                                       source)
    out = np.zeros(n + 1)
    out[0] = np.sum(p0 > 0)
    if n == 0:
        return out
    for p0i, qi in zip(p0, q, strict=True):
        laws = _count_laws(p0i, qi, M, int(h), n_pool, n, source == "fixed")
        out[1:] += 1.0 - laws[:, 0]
    return out


# Report the public home as the module (the documented home).
for _obj in (WFMixMoments, wf_mix_moments, wf_mix_stationary, wf_mix_survivors):
    _obj.__module__ = "jaxcollapse.theory.mixing"
del _obj
