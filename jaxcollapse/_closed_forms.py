"""Closed forms under the RBF kernel and in L2 between Gaussians and Gaussian mixtures
(re-exported by :mod:`jaxcollapse.metrics`).

Inputs are checked before tracing: covariances must be symmetric positive
semi-definite (definite for :func:`l2_mixtures`), mixture weights non-negative and
summing to 1; the formulas would otherwise return numbers that are no distance (a
negative MMD).

References:
    Gretton et al., A Kernel Two-Sample Test, JMLR 13 (2012);
    Shumailov et al., Nature 631 (2024). THEORY.md section 6.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxcollapse import kernels as kn
from jaxcollapse._kernel_inputs import check_gaussian, check_mixture

# ------------------------------------------------------------------------ closed forms


def _rbf_expectation(mean1, cov1, mean2, cov2, lengthscale):
    d = mean1.shape[-1]
    ell2 = jnp.asarray(lengthscale, mean1.dtype) ** 2
    s = cov1 + cov2
    eye = jnp.eye(d, dtype=mean1.dtype)
    _, logdet = jnp.linalg.slogdet(eye + s / ell2)
    delta = mean1 - mean2
    quad = jnp.sum(delta * jnp.linalg.solve(s + ell2 * eye, delta[..., None])[..., 0], -1)
    return jnp.exp(-0.5 * logdet - 0.5 * quad)


_rbf_expectation_jit = jax.jit(_rbf_expectation)


def rbf_expectation(mean1: jax.Array, cov1: jax.Array, mean2: jax.Array, cov2: jax.Array,
                    lengthscale: jax.Array | float = 1.0) -> jax.Array:
    """``E k(X, Y)`` for independent ``X ~ N(mean1, cov1)``, ``Y ~ N(mean2, cov2)``.

    ``det(I + (S1 + S2)/l^2)^(-1/2) exp(-1/2 D^T (S1 + S2 + l^2 I)^(-1) D)`` under the
    RBF kernel, ``D = mean1 - mean2``. Broadcasts over leading axes.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(rbf_expectation(jnp.zeros(1), jnp.eye(1), jnp.zeros(1),
        ...                             jnp.zeros((1, 1)))), 6)
        0.707107

    References:
        THEORY.md section 6.
    """
    mean1, cov1 = check_gaussian(mean1, cov1, "1")
    mean2, cov2 = check_gaussian(mean2, cov2, "2")
    kn.check_lengthscale(lengthscale)
    return _rbf_expectation_jit(mean1, cov1, mean2, cov2, lengthscale)


def mmd2_gaussians(mean1: jax.Array, cov1: jax.Array, mean2: jax.Array, cov2: jax.Array,
                   lengthscale: jax.Array | float = 1.0) -> jax.Array:
    """Exact squared MMD between ``N(mean1, cov1)`` and ``N(mean2, cov2)``, RBF kernel.

    Args:
        mean1, mean2: ``(d,)``; cov1, cov2: ``(d, d)``, symmetric positive
            semi-definite (a covariance that is not is refused: the formula would give
            a negative MMD); lengthscale: ``l > 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(mmd2_gaussians(jnp.zeros(1), jnp.eye(1), jnp.ones(1),
        ...                            jnp.eye(1))), 6)
        0.177268

    References:
        THEORY.md section 6; Gretton et al., JMLR 13 (2012).
    """
    mean1, cov1 = check_gaussian(mean1, cov1, "1")
    mean2, cov2 = check_gaussian(mean2, cov2, "2")
    if mean1.shape != mean2.shape or cov1.shape != cov2.shape:
        raise ValueError(f"the two Gaussians must have one shape; got means {mean1.shape}, "
                         f"{mean2.shape} and covariances {cov1.shape}, {cov2.shape}")
    kn.check_lengthscale(lengthscale)
    return _mmd2_gaussians_jit(mean1, cov1, mean2, cov2, lengthscale)


@jax.jit
def _mmd2_gaussians_jit(mean1, cov1, mean2, cov2, lengthscale):
    return (_rbf_expectation(mean1, cov1, mean1, cov1, lengthscale)
            + _rbf_expectation(mean2, cov2, mean2, cov2, lengthscale)
            - 2.0 * _rbf_expectation(mean1, cov1, mean2, cov2, lengthscale))


def _cross(fn, w1, m1, c1, w2, m2, c2, *args):
    v = fn(m1[:, None], c1[:, None], m2[None, :], c2[None, :], *args)
    return jnp.einsum("i,ij,j->", w1, v, w2)


def mmd2_mixtures(w1: jax.Array, means1: jax.Array, covs1: jax.Array, w2: jax.Array,
                  means2: jax.Array, covs2: jax.Array,
                  lengthscale: jax.Array | float = 1.0) -> jax.Array:
    """Exact squared MMD between two Gaussian mixtures under the RBF kernel.

    Args:
        w1: ``(K1,)`` weights, >= 0 and summing to 1 (within 1e-5; others are
            refused, not renormalised); means1: ``(K1, d)``; covs1: ``(K1, d, d)``
            positive semi-definite; likewise the second mixture; lengthscale: ``l > 0``.

    Example:
        >>> import jax.numpy as jnp
        >>> w, m, c = jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1))
        >>> round(float(mmd2_mixtures(w, m, c, w, m + 1.0, c)), 6)
        0.177268

    References:
        THEORY.md section 6.
    """
    args = _check_mixtures(w1, means1, covs1, w2, means2, covs2, definite=False)
    kn.check_lengthscale(lengthscale)
    return _mmd2_mixtures_jit(*args, lengthscale)


def _check_mixtures(w1, means1, covs1, w2, means2, covs2, definite):
    a = check_mixture(w1, means1, covs1, "1", definite)
    b = check_mixture(w2, means2, covs2, "2", definite)
    if a[1].shape[1] != b[1].shape[1]:
        raise ValueError(f"the two mixtures must have one dimension d; got means1 "
                         f"{a[1].shape} and means2 {b[1].shape}")
    return (*a, *b)


def _mmd2_mixtures(w1, m1, c1, w2, m2, c2, lengthscale):
    a, b = (w1, m1, c1), (w2, m2, c2)
    f = _rbf_expectation
    return (_cross(f, *a, *a, lengthscale) + _cross(f, *b, *b, lengthscale)
            - 2.0 * _cross(f, *a, *b, lengthscale))


_mmd2_mixtures_jit = jax.jit(_mmd2_mixtures)


def _normal_pdf(x, mean, cov):
    d = x.shape[-1]
    chol = jnp.linalg.cholesky(cov)
    z = jax.scipy.linalg.solve_triangular(chol, (x - mean)[..., None], lower=True)[..., 0]
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)
    return jnp.exp(-0.5 * (jnp.sum(z * z, -1) + logdet + d * jnp.log(2 * jnp.pi)))


def _overlap(m1, c1, m2, c2):
    return _normal_pdf(m1, m2, c1 + c2)


def l2_mixtures(w1: jax.Array, means1: jax.Array, covs1: jax.Array, w2: jax.Array,
                means2: jax.Array, covs2: jax.Array) -> jax.Array:
    """Exact squared L2 distance ``int (p - q)^2`` between two Gaussian mixtures.

    Args:
        As for :func:`mmd2_mixtures` (covariances positive definite).

    Returns:
        A scalar >= 0 (up to round-off).

    Example:
        >>> import jax.numpy as jnp
        >>> w, m, c = jnp.ones(1), jnp.zeros((1, 1)), jnp.ones((1, 1, 1))
        >>> round(float(l2_mixtures(w, m, c, w, m, c)), 6)
        0.0

    References:
        Shumailov et al., Nature 631 (2024), GMM experiment; THEORY.md section 6.
    """
    return _l2_mixtures_jit(*_check_mixtures(w1, means1, covs1, w2, means2, covs2,
                                             definite=True))


def _l2_mixtures(w1, m1, c1, w2, m2, c2):
    a, b = (w1, m1, c1), (w2, m2, c2)
    return (_cross(_overlap, *a, *a) + _cross(_overlap, *b, *b)
            - 2.0 * _cross(_overlap, *a, *b))


_l2_mixtures_jit = jax.jit(_l2_mixtures)
