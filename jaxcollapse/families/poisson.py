"""Poisson family: the rate refitted by the sample mean, with an exact path.

``method="samples"`` draws M counts and averages them; ``method="exact"`` draws
their sum directly, Poisson(M lambda), which has the same law and costs O(1) a
generation. A rate that reaches 0 stays 0 (the model has collapsed): the probability
of that by generation k is exp(-M lambda_0 g_k)
(:func:`jaxcollapse.theory.rates.poisson_zero_probability`).

References:
    Suresh, Thangaraj, Khandavally, Rate of Model Collapse in Recursive Training,
    AISTATS 2025. THEORY.md section 11.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import gammaln

from jaxcollapse._validate import check_choice
from jaxcollapse.families.base import StatsFit

METHODS = ("samples", "exact")


class PoissonParams(NamedTuple):
    """The rate lambda >= 0, shape ``()``.

    Example:
        >>> float(Poisson().params(rate=2.0).rate)
        2.0
    """

    rate: jax.Array


class PoissonStats(NamedTuple):
    """Sufficient statistics: the weight ``n`` and the weighted ``total`` of counts.

    Example:
        >>> import jax.numpy as jnp
        >>> s = Poisson().stats(jnp.array([1, 4]), jnp.ones(2))
        >>> float(s.n), float(s.total)
        (2.0, 5.0)
    """

    n: jax.Array
    total: jax.Array


def rate(params: PoissonParams, params0: PoissonParams) -> jax.Array:
    """The fitted rate.

    Example:
        >>> p = Poisson().params(rate=3.0)
        >>> float(rate(p, p))
        3.0
    """
    del params0
    return params.rate


def rate_error(params: PoissonParams, params0: PoissonParams) -> jax.Array:
    """(lambda_n - lambda_0)^2.

    Example:
        >>> fam = Poisson()
        >>> float(rate_error(fam.params(rate=3.0), fam.params(rate=1.0)))
        4.0
    """
    return (params.rate - params0.rate) ** 2


def extinct(params: PoissonParams, params0: PoissonParams) -> jax.Array:
    """1.0 where the rate has collapsed to 0 (absorbing), else 0.0.

    Example:
        >>> fam = Poisson()
        >>> float(extinct(fam.params(rate=0.0), fam.params()))
        1.0
    """
    del params0
    return (params.rate <= 0).astype(params.rate.dtype)


_METRICS = {"rate": rate, "rate_error": rate_error, "extinct": extinct}


@dataclasses.dataclass(frozen=True)
class Poisson(StatsFit):
    """Poisson distributions fitted by the (weighted) sample mean.

    Data are non-negative integer counts of shape ``(n,)``.

    Attributes:
        method: ``"exact"`` (draw the sum of M counts, Poisson(M lambda)) or
            ``"samples"`` (draw M counts), identical in law.

    References:
        Suresh et al., AISTATS 2025. THEORY.md section 11.

    Example:
        >>> import jax
        >>> fam = Poisson()
        >>> x = fam.sample(jax.random.key(0), fam.params(rate=2.0), 4)
        >>> x.shape
        (4,)
        >>> float(fam.fit(None, jnp.array([1, 3]), jnp.ones(2)).rate)
        2.0
    """

    method: str = "exact"
    #: draws have no pathwise derivative: a traced simulate stops their gradient and
    #: differentiates draws_log_prob (the score function)
    discrete_draws: ClassVar[bool] = True

    def __post_init__(self):
        check_choice(self.method, "method", METHODS)

    @property
    def exact(self) -> bool:
        return self.method == "exact"

    def params(self, rate: Any = 1.0, dtype: Any = None) -> PoissonParams:
        """Builds (and checks) parameters.

        Example:
            >>> Poisson().params(rate=-1.0)
            Traceback (most recent call last):
            ...
            ValueError: params0.rate must be a finite number >= 0; got -1.0
        """
        dt = jnp.result_type(float) if dtype is None else dtype
        return self.check_params(PoissonParams(jnp.asarray(rate, dt)))

    def min_samples(self) -> int:
        """Smallest training-set size: 1."""
        return 1

    def check_params(self, params: Any) -> PoissonParams:
        """Validates the rate on the host: a finite scalar >= 0."""
        if not isinstance(params, PoissonParams):
            if isinstance(params, tuple) and len(params) == 1:
                params = PoissonParams(*params)
            else:
                raise TypeError(f"params0 must be PoissonParams(rate); got {type(params)}")
        r = jnp.asarray(params.rate)
        if not jnp.issubdtype(r.dtype, jnp.floating):
            r = r.astype(jnp.result_type(float))
        if r.shape != ():
            raise ValueError(f"params0.rate must be a scalar; got shape {r.shape}")
        if isinstance(r, jax.core.Tracer):  # under jax.grad/jit: the value is unknown here
            return PoissonParams(r)
        a = np.asarray(r)
        if not np.isfinite(a) or a < 0:
            raise ValueError(f"params0.rate must be a finite number >= 0; got {a.item()!r}")
        return PoissonParams(r)

    def check_data(self, data: Any, name: str = "data") -> jax.Array:
        """Validates counts on the host: 1-D non-negative integers."""
        a = np.asarray(data)
        if not np.issubdtype(a.dtype, np.integer):
            raise TypeError(f"{name} must hold integer counts; got dtype {a.dtype}")
        if a.ndim != 1:
            raise ValueError(f"{name} must have shape (n,); got {a.shape}")
        if a.size and a.min() < 0:
            raise ValueError(f"{name} must be >= 0; got minimum {a.min()}")
        return jnp.asarray(data)

    def sample(self, key: jax.Array, params: PoissonParams, n: int) -> jax.Array:
        """``n`` counts (int32, shape ``(n,)``)."""
        return jax.random.poisson(key, params.rate, (n,)).astype(jnp.int32)

    def log_prob(self, params: PoissonParams, x: jax.Array) -> jax.Array:
        """log P(x) = x log lambda - lambda - log x! (0 log 0 = 0)."""
        x = jnp.asarray(x, params.rate.dtype)
        lam = params.rate
        xlog = jnp.where(x > 0, x * jnp.log(jnp.where(lam > 0, lam, 1.0)), 0.0)
        xlog = jnp.where((x > 0) & (lam <= 0), -jnp.inf, xlog)
        return xlog - lam - gammaln(x + 1.0)

    def default_metrics(self) -> dict:
        """rate, rate_error, extinct."""
        return dict(_METRICS)

    def is_degenerate(self, params: PoissonParams) -> jax.Array:
        """True once the rate is 0 (absorbing)."""
        return params.rate <= 0

    # -- exact path ------------------------------------------------------------------
    def stats(self, data: jax.Array, weights: jax.Array) -> PoissonStats:
        """Weighted count ``n`` and total."""
        w = jnp.asarray(weights)
        if not jnp.issubdtype(w.dtype, jnp.floating):
            w = w.astype(jnp.result_type(float))
        return PoissonStats(jnp.sum(w), jnp.sum(w * data.astype(w.dtype)))

    def sample_stats(self, key: jax.Array, params: PoissonParams, n: Any) -> PoissonStats:
        """Exact law of the statistics of ``n`` (traced) draws: total ~ Poisson(n lambda)."""
        dt = params.rate.dtype
        nf = jnp.asarray(n, dt)
        total = jax.random.poisson(key, nf * params.rate).astype(dt)
        return PoissonStats(nf, total)

    def add_stats(self, a: PoissonStats, b: PoissonStats) -> PoissonStats:
        return PoissonStats(a.n + b.n, a.total + b.total)

    def scale_stats(self, stats: PoissonStats, c: Any) -> PoissonStats:
        """The statistics of the same draws with every weight multiplied by ``c``."""
        c = jnp.asarray(c, stats.n.dtype)
        return PoissonStats(stats.n * c, stats.total * c)

    def draws_log_prob(self, params: PoissonParams, draws: Any) -> jax.Array:
        """log P(draws | rate) up to a term free of the rate: ``total log lambda -
        n lambda`` for statistics (the exact path), the same of rows and weights
        ``(x, w)`` (the samples path); the score-function term of ``simulate``'s
        derivative with respect to the rate.

        Example:
            >>> fam = Poisson()
            >>> st = PoissonStats(jnp.asarray(2.0), jnp.asarray(4.0))
            >>> round(float(fam.draws_log_prob(fam.params(rate=2.0), st)), 4)
            -1.2274
        """
        st = draws if isinstance(draws, PoissonStats) else self.stats(*draws)
        lam = params.rate
        log_lam = jnp.log(jnp.where(lam > 0, lam, 1.0))
        return jnp.where(st.total > 0, st.total * log_lam, 0.0) - st.n * lam

    def fit_stats(self, stats: PoissonStats) -> PoissonParams:
        """``total / n`` (0 if empty)."""
        return PoissonParams(stats.total / jnp.where(stats.n > 0, stats.n, 1.0))
