"""Designing a loop: gradients of collapse with respect to the loop's parameters, and
optimisers that find the cheapest loop that does not collapse.

Write the objective as ``loss(key, theta)``: build the loop from ``theta`` (a human
fraction ``mix(alpha, weighting="relaxed")``, a weight ``weighted_fresh(w, n)``, a
sampling bias, a KDE bandwidth, a per-generation schedule ``alpha_t``...), run
:func:`jaxcollapse.simulate` and return a metric per chain, or its trajectory over
generations. Then

* :func:`value_and_grad` gives the chain mean, its gradient (pathwise, forward mode)
  and their Monte Carlo standard errors;
* :func:`minimize` finds the best design (optax steps, projected onto :func:`box` or a
  :func:`budget`, iterates averaged) with its standard error;
* :func:`solve` and :func:`smallest` find where a monotone objective meets a target
  (e.g. the smallest alpha keeping the error below it).

Example:
    >>> import jax
    >>> from jaxcollapse import design
    >>> loss = jax.jit(lambda key, th: (jax.random.normal(key, (256,)) - th) ** 2)
    >>> e = design.value_and_grad(loss, jax.random.key(0), 1.0)  # E (z - th)^2 = 1 + th^2
    >>> bool(abs(e.grad - 2.0) < 5 * e.grad_se)
    True

    docs/design.md runs the same on :func:`jaxcollapse.simulate` loops.

References:
    He, Xu, Cheng, arXiv 2502.18049 (2025); Shumailov et al., Nature 631 (2024).
    THEORY.md sections 2, 9 and 11.
"""

from jaxcollapse.design import loops
from jaxcollapse.design._constraints import Box, Budget, box, budget
from jaxcollapse.design._estimate import Estimate, Estimator, check_theta, value_and_grad
from jaxcollapse.design._optimize import DesignResult, History, minimize
from jaxcollapse.design._root import RootResult, smallest, solve

__all__ = [
    "Box",
    "Budget",
    "DesignResult",
    "Estimate",
    "Estimator",
    "History",
    "RootResult",
    "box",
    "budget",
    "check_theta",
    "loops",
    "minimize",
    "smallest",
    "solve",
    "value_and_grad",
]
