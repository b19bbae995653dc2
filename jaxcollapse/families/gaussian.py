"""Gaussian family with full covariance, and its exact sufficient-statistic path.

``method="samples"`` draws M points and refits. ``method="exact"`` draws the
sufficient statistics of M points directly: the mean from N(mu, S/M) and the
scatter matrix from Wishart(S, M - 1) by the Bartlett decomposition (chi variables
on the diagonal, normals below); in one dimension this is normal + chi-square.
Both have the same law; the exact path costs O(d^3) per generation instead of
O(M d^2).

References:
    Shumailov et al., Nature 631 (2024), section on Gaussian collapse;
    Bartlett, On the theory of statistical regression (1933). THEORY.md 2-3.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import random as jcr
from jaxcollapse._fusion import apart, runtime_true, small_gram, small_matmul, small_matvec
from jaxcollapse._validate import check_choice, float_array, is_traced
from jaxcollapse.families._gaussian_metrics import kl, logdet_ratio, mean_shift, var_ratio, w2sq
from jaxcollapse.families.base import StatsFit, check_points


class GaussianParams(NamedTuple):
    """Parameters of N(mean, cov). Shapes ``mean: (d,)``, ``cov: (d, d)``.

    Example:
        >>> p = Gaussian(dim=2).params()
        >>> p.mean.tolist(), p.cov.tolist()
        ([0.0, 0.0], [[1.0, 0.0], [0.0, 1.0]])
    """

    mean: jax.Array
    cov: jax.Array


class GaussianStats(NamedTuple):
    """Sufficient statistics: weight ``n``, weighted ``mean`` and ``scatter`` about it.

    Example:
        >>> import jax.numpy as jnp
        >>> s = Gaussian(dim=1).stats(jnp.array([[0.0], [2.0]]), jnp.ones(2))
        >>> float(s.n), s.mean.tolist(), s.scatter.tolist()
        (2.0, [1.0], [[2.0]])
    """

    n: jax.Array
    mean: jax.Array
    scatter: jax.Array


def _sym(a):
    return 0.5 * (a + jnp.swapaxes(a, -1, -2))


def cov_sqrt(cov: jax.Array) -> jax.Array:
    """A square root A with A A^T = cov, by the eigendecomposition: valid also for a
    collapsed, singular covariance, so sampling never gives NaN. (Any square root
    serves: N(mu, A A^T) and Wishart(A A^T) = A Wishart(I) A^T do not depend on
    which. One LAPACK call per step instead of a Cholesky plus an eigh fallback also
    sidesteps an XLA:CPU hang seen with several concurrent LAPACK calls at d = 31.)

    Example:
        >>> import jax.numpy as jnp
        >>> c = jnp.array([[2.0, 1.0], [1.0, 2.0]])
        >>> a = cov_sqrt(c)
        >>> bool(jnp.allclose(a @ a.T, c, atol=1e-5))
        True
    """
    d = cov.shape[-1]
    if d == 1:
        return jnp.sqrt(jnp.clip(cov, 0.0))
    w, v = jnp.linalg.eigh(_sym(cov))
    return v * jnp.sqrt(jnp.clip(w, 0.0))[..., None, :]


_METRICS = {
    "w2sq": w2sq,
    "kl": kl,
    "mean_shift": mean_shift,
    "var_ratio": var_ratio,
    "logdet_ratio": logdet_ratio,
}

METHODS = ("samples", "exact")


@dataclasses.dataclass(frozen=True)
class Gaussian(StatsFit):
    """Multivariate Gaussian fitted by sample mean and covariance.

    Attributes:
        dim: dimension d >= 1.
        ddof: 1 for the unbiased covariance, 0 for the MLE.
        method: ``"samples"`` (draw M points and fit) or ``"exact"`` (draw the
            sufficient statistics: normal + Bartlett/Wishart), identical in law.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> fam = Gaussian(dim=2)
        >>> p0 = GaussianParams(jnp.zeros(2), jnp.eye(2))
        >>> x = fam.sample(jax.random.key(0), p0, 500)
        >>> x.shape
        (500, 2)
        >>> p1 = fam.fit(jax.random.key(1), x, jnp.ones(500))
        >>> p1.cov.shape
        (2, 2)
    """

    dim: int = 1
    ddof: int = 1
    method: str = "samples"

    def __post_init__(self):
        if not isinstance(self.dim, int | np.integer) or self.dim < 1:
            raise ValueError(f"dim must be an integer >= 1; got {self.dim!r}")
        if self.ddof not in (0, 1):
            raise ValueError(f"ddof must be 0 or 1; got {self.ddof!r}")
        check_choice(self.method, "method", METHODS)

    @property
    def exact(self) -> bool:
        return self.method == "exact"

    def params(self, mean=None, cov=None, dtype=None) -> GaussianParams:
        """Builds (and checks) parameters; defaults to N(0, I).

        Example:
            >>> Gaussian(dim=1).params(cov=[[4.0]]).cov.tolist()
            [[4.0]]
        """
        d = self.dim
        mean = jnp.zeros(d) if mean is None else mean
        cov = jnp.eye(d) if cov is None else cov
        p = GaussianParams(jnp.asarray(mean, dtype), jnp.asarray(cov, dtype))
        return self.check_params(p)

    # -- validation (host side) --------------------------------------------------------

    def check_params(self, params) -> GaussianParams:
        """Validates ``params`` (shapes, finiteness, positive-definite covariance that
        is not already degenerate in the working precision).

        dtypes (:func:`jaxcollapse._validate.float_array`): the mean's float32 or
        float64 is kept and the covariance takes the mean's dtype; float16 and
        bfloat16 become float32; integers and booleans become the default float
        dtype; complex values are refused with a ``TypeError``.

        Example:
            >>> import numpy as np
            >>> Gaussian(dim=1).check_params((np.zeros(1, np.float16), np.eye(1))).cov.dtype
            dtype('float32')
        """
        if not isinstance(params, GaussianParams):
            if isinstance(params, tuple) and len(params) == 2:
                params = GaussianParams(*params)
            else:
                raise TypeError(f"params0 must be GaussianParams(mean, cov); got {type(params)}")
        mean = float_array(params.mean, "params0.mean")
        cov = float_array(params.cov, "params0.cov").astype(mean.dtype)
        d = self.dim
        if mean.shape != (d,):
            raise ValueError(f"params0.mean must have shape ({d},); got {mean.shape}")
        if cov.shape != (d, d):
            raise ValueError(f"params0.cov must have shape ({d}, {d}); got {cov.shape}")
        if is_traced((mean, cov)):  # under jax.grad/jit: the values are unknown here
            return GaussianParams(mean, cov)
        m, c = np.asarray(mean), np.asarray(cov)
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(c))):
            raise ValueError("params0 must be finite; got NaN or inf in mean or cov")
        if not np.allclose(c, c.T, rtol=1e-5, atol=1e-8 * max(1.0, np.abs(c).max())):
            raise ValueError("params0.cov must be symmetric")
        w = np.linalg.eigvalsh(c.astype(np.float64))
        if w.min() <= 0:
            raise ValueError("params0.cov must be positive definite; got an eigenvalue <= 0")
        if bool(self.is_degenerate(GaussianParams(mean, cov))):
            fi = jnp.finfo(cov.dtype)
            raise ValueError(
                f"params0.cov is degenerate in {cov.dtype}: eigenvalues [{w.min():.3g}, "
                f"{w.max():.3g}] must exceed {1e3 * float(fi.tiny):.3g} (1e3 x the smallest "
                f"normal {cov.dtype}) and have a condition number below "
                f"{1 / (d * float(fi.eps)):.3g} (1/(d eps)); rescale or use float64")
        return GaussianParams(mean, cov)

    def check_data(self, data, name: str = "data") -> jax.Array:
        """Validates a data array of shape (n, d) with finite values.

        dtypes as :meth:`check_params`: float32/float64 kept, float16/bfloat16 to
        float32, integers and booleans to the default float dtype, complex refused.

        Example:
            >>> import numpy as np
            >>> Gaussian(dim=1).check_data(np.arange(3)).shape
            (3, 1)
        """
        return check_points(float_array(data, name), self.dim, name)

    def min_samples(self) -> int:
        """Smallest training-set size: 2, or d + 1 for ddof=1 in d > 1 (M > d)."""
        return max(2, self.dim + 1) if self.ddof == 1 else max(2, self.dim)

    # -- the family contract -------------------------------------------------------------

    def sample(self, key, params: GaussianParams, n: int) -> jax.Array:
        """``n`` draws, shape ``(n, d)``: ``sample_from_noise`` of ``sample_noise``."""
        return self.sample_from_noise(params, self.sample_noise(key, n, params.mean.dtype), n)

    # -- noise hooks (base.py): a draw's randomness, apart from the parameters -------------

    def sample_noise(self, key, n: int, dtype) -> jax.Array:
        """The standard normals of ``n`` draws as complex pairs
        (:func:`jaxcollapse.random.complex_normal`), shape ``key.shape + (ceil(n d / 2),)``.

        Example:
            >>> import jax
            >>> Gaussian(dim=3).sample_noise(jax.random.key(0), 5, "float32").shape
            (8,)
        """
        return jcr.complex_normal(key, (-(-n * self.dim // 2),), dtype)

    def sample_from_noise(self, params: GaussianParams, noise, n: int) -> jax.Array:
        """``n`` draws ``mean + A z`` (A A^T = cov) from :meth:`sample_noise` output."""
        if self.dim == 1:
            z = jcr.from_complex_pairs(noise, (n,))
            return (params.mean[0] + z * jnp.sqrt(jnp.clip(params.cov[0, 0], 0.0)))[:, None]
        z = jcr.from_complex_pairs(noise, (n, self.dim))
        return params.mean + small_matvec(cov_sqrt(params.cov), z)

    def sample_noise_stats(self, noise, m) -> tuple:
        """The sums ``(sum z, sum z z^T)`` of the first ``m`` standard normal vectors
        that :meth:`sample_from_noise` builds from ``noise``: all a fit to those
        samples needs (:meth:`stats_from_noise_stats`). In one dimension the masked
        normals are materialised apart and reduced as a plain array, which XLA:CPU
        does several times faster than a sum over the samples with their weights.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> fam = Gaussian(dim=1)
            >>> noise = fam.sample_noise(jax.random.key(0), 10, "float32")
            >>> s1, s2 = fam.sample_noise_stats(noise, jnp.int32(7))
            >>> z = jcr.from_complex_pairs(noise, (10,))[:7]
            >>> bool(jnp.allclose(s1[0], z.sum()) and jnp.allclose(s2[0, 0], (z * z).sum()))
            True
        """
        d = self.dim
        n = noise.shape[-1] * 2 // d
        m = jnp.asarray(m)

        def masked(noise, m):
            z = jcr.from_complex_pairs(noise, (n, d))
            keep = jnp.arange(n) < m[..., None]
            return jnp.where(keep[..., None], z, 0.0)

        if d > 1:
            z = masked(noise, m)
            return jnp.sum(z, axis=-2), jnp.einsum("...ni,...nj->...ij", z, z)
        # the flag comes from m, which (unlike the noise) is the same for all chains
        z = apart(runtime_true(m), masked, noise, m)[..., 0]
        return jnp.sum(z, axis=-1)[..., None], jnp.sum(z * z, axis=-1)[..., None, None]

    def stats_from_noise_stats(self, params: GaussianParams, sums, m) -> GaussianStats:
        """The statistics of the ``m`` draws ``mean + A z`` whose normals ``z`` have the
        sums :meth:`sample_noise_stats` gives: mean ``mu + A zbar``, scatter
        ``A (sum z z^T - m zbar zbar^T) A^T`` (A A^T = cov). The same numbers as
        :meth:`stats` of the draws up to rounding (the normals' sums, unlike the
        samples', lose nothing to cancellation).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> fam = Gaussian(dim=1)
            >>> p = fam.params(mean=[1.0], cov=[[4.0]])
            >>> noise = fam.sample_noise(jax.random.key(0), 10, "float32")
            >>> st = fam.stats_from_noise_stats(p, fam.sample_noise_stats(noise, 10), 10)
            >>> ref = fam.stats(fam.sample_from_noise(p, noise, 10), jnp.ones(10))
            >>> bool(jnp.allclose(st.mean, ref.mean) and jnp.allclose(st.scatter, ref.scatter))
            True
        """
        s1, s2 = sums
        mf = jnp.asarray(m, s1.dtype)
        zbar = s1 / jnp.maximum(mf, 1.0)
        sz = s2 - mf * zbar[..., :, None] * zbar[..., None, :]
        if self.dim == 1:
            var = jnp.clip(params.cov, 0.0)
            mean = params.mean + jnp.sqrt(var[..., 0]) * zbar
            scatter = var * jnp.maximum(sz, 0.0)
        else:
            a = cov_sqrt(params.cov)
            mean = params.mean + small_matvec(a, zbar)
            scatter = _sym(small_matmul(small_matmul(a, sz), a.T))
        return GaussianStats(mf, jnp.where(mf > 0, mean, params.mean),
                             jnp.where(mf > 1, scatter, 0.0))

    def stats_noise(self, key, n, dtype) -> tuple:
        """The variates behind :meth:`sample_stats`, whose laws depend on ``n`` only:
        normals ``z`` (d,), chi-squares with ``n - 1 - j`` degrees of freedom (d,) and,
        for d > 1, normals (d, d) below the Bartlett diagonal. ``key`` may be an array
        of keys with ``n`` of the same shape (both lead every output).

        Example:
            >>> import jax, jax.numpy as jnp
            >>> keys = jax.random.split(jax.random.key(0), 4)
            >>> z, chi2 = Gaussian(dim=1).stats_noise(keys, jnp.full(4, 10), "float32")
            >>> z.shape, chi2.shape
            ((4,), (4,))
        """
        d = self.dim
        nf = jnp.asarray(n, dtype)
        if d == 1:
            return self.stats_noise_at(key, jnp.uint32(0), n, dtype)
        # normals on stream 0 and chi-squares on streams 1, 2, ... of the same key
        df = nf[..., None] - 1.0 - jnp.arange(d, dtype=dtype)
        chi2 = jcr.chisquare(key, jnp.maximum(df, 0.0))
        z = jcr.normal(key, (d + d * d,), dtype)
        return z[..., :d], chi2, z[..., d:].reshape(z.shape[:-1] + (d, d))

    def stats_noise_at(self, key, counter, n, dtype) -> tuple:
        """:meth:`stats_noise` of draw number ``counter`` under ``key`` (broadcast
        together), independent for different counters. In one dimension the normal
        and the chi-square come from two hashes of the counter
        (:func:`jaxcollapse.random.normal_gamma`), and ``stats_noise`` is draw 0; in
        d dimensions it is ``stats_noise`` under ``fold_in(key, counter)``.

        Example:
            >>> import jax, jax.numpy as jnp
            >>> key = jax.random.key(0)
            >>> z, chi2 = Gaussian(dim=1).stats_noise_at(key, jnp.arange(5, dtype=jnp.uint32),
            ...                                          10, "float32")
            >>> z.shape, chi2.shape
            ((5,), (5,))
        """
        if self.dim > 1:
            return self.stats_noise(jcr.fold_in(key, counter), n, dtype)
        a = 0.5 * jnp.maximum(jnp.asarray(n, dtype) - 1.0, 0.0)
        z, g = jcr.normal_gamma(key, a, counter)
        return z, 2.0 * g

    def log_prob(self, params: GaussianParams, x) -> jax.Array:
        """Log density at ``x`` of shape ``(..., d)``.

        Example:
            >>> import jax.numpy as jnp
            >>> fam = Gaussian(dim=1)
            >>> round(float(fam.log_prob(fam.params(), jnp.zeros(1))), 6)
            -0.918939
        """
        d = self.dim
        w, v = jnp.linalg.eigh(_sym(params.cov))
        w = jnp.maximum(w, jnp.finfo(w.dtype).tiny)
        z = (x - params.mean) @ v
        quad = jnp.sum(z * z / w, axis=-1)
        return -0.5 * (quad + jnp.sum(jnp.log(w)) + d * jnp.log(2 * jnp.pi))

    def stats(self, data, weights) -> GaussianStats:
        """Weighted sufficient statistics (all-zero weights give the identity)."""
        w = weights.astype(data.dtype)
        n = jnp.sum(w)
        safe_n = jnp.where(n > 0, n, 1.0)
        if self.dim == 1:
            # flat vectors: XLA:CPU reduces a trailing axis of size 1 slowly
            x = data[:, 0]
            mean = jnp.sum(w * x) / safe_n
            xc = x - mean
            return GaussianStats(n, mean[None], jnp.sum(w * xc * xc)[None, None])
        mean = jnp.sum(w[:, None] * data, axis=0) / safe_n
        xc = data - mean
        return GaussianStats(n, mean, small_gram(xc * jnp.sqrt(w)[:, None]))

    def add_stats(self, a: GaussianStats, b: GaussianStats) -> GaussianStats:
        """Pooled statistics (Chan et al.'s parallel update)."""
        n = a.n + b.n
        safe = jnp.where(n > 0, n, 1.0)
        delta = b.mean - a.mean
        mean = a.mean + delta * (b.n / safe)
        scatter = a.scatter + b.scatter + jnp.outer(delta, delta) * (a.n * b.n / safe)
        return GaussianStats(n, mean, scatter)

    def scale_stats(self, stats: GaussianStats, c) -> GaussianStats:
        """The statistics of the same rows with every weight multiplied by ``c``.

        Example:
            >>> import jax.numpy as jnp
            >>> fam = Gaussian(dim=1)
            >>> s = fam.scale_stats(fam.stats(jnp.array([[0.0], [2.0]]), jnp.ones(2)), 0.5)
            >>> float(s.n), s.mean.tolist(), s.scatter.tolist()
            (1.0, [1.0], [[1.0]])
        """
        c = jnp.asarray(c, stats.mean.dtype)
        return GaussianStats(stats.n * c, stats.mean, stats.scatter * c)

    def fit_stats(self, stats: GaussianStats) -> GaussianParams:
        """Mean and covariance (scatter / (n - ddof)) from sufficient statistics."""
        denom = jnp.maximum(stats.n - self.ddof, 1.0)
        return GaussianParams(stats.mean, _sym(stats.scatter) / denom)

    def sample_stats(self, key, params: GaussianParams, n) -> GaussianStats:
        """Exact law of the statistics of ``n`` draws (``n`` traced, may be 0 or 1):
        ``stats_from_noise`` of ``stats_noise``."""
        return self.stats_from_noise(params, self.stats_noise(key, n, params.mean.dtype), n)

    def stats_from_noise(self, params: GaussianParams, noise, n) -> GaussianStats:
        """The statistics of ``n`` draws from :meth:`stats_noise` output.

        mean ~ N(mu, S/n); scatter = A B B^T A^T with A A^T = S and B the Bartlett
        factor of Wishart(I, n - 1); for n - 1 < d the scatter is the (singular) sum
        of n - 1 outer products of standard normals.
        """
        d = self.dim
        dtype = params.mean.dtype
        nf = jnp.asarray(n, dtype)
        if d == 1:  # scalars: normal + chi-square
            z, chi2 = noise
            var = jnp.clip(params.cov[0, 0], 0.0)
            mean = params.mean[0] + jnp.sqrt(var / jnp.maximum(nf, 1.0)) * z
            sc = var * chi2
            return GaussianStats(nf, jnp.where(nf > 0, mean, params.mean[0])[None],
                                 jnp.where(nf > 1, sc, 0.0)[None, None])
        z, chi2, nrm = noise
        a = cov_sqrt(params.cov)
        mean = params.mean + small_matvec(a, z) / jnp.sqrt(jnp.maximum(nf, 1.0))
        df = nf - 1.0
        j = jnp.arange(d, dtype=dtype)
        bart = jnp.tril(nrm, -1) + jnp.diag(jnp.sqrt(chi2))
        # singular case df < d (only one of the two branches is kept): the sum of
        # df outer products of standard normals, the rows of g
        g = nrm * (j < df)[:, None]
        b = jnp.where(df >= d, bart, g.T)
        ab = small_matmul(a, b)
        scatter = small_matmul(ab, ab.T)
        scatter = jnp.where(nf > 1, scatter, 0.0)
        return GaussianStats(nf, jnp.where(nf > 0, mean, params.mean), scatter)

    def default_metrics(self):
        """``w2sq``, ``kl`` (KL(p_n || p_0)), ``mean_shift``, ``var_ratio``,
        ``logdet_ratio``."""
        return _METRICS

    def is_degenerate(self, params: GaussianParams) -> jax.Array:
        """True where a variance has underflowed to (near) zero, the covariance is no
        longer numerically positive definite (its condition number exceeds
        ``1/(d eps)`` of the dtype, where the eigenvalues below ``eps`` times the
        largest are rounding noise and ``log det`` is meaningless), or it is not
        finite.

        Example:
            >>> import jax.numpy as jnp
            >>> fam = Gaussian(dim=2)
            >>> bool(fam.is_degenerate(GaussianParams(jnp.zeros(2), jnp.diag(
            ...     jnp.array([1.0, 1e-17])))))
            True
        """
        fi = jnp.finfo(params.cov.dtype)
        if self.dim == 1:  # elementwise (XLA:CPU is slow at tiny fused reductions)
            var = params.cov[..., 0, 0]
            return (var <= 1e3 * fi.tiny) | ~jnp.isfinite(var)
        finite = jnp.all(jnp.isfinite(params.cov), axis=(-2, -1))
        cov = jnp.where(finite[..., None, None], params.cov, 1.0)
        diag = jnp.diagonal(cov, axis1=-2, axis2=-1)
        bad = jnp.any(diag <= 1e3 * fi.tiny, axis=-1)
        w = jnp.linalg.eigvalsh(_sym(cov))
        ill = w[..., 0] <= self.dim * fi.eps * jnp.maximum(w[..., -1], fi.tiny)
        return bad | ill | ~finite
