"""Ready-made losses for the design problems with known answers: a Gaussian loop under
weighted fresh data or the relaxed mix (a human fraction or a per-generation schedule),
and a KDE with a fixed bandwidth. Each returns ``loss(key, theta)`` giving the metric's
trajectory ``(n_chains, n_generations + 1)``, ready for :func:`value_and_grad`,
:func:`minimize`, :func:`solve` and :func:`smallest`; the command line
(``jaxcollapse design``), the figure and the docs use them.

References:
    He, Xu, Cheng, arXiv 2502.18049 (2025) (weighted fresh data); Shumailov et al.,
    Nature 631 (2024) (mix); THEORY.md sections 2, 6 and 11.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxcollapse import regimes as rg
from jaxcollapse.families import KDE, Gaussian
from jaxcollapse.simulation import simulate

_GAUSS = Gaussian(dim=1, method="exact")


def weighted_fresh_loss(*, n_real: int, n_samples: int, n_generations: int, n_chains: int,
                        metric: str = "mean_shift") -> Callable:
    """``loss(key, w)``: a 1-D standard Gaussian loop whose fit averages the synthetic
    fit (weight ``1 - w``) with a fit on ``n_real`` fresh real rows (weight ``w``).

    Example:
        >>> import jax
        >>> loss = weighted_fresh_loss(n_real=10, n_samples=10, n_generations=2,
        ...                            n_chains=4)
        >>> callable(loss)  # loss(key, w) -> (4, 3); docs/design.md runs one
        True

    References:
        He, Xu, Cheng, arXiv 2502.18049 (2025). THEORY.md section 11.
    """
    def loss(key, w):
        return simulate(key, _GAUSS, _GAUSS.params(), n_generations=n_generations,
                        n_samples=n_samples, n_chains=n_chains,
                        regime=rg.weighted_fresh(w, n_real), metrics=[metric],
                        save_params=False).metrics[metric]

    return loss


def human_pool(key: jax.Array, n_pool: int) -> jax.Array:
    """``n_pool`` rows of human data, ``(n_pool, 1)``, from the standard Gaussian.

    Example:
        >>> import jax
        >>> human_pool(jax.random.key(0), 5).shape
        (5, 1)

    References:
        THEORY.md section 11.
    """
    return _GAUSS.sample(key, _GAUSS.params(), n_pool)


def mix_loss(human: Any, *, n_samples: int, n_generations: int, n_chains: int,
             source: str = "fresh", metric: str = "mean_shift") -> Callable:
    """``loss(key, alpha)``: a 1-D standard Gaussian loop under the relaxed mix
    (``mix(alpha, source, weighting="relaxed")``) with the human rows ``human``;
    ``alpha`` is a fraction or a schedule ``(n_generations,)``.

    Example:
        >>> import jax
        >>> loss = mix_loss(human_pool(jax.random.key(1), 20), n_samples=10,
        ...                 n_generations=2, n_chains=4)
        >>> callable(loss)  # loss(key, alpha) -> (4, 3); docs/design.md runs one
        True

    References:
        Shumailov et al., Nature 631 (2024). THEORY.md section 11.
    """
    def loss(key, alpha):
        return simulate(key, _GAUSS, _GAUSS.params(), n_generations=n_generations,
                        n_samples=n_samples, n_chains=n_chains, human_data=human,
                        regime=rg.mix(alpha, source=source, weighting="relaxed"),
                        metrics=[metric], save_params=False).metrics[metric]

    return loss


def kde_loss(x0: Any, *, n_samples: int, n_generations: int, n_chains: int,
             metric: str = "data_var") -> Callable:
    """``loss(key, h)``: a 1-D KDE started on the data ``x0 (N, 1)`` whose kernel
    variance ``h^2`` stays fixed every generation (``KDE(bandwidth="params0")``).

    Example:
        >>> import jax
        >>> x0 = jax.random.normal(jax.random.key(0), (10, 1))
        >>> loss = kde_loss(x0, n_samples=10, n_generations=2, n_chains=4)
        >>> callable(loss)  # loss(key, h) -> (4, 3); tests/test_design.py runs one
        True

    References:
        THEORY.md section 6.
    """
    kde = KDE(dim=1, bandwidth="params0")

    def loss(key, h):
        p0 = kde.params(x0, bandwidth=jnp.reshape(h * h, (1, 1)))
        return simulate(key, kde, p0, n_generations=n_generations, n_samples=n_samples,
                        n_chains=n_chains, metrics=[metric], save_params=False
                        ).metrics[metric]

    return loss
