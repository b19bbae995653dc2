"""Gaussian kernel density estimation as a model family.

A KDE's parameters are its (weighted) data set and the kernel covariance ``H``
(the *bandwidth matrix*): ``p(x) = sum_i w_i N(x; x_i, H)``. Fitting stores the data
and picks ``H`` by a rule; sampling picks a point by weight and adds ``N(0, H)``
noise. Run through :func:`jaxcollapse.simulate` it is the KDE recursion of
THEORY.md section 6: with a fixed bandwidth the variance diffuses towards
``(M - 1) h^2`` instead of collapsing, while modes and tails still wash out.

Bandwidth rules (``bandwidth=``):

* ``"scott"``, ``"silverman"``: ``H = factor^2 * C`` with ``C`` the weighted unbiased
  covariance and ``factor = neff^(-1/(d+4))`` or ``(neff (d+2)/4)^(-1/(d+4))``,
  ``neff = 1 / sum w_i^2``, exactly as ``scipy.stats.gaussian_kde`` defines them.
* ``"scott-sklearn"``, ``"silverman-sklearn"``: scikit-learn's ``KernelDensity``
  rules, ``H = factor^2 I`` with the same factors, *not* scaled by the data
  covariance (right only for data of unit variance).
* a positive number ``h``: ``H = h^2 I``; a ``(d, d)`` positive-definite matrix: ``H``.
* ``"params0"``: the kernel covariance of generation 0 (``params0.bandwidth``) kept
  every generation: a fixed bandwidth that is a traced value, so ``jax.grad`` can
  differentiate a simulation with respect to it (build ``params0`` with
  :meth:`KDE.params` ``(data, bandwidth=H)``).
* ``"cv"``: leave-one-out likelihood cross-validation of ``factor`` over
  ``cv_grid`` (``H = factor^2 C``), all grid values at once (vmapped).

``diagonal=True`` keeps only the diagonal of ``C``.

References:
    Scott, Multivariate Density Estimation (1992); Silverman, Density Estimation
    for Statistics and Data Analysis (1986); Shumailov et al., Nature 631 (2024).
    THEORY.md section 6.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import kernels as kn
from jaxcollapse import metrics as mt
from jaxcollapse._mesh import DATA_AXIS, resolve_mesh
from jaxcollapse._validate import float_array, is_traced
from jaxcollapse.families.base import as_params, check_points, check_weights

RULES = ("scott", "silverman", "cv", "scott-sklearn", "silverman-sklearn", "params0")
DEFAULT_CV_GRID = tuple(float(v) for v in np.geomspace(0.05, 2.0, 24))


class KDEParams(NamedTuple):
    """Parameters of a Gaussian KDE.

    Attributes:
        points: ``(M, d)`` data set (rows with zero weight are ignored).
        weights: ``(M,)`` non-negative weights (normalised when used).
        bandwidth: ``(d, d)`` kernel covariance ``H``.

    Example:
        >>> import jax.numpy as jnp
        >>> p = KDE(dim=1, bandwidth=0.5).params(jnp.array([[0.0], [1.0], [2.0]]))
        >>> p.points.shape, p.weights.tolist(), p.bandwidth.tolist()
        ((3, 1), [1.0, 1.0, 1.0], [[0.25]])
    """

    points: jax.Array
    weights: jax.Array
    bandwidth: jax.Array


# the density computations (tiled log-sum-exp, weighted covariance, rules, LOO-CV)
# live in their own module; re-exported here
from jaxcollapse.families._kde_density import (  # noqa: E402, F401
    P_TILE,
    Q_TILE,
    _floor,
    _logpdf,
    _logpdf_jit,
    _logpdf_tiled,
    _loo_loglik,
    _normalise,
    _rule_factor,
    weighted_cov,
)

# --------------------------------------------------------------------------- family


def _as_static_bandwidth(bw, dim):
    if isinstance(bw, str):
        if bw not in RULES:
            raise ValueError(f"bandwidth must be one of {RULES}, a positive number or a "
                             f"({dim}, {dim}) positive-definite matrix; got {bw!r}")
        return bw
    a = np.asarray(bw, dtype=float)
    if a.ndim == 0:
        if not np.isfinite(a) or a <= 0:
            raise ValueError(f"bandwidth must be finite and > 0; got {a.item()}")
        return float(a)
    if a.shape != (dim, dim):
        raise ValueError(f"bandwidth matrix must have shape ({dim}, {dim}); got {a.shape}")
    if not np.all(np.isfinite(a)) or not np.allclose(a, a.T):
        raise ValueError("bandwidth matrix must be finite and symmetric; got "
                         f"{a.tolist()}")
    if np.linalg.eigvalsh(a).min() <= 0:
        raise ValueError(f"bandwidth matrix must be positive definite; got eigenvalues "
                         f"{np.linalg.eigvalsh(a).tolist()}")
    return tuple(tuple(float(v) for v in row) for row in a)


def data_var(params: KDEParams, params0: KDEParams) -> jax.Array:
    """MLE variance of the stored data, ``tr(S_n) / tr(S_0)`` (THEORY.md section 6).

    Example:
        >>> import jax.numpy as jnp
        >>> kde = KDE(dim=1, bandwidth=1.0)
        >>> p0, p1 = kde.params(jnp.array([0.0, 1.0])), kde.params(jnp.array([0.0, 2.0]))
        >>> float(data_var(p1, p0))
        4.0

    References:
        THEORY.md section 6.
    """
    def mle_var(p):
        w = _normalise(p.weights.astype(p.points.dtype))
        mean = w @ p.points
        return jnp.sum(w[:, None] * (p.points - mean) ** 2)

    return mle_var(params) / jnp.maximum(mle_var(params0), jnp.finfo(params0.points.dtype).tiny)


def bandwidth_ratio(params: KDEParams, params0: KDEParams) -> jax.Array:
    """``tr(H_n) / tr(H_0)``.

    Example:
        >>> import jax.numpy as jnp
        >>> p = KDE(dim=1, bandwidth=1.0).params(jnp.array([0.0, 1.0]))
        >>> float(bandwidth_ratio(p, p))
        1.0

    References:
        Scott (1992); THEORY.md section 6.
    """
    return jnp.trace(params.bandwidth) / jnp.trace(params0.bandwidth)


def rkhs_to_0(params: KDEParams, params0: KDEParams) -> jax.Array:
    """RKHS distance (RBF, lengthscale 1) between the data sets of generations n and 0.

    Example:
        >>> import jax.numpy as jnp
        >>> p = KDE(dim=1, bandwidth=1.0).params(jnp.array([0.0, 1.0]))
        >>> float(rkhs_to_0(p, p))
        0.0

    References:
        Gretton et al., JMLR 13 (2012).
    """
    return mt._rkhs_distance(params.points, params.weights.astype(params.points.dtype),
                             params0.points, params0.weights.astype(params0.points.dtype),
                             kn.rbf, 1.0)


_METRICS = {
    "data_var": data_var,
    "bandwidth_ratio": bandwidth_ratio,
    "rkhs_to_0": rkhs_to_0,
    "rkhs_successive": mt.successive_rkhs(1.0),
}


@dataclasses.dataclass(frozen=True)
class KDE:
    """Gaussian kernel density estimate (a non-parametric family).

    Attributes:
        dim: dimension d >= 1.
        bandwidth: ``"scott"``, ``"silverman"``, ``"cv"``, ``"scott-sklearn"``,
            ``"silverman-sklearn"``, a positive number ``h`` (``H = h^2 I``) or a
            ``(d, d)`` positive-definite matrix ``H``.
        diagonal: keep only the diagonal of the data covariance in the rules.
        cv_grid: bandwidth factors tried by ``"cv"`` (``H = factor^2 C``).
        q_tile, p_tile: query and point tile sizes of :meth:`log_prob`.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> kde = KDE(dim=1, bandwidth="scott")
        >>> x = jax.random.normal(jax.random.key(0), (500, 1))
        >>> p = kde.fit(None, x, jnp.ones(500))
        >>> kde.log_prob(p, jnp.zeros((3, 1))).shape
        (3,)
        >>> kde.sample(jax.random.key(1), p, 10).shape
        (10, 1)

    References:
        scipy.stats.gaussian_kde; Shumailov et al., Nature 631 (2024);
        THEORY.md section 6.
    """

    dim: int = 1
    bandwidth: Any = "scott"
    diagonal: bool = False
    cv_grid: tuple[float, ...] = DEFAULT_CV_GRID
    q_tile: int = Q_TILE
    p_tile: int = P_TILE

    def __post_init__(self):
        if isinstance(self.dim, bool) or not isinstance(self.dim, int | np.integer) \
                or self.dim < 1:
            raise ValueError(f"dim must be an integer >= 1; got {self.dim!r}")
        object.__setattr__(self, "bandwidth", _as_static_bandwidth(self.bandwidth, self.dim))
        grid = np.asarray(self.cv_grid, dtype=float)
        if grid.ndim != 1 or grid.size < 1 or not np.all(np.isfinite(grid)) or np.any(
                grid <= 0):
            raise ValueError(f"cv_grid must be a non-empty list of positive factors; got "
                             f"{self.cv_grid!r}")
        object.__setattr__(self, "cv_grid", tuple(float(v) for v in grid))
        for name in ("q_tile", "p_tile"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an integer >= 1; got {v!r}")

    # -- validation (host side) --------------------------------------------------------

    def min_samples(self) -> int:
        """Fewest data points a fit needs: d + 1 for the covariance-based rules.

        Example:
            >>> KDE(dim=2).min_samples(), KDE(dim=2, bandwidth=0.5).min_samples()
            (3, 1)
        """
        return self.dim + 1 if self.bandwidth in RULES[:5] else 1

    def from_params0(self, params0: KDEParams, fitted: KDEParams) -> KDEParams:
        """A fit with generation 0's kernel covariance under the ``"params0"`` rule.

        Example:
            >>> import jax.numpy as jnp
            >>> kde = KDE(dim=1, bandwidth="params0")
            >>> p0 = kde.params(jnp.array([0.0, 1.0]), bandwidth=jnp.array([[0.3]]))
            >>> kde.from_params0(p0, kde.fit(None, jnp.zeros((2, 1)), jnp.ones(2))
            ...                  ).bandwidth.tolist()
            [[0.3]]
        """
        if self.bandwidth != "params0":
            return fitted
        return fitted._replace(bandwidth=params0.bandwidth.astype(fitted.points.dtype))

    def check_data(self, data, name: str = "data") -> jax.Array:
        """Validates a data array ``(n, d)`` (``(n,)`` for d = 1): finite values.

        The dtype rule of the other families applies
        (:func:`jaxcollapse._validate.float_array`): float16/bfloat16 become float32,
        integers the default float dtype, complex is refused.

        Example:
            >>> KDE(dim=1).check_data([0.0, 1.0]).shape
            (2, 1)
        """
        return check_points(float_array(data, name), self.dim, name)

    def check_params(self, params) -> KDEParams:
        """Validates ``params`` (shapes, finite data, positive-definite bandwidth).

        Example:
            >>> import jax.numpy as jnp
            >>> p = KDEParams(jnp.zeros((2, 1)), jnp.ones(2), jnp.eye(1))
            >>> KDE(dim=1).check_params(p).bandwidth.shape
            (1, 1)
        """
        params = as_params(params, KDEParams)
        x = self.check_data(params.points, "params0.points")
        w = check_weights(params.weights, x.shape[0], x.dtype, "params0.weights",
                          nonzero=True)
        h = float_array(params.bandwidth, "params0.bandwidth").astype(x.dtype)
        if h.shape != (self.dim, self.dim):
            raise ValueError(f"params0.bandwidth must have shape ({self.dim}, {self.dim}); "
                             f"got {h.shape}")
        if is_traced(h):  # under jax.grad/jit: the values are unknown here
            return KDEParams(x, w, h)
        hn = np.asarray(h, dtype=float)
        if not np.all(np.isfinite(hn)) or np.linalg.eigvalsh(0.5 * (hn + hn.T)).min() <= 0:
            raise ValueError("params0.bandwidth must be finite and positive definite")
        return KDEParams(x, w, h)

    def params(self, data, weights=None, *, size: int | None = None,
               bandwidth: Any = None) -> KDEParams:
        """Validates ``data`` and fits the KDE on it (host-side entry point).

        Args:
            data: ``(n, d)`` points; weights: optional ``(n,)`` non-negative weights.
            size: pad the stored data with zero-weight rows to this many, e.g. to
                the training-set size of a ``mix`` or ``accumulate`` simulation.
            bandwidth: the kernel covariance ``H (d, d)`` (may be traced, e.g. under
                ``jax.grad``); needed by, and only allowed with, the ``"params0"``
                rule, which keeps it every generation.

        Example:
            >>> import jax.numpy as jnp
            >>> p = KDE(dim=1, bandwidth=0.5).params(jnp.array([0.0, 1.0]), size=4)
            >>> p.points.shape, p.weights.tolist(), p.bandwidth.tolist()
            ((4, 1), [1.0, 1.0, 0.0, 0.0], [[0.25]])
        """
        if (bandwidth is None) != (self.bandwidth != "params0"):
            raise ValueError(f"bandwidth= (the kernel covariance H) is given with, and "
                             f"only with, the rule bandwidth='params0'; this family's rule "
                             f"is {self.bandwidth!r} and bandwidth={bandwidth!r}"[:300])
        x = self.check_data(data)
        w = check_weights(weights, x.shape[0], x.dtype, nonzero=True)
        n = int(np.sum(np.asarray(w) > 0))
        if n < self.min_samples():
            raise ValueError(f"data must have at least {self.min_samples()} points with "
                             f"positive weight for bandwidth={self.bandwidth!r}; got {n}")
        if size is not None:
            if size < x.shape[0]:
                raise ValueError(f"size must be >= the number of points {x.shape[0]}; "
                                 f"got {size}")
            x = jnp.pad(x, ((0, size - x.shape[0]), (0, 0)))
            w = jnp.pad(w, (0, size - w.shape[0]))
        if bandwidth is not None:
            return self.check_params(KDEParams(x, w, bandwidth))
        return _fit_jit(self, x, w)

    # -- the family contract -------------------------------------------------------------

    def select_bandwidth(self, data: jax.Array, weights: jax.Array) -> jax.Array:
        """The kernel covariance ``H (d, d)`` the rule gives for weighted ``data``.

        Example:
            >>> import jax.numpy as jnp
            >>> x = jnp.array([[0.0], [1.0], [2.0]])
            >>> h = KDE(dim=1, bandwidth="scott").select_bandwidth(x, jnp.ones(3))
            >>> round(float(h[0, 0]), 6)  # 3^(-2/5) * 1.0
            0.644394

        References:
            scipy.stats.gaussian_kde; Scott (1992); Silverman (1986).
        """
        d = self.dim
        dtype = data.dtype
        bw = self.bandwidth
        if bw == "params0":  # generation 0's, set by from_params0 (a placeholder here)
            return jnp.eye(d, dtype=dtype)
        if isinstance(bw, float):
            return (bw * bw) * jnp.eye(d, dtype=dtype)
        if isinstance(bw, tuple):
            return jnp.asarray(bw, dtype)
        w = weights.astype(dtype)
        cov, neff = weighted_cov(data, w)
        if self.diagonal:
            cov = jnp.diag(jnp.diagonal(cov))
        if bw in ("scott", "silverman"):
            return cov * _rule_factor(bw, neff, d) ** 2
        if bw.endswith("-sklearn"):  # isotropic, unscaled (sklearn.neighbors.KernelDensity)
            f = _rule_factor(bw.removesuffix("-sklearn"), neff, d)
            return (f * f) * jnp.eye(d, dtype=dtype)
        grid = jnp.asarray(self.cv_grid, dtype)
        wn = _normalise(w)
        ll = jax.vmap(lambda f: _loo_loglik(data, wn, cov * f * f))(grid)
        best = grid[jnp.argmax(jnp.where(jnp.isfinite(ll), ll, -jnp.inf))]
        return cov * best * best

    def fit(self, key, data: jax.Array, weights: jax.Array) -> KDEParams:
        """Stores ``data`` and ``weights`` with the rule's bandwidth (``key`` unused).

        Example:
            >>> import jax.numpy as jnp
            >>> p = KDE(dim=1, bandwidth=0.5).fit(None, jnp.zeros((4, 1)), jnp.ones(4))
            >>> p.points.shape, p.bandwidth.tolist()
            ((4, 1), [[0.25]])
        """
        del key  # the fit is deterministic
        w = weights.astype(data.dtype)
        return KDEParams(data, w, self.select_bandwidth(data, w))

    def sample(self, key, params: KDEParams, n: int) -> jax.Array:
        """``n`` draws ``(n, d)``: a point by weight (inverse CDF) plus ``N(0, H)``.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> kde = KDE(dim=1, bandwidth=0.1)
            >>> x = kde.sample(jax.random.key(0), kde.params(jnp.array([5.0])), 100)
            >>> bool(jnp.all(jnp.abs(x - 5.0) < 1.0))
            True
        """
        k_idx, k_noise = jax.random.split(key)
        dtype = params.points.dtype
        cdf = jnp.cumsum(params.weights.astype(dtype))
        u = jax.random.uniform(k_idx, (n,), dtype) * cdf[-1]
        idx = jnp.clip(jnp.searchsorted(cdf, u, side="right"), 0, cdf.shape[0] - 1)
        chol = jnp.linalg.cholesky(_floor(params.bandwidth))
        z = jax.random.normal(k_noise, (n, self.dim), dtype)
        return params.points[idx] + z @ chol.T

    def log_prob(self, params: KDEParams, x: jax.Array, *,
                 devices: int | Sequence[jax.Device] | None = None,
                 mesh: jax.sharding.Mesh | None = None) -> jax.Array:
        """Log density at ``x (q, d)`` by a tiled log-sum-exp; returns ``(q,)``.

        Memory is bounded by one ``q_tile x p_tile`` tile whatever the sizes.

        With several devices the queries are split in equal slices over them (any
        ``q``), the data replicated. Each query's sum runs over the same point tiles
        in the same order as on one device; only the choice between the fast and the
        underflow-safe path, made per block of ``q_tile`` queries, can differ, so
        results equal the one-device ones to rtol 1e-12 in float64 (tested).

        Args:
            params: :class:`KDEParams`; x: ``(q, d)`` queries (``(q,)`` for d = 1).
            devices: split the queries over this many devices (an int), these
                devices, or (``None``) all local devices, as in
                :func:`jaxcollapse.simulate`; traced ``x`` (inside a transformation)
                is not split unless asked.
            mesh: alternatively, a ``jax.sharding.Mesh`` with an axis named ``"data"``.

        Example:
            >>> import jax.numpy as jnp
            >>> kde = KDE(dim=1, bandwidth=1.0)
            >>> p = kde.params(jnp.array([0.0]))
            >>> round(float(kde.log_prob(p, jnp.array([[0.0]]))[0]), 5)
            -0.91894
        """
        x = float_array(x, "x")
        if x.ndim == 1 and self.dim == 1:
            x = x[:, None]
        if x.ndim != 2 or x.shape[-1] != params.points.shape[-1]:
            raise ValueError(f"x must have shape (q, {params.points.shape[-1]}) to match the "
                             f"data; got {x.shape}")
        if x.shape[0] == 0:  # no queries: no densities
            return jnp.zeros((0,), params.points.dtype)
        if not isinstance(x, jax.core.Tracer) and not bool(jnp.all(jnp.isfinite(x))):
            raise ValueError("x must be finite; got NaN or inf")
        if isinstance(x, jax.core.Tracer) and devices is None and mesh is None:
            devices = 1
        mesh = resolve_mesh(devices, mesh, DATA_AXIS, "queries")
        return _logpdf_jit(params, x.astype(params.points.dtype), self.q_tile, self.p_tile,
                           mesh)

    def default_metrics(self):
        """``data_var`` (s_n^2 / s_0^2), ``bandwidth_ratio``, ``rkhs_to_0`` and
        ``rkhs_successive`` (RBF, lengthscale 1).

        Example:
            >>> sorted(KDE().default_metrics())
            ['bandwidth_ratio', 'data_var', 'rkhs_successive', 'rkhs_to_0']
        """
        return _METRICS

    def initial_data(self, params: KDEParams) -> tuple[jax.Array, jax.Array]:
        """Generation 0's data set and weights (the start of an accumulating pool).

        Example:
            >>> import jax.numpy as jnp
            >>> kde = KDE(dim=1, bandwidth=0.5)
            >>> x, w = kde.initial_data(kde.params(jnp.array([0.0, 1.0])))
            >>> x.shape, w.tolist()
            ((2, 1), [1.0, 1.0])
        """
        return params.points, params.weights

    def pad_params(self, params: KDEParams, rows: int) -> KDEParams:
        """``params`` with zero-weight rows appended up to ``rows`` points (the same
        density).

        Example:
            >>> import jax.numpy as jnp
            >>> kde = KDE(dim=1, bandwidth=0.5)
            >>> kde.pad_params(kde.params(jnp.array([0.0, 1.0])), 3).weights.tolist()
            [1.0, 1.0, 0.0]
        """
        pad = int(rows) - params.points.shape[0]
        if pad < 0:
            raise ValueError(f"rows must be >= the {params.points.shape[0]} points held; "
                             f"got {rows}")
        return KDEParams(jnp.pad(params.points, ((0, pad), (0, 0))),
                         jnp.pad(params.weights, (0, pad)), params.bandwidth)

    def is_degenerate(self, params: KDEParams) -> jax.Array:
        """True where the bandwidth has collapsed to (near) zero or is not finite.

        Example:
            >>> import jax.numpy as jnp
            >>> kde = KDE(dim=1)
            >>> bool(kde.is_degenerate(kde.fit(None, jnp.ones((5, 1)), jnp.ones(5))))
            True
        """
        h = params.bandwidth
        scale = jnp.finfo(h.dtype).eps * 1e3
        return (jnp.any(jnp.diagonal(h) <= scale * jnp.maximum(
            jnp.max(jnp.abs(params.points)), 1.0) ** 2) | ~jnp.all(jnp.isfinite(h)))


@functools.partial(jax.jit, static_argnames=("family",))
def _fit_jit(family, x, w):
    return family.fit(None, x, w)
