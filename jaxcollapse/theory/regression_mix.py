"""Linear regression with fresh designs: accumulate, human labels, strong collapse.

Setting: every generation draws a fresh design (rows N(0, I_d)) and fits OLS; the
excess test error of a fit w is |w - w*|^2 (isotropic test design). Two Wishart
facts make everything exact:

* accumulate with a fresh design each generation (``LinearRegression(n_design=None)``
  under ``accumulate``): with S_i the pooled Gram matrix after i generations,
  e_n = e_{n-1} + S_n^{-1} X_n^T eps_n, and by exchangeability
  E tr(S_i^{-1} G_i S_i^{-1}) = E tr(S_i^{-1})/i, so
  E|e_n|^2 = sigma^2 d sum_{i<=n} 1/(i (i T - d - 1)) (:func:`excess_accumulate_fresh`).
  The fixed-design formula of :func:`jaxcollapse.theory.regression.excess_accumulate`
  (sigma^2 d/(T - d - 1) sum 1/i^2) applies to ``n_design=T`` (one design, reused).
* n rows of which n2 have labels from another model: with G = X^T X and G_2 the Gram
  matrix of those rows, E[G_2 G^{-2} G_2] = c I, where (SVD of X; Haar moments of
  the left singular vectors; E[lambda_j/lambda_i] = (n + 1)/(n - d - 1))
  c = (n2/n)(n2 + 2)/(n + 2) + (d - 1) n1 n2 (n + 1)/((n - 1) n (n + 2)(n - d - 1)),
  n1 = n - n2 (:func:`shifted_gram_factor`); c -> (n2/n)^2 as n grows.

Hence strong model collapse (Dohmatob et al. 2025), exactly in the classical regime:
n samples, a share p2 labelled by w* + Delta, give E|w - w*|^2 =
sigma^2 d/(n - d - 1) + c |Delta|^2 -> p2^2 |Delta|^2, a floor that more data does not
remove. Retraining each generation on n1 human rows and n2 rows labelled by the
previous fit (a human fraction alpha = n1/n of labels, or the iterative version of
strong collapse) gives E_{t+1} = c E_t + sigma^2 d/(n - d - 1), whose fixed point is
E_clean/(1 - c) ~ E_clean/(1 - p2^2).

References:
    Gerstgrasser et al., arXiv 2404.01413 (2024); Dohmatob, Feng, Subramonian, Kempe,
    Strong Model Collapse, ICLR 2025; Dohmatob, Feng, Kempe, NeurIPS 2024.
    THEORY.md sections 5 and 11.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["excess_accumulate_fresh", "excess_mix_fresh", "mix_stationary_excess",
           "shifted_gram_factor", "strong_collapse_excess", "strong_collapse_iterative"]


def _int(value: Any, name: str, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def _noise(noise: Any) -> float:
    if not isinstance(noise, int | float | np.number) or not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise must be a finite number >= 0; got {noise!r}")
    return float(noise)


def _unit(value: Any, name: str) -> float:
    v = float(value)
    if not np.isfinite(v) or v < 0 or v > 1:
        raise ValueError(f"{name} must lie in [0, 1]; got {value!r}")
    return v


def _rows(dim: Any, n: Any) -> tuple[int, int]:
    d = _int(dim, "dim", 1)
    n = _int(n, "n_samples", 1)
    if n <= d + 1:
        raise ValueError(f"n_samples must be > dim + 1 = {d + 1} for E tr((X^T X)^-1) to be "
                         f"finite; got n_samples={n}")
    return d, n


def excess_accumulate_fresh(n_generations: Any, dim: int, n_design: int,
                            noise: float = 1.0) -> np.ndarray:
    """E|w_n - w*|^2 under accumulate with a fresh design of T rows every generation.

    sigma^2 d sum_{i<=n} 1/(i (i T - d - 1)): exact (``n_design=None`` in
    :class:`jaxcollapse.LinearRegression`, T = the samples a generation). Below the
    fixed-design value sigma^2 d/(T - d - 1) sum 1/i^2 (which holds for ``n_design=T``).

    Args:
        n_generations: n (integer or integer array).
        dim: d.
        n_design: T rows a generation, T > d + 1.
        noise: sigma.

    References:
        Gerstgrasser et al., arXiv 2404.01413 (2024). THEORY.md sections 5 and 11.

    Example:
        >>> round(float(excess_accumulate_fresh(25, 7, 40, noise=0.7**0.5)), 4)
        0.2327
    """
    n = np.asarray(n_generations)
    if not np.issubdtype(n.dtype, np.integer) or np.any(n < 0):
        raise ValueError(f"n_generations must be integers >= 0; got {n_generations!r}")
    d, T = _rows(dim, n_design)
    s2 = _noise(noise) ** 2
    i = np.arange(1, int(n.max(initial=0)) + 1, dtype=float)
    table = np.concatenate([[0.0], np.cumsum(1.0 / (i * (i * T - d - 1)))])
    return s2 * d * table[n]


def shifted_gram_factor(n_samples: int, n_shifted: int, dim: int) -> float:
    """c with E[G_2 G^{-2} G_2] = c I for G = X^T X (n rows N(0, I_d)), G_2 = the Gram
    matrix of n_shifted of its rows (exact; see the module docstring).

    References:
        Dohmatob et al., Strong Model Collapse, ICLR 2025 (the quantity whose limit is
        p2^2). THEORY.md section 11.

    Example:
        >>> shifted_gram_factor(20, 20, 3), shifted_gram_factor(20, 0, 3)
        (1.0, 0.0)
    """
    d, n = _rows(dim, n_samples)
    n2 = _int(n_shifted, "n_shifted", 0)
    if n2 > n:
        raise ValueError(f"n_shifted must be <= n_samples = {n}; got {n2}")
    n1 = n - n2
    return float(n2 / n * (n2 + 2) / (n + 2)
                 + (d - 1) * n1 * n2 * (n + 1) / ((n - 1) * n * (n + 2) * (n - d - 1)))


def _delta_sq(delta: Any, dim: int) -> float:
    a = np.asarray(delta, dtype=float)
    if a.shape != (dim,):
        raise ValueError(f"delta must have shape ({dim},); got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError("delta must be finite")
    return float(a @ a)


def strong_collapse_excess(n_samples: Any, p2: float, delta: Any, noise: float = 1.0
                           ) -> np.ndarray:
    """E|w - w*|^2 of OLS on n rows, round(p2 n) of them labelled by w* + delta.

    Exact: sigma^2 d/(n - d - 1) + c(n, round(p2 n), d) |delta|^2, tending to
    p2^2 |delta|^2 as n grows (the error does not vanish unless p2 does).

    Args:
        n_samples: n, an integer or a sequence of integers (each > d + 1).
        p2: the share of shifted labels, in [0, 1].
        delta: the shift, shape ``(d,)``.
        noise: sigma.

    References:
        Dohmatob, Feng, Subramonian, Kempe, Strong Model Collapse, ICLR 2025.
        THEORY.md section 11.

    Example:
        >>> import numpy as np
        >>> e = strong_collapse_excess([100, 10**6], 0.1, np.ones(4), noise=0.0)
        >>> [round(float(x), 4) for x in e]  # floor p2^2 |delta|^2 = 0.04
        [0.0584, 0.04]
    """
    p2 = _unit(p2, "p2")
    s = _noise(noise)
    ns = np.atleast_1d(np.asarray(n_samples))
    delta = np.asarray(delta, dtype=float)
    d = int(delta.shape[0]) if delta.ndim == 1 else -1
    if d < 1:
        raise ValueError(f"delta must have shape (d,); got {delta.shape}")
    dd = _delta_sq(delta, d)
    out = []
    for n in ns.tolist():
        _rows(d, n)
        n2 = int(np.round(p2 * n))
        out.append(s * s * d / (n - d - 1) + shifted_gram_factor(n, n2, d) * dd)
    out = np.asarray(out)
    return out[0] if np.ndim(n_samples) == 0 else out


def excess_mix_fresh(n_generations: int, alpha: float, dim: int, n_samples: int,
                     noise: float = 1.0, excess0: float = 0.0) -> np.ndarray:
    """E|w_t - w*|^2, t = 0..n, when each generation fits OLS on round(alpha n) fresh
    human rows (labels from w*) and the rest labelled by the previous fit (fresh
    design): E_{t+1} = c E_t + sigma^2 d/(n - d - 1), c = shifted_gram_factor(n, n - h).

    With alpha = 1 - p2 this is the iterative version of strong model collapse.

    References:
        Dohmatob et al., ICLR 2025 and NeurIPS 2024. THEORY.md sections 5 and 11.

    Example:
        >>> [round(float(x), 4) for x in excess_mix_fresh(2, 0.0, 3, 20)]  # replace
        [0.0, 0.1875, 0.375]
    """
    n_gen = _int(n_generations, "n_generations", 0)
    a = _unit(alpha, "alpha")
    d, n = _rows(dim, n_samples)
    clean = _noise(noise) ** 2 * d / (n - d - 1)
    h = int(np.round(a * n))
    c = shifted_gram_factor(n, n - h, d)
    out = [float(excess0)]
    for _ in range(n_gen):
        out.append(c * out[-1] + clean)
    return np.asarray(out)


def mix_stationary_excess(alpha: float, dim: int, n_samples: int, noise: float = 1.0
                          ) -> float:
    """The fixed point E_clean/(1 - c) of :func:`excess_mix_fresh` (alpha n >= 1 human
    rows); about E_clean/(1 - (1 - alpha)^2) for large n.

    References:
        Dohmatob et al., ICLR 2025. THEORY.md section 11.

    Example:
        >>> round(mix_stationary_excess(1.0, 3, 20), 4)  # only human labels
        0.1875
    """
    a = _unit(alpha, "alpha")
    d, n = _rows(dim, n_samples)
    h = int(np.round(a * n))
    if h < 1:
        raise ValueError(f"alpha={alpha} gives no human rows: the error grows without bound")
    clean = _noise(noise) ** 2 * d / (n - d - 1)
    return float(clean / (1.0 - shifted_gram_factor(n, n - h, d)))


def strong_collapse_iterative(n_generations: int, n_samples: int, p2: float, dim: int,
                              noise: float = 1.0) -> np.ndarray:
    """Iterative strong collapse: each generation's share p2 of labels comes from the
    previous fit; E_t -> E_clean/(1 - c) ~ E_clean/(1 - p2^2).

    References:
        Dohmatob et al., Strong Model Collapse, ICLR 2025. THEORY.md section 11.

    Example:
        >>> e = strong_collapse_iterative(200, 10**4, 0.5, 2)
        >>> round(float(e[-1] / e[1]), 3)  # 1/(1 - 0.25)
        1.333
    """
    return excess_mix_fresh(n_generations, 1.0 - _unit(p2, "p2"), dim, n_samples, noise)
