"""Linear regression retrained on its own labels (Gerstgrasser; Dohmatob).

Data are pairs ``(X, y)`` with ``X`` of shape ``(n, d)`` and ``y`` of shape
``(n,)``. The model ``y = X w + σ ε`` has parameters ``RegressionParams(w, design)``:

* ``n_design=T`` (fixed design): ``design`` is the design matrix (shape ``(T, d)``);
  drawing ``n`` rows relabels the design (row ``i`` is design row ``i mod T``, so
  ``n = T`` is exactly the design once) with the current fit plus fresh noise.
  The design lives in the parameters because families are static hashable
  dataclasses.
* ``n_design=None`` (fresh design): every draw has new ``N(0, I)`` rows;
  ``design`` is ``None``.

``fit`` is OLS (``ridge = 0``) or ridge ``(XᵀWX + λI)⁻¹ XᵀWy``. The exact path
works on the sufficient statistics ``XᵀX`` and ``Xᵀy``: replace uses the newest
ones, accumulate adds them up (no growing buffer). For long fixed-design runs with
many chains, :func:`simulate_fixed_design` runs the same recursion in the
eigenbasis of ``XᵀX`` at O(d) a generation. The closed forms beside it, with the
references, are in :mod:`jaxcollapse.theory.regression` (THEORY.md section 5).
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import random as jcr
from jaxcollapse._validate import check_choice, float_array
from jaxcollapse.families.base import StatsFit, successive
from jaxcollapse.theory.regression import _check_positive, _design_rank

__all__ = [
    "LinearRegression",
    "RegressionParams",
    "RegressionStats",
    "excess_risk",
    "simulate_fixed_design",
    "step_change",
]

METHODS = ("exact", "samples")


class RegressionParams(NamedTuple):
    """Parameters of the linear model.

    Attributes:
        w: coefficients, shape ``(d,)``.
        design: the fixed design, shape ``(T, d)``, or ``None`` for a fresh design.

    Example:
        >>> p = LinearRegression(dim=2).params([1.0, -1.0])
        >>> p.w.tolist(), p.design is None
        ([1.0, -1.0], True)
    """

    w: jax.Array
    design: Any = None


class RegressionStats(NamedTuple):
    """Sufficient statistics of weighted data.

    Attributes:
        xtx: ``Σ w_i x_i x_iᵀ``, shape ``(d, d)``.
        xty: ``Σ w_i x_i y_i``, shape ``(d,)``.
        n: ``Σ w_i``.
        design: the fixed design the data were drawn on (``(T, d)``) or ``None``.

    Example:
        >>> import jax.numpy as jnp
        >>> x, y = jnp.eye(2), jnp.array([1.0, 2.0])
        >>> s = LinearRegression(dim=2).stats((x, y), jnp.ones(2))
        >>> s.xtx.tolist(), s.xty.tolist(), float(s.n)
        ([[1.0, 0.0], [0.0, 1.0]], [1.0, 2.0], 2.0)
    """

    xtx: jax.Array
    xty: jax.Array
    n: jax.Array
    design: Any = None


def excess_risk(params: RegressionParams, params0: RegressionParams) -> jax.Array:
    """Excess test error ``‖w - w0‖²`` (for test inputs ``x ~ N(0, I)``).

    References:
        THEORY.md section 5.

    Example:
        >>> import jax.numpy as jnp
        >>> p = RegressionParams(jnp.array([1.0, 2.0]))
        >>> float(excess_risk(p, RegressionParams(jnp.zeros(2))))
        5.0
    """
    return jnp.sum((params.w - params0.w) ** 2)


@successive
def step_change(params: RegressionParams, prev: RegressionParams) -> jax.Array:
    """``‖w_n - w_{n-1}‖²``: how far one generation moves the fit.

    Example:
        >>> import jax.numpy as jnp
        >>> float(step_change(RegressionParams(jnp.ones(2)), RegressionParams(jnp.zeros(2))))
        2.0
    """
    return jnp.sum((params.w - prev.w) ** 2)


_METRICS = {"excess_risk": excess_risk, "step_change": step_change}


def _solve(xtx: jax.Array, xty: jax.Array, ridge: float) -> jax.Array:
    # (XᵀX + λI)⁺ Xᵀy through an eigendecomposition: a rank-deficient XᵀX (fewer
    # rows than d, OLS) gives the minimum-norm solution instead of NaN.
    e, v = jnp.linalg.eigh(0.5 * (xtx + xtx.T))
    e = e + ridge
    tol = e.shape[-1] * jnp.finfo(e.dtype).eps * jnp.maximum(jnp.max(jnp.abs(e)), 1.0)
    inv = jnp.where(e > tol, 1.0 / jnp.where(e > tol, e, 1.0), 0.0)
    return v @ (inv * (v.T @ xty))


@dataclasses.dataclass(frozen=True)
class LinearRegression(StatsFit):
    """Linear regression ``y = X w + σ ε`` refitted by OLS or ridge.

    Attributes:
        dim: d >= 1.
        ridge: λ >= 0 added to ``XᵀX`` (0 = OLS).
        noise: σ > 0, the label noise standard deviation.
        n_design: T, the number of rows of a fixed design (``params.design`` of shape
            ``(T, d)`` is relabelled every generation; use ``n_samples=T``), or
            ``None`` for fresh ``N(0, I)`` rows at every draw.
        method: ``"exact"`` (draw ``XᵀX``, ``Xᵀy`` directly) or ``"samples"``.

    References:
        Gerstgrasser et al. (2024); Dohmatob et al. (2024). THEORY.md section 5.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> fam = LinearRegression(dim=2, noise=0.1, n_design=20)
        >>> x = jax.random.normal(jax.random.key(0), (20, 2))
        >>> p0 = fam.params(jnp.array([1.0, -1.0]), x)
        >>> data = fam.sample(jax.random.key(1), p0, 20)
        >>> [a.shape for a in data]
        [(20, 2), (20,)]
        >>> w = fam.fit(jax.random.key(2), data, jnp.ones(20)).w
        >>> bool(jnp.allclose(w, p0.w, atol=0.2))
        True
    """

    dim: int = 1
    ridge: float = 0.0
    noise: float = 1.0
    n_design: int | None = None
    method: str = "exact"

    def __post_init__(self):
        if isinstance(self.dim, bool) or not isinstance(self.dim, int | np.integer) \
                or self.dim < 1:
            raise ValueError(f"dim must be an integer >= 1; got {self.dim!r}")
        _check_positive(self.ridge, "ridge", allow_zero=True)
        _check_positive(self.noise, "noise")
        if self.n_design is not None and (
                isinstance(self.n_design, bool) or not isinstance(self.n_design, int | np.integer)
                or self.n_design < 1):
            raise ValueError(f"n_design must be None or an integer >= 1; got {self.n_design!r}")
        check_choice(self.method, "method", METHODS)

    @property
    def exact(self) -> bool:
        return self.method == "exact"

    @property
    def fixed(self) -> bool:
        """Whether the design is fixed (``n_design`` rows in ``params.design``)."""
        return self.n_design is not None

    def params(self, w: Any = None, design: Any = None) -> RegressionParams:
        """Builds (and checks) parameters; ``w`` defaults to ones.

        Example:
            >>> LinearRegression(dim=2).params().w.tolist()
            [1.0, 1.0]
        """
        w = jnp.ones(self.dim) if w is None else w
        return self.check_params(RegressionParams(w, design))

    # -- validation ---------------------------------------------------------------------
    def check_params(self, params: Any) -> RegressionParams:
        """Validates ``w`` (shape (d,), finite) and the design (shape (T, d), finite,
        and of full column rank d for OLS: with ``ridge = 0`` a rank-deficient design
        leaves ``w`` unidentified and the excess risk infinite, so it is refused).

        dtypes: float32/float64 kept (the design takes ``w``'s dtype), float16 and
        bfloat16 become float32, integers and booleans the default float dtype,
        complex refused (``TypeError``).
        """
        if not isinstance(params, RegressionParams):
            raise TypeError(f"params0 must be RegressionParams(w, design); got {type(params)}")
        w = float_array(params.w, "params0.w")
        if w.shape != (self.dim,):
            raise ValueError(f"params0.w must have shape ({self.dim},); got {w.shape}")
        if not np.all(np.isfinite(np.asarray(w))):
            raise ValueError("params0.w must be finite; got NaN or inf")
        if not self.fixed:
            if params.design is not None:
                raise ValueError("params0.design must be None for a fresh design "
                                 "(n_design=None)")
            return RegressionParams(w, None)
        if params.design is None:
            raise ValueError(f"params0.design must be a ({self.n_design}, {self.dim}) array "
                             f"for a fixed design; got None")
        x = float_array(params.design, "params0.design").astype(w.dtype)
        if x.shape != (self.n_design, self.dim):
            raise ValueError(f"params0.design must have shape ({self.n_design}, {self.dim}); "
                             f"got {x.shape}")
        if not np.all(np.isfinite(np.asarray(x))):
            raise ValueError("params0.design must be finite; got NaN or inf")
        if self.ridge == 0:
            rank = _design_rank(np.asarray(x))
            if rank < self.dim:
                raise ValueError(f"params0.design must have full column rank d = {self.dim} "
                                 f"for OLS (ridge=0); got rank {rank} at {x.dtype} precision: "
                                 f"w is not identified and the excess risk is infinite "
                                 f"(use ridge > 0 or another design)")
        return RegressionParams(w, x)

    def check_data(self, data: Any, name: str = "data") -> tuple:
        """Validates ``(X, y)``: shapes ``(n, d)`` and ``(n,)``, finite values (dtypes
        as :meth:`check_params`; ``y`` takes ``X``'s dtype)."""
        if not isinstance(data, tuple | list) or len(data) != 2:
            raise TypeError(f"{name} must be a pair (X, y); got {type(data)}")
        x = float_array(data[0], f"{name} X")
        y = float_array(data[1], f"{name} y").astype(x.dtype)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"{name} X must have shape (n, {self.dim}); got {x.shape}")
        if y.shape != (x.shape[0],):
            raise ValueError(f"{name} y must have shape ({x.shape[0]},) to match X "
                             f"{x.shape}; got {y.shape}")
        if not (np.all(np.isfinite(np.asarray(x))) and np.all(np.isfinite(np.asarray(y)))):
            raise ValueError(f"{name} must be finite; got NaN or inf in X or y")
        return x, y

    def min_samples(self) -> int:
        """Smallest training-set size: d for OLS (a unique fit), 1 with a ridge."""
        return self.dim if self.ridge == 0 else 1

    # -- model --------------------------------------------------------------------------
    def _design_rows(self, params: RegressionParams, n: int) -> jax.Array:
        t = params.design.shape[0]
        return params.design[jnp.arange(n) % t]

    def sample(self, key: jax.Array, params: RegressionParams, n: int) -> tuple:
        """``(X, y)`` with ``n`` rows: the (cycled) fixed design or fresh N(0, I) rows."""
        kx, ke = jax.random.split(key)
        dtype = params.w.dtype
        if self.fixed:
            x = self._design_rows(params, n)
        else:
            x = jax.random.normal(kx, (n, self.dim), dtype)
        y = x @ params.w + self.noise * jax.random.normal(ke, (n,), dtype)
        return x, y

    def log_prob(self, params: RegressionParams, data: tuple) -> jax.Array:
        """Conditional log density ``log N(y; X w, σ²)`` per row."""
        x, y = data
        r = (y - x @ params.w) / self.noise
        return -0.5 * (r * r + jnp.log(2 * jnp.pi)) - jnp.log(self.noise)

    def default_metrics(self) -> dict:
        """``excess_risk`` (‖w - w0‖²) and ``step_change`` (‖w_n - w_{n-1}‖²)."""
        return dict(_METRICS)

    def is_degenerate(self, params: RegressionParams) -> jax.Array:
        """True if the coefficients are not finite."""
        return ~jnp.all(jnp.isfinite(params.w))

    def fast_simulate(self, key: jax.Array, params0: RegressionParams, *, regime: str,
                      n_generations: int, n_samples: int, n_chains: int,
                      metrics: tuple[str, ...], progress: bool = False,
                      check_only: bool = False):
        """The fixed-design runner (:func:`simulate_fixed_design`'s recursion in the
        eigenbasis of ``XᵀX``, O(d) a chain and generation), which
        :func:`jaxcollapse.simulate` calls by itself for a fixed design on the exact
        path, replace or accumulate, ``n_samples = n_design`` every generation, the
        default metrics and no parameter history: equal in law to the generic path
        (not in numbers: it draws the rotated ``Xᵀy`` directly). Returns
        ``(metrics, degenerate)`` with leading axes (chain, generation); with
        ``check_only``, only whether it applies (nothing runs).

        Example:
            >>> import jax
            >>> fam = LinearRegression(dim=3, n_design=30)
            >>> p0 = fam.params(None, jax.random.normal(jax.random.key(0), (30, 3)))
            >>> m, deg = fam.fast_simulate(jax.random.key(1), p0, regime="replace",
            ...                            n_generations=4, n_samples=30, n_chains=2,
            ...                            metrics=("excess_risk",))
            >>> m["excess_risk"].shape, deg.shape
            ((2, 5), (2, 5))
        """
        applies = (self.fixed and self.exact and regime in ("replace", "accumulate")
                   and n_samples == self.n_design and set(metrics) <= set(_METRICS))
        if check_only:
            return applies
        if not applies:
            raise ValueError(f"the fixed-design runner takes a fixed design, method='exact', "
                             f"replace or accumulate, n_samples = n_design and the default "
                             f"metrics; got n_design={self.n_design!r}, method="
                             f"{self.method!r}, regime={regime!r}, n_samples={n_samples!r}, "
                             f"metrics={metrics}")
        g, q, w0r = _fixed_design_arrays(self, params0)
        dtype = g.dtype
        risk, change, _ = _fixed_design_run(
            key, g, q, w0r, jnp.asarray(self.noise, dtype), jnp.asarray(self.ridge, dtype),
            n_generations=n_generations, n_chains=n_chains,
            accumulate=regime == "accumulate", return_w=False)
        out = {"excess_risk": risk, "step_change": change}
        return {name: out[name] for name in metrics}, ~jnp.isfinite(risk)

    # -- exact path ---------------------------------------------------------------------
    def stats(self, data: tuple, weights: jax.Array) -> RegressionStats:
        """``XᵀWX``, ``XᵀWy``, ``Σ w`` (and the design rows for a fixed design).

        For a fixed design the design recorded is the first T rows of ``X`` (cycled),
        so the next generation relabels the rows it was trained on.
        """
        x, y = data
        w = jnp.asarray(weights, x.dtype)
        xw = x * w[:, None]
        design = x[jnp.arange(self.n_design) % x.shape[0]] if self.fixed else None
        return RegressionStats(xw.T @ x, xw.T @ y, jnp.sum(w), design)

    def add_stats(self, a: RegressionStats, b: RegressionStats) -> RegressionStats:
        # The design of pooled statistics: b's if b holds data, else a's (simulate's
        # accumulate pool starts from all-zero statistics).
        design = jnp.where(b.n > 0, b.design, a.design) if self.fixed else None
        return RegressionStats(a.xtx + b.xtx, a.xty + b.xty, a.n + b.n, design)

    def fit_stats(self, stats: RegressionStats) -> RegressionParams:
        """``w = (XᵀX + λI)⁺ Xᵀy`` (minimum norm where XᵀX is singular)."""
        return RegressionParams(_solve(stats.xtx, stats.xty, self.ridge), stats.design)

    def sample_stats(self, key: jax.Array, params: RegressionParams, n: Any
                     ) -> RegressionStats:
        """Exact law of the statistics of ``n`` (traced) draws.

        Fixed design: row r of the design appears ``c_r`` times among the first n
        cycled rows, so ``XᵀX = Xᵀ diag(c) X`` and ``Xᵀy = XᵀX w + σ Xᵀ(√c ⊙ z)``.
        Fresh design: ``XᵀX ~ Wishart(I, n)`` by Bartlett (a sum of n outer products
        of normals when n < d) and ``Xᵀy = XᵀX w + σ L z`` with ``L Lᵀ = XᵀX``.
        """
        dtype = params.w.dtype
        nf = jnp.asarray(n, dtype)
        kz, kc, kb = jax.random.split(key, 3)
        if self.fixed:
            x = params.design
            t = x.shape[0]
            r = jnp.arange(t, dtype=dtype)
            c = jnp.floor(nf / t) + (r < nf - t * jnp.floor(nf / t))
            xc = x * c[:, None]
            xtx = xc.T @ x
            z = jax.random.normal(kz, (t,), dtype)
            xty = xtx @ params.w + self.noise * (x.T @ (jnp.sqrt(c) * z))
            return RegressionStats(xtx, xty, nf, x)
        d = self.dim
        j = jnp.arange(d, dtype=dtype)
        chi = jnp.sqrt(jcr.chisquare(kc, jnp.maximum(nf - j, 1.0)))
        nrm = jax.random.normal(kb, (d, d), dtype)
        bart = jnp.tril(nrm, -1) + jnp.diag(chi)
        g = (nrm * (j < nf)[:, None]).T  # n < d: X^T for n standard normal rows
        lower = jnp.where(nf >= d, bart, g)
        xtx = lower @ lower.T
        z = jax.random.normal(kz, (d,), dtype)
        xty = xtx @ params.w + self.noise * (lower @ z)
        return RegressionStats(xtx, xty, nf, None)


# the fixed-design runner (its own module; re-exported here)
from jaxcollapse.families._fixed_design import (  # noqa: E402, F401
    FixedDesignResult,
    _fixed_design_arrays,
    _fixed_design_run,
    simulate_fixed_design,
)
