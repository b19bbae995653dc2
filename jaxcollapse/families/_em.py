"""Expectation-maximisation for Gaussian mixtures: the parameters, the E- and
M-steps (scikit-learn's updates), k-means++ seeding and the bounded EM loop behind
:class:`jaxcollapse.families.gmm.GMM` (which re-exports :class:`GMMParams` and
:class:`EMResult`).

References:
    Dempster, Laird & Rubin, JRSS B 39 (1977); Arthur & Vassilvitskii,
    k-means++ (SODA 2007); sklearn.mixture.GaussianMixture.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import jax
import jax.flatten_util
import jax.numpy as jnp
from jax import lax
from jax.scipy.linalg import solve_triangular

from jaxcollapse._fusion import SMALL_DIM


class GMMParams(NamedTuple):
    """Mixture parameters: ``weights (K,)``, ``means (K, d)``, ``covs (K, d, d)``
    (diagonal matrices for ``covariance_type="diag"``).

    Example:
        >>> import jax.numpy as jnp
        >>> p = GMMParams(jnp.full(2, 0.5), jnp.array([[-1.0], [1.0]]), jnp.ones((2, 1, 1)))
        >>> p.weights.shape, p.means.shape, p.covs.shape
        ((2,), (2, 1), (2, 1, 1))
    """

    weights: jax.Array
    means: jax.Array
    covs: jax.Array


class EMResult(NamedTuple):
    """Output of :meth:`GMM.em`.

    Attributes:
        params: the fitted :class:`GMMParams`.
        lower_bound: mean log-likelihood from the last E-step (scikit-learn's
            ``lower_bound_``: evaluated with the parameters before the last M-step).
        n_iter: EM iterations run.
        converged: whether the change fell below ``tol``.

    Example:
        >>> import jax
        >>> from jaxcollapse.families.gmm import GMM
        >>> fam = GMM(2, 1)
        >>> p = fam.params([0.5, 0.5], [[-3.0], [3.0]], [[[1.0]], [[1.0]]])
        >>> r = fam.em(jax.random.key(1), fam.sample(jax.random.key(0), p, 400))
        >>> bool(r.converged), sorted(round(float(m)) for m in r.params.means[:, 0])
        (True, [-3, 3])
    """

    params: GMMParams
    lower_bound: jax.Array
    n_iter: jax.Array
    converged: jax.Array


# --------------------------------------------------------------------------- maths


def _chol(covs):
    return jnp.linalg.cholesky(covs)


# Up to this dimension the per-point algebra is unrolled over coordinates, so that
# every array keeps the (long) point axis last: a compiler workaround (see
# jaxcollapse._fusion.SMALL_DIM, where its backend note is).
_UNROLL_D = SMALL_DIM


def _prec_chol(covs):
    """Upper-triangular ``P`` with ``P P^T = S^-1`` (scikit-learn's precisions_cholesky)."""
    d = covs.shape[-1]
    chol = _chol(covs)
    eye = jnp.broadcast_to(jnp.eye(d, dtype=covs.dtype), chol.shape)
    return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2)


def _component_log_prob(params: GMMParams, xt):
    """log N(x_i; mu_k, S_k) for points as columns ``xt (d, n)``; shape ``(K, n)``."""
    d = xt.shape[0]
    pc = _prec_chol(params.covs)  # (K, d, d)
    logdet = jnp.sum(jnp.log(jnp.diagonal(pc, axis1=-2, axis2=-1)), -1)  # (K,)
    if d <= _UNROLL_D:
        diff = [xt[i][None, :] - params.means[:, i][:, None] for i in range(d)]  # (K, n)
        quad = 0.0
        for e in range(d):  # P is upper triangular: y_e = sum_{i <= e} P_ie diff_i
            y = sum(pc[:, i, e][:, None] * diff[i] for i in range(e + 1))
            quad = quad + y * y
    else:
        y = (jnp.einsum("dn,kde->ken", xt, pc)
             - jnp.einsum("kd,kde->ke", params.means, pc)[:, :, None])
        quad = jnp.sum(y * y, axis=1)
    return -0.5 * (d * math.log(2 * math.pi) + quad) + logdet[:, None]


def _weighted_log_prob(params, xt):
    logw = jnp.log(jnp.maximum(params.weights, jnp.finfo(xt.dtype).tiny))
    return _component_log_prob(params, xt) + logw[:, None]


def _e_step_resp(params, xt, w):
    """The E-step for ``xt (d, n)``: (mean log-likelihood, responsibilities ``(K, n)``),
    with one exponential per point and component shared by both."""
    wlp = _weighted_log_prob(params, xt)
    m = jnp.max(wlp, axis=0)
    e = jnp.exp(wlp - m[None, :])
    total = jnp.sum(e, axis=0)
    lse = m + jnp.log(total)
    mean_ll = jnp.sum(w * lse) / jnp.maximum(jnp.sum(w), 1.0)
    return mean_ll, e / total[None, :]


def _m_step(xt, resp, w, reg_covar, covariance_type):
    """scikit-learn's ``_estimate_gaussian_parameters`` with sample weights ``w``;
    ``xt (d, n)``, ``resp (K, n)``."""
    dtype = xt.dtype
    d = xt.shape[0]
    r = resp * w[None, :]
    nk = jnp.sum(r, axis=1) + 10 * jnp.finfo(dtype).eps
    means = (r @ xt.T) / nk[:, None]
    eye = jnp.eye(d, dtype=dtype)
    diff = xt[None, :, :] - means[:, :, None]  # (K, d, n)
    if covariance_type == "full":
        if d <= _UNROLL_D:
            rd = [r * diff[:, i] for i in range(d)]
            entries = [[None] * d for _ in range(d)]
            for i in range(d):
                for j in range(i, d):
                    entries[i][j] = entries[j][i] = jnp.sum(rd[i] * diff[:, j], axis=1)
            covs = jnp.stack([jnp.stack(row, -1) for row in entries], -2)
        else:
            covs = jnp.einsum("kn,kin,kjn->kij", r, diff, diff)
        covs = covs / nk[:, None, None]
    else:
        var = jnp.sum(r[:, None, :] * diff * diff, axis=2) / nk[:, None]
        covs = var[:, :, None] * eye
    covs = covs + reg_covar * eye
    weights = nk / jnp.sum(nk)
    return GMMParams(weights, means, _safe_covs(covs, means))


def _safe_covs(covs, means):
    """Keeps covariances positive definite when ``reg_covar`` is 0 and a component
    has collapsed onto one point: a ridge at the working precision of the data."""
    d = covs.shape[-1]
    scale = jnp.maximum(jnp.trace(covs, axis1=-2, axis2=-1) / d,
                        jnp.maximum(jnp.max(means * means, axis=-1), 1.0))
    ridge = 10 * jnp.finfo(covs.dtype).eps * scale
    return covs + ridge[:, None, None] * jnp.eye(d, dtype=covs.dtype)


def _kmeans_pp(key, x, w, k, n_lloyd):
    """k-means++ seeding (weighted D^2 sampling) then ``n_lloyd`` Lloyd steps."""
    keys = jax.random.split(key, k)
    logw = jnp.where(w > 0, jnp.log(jnp.where(w > 0, w, 1.0)), -jnp.inf)
    first = jax.random.categorical(keys[0], logw)
    centers = jnp.zeros((k, x.shape[1]), x.dtype).at[0].set(x[first])
    d2 = jnp.sum((x - x[first]) ** 2, -1)

    def seed(j, state):
        centers, d2 = state
        p = w * d2
        logits = jnp.where(p > 0, jnp.log(jnp.where(p > 0, p, 1.0)), -jnp.inf)
        # all remaining mass at distance 0 (duplicates): fall back to the weights
        logits = jnp.where(jnp.any(p > 0), logits, logw)
        idx = jax.random.categorical(keys[j], logits)
        centers = centers.at[j].set(x[idx])
        return centers, jnp.minimum(d2, jnp.sum((x - x[idx]) ** 2, -1))

    centers, _ = lax.fori_loop(1, k, seed, (centers, d2))

    def assign(centers):
        dist = jnp.sum((x[:, None, :] - centers[None]) ** 2, -1)
        return jax.nn.one_hot(jnp.argmin(dist, axis=1), k, dtype=x.dtype)

    def lloyd(_, centers):
        r = assign(centers) * w[:, None]
        cnt = jnp.sum(r, 0)
        new = (r.T @ x) / jnp.maximum(cnt, jnp.finfo(x.dtype).tiny)[:, None]
        return jnp.where(cnt[:, None] > 0, new, centers)

    centers = lax.fori_loop(0, n_lloyd, lloyd, centers)
    return assign(centers)


def _initial_params(key, x, w, fam):
    resp = _kmeans_pp(key, x, w, fam.n_components, fam.kmeans_iter)
    return _m_step(x.T, resp.T, w, fam.reg_covar, fam.covariance_type)


def _em(x, w, init, fam):
    """Bounded EM loop; returns an :class:`EMResult`."""
    dtype = x.dtype
    xt = x.T

    def cond(state):
        _, _, n_iter, converged = state
        return (n_iter < fam.max_iter) & ~converged

    def body(state):
        params, lb, n_iter, _ = state
        new_lb, resp = _e_step_resp(params, xt, w)
        params = _m_step(xt, resp, w, fam.reg_covar, fam.covariance_type)
        converged = jnp.abs(new_lb - lb) < fam.tol
        return params, new_lb, n_iter + 1, converged

    init_state = (init, jnp.asarray(-jnp.inf, dtype), jnp.asarray(0, jnp.int32),
                  jnp.asarray(False))
    params, lb, n_iter, converged = lax.while_loop(cond, body, init_state)
    return EMResult(params, lb, n_iter, converged)


@functools.partial(jax.custom_jvp, nondiff_argnums=(3,))
def em_fixed_point(x, w, init, fam):
    """The parameters EM converges to from ``init`` on ``x (n, d)`` with weights ``w``,
    differentiable in ``x`` and ``w`` by the implicit function theorem at the fixed
    point ``p = T(p; x, w)`` of one EM step ``T``: ``dp = (I - dT/dp)^(-1) (dT/dx dx
    + dT/dw dw)``, a dense solve in the parameters' dimension (k + k d + k d^2). The
    start ``init`` moves the fixed point only across basins, so its tangent is 0.
    Forward mode and reverse mode both work (the solve is linear in the tangents);
    the derivative is exact at convergence (within ``tol`` after ``max_iter``).

    References:
        Krantz and Parks, The Implicit Function Theorem (2002); Blondel et al.,
        Efficient and Modular Implicit Differentiation, NeurIPS 2022.
    """
    return _em(x, w, init, fam).params


def _em_map(fam, params, x, w):
    xt = x.T
    return _m_step(xt, _e_step_resp(params, xt, w)[1], w, fam.reg_covar,
                   fam.covariance_type)


@em_fixed_point.defjvp
def _em_fixed_point_jvp(fam, primals, tangents):
    x, w, init = primals
    dx, dw, _ = tangents
    params = em_fixed_point(x, w, init, fam)
    flat, unravel = jax.flatten_util.ravel_pytree(params)

    def step(f, x, w):
        return jax.flatten_util.ravel_pytree(_em_map(fam, unravel(f), x, w))[0]

    _, b = jax.jvp(lambda x, w: step(flat, x, w), (x, w), (dx, dw))
    jac = jax.jacfwd(step)(flat, x, w)
    d = jnp.linalg.solve(jnp.eye(flat.shape[0], dtype=flat.dtype) - jac, b)
    return params, unravel(d)


# Report the public home as the module (a stored result rebuilds its parameters
# from the class's module and name).
for _obj in (GMMParams, EMResult):
    _obj.__module__ = "jaxcollapse.families.gmm"
del _obj
