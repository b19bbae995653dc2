"""Distances between Gaussians (THEORY.md section 3): squared 2-Wasserstein and
KL, batched, in units of the covariances' scale so that they stay finite over the
whole float range. Re-exported by :mod:`jaxcollapse.theory.gaussian`.

References:
    Givens & Shortt (1984); Kullback & Leibler (1951).
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from jaxcollapse._validate import check_psd, check_real


def _sqrtm_psd(a):
    w, v = jnp.linalg.eigh(0.5 * (a + jnp.swapaxes(a, -1, -2)))
    return (v * jnp.sqrt(jnp.clip(w, 0.0))[..., None, :]) @ jnp.swapaxes(v, -1, -2)


def _check_pair(mean1, cov1, mean2, cov2):
    """Shapes ``(..., d)`` and ``(..., d, d)`` that agree in d, real and finite
    means, finite symmetric positive semi-definite covariances (host side)."""
    for nm, v in (("mean1", mean1), ("mean2", mean2)):
        check_real(v, nm)
        if np.ndim(v) < 1:
            raise ValueError(f"{nm} must have shape (..., d); got a scalar")
    d = np.shape(mean1)[-1]
    for nm, c in (("cov1", cov1), ("cov2", cov2)):
        check_psd(c, nm)
        if np.shape(c)[-1] != d:
            raise ValueError(f"{nm} must have shape (..., {d}, {d}) to match mean1 "
                             f"{np.shape(mean1)}; got {np.shape(c)}")
    if np.shape(mean2)[-1] != d:
        raise ValueError(f"mean2 must have shape (..., {d}) to match mean1; got "
                         f"{np.shape(mean2)}")
    try:
        np.broadcast_shapes(np.shape(mean1)[:-1], np.shape(mean2)[:-1],
                            np.shape(cov1)[:-2], np.shape(cov2)[:-2])
    except ValueError:
        raise ValueError(f"the batch axes of mean1 {np.shape(mean1)}, cov1 {np.shape(cov1)}, "
                         f"mean2 {np.shape(mean2)} and cov2 {np.shape(cov2)} do not "
                         f"broadcast together") from None


def _as_floats(*xs):
    xs = [jnp.asarray(x) for x in xs]
    dtype = jnp.result_type(*xs, float) if not any(
        jnp.issubdtype(x.dtype, jnp.floating) for x in xs) else jnp.result_type(*xs)
    return [x.astype(dtype) for x in xs]


def _scale(cov1, cov2):
    """A positive scale per batch element (the larger mean eigenvalue of the two
    covariances): computing in units of it keeps products of covariances within the
    float range (1e36 in float32 would overflow when squared)."""
    d = cov1.shape[-1]
    t = jnp.maximum(jnp.trace(cov1, axis1=-2, axis2=-1), jnp.trace(cov2, axis1=-2, axis2=-1))
    t = t / d
    return jnp.where(jnp.isfinite(t) & (t > jnp.finfo(t.dtype).tiny), t, 1.0)


def w2sq(mean1, cov1, mean2, cov2):
    """Squared 2-Wasserstein distance between N(mean1, cov1) and N(mean2, cov2).

    |m1 - m2|^2 + tr(S1 + S2 - 2 (S2^1/2 S1 S2^1/2)^1/2); batched over leading axes.
    The covariance term is computed in units of the covariances' scale, so it stays
    finite from the smallest to the largest covariances the float type holds.

    Args:
        mean1, mean2: means, shape ``(..., d)``, finite.
        cov1, cov2: covariances, shape ``(..., d, d)``, symmetric positive
            semi-definite (checked on the host; a traced argument is not checked).

    Raises:
        ValueError: a shape, a non-finite value or a covariance that is not PSD.

    References:
        Givens & Shortt, A class of Wasserstein metrics for probability
        distributions (1984); THEORY.md section 3.

    Example:
        >>> import jax.numpy as jnp
        >>> float(w2sq(jnp.zeros(1), jnp.eye(1) * 4, jnp.ones(1), jnp.eye(1)))  # 1 + (2-1)^2
        2.0
    """
    _check_pair(mean1, cov1, mean2, cov2)
    mean1, cov1, mean2, cov2 = _as_floats(mean1, cov1, mean2, cov2)
    dm = jnp.sum((mean1 - mean2) ** 2, axis=-1)
    if cov1.shape[-1] == 1:
        s1 = jnp.sqrt(jnp.clip(cov1[..., 0, 0], 0.0))
        s2 = jnp.sqrt(jnp.clip(cov2[..., 0, 0], 0.0))
        return dm + (s1 - s2) ** 2
    s = _scale(cov1, cov2)
    c1, c2 = cov1 / s[..., None, None], cov2 / s[..., None, None]
    r2 = _sqrtm_psd(c2)
    cross = r2 @ c1 @ r2
    w = jnp.linalg.eigvalsh(0.5 * (cross + jnp.swapaxes(cross, -1, -2)))
    tr = (jnp.trace(c1, axis1=-2, axis2=-1) + jnp.trace(c2, axis1=-2, axis2=-1)
          - 2.0 * jnp.sum(jnp.sqrt(jnp.clip(w, 0.0)), axis=-1))
    return dm + s * jnp.clip(tr, 0.0)


def _logdet_psd(cov):
    tiny = jnp.finfo(cov.dtype).tiny
    w = jnp.linalg.eigvalsh(0.5 * (cov + jnp.swapaxes(cov, -1, -2)))
    return jnp.sum(jnp.log(jnp.maximum(w, tiny)), axis=-1)


def kl(mean1, cov1, mean2, cov2):
    """KL(N(mean1, cov1) || N(mean2, cov2)); batched.

    Computed in units of ``cov2``'s scale (KL does not change when both Gaussians
    are rescaled), so very large or very small but valid covariances give finite
    values. A singular covariance (KL is then infinite or undefined) is clamped at
    the smallest normal float so that the result stays finite: the families flag
    such states as degenerate.

    Args:
        mean1, cov1: the first Gaussian's mean ``(..., d)`` and covariance
            ``(..., d, d)``; mean2, cov2: the reference's. As for :func:`w2sq`,
            finite, with symmetric positive semi-definite covariances.

    Raises:
        ValueError: as :func:`w2sq`.

    References:
        Kullback & Leibler (1951); THEORY.md section 3.

    Example:
        >>> import jax.numpy as jnp
        >>> round(float(kl(jnp.zeros(1), jnp.eye(1), jnp.ones(1), jnp.eye(1))), 6)
        0.5
    """
    _check_pair(mean1, cov1, mean2, cov2)
    mean1, cov1, mean2, cov2 = _as_floats(mean1, cov1, mean2, cov2)
    d = mean1.shape[-1]
    s = _scale(cov2, cov2)
    cov1, cov2 = cov1 / s[..., None, None], cov2 / s[..., None, None]
    tiny = jnp.finfo(cov2.dtype).tiny
    w, v = jnp.linalg.eigh(0.5 * (cov2 + jnp.swapaxes(cov2, -1, -2)))
    w = jnp.maximum(w, tiny)
    inv2 = (v / w[..., None, :]) @ jnp.swapaxes(v, -1, -2)
    dm = (mean2 - mean1) / jnp.sqrt(s)[..., None]
    quad = jnp.einsum("...i,...ij,...j->...", dm, inv2, dm)
    tr = jnp.trace(inv2 @ cov1, axis1=-2, axis2=-1)
    out = 0.5 * (tr + quad - d + jnp.sum(jnp.log(w), axis=-1) - _logdet_psd(cov1))
    big = jnp.finfo(out.dtype).max
    return jnp.clip(jnp.where(jnp.isnan(out), big, out), 0.0, big)


# Report the public home as the module (the documented home).
for _obj in (w2sq, kl):
    _obj.__module__ = "jaxcollapse.theory.gaussian"
del _obj
