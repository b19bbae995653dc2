"""Closed forms for linear regression retrained on its own labels.

Setting (THEORY.md section 5): design ``X`` (T x d, rows N(0, I)), labels
``y_1 = X w* + ε_1`` and ``y_{i+1} = X ŵ_i + ε_{i+1}``, ``ε ~ N(0, σ² I)``. With
``η_i = (XᵀX)⁻¹Xᵀε_i`` and ``E tr((XᵀX)⁻¹) = d / (T - d - 1)``:

* replace (fit on the newest labels): ``E‖ŵ_n - w*‖² = n σ² d / (T - d - 1)``;
* accumulate (fit on all labels so far): ``σ² d / (T - d - 1) Σ_{i<=n} 1/i²``.

For a given X, ``d / (T - d - 1)`` becomes ``tr((XᵀX)⁻¹)`` (``*_fixed``
functions). The replace formula also holds with a fresh design every generation
(the η_i stay independent). Ridge (λ > 0) with a fixed design and replace has the
closed form of :func:`excess_ridge_replace_fixed`; ridge with accumulate has no
simple closed form and is Monte Carlo only (:func:`jaxcollapse.families.
regression.simulate_fixed_design`).

References:
    Gerstgrasser et al., Is Model Collapse Inevitable?, arXiv 2404.01413 (2024);
    Dohmatob, Feng, Kempe, Model Collapse Demystified: The Case of Regression
    (NeurIPS 2024). THEORY.md section 5.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import polygamma

from jaxcollapse._validate import check_real

__all__ = [
    "excess_accumulate",
    "excess_accumulate_fixed",
    "excess_replace",
    "excess_replace_fixed",
    "excess_ridge_replace_fixed",
    "inverse_gram_trace",
]


def _check_generations(n: Any) -> jax.Array:
    a = np.asarray(n)
    if isinstance(n, bool) or not np.issubdtype(a.dtype, np.integer) or np.any(a < 0):
        raise ValueError(f"n_generations must be integers >= 0; got {n!r}")
    return jnp.asarray(n)


def _check_positive(value: Any, name: str, allow_zero: bool = False) -> None:
    if isinstance(value, bool | np.bool_ | complex | np.complexfloating) or \
            not isinstance(value, int | float | np.number) or not np.isfinite(value) or (
            value < 0 if allow_zero else value <= 0):
        allowed = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a finite number {allowed}; got {value!r}")


def _check_dims(dim: Any, n_design: Any) -> None:
    for name, v in (("dim", dim), ("n_design", n_design)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an integer >= 1; got {v!r}")
    if n_design <= dim + 1:
        raise ValueError(f"n_design must be > dim + 1 = {dim + 1} for E tr((XᵀX)⁻¹) = "
                         f"d/(T - d - 1) to be finite; got n_design={n_design}")


def _design_rank(x: np.ndarray) -> int:
    """Numerical rank of a design ``(T, d)`` at the precision of its dtype (singular
    values above ``max(T, d) * eps * largest``, as ``numpy.linalg.matrix_rank``).

    Example:
        >>> _design_rank(np.array([[1.0, 2.0], [2.0, 4.0], [3.0, 6.0]]))
        1
    """
    x = np.asarray(x)
    eps = np.finfo(x.dtype if x.dtype.kind == "f" else np.float64).eps
    sv = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    if sv.size == 0 or sv[0] == 0:
        return 0
    return int(np.sum(sv > max(x.shape) * eps * sv[0]))


def _check_design(design: Any, name: str = "design", full_rank: bool = True) -> jax.Array:
    check_real(design, name)  # real and finite: complex and strings refused
    x = np.asarray(design)
    if x.ndim != 2 or x.shape[1] < 1:
        raise ValueError(f"{name} must have shape (T, d); got {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    if not full_rank:
        return jnp.asarray(design, jnp.result_type(float) if x.dtype.kind != "f" else None)
    if x.shape[0] < x.shape[1]:
        raise ValueError(f"{name} must have T >= d rows for XᵀX to be invertible; got "
                         f"shape {x.shape}")
    rank = _design_rank(x)
    if rank < x.shape[1]:
        raise ValueError(f"{name} must have full column rank d = {x.shape[1]} (XᵀX "
                         f"invertible; otherwise the excess risk is infinite); got rank "
                         f"{rank} at {x.dtype} precision")
    x = jnp.asarray(design)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.result_type(float))


# Above this many generations Σ 1/i² comes from its closed form (no table).
_TABLE_MAX = 100_000


def _harmonic2(n: jax.Array) -> jax.Array:
    # Σ_{i<=n} 1/i² for integer arrays n (exact partial sums up to max n).
    n_max = int(np.max(np.asarray(n))) if np.size(n) else 0
    if n_max > _TABLE_MAX:  # π²/6 - ψ'(n + 1)
        return jnp.pi**2 / 6 - polygamma(1, jnp.asarray(n, jnp.result_type(float)) + 1.0)
    i = jnp.arange(1, max(n_max, 1) + 1, dtype=jnp.result_type(float))
    table = jnp.concatenate([jnp.zeros((1,), i.dtype), jnp.cumsum(1.0 / i**2)])
    return table[n]


def inverse_gram_trace(design: Any) -> jax.Array:
    """``tr((XᵀX)⁻¹)`` for a design ``X`` of shape ``(T, d)``.

    References:
        THEORY.md section 5.

    Example:
        >>> float(inverse_gram_trace(jnp.eye(3) * 2.0))
        0.75
    """
    x = _check_design(design)
    e = jnp.linalg.eigvalsh(x.T @ x)
    return jnp.sum(1.0 / e)


def excess_replace(n_generations: Any, dim: int, n_design: int, noise: float = 1.0
                   ) -> jax.Array:
    """``E‖ŵ_n - w*‖² = n σ² d / (T - d - 1)`` (replace, design averaged).

    Args:
        n_generations: n (integer or integer array).
        dim: d.
        n_design: T > d + 1.
        noise: σ.

    References:
        Gerstgrasser et al. (2024); Dohmatob et al. (2024). THEORY.md section 5.

    Example:
        >>> round(float(excess_replace(50, 10, 100)), 4)
        5.618
        >>> excess_replace(1, 10, 11)
        Traceback (most recent call last):
        ...
        ValueError: n_design must be > dim + 1 = 11 ...
    """
    n = _check_generations(n_generations)
    _check_dims(dim, n_design)
    _check_positive(noise, "noise")
    return n * noise**2 * dim / (n_design - dim - 1)


def excess_accumulate(n_generations: Any, dim: int, n_design: int, noise: float = 1.0
                      ) -> jax.Array:
    """``E‖ŵ_n - w*‖² = σ² d / (T - d - 1) Σ_{i<=n} 1/i²`` (accumulate).

    Bounded by ``(π²/6) σ² d / (T - d - 1)``: accumulating data avoids collapse.

    References:
        Gerstgrasser et al. (2024). THEORY.md section 5.

    Example:
        >>> round(float(excess_accumulate(2, 10, 100)), 4)
        0.1404
    """
    n = _check_generations(n_generations)
    _check_dims(dim, n_design)
    _check_positive(noise, "noise")
    return noise**2 * dim / (n_design - dim - 1) * _harmonic2(n)


def _fixed_design(n_generations, design, noise):
    # the checked generations and tr((X^T X)^-1) (noise checked)
    n = _check_generations(n_generations)
    _check_positive(noise, "noise")
    return n, inverse_gram_trace(design)


def excess_replace_fixed(n_generations: Any, design: Any, noise: float = 1.0) -> jax.Array:
    """``E[‖ŵ_n - w*‖² | X] = n σ² tr((XᵀX)⁻¹)`` (replace, given design).

    References:
        Gerstgrasser et al. (2024). THEORY.md section 5.

    Example:
        >>> float(excess_replace_fixed(2, jnp.eye(2) * 2.0))
        1.0
    """
    n, trace = _fixed_design(n_generations, design, noise)
    return n * noise**2 * trace


def excess_accumulate_fixed(n_generations: Any, design: Any, noise: float = 1.0
                            ) -> jax.Array:
    """``E[‖ŵ_n - w*‖² | X] = σ² tr((XᵀX)⁻¹) Σ_{i<=n} 1/i²`` (accumulate, given design).

    References:
        Gerstgrasser et al. (2024). THEORY.md section 5.

    Example:
        >>> float(excess_accumulate_fixed(2, jnp.eye(2) * 2.0))
        0.625
    """
    n, trace = _fixed_design(n_generations, design, noise)
    return noise**2 * trace * _harmonic2(n)


def excess_ridge_replace_fixed(n_generations: Any, design: Any, w0: Any, noise: float = 1.0,
                               ridge: float = 0.0) -> jax.Array:
    """``E[‖ŵ_n - w*‖² | X]`` for ridge with replace and a fixed design.

    In the eigenbasis of ``XᵀX = Q diag(g) Qᵀ`` each coordinate follows
    ``e_n = a e_{n-1} - (1 - a) w̃* + s z`` with ``a = g/(g + λ)`` and
    ``s² = σ² g/(g + λ)²``, so
    ``E‖e_n‖² = Σ_j w̃*_j² (1 - a_j^n)² + s_j² (1 - a_j^{2n}) / (1 - a_j²)``
    (``w̃* = Qᵀw*``). The bias term makes ridge depend on ``w*``; λ = 0 gives
    :func:`excess_replace_fixed`.

    Args:
        n_generations: n (integer or integer array).
        design: X, shape ``(T, d)``.
        w0: w*, shape ``(d,)``.
        noise: σ.
        ridge: λ >= 0.

    References:
        Dohmatob, Feng, Kempe (2024) (ridge under recursion). THEORY.md section 5.

    Example:
        >>> x = jnp.eye(2) * 2.0
        >>> round(float(excess_ridge_replace_fixed(2, x, jnp.zeros(2), ridge=0.0)), 6)
        1.0
        >>> round(float(excess_ridge_replace_fixed(1, x, jnp.ones(2), ridge=4.0)), 4)
        0.625
    """
    n = _check_generations(n_generations)
    _check_positive(noise, "noise")
    _check_positive(ridge, "ridge", allow_zero=True)
    x = _check_design(design, full_rank=ridge == 0)
    check_real(w0, "w0")
    w0 = jnp.asarray(w0, x.dtype)
    if w0.shape != (x.shape[1],):
        raise ValueError(f"w0 must have shape ({x.shape[1]},); got {w0.shape}")
    g, q = jnp.linalg.eigh(x.T @ x)
    wr = q.T @ w0
    a = g / (g + ridge)
    s2 = noise**2 * g / (g + ridge) ** 2
    nn = jnp.asarray(n, g.dtype)[..., None]
    a2 = a * a
    geo = jnp.where(a2 < 1, (1 - a2**nn) / jnp.where(a2 < 1, 1 - a2, 1.0), nn)
    return jnp.sum(wr**2 * (1 - a**nn) ** 2 + s2 * geo, axis=-1)
