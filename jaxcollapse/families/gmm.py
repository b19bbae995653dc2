"""Gaussian mixtures fitted by expectation-maximisation, as a model family.

EM runs as a bounded ``lax.while_loop`` (stop when the mean log-likelihood changes
by less than ``tol`` or after ``max_iter`` iterations), so it vmaps across chains:
each chain stops updating once it has converged. The updates follow
``sklearn.mixture.GaussianMixture`` exactly (``10 eps`` added to the component
counts, ``reg_covar`` added to every covariance diagonal, the same convergence test
on the mean log-likelihood), so given the same initial weights, means and
precisions both give the same parameters after the same number of iterations.
Without an explicit start, EM starts from k-means++ seeding followed by a few Lloyd
iterations (hard assignments, then one M-step), like scikit-learn's ``"kmeans"``.

References:
    Dempster, Laird & Rubin, JRSS B 39 (1977); Arthur & Vassilvitskii,
    k-means++ (SODA 2007); Shumailov et al., Nature 631 (2024) (the GMM
    experiment). THEORY.md section 6.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import metrics as mt
from jaxcollapse._validate import float_array, is_traced
from jaxcollapse.families._em import (
    EMResult,
    GMMParams,
    _chol,
    _e_step_resp,
    _em,
    _initial_params,
    _weighted_log_prob,
    em_fixed_point,
)
from jaxcollapse.families.base import as_params, check_points, check_weights

COVARIANCE_TYPES = ("full", "diag")


# --------------------------------------------------------------------------- metrics


def l2(params: GMMParams, params0: GMMParams) -> jax.Array:
    """Closed-form squared L2 distance ``int (p_n - p_0)^2`` (Shumailov's GMM metric).

    Example:
        >>> p = GMM(1, 1).params([1.0], [[0.0]], [[[1.0]]])
        >>> round(float(l2(p, p)), 6)
        0.0

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md section 6.
    """
    return mt._l2_mixtures(*params, *params0)


def mmd(params: GMMParams, params0: GMMParams) -> jax.Array:
    """Closed-form MMD^2 to generation 0 under the RBF kernel, lengthscale 1.

    Example:
        >>> p = GMM(1, 1).params([1.0], [[0.0]], [[[1.0]]])
        >>> q = GMM(1, 1).params([1.0], [[1.0]], [[[1.0]]])
        >>> round(float(mmd(p, q)), 6)
        0.177268

    References:
        THEORY.md section 6.
    """
    return mt._mmd2_mixtures(*params, *params0, 1.0)


def spreads(params: GMMParams) -> jax.Array:
    """Per-component spread ``sqrt(tr(S_k)/d)``, components sorted by first mean
    coordinate (so labels do not switch between generations); shape ``(K,)``.

    Example:
        >>> p = GMM(2, 1).params([0.5, 0.5], [[1.0], [-1.0]], [[[4.0]], [[1.0]]])
        >>> spreads(p).tolist()
        [1.0, 2.0]

    References:
        Shumailov et al., Nature 631 (2024), GMM experiment.
    """
    d = params.means.shape[-1]
    order = jnp.argsort(params.means[:, 0])
    s = jnp.sqrt(jnp.trace(params.covs, axis1=-2, axis2=-1) / d)
    return s[order]


@functools.cache
def _spread_metric(k: int):
    def spread(params, params0):
        return spreads(params)[k] / jnp.sqrt(jnp.mean(
            jnp.trace(params0.covs, axis1=-2, axis2=-1)) / params0.means.shape[-1])

    spread.__name__ = f"spread_{k}"
    spread.__doc__ = (f"Spread of component {k} (sorted by first mean coordinate) over the "
                      "average spread of generation 0.")
    return spread


@functools.cache
def _metrics(k: int):
    out = {"l2": l2, "mmd": mmd}
    out.update({f"spread_{j}": _spread_metric(j) for j in range(k)})
    return out


# ---------------------------------------------------------------------------- family


def _em_range(dtype) -> float:
    """The largest magnitude of data and means that EM handles in ``dtype``: it
    squares distances, so values must stay well below ``sqrt(max float)``."""
    return float(np.sqrt(np.finfo(dtype).max)) / 100.0


def _check_range(a, name: str, limit: float, dtype) -> None:
    top = float(np.max(np.abs(a))) if np.size(a) else 0.0
    if top > limit:
        raise ValueError(f"{name} must have magnitudes below {limit:.3g} for EM in {dtype} "
                         f"(squared distances must stay within the float range, max "
                         f"{float(np.finfo(dtype).max):.3g}); got {top:.3g}: rescale the "
                         f"data (EM is not scale invariant: reg_covar is absolute) or use "
                         f"float64")


def _check_pos_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}")


@dataclasses.dataclass(frozen=True)
class GMM:
    """Gaussian mixture with K components fitted by EM.

    Attributes:
        n_components: K >= 1.
        dim: dimension d >= 1.
        covariance_type: ``"full"`` or ``"diag"``.
        reg_covar: added to every covariance diagonal (>= 0), as scikit-learn.
        tol: stop when the mean log-likelihood changes by less (>= 0).
        max_iter: most EM iterations (>= 1).
        kmeans_iter: Lloyd iterations after k-means++ seeding (>= 0).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> fam = GMM(n_components=2, dim=1)
        >>> p0 = fam.params([0.5, 0.5], [[-3.0], [3.0]], [[[1.0]], [[1.0]]])
        >>> x = fam.sample(jax.random.key(0), p0, 1000)
        >>> p = fam.fit(jax.random.key(1), x, jnp.ones(1000))
        >>> sorted(round(float(m), 0) for m in p.means[:, 0])
        [-3.0, 3.0]

    References:
        Dempster et al. (1977); sklearn.mixture.GaussianMixture;
        Shumailov et al., Nature 631 (2024).
    """

    n_components: int = 2
    dim: int = 2
    covariance_type: str = "full"
    reg_covar: float = 1e-6
    tol: float = 1e-3
    max_iter: int = 100
    kmeans_iter: int = 10

    def __post_init__(self):
        _check_pos_int("n_components", self.n_components, 1)
        _check_pos_int("dim", self.dim, 1)
        _check_pos_int("max_iter", self.max_iter, 1)
        _check_pos_int("kmeans_iter", self.kmeans_iter, 0)
        if self.covariance_type not in COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES}; got "
                             f"{self.covariance_type!r}")
        for name in ("reg_covar", "tol"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int | float | np.floating) \
                    or not math.isfinite(v) or v < 0:
                raise ValueError(f"{name} must be a finite number >= 0; got {v!r}")
            object.__setattr__(self, name, float(v))

    # -- validation ------------------------------------------------------------------

    def min_samples(self) -> int:
        """EM needs at least K points.

        Example:
            >>> GMM(3, 2).min_samples()
            3
        """
        return self.n_components

    def check_data(self, data, name: str = "data") -> jax.Array:
        """Validates a data array ``(n, d)`` (``(n,)`` for d = 1) with finite values
        whose magnitudes stay below ``sqrt(max float) / 100`` of the dtype (EM squares
        them: about 1.8e17 in float32, 1.3e152 in float64).

        dtypes: float32/float64 kept, float16/bfloat16 become float32, integers and
        booleans the default float dtype, complex refused (``TypeError``).

        Example:
            >>> GMM(2, 1).check_data([0.0, 1.0]).shape
            (2, 1)
        """
        x = check_points(float_array(data, name), self.dim, name)
        _check_range(np.asarray(x), name, _em_range(x.dtype), x.dtype)
        return x

    def check_params(self, params) -> GMMParams:
        """Validates shapes, weights on the simplex and positive-definite covariances,
        with means and covariance scales within EM's float range (see
        :meth:`check_data`); dtypes as :meth:`check_data` (all take the weights' dtype).

        Example:
            >>> p = GMMParams([1.0], [[0.0]], [[[1.0]]])
            >>> GMM(1, 1).check_params(p).means.shape
            (1, 1)
        """
        params = as_params(params, GMMParams)
        w = float_array(params.weights, "params0.weights")
        m = float_array(params.means, "params0.means").astype(w.dtype)
        c = float_array(params.covs, "params0.covs").astype(w.dtype)
        k, d = self.n_components, self.dim
        for nm, a, shape in (("weights", w, (k,)), ("means", m, (k, d)), ("covs", c, (k, d, d))):
            if a.shape != shape:
                raise ValueError(f"params0.{nm} must have shape {shape}; got {a.shape}")
        if is_traced((w, m, c)):  # under jax.grad/jit: the values are unknown here
            return GMMParams(w, m, c)
        wn, mn, cn = (np.asarray(a, dtype=float) for a in (w, m, c))
        if not (np.all(np.isfinite(wn)) and np.all(np.isfinite(mn)) and np.all(np.isfinite(cn))):
            raise ValueError("params0 must be finite; got NaN or inf")
        if np.any(wn < 0) or abs(wn.sum() - 1.0) > 1e-6:
            raise ValueError(f"params0.weights must be >= 0 and sum to 1; got {wn.tolist()}")
        if np.linalg.eigvalsh(0.5 * (cn + np.swapaxes(cn, -1, -2))).min() <= 0:
            raise ValueError("params0.covs must be positive definite")
        limit = _em_range(w.dtype)
        _check_range(mn, "params0.means", limit, w.dtype)
        _check_range(np.sqrt(np.abs(cn)), "the square roots of params0.covs", limit, w.dtype)
        return GMMParams(w, m, c)

    def params(self, weights, means, covs, dtype=None) -> GMMParams:
        """Builds and checks parameters.

        Example:
            >>> fam = GMM(n_components=1, dim=1)
            >>> fam.params([1.0], [[0.0]], [[[2.0]]]).covs.shape
            (1, 1, 1)
        """
        return self.check_params(GMMParams(jnp.asarray(weights, dtype),
                                           jnp.asarray(means, dtype), jnp.asarray(covs, dtype)))

    # -- EM --------------------------------------------------------------------------

    def em(self, key, x, weights=None, init: GMMParams | None = None) -> EMResult:
        """Validated EM on ``x (n, d)``: from ``init`` if given, else k-means++.

        Args:
            key: PRNG key for the k-means++ start (unused with ``init``).
            x: ``(n, d)`` data; weights: optional ``(n,)`` sample weights.
            init: starting :class:`GMMParams` (e.g. scikit-learn's
                ``weights_init``, ``means_init`` and ``inv(precisions_init)``).

        Returns:
            An :class:`EMResult`.

        Example:
            >>> import jax
            >>> x = jax.random.normal(jax.random.key(0), (200, 2))
            >>> res = GMM(n_components=2, dim=2, tol=0.0, max_iter=5).em(jax.random.key(1), x)
            >>> int(res.n_iter), res.params.means.shape
            (5, (2, 2))
        """
        x = self.check_data(x, "x")
        w = check_weights(weights, x.shape[0], x.dtype)
        n_pos = int(np.sum(np.asarray(w) > 0))
        if n_pos < self.n_components:
            raise ValueError(f"n_components={self.n_components} must be <= the number of "
                             f"points with positive weight; got {n_pos}")
        if init is not None:
            init = self.check_params(init)
            init = GMMParams(*(a.astype(x.dtype) for a in init))
        return _em_jit(self, key, x, w, init)

    def fit(self, key, data: jax.Array, weights: jax.Array) -> GMMParams:
        """The family contract: k-means++ start, then EM (``weights`` 0/1 masks).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> x = jnp.concatenate([jnp.zeros((5, 1)) - 3, jnp.zeros((5, 1)) + 3])
            >>> p = GMM(2, 1).fit(jax.random.key(0), x + 0.1 * jnp.arange(10)[:, None],
            ...                   jnp.ones(10))
            >>> sorted(round(float(w), 2) for w in p.weights)
            [0.5, 0.5]
        """
        w = weights.astype(data.dtype)
        init = _initial_params(key, data, w, self)
        return em_fixed_point(data, w, init, self)

    def draws_log_prob(self, params: GMMParams, draws) -> jax.Array:
        """``sum_j w_j log p(x_j)`` of rows and weights ``(x, w)`` as a function of the
        mixture weights only (the draws, means and covariances held fixed): the
        score-function term of ``simulate``'s derivative with respect to the weights,
        whose component draw is discrete. Means and covariances are differentiated
        pathwise through the draws (``x = mu_c + L_c z``), so they are held fixed
        here and nothing is counted twice.

        Example:
            >>> import jax.numpy as jnp
            >>> fam = GMM(1, 1)
            >>> p = fam.params([1.0], [[0.0]], [[[1.0]]])
            >>> round(float(fam.draws_log_prob(p, (jnp.zeros((2, 1)), jnp.ones(2)))), 4)
            -1.8379
        """
        x, w = (jax.lax.stop_gradient(a) for a in draws)
        sg = GMMParams(params.weights, jax.lax.stop_gradient(params.means),
                       jax.lax.stop_gradient(params.covs))
        lp = jax.scipy.special.logsumexp(_weighted_log_prob(sg, x.T), axis=0)
        return jnp.sum(jnp.where(w > 0, w * lp, 0.0))

    def sample(self, key, params: GMMParams, n: int) -> jax.Array:
        """``n`` draws ``(n, d)``: a component by weight, then its Gaussian.

        Example:
            >>> import jax
            >>> fam = GMM(1, 2)
            >>> fam.sample(jax.random.key(0), fam.params([1.0], [[0.0, 0.0]], [[[1.0, 0.0],
            ...            [0.0, 1.0]]]), 7).shape
            (7, 2)
        """
        k_c, k_z = jax.random.split(key)
        dtype = params.means.dtype
        logw = jnp.log(jnp.maximum(params.weights, jnp.finfo(dtype).tiny))
        comp = jax.random.categorical(k_c, logw, shape=(n,))
        chol = _chol(params.covs)
        z = jax.random.normal(k_z, (n, self.dim), dtype)
        return params.means[comp] + jnp.einsum("nij,nj->ni", chol[comp], z)

    def log_prob(self, params: GMMParams, x: jax.Array) -> jax.Array:
        """Mixture log density at ``x (n, d)``; returns ``(n,)``.

        Example:
            >>> import jax.numpy as jnp
            >>> fam = GMM(n_components=1, dim=1)
            >>> p = fam.params([1.0], [[0.0]], [[[1.0]]])
            >>> round(float(fam.log_prob(p, jnp.zeros((1, 1)))[0]), 5)
            -0.91894
        """
        return jax.nn.logsumexp(_weighted_log_prob(params, jnp.asarray(x).T), axis=0)

    def responsibilities(self, params: GMMParams, x: jax.Array) -> jax.Array:
        """Posterior component probabilities ``(n, K)``.

        Example:
            >>> import jax.numpy as jnp
            >>> fam = GMM(n_components=2, dim=1)
            >>> p = fam.params([0.5, 0.5], [[-1.0], [1.0]], [[[1.0]], [[1.0]]])
            >>> fam.responsibilities(p, jnp.zeros((1, 1))).round(3).tolist()
            [[0.5, 0.5]]
        """
        return _e_step_resp(params, jnp.asarray(x).T, jnp.ones(jnp.shape(x)[0]))[1].T

    def mean_log_likelihood(self, params: GMMParams, x: jax.Array,
                            weights: jax.Array | None = None) -> jax.Array:
        """Weighted mean log-likelihood (scikit-learn's ``score``).

        Example:
            >>> import jax.numpy as jnp
            >>> fam = GMM(n_components=1, dim=1)
            >>> p = fam.params([1.0], [[0.0]], [[[1.0]]])
            >>> round(float(fam.mean_log_likelihood(p, jnp.zeros((4, 1)))), 5)
            -0.91894
        """
        x = jnp.asarray(x)
        w = jnp.ones(x.shape[0], x.dtype) if weights is None else jnp.asarray(weights)
        return _e_step_resp(params, x.T, w)[0]

    def n_parameters(self) -> int:
        """Free parameters: ``K d`` means, ``K - 1`` weights and the covariances.

        Example:
            >>> GMM(2, 2).n_parameters(), GMM(2, 2, "diag").n_parameters()
            (11, 9)
        """
        k, d = self.n_components, self.dim
        cov = k * d * (d + 1) // 2 if self.covariance_type == "full" else k * d
        return cov + k * d + k - 1

    def bic(self, params: GMMParams, x: jax.Array) -> jax.Array:
        """Bayesian information criterion ``-2 n mean_ll + p log n`` (lower is better).

        Example:
            >>> import jax.numpy as jnp
            >>> fam = GMM(n_components=1, dim=1)
            >>> p = fam.params([1.0], [[0.0]], [[[1.0]]])
            >>> round(float(fam.bic(p, jnp.zeros((4, 1)))), 4)
            10.1241
        """
        x = jnp.asarray(x)
        n = x.shape[0]
        return -2.0 * n * self.mean_log_likelihood(params, x) + self.n_parameters() * math.log(n)

    def default_metrics(self):
        """``l2`` (closed form, to generation 0), ``mmd`` (RBF, lengthscale 1) and
        ``spread_k`` per component (relative to generation 0's average spread).

        Example:
            >>> sorted(GMM(2, 2).default_metrics())
            ['l2', 'mmd', 'spread_0', 'spread_1']
        """
        return _metrics(self.n_components)

    def is_degenerate(self, params: GMMParams) -> jax.Array:
        """True where a component has collapsed: its variance is at the ``reg_covar``
        floor (all its points equal), or its weight has vanished.

        Example:
            >>> fam = GMM(1, 1)
            >>> bool(fam.is_degenerate(fam.params([1.0], [[0.0]], [[[1e-6]]])))
            True
        """
        diag = jnp.diagonal(params.covs, axis1=-2, axis2=-1)
        floor = 10.0 * self.reg_covar + 1e3 * jnp.finfo(diag.dtype).tiny
        collapsed = jnp.any(diag <= floor, axis=-1)
        gone = params.weights <= 100 * jnp.finfo(diag.dtype).eps
        return jnp.any(collapsed | gone, axis=-1) | ~jnp.all(jnp.isfinite(params.covs))


@functools.partial(jax.jit, static_argnames=("family",))
def _em_jit(family, key, x, w, init):
    if init is None:
        init = _initial_params(key, x, w, family)
    return _em(x, w, init, family)
