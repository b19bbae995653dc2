"""Loop steps that bias sampling: a shrunk Gaussian/GMM/KDE, and categorical decoding.

Each step changes the law that a generation's synthetic draws come from, and stays
inside the family, so ``law(family, params)`` always gives the family's parameters of
the biased law (and ``simulate`` can use it on every path: exact statistics, noise
hooks, samples):

* :func:`sampling_bias` (lam in (0, 1]): Gaussian N(mu, lam Sigma); GMM: every
  component covariance times lam; KDE: the kernel (bandwidth) matrix times lam.
* :func:`temperature`, :func:`top_k`, :func:`top_p`: a categorical law decoded as a
  language model's sampler would (:mod:`jaxcollapse.theory.decoding`).

Swept quantities (lam, tau, p) are pytree leaves, traced; k is static.

References:
    Alemohammad et al., Self-Consuming Generative Models Go MAD, ICLR 2024; Marchi et al.,
    Heat death of generative models in closed-loop learning (2024). THEORY.md section 9.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from jaxcollapse.families.categorical import Categorical, CategoricalParams
from jaxcollapse.families.gaussian import Gaussian, GaussianParams
from jaxcollapse.families.gmm import GMM, GMMParams
from jaxcollapse.families.kde import KDE, KDEParams
from jaxcollapse.steps._base import Step
from jaxcollapse.theory import decoding
from jaxcollapse.theory._checks import check_lam

__all__ = ["SamplingBias", "Temperature", "TopK", "TopP", "sampling_bias", "temperature",
           "top_k", "top_p"]


def _family_name(family) -> str:
    return type(family).__name__


def _as_leaf(x) -> jax.Array:
    return jnp.asarray(x, dtype=jnp.result_type(float))


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class SamplingBias(Step):
    """Sampling with the spread shrunk by ``lam`` (build it with :func:`sampling_bias`).

    Attributes:
        lam: bias in (0, 1], a traced leaf (scalar, or a leading grid axis for
            ``simulate_grid``).

    Example:
        >>> import jaxcollapse as jc
        >>> step = sampling_bias(0.5)
        >>> fam = jc.Gaussian(dim=1)
        >>> step.law(fam, fam.params(cov=[[4.0]])).cov.tolist()
        [[2.0]]
    """

    name: ClassVar[str] = "sampling_bias"

    lam: jax.Array

    def check(self, family) -> None:
        """Raises TypeError unless ``family`` is a Gaussian, GMM or KDE."""
        if not isinstance(family, Gaussian | GMM | KDE):
            raise TypeError(f"sampling_bias acts on Gaussian, GMM or KDE families; got "
                            f"{_family_name(family)} (for Categorical use temperature, "
                            f"top_k or top_p)")

    def law(self, family, params):
        """The biased law of one synthetic draw, as the family's parameters."""
        if isinstance(family, Gaussian):
            return GaussianParams(params.mean, params.cov * self.lam.astype(params.cov.dtype))
        if isinstance(family, GMM):
            return GMMParams(params.weights, params.means,
                             params.covs * self.lam.astype(params.covs.dtype))
        if isinstance(family, KDE):
            return KDEParams(params.points, params.weights,
                             params.bandwidth * self.lam.astype(params.bandwidth.dtype))
        return None



@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Temperature(Step):
    """Categorical sampling at temperature tau: q ∝ p^(1/tau) (see :func:`temperature`).

    Example:
        >>> import jaxcollapse as jc
        >>> fam = jc.Categorical(2)
        >>> temperature(0.5).law(fam, fam.params([0.25, 0.75])).probs.round(3).tolist()
        [0.1, 0.9]
    """

    name: ClassVar[str] = "temperature"

    tau: jax.Array

    def check(self, family) -> None:
        """Raises TypeError unless ``family`` is Categorical."""
        _check_categorical("temperature", family)

    def law(self, family, params):
        """``CategoricalParams(q(p))`` with ``q ∝ p^(1/tau)``."""
        if not isinstance(family, Categorical):
            return None
        return CategoricalParams(decoding.temperature_map(
            params.probs, self.tau.astype(params.probs.dtype)))



@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TopK(Step):
    """Categorical sampling from the k most likely categories (see :func:`top_k`).

    Example:
        >>> import jaxcollapse as jc
        >>> fam = jc.Categorical(3)
        >>> top_k(1).law(fam, fam.params([0.2, 0.5, 0.3])).probs.tolist()
        [0.0, 1.0, 0.0]
    """

    name: ClassVar[str] = "top_k"

    k: int = dataclasses.field(metadata=dict(static=True))

    def check(self, family) -> None:
        """Raises TypeError unless ``family`` is Categorical, ValueError if k > K."""
        _check_categorical("top_k", family)
        decoding.check_top_k(self.k, family.n_categories)

    def law(self, family, params):
        """``CategoricalParams`` of p restricted to its k largest, renormalised."""
        if not isinstance(family, Categorical):
            return None
        return CategoricalParams(decoding.top_k_map(params.probs, self.k))



@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TopP(Step):
    """Nucleus sampling: the smallest set of largest categories with mass >= p.

    Example:
        >>> import jaxcollapse as jc
        >>> fam = jc.Categorical(3)
        >>> top_p(0.6).law(fam, fam.params([0.1, 0.5, 0.4])).probs.round(4).tolist()
        [0.0, 0.5556, 0.4444]
    """

    name: ClassVar[str] = "top_p"

    p: jax.Array

    def check(self, family) -> None:
        """Raises TypeError unless ``family`` is Categorical."""
        _check_categorical("top_p", family)

    def law(self, family, params):
        """``CategoricalParams`` of the nucleus of p, renormalised."""
        if not isinstance(family, Categorical):
            return None
        return CategoricalParams(decoding.top_p_map(
            params.probs, self.p.astype(params.probs.dtype)))



def _check_categorical(name: str, family: Any) -> None:
    if not isinstance(family, Categorical):
        raise TypeError(f"{name} acts on Categorical families; got {_family_name(family)} "
                        f"(for Gaussian, GMM or KDE use sampling_bias)")


def sampling_bias(lam) -> SamplingBias:
    """The MAD paper's sampling bias: every synthetic draw comes from the model with its
    spread shrunk by ``lam`` (Gaussian N(mu, lam Sigma); GMM covariances times lam;
    KDE kernel matrix times lam).

    Args:
        lam: in (0, 1]; a scalar, or an array with a leading grid axis for
            ``simulate_grid``. ``lam > 1`` is refused (sampling bias only shrinks).

    Example:
        >>> float(sampling_bias(0.9).lam)
        0.9
        >>> sampling_bias(1.2)
        Traceback (most recent call last):
        ...
        ValueError: lam must be in (0, 1] (lam > 1 is refused: sampling bias only shrinks); got 1.2

    References:
        Alemohammad et al. (2024); THEORY.md section 9.
    """
    _check_number("lam", lam)
    return SamplingBias(_as_leaf(check_lam(lam)))


def temperature(tau) -> Temperature:
    """Categorical sampling at temperature ``tau`` > 0: q ∝ p^(1/tau).

    Example:
        >>> float(temperature(0.8).tau)
        0.8
        >>> temperature(float("nan"))
        Traceback (most recent call last):
        ...
        ValueError: tau must be a finite number > 0; got nan

    References:
        Marchi et al. (2024); THEORY.md section 9.
    """
    _check_number("tau", tau)
    return Temperature(_as_leaf(decoding.check_tau(tau)))


def top_k(k: int) -> TopK:
    """Categorical sampling from the k >= 1 most likely categories (ties by index);
    ``check(family)`` also requires k <= K.

    Example:
        >>> top_k(5).k
        5
        >>> top_k(0)
        Traceback (most recent call last):
        ...
        ValueError: k must be an integer >= 1; got 0

    References:
        THEORY.md section 9.
    """
    return TopK(decoding.check_top_k(k))


def top_p(p) -> TopP:
    """Nucleus sampling with mass ``p`` in (0, 1].

    Example:
        >>> float(top_p(0.9).p)
        0.9
        >>> top_p(0.0)
        Traceback (most recent call last):
        ...
        ValueError: p must be in (0, 1]; got 0.0

    References:
        Holtzman et al., The Curious Case of Neural Text Degeneration (ICLR 2020);
        THEORY.md section 9.
    """
    _check_number("p", p)
    return TopP(_as_leaf(decoding.check_top_p(p)))


def _check_number(name: str, value) -> None:
    if isinstance(value, jax.core.Tracer):
        return
    if isinstance(value, bool | str) or value is None:
        raise TypeError(f"{name} must be a number or an array of numbers; got {value!r}")
    try:
        jnp.asarray(value, dtype=jnp.result_type(float))
    except (TypeError, ValueError) as err:
        raise TypeError(f"{name} must be a number or an array of numbers; got "
                        f"{value!r}") from err
