"""The fixed-design regression runner: many chains of the recursion in the
eigenbasis of ``XᵀX`` at O(d) a chain and generation (exact in law), used by
:func:`jaxcollapse.simulate` by itself (``LinearRegression.fast_simulate``) and as
:func:`simulate_fixed_design`.

References:
    Gerstgrasser et al. (2024); THEORY.md section 5.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

if TYPE_CHECKING:
    from jaxcollapse.families.regression import LinearRegression, RegressionParams

__all__ = ["FixedDesignResult", "simulate_fixed_design"]


class FixedDesignResult(NamedTuple):
    """Output of :func:`simulate_fixed_design`.

    Attributes:
        excess_risk: ``‖w_n - w0‖²``, shape ``(n_chains, n_generations + 1)``.
        w: the fits ``(n_chains, n_generations + 1, d)``, or ``None``.
    """

    excess_risk: jax.Array
    w: Any


@functools.partial(jax.jit, static_argnames=("n_generations", "n_chains", "accumulate",
                                             "return_w", "return_change"))
def _fixed_design_run(key, g, q, w0r, noise, ridge, *, n_generations, n_chains, accumulate,
                      return_w, return_change=True):
    """Rotated fixed-design recursion; chain i uses ``fold_in(key, i)`` and its
    generation t ``fold_in(chain_key, t)`` (a chain's numbers do not depend on the
    chain count). Returns ``(excess_risk, step_change or None, w or None)``, chain
    first (the step change costs a second reduction a generation: only on request)."""
    dtype = g.dtype
    sg = jnp.sqrt(jnp.maximum(g, 0.0))
    ts = jnp.arange(1, n_generations + 1)
    chain_keys = jax.vmap(jax.random.fold_in, (None, 0))(key, jnp.arange(n_chains))

    def step(carry, t):
        wr, s = carry
        ks = jax.vmap(jax.random.fold_in, (0, None))(chain_keys, t)
        z = jax.vmap(lambda k: jax.random.normal(k, g.shape, dtype))(ks)
        xty = g * wr + noise * sg * z  # rotated Xᵀy of one relabelling
        if accumulate:
            s = s + xty
            new = s / (t * g + ridge)
        else:
            new = xty / (g + ridge)
        new = jnp.where(t * g + ridge > 0, new, 0.0)
        out = (jnp.sum((new - w0r) ** 2, -1),
               jnp.sum((new - wr) ** 2, -1) if return_change else None)
        return (new, s), (out, new if return_w else None)

    init = jnp.broadcast_to(w0r, (n_chains, g.shape[0]))
    _, ((risk, change), wr) = lax.scan(step, (init, jnp.zeros_like(init)), ts)
    zero = jnp.zeros((1, n_chains), dtype)
    risk = jnp.concatenate([zero, risk], 0).T
    change = jnp.concatenate([zero, change], 0).T if return_change else None
    if not return_w:
        return risk, change, None
    wr = jnp.concatenate([init[None], wr], 0)
    return risk, change, jnp.swapaxes(wr @ q.T, 0, 1)


def _fixed_design_arrays(family, params0):
    """The eigenbasis of ``XᵀX`` and the rotated truth, for the fixed-design runner."""
    x = params0.design
    if family.ridge == 0 and x.shape[0] < family.dim:
        raise ValueError(f"OLS needs at least d = {family.dim} design rows; got "
                         f"T = {x.shape[0]}")
    return _eigenbasis(x, params0.w)


@jax.jit
def _eigenbasis(x, w):
    g, q = jnp.linalg.eigh(x.T @ x)
    return jnp.maximum(g, 0.0), q, q.T @ w


def simulate_fixed_design(key: jax.Array, family: LinearRegression, params0: RegressionParams,
                          *, n_generations: int, n_chains: int, regime: str = "replace",
                          return_w: bool = False) -> FixedDesignResult:
    """Fixed-design regression chains at O(d) a generation (exact in law).

    With ``XᵀX = Q diag(g) Qᵀ``, relabelling the design with ``w`` plus noise gives
    ``QᵀXᵀy = g ⊙ Qᵀw + σ √g ⊙ z`` with ``z ~ N(0, I_d)``, exactly. Replace fits
    ``(g + λ)⁻¹`` of the newest statistics, accumulate ``(t g + λ)⁻¹`` of their sum.
    Every generation uses the full design (M = T). ``‖w - w0‖²`` is rotation
    invariant, so only the rotated coefficients are tracked.

    Args:
        key: a PRNG key.
        family: a ``LinearRegression`` with a fixed design (``n_design=T``).
        params0: ``RegressionParams(w0, design)``.
        n_generations: generations after generation 0.
        n_chains: independent chains.
        regime: ``"replace"`` or ``"accumulate"``.
        return_w: also return the fits (costs O(d²) a generation).

    Returns:
        A :class:`FixedDesignResult`.

    References:
        Gerstgrasser et al. (2024); THEORY.md section 5.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> from jaxcollapse.families.regression import LinearRegression
        >>> fam = LinearRegression(dim=3, n_design=30)
        >>> x = jax.random.normal(jax.random.key(0), (30, 3))
        >>> res = simulate_fixed_design(jax.random.key(1), fam, fam.params(None, x),
        ...                             n_generations=5, n_chains=8)
        >>> res.excess_risk.shape
        (8, 6)
    """
    from jaxcollapse.families.regression import LinearRegression

    if not isinstance(family, LinearRegression) or not family.fixed:
        raise ValueError(f"family must be a LinearRegression with n_design set (a fixed "
                         f"design); got {family!r}")
    params0 = family.check_params(params0)
    for name, v in (("n_generations", n_generations), ("n_chains", n_chains)):
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < 1:
            raise ValueError(f"{name} must be an int >= 1; got {v!r}")
    if regime not in ("replace", "accumulate"):
        raise ValueError(f"regime must be 'replace' or 'accumulate'; got {regime!r}")
    g, q, w0r = _fixed_design_arrays(family, params0)
    dtype = g.dtype
    risk, _, w = _fixed_design_run(key, g, q, w0r, jnp.asarray(family.noise, dtype),
                                   jnp.asarray(family.ridge, dtype),
                                   n_generations=n_generations, n_chains=n_chains,
                                   accumulate=regime == "accumulate", return_w=return_w,
                                   return_change=False)
    return FixedDesignResult(risk, w)
