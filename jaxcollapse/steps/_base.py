"""The loop-step contract: a transformation between sampling and the regime's pool.

Real self-consuming loops do not train on faithful draws of their model: they
decode with a temperature, truncate, curate or verify. A loop step says how. It
is a frozen dataclass registered as a pytree, like an optax transformation: its
structure (the k of top-k, a reward *function*) is static and its sweepable
parameters (a bias lambda, a temperature, a share eta) are traced leaves, so
:func:`jaxcollapse.simulate_grid` sweeps them and ``jax.grad`` differentiates them.

A step offers

* ``check(family)``: host-side validation for a family, before tracing;
* ``law(family, params)``: the law of one kept synthetic draw, as parameters of the
  family, where it stays in the family (``None`` otherwise, decided from the
  family's type alone). ``simulate`` then samples from it on every path: exact
  statistics, noise hooks and samples alike;
* ``n_candidates``: candidate draws per kept draw on the samples path (1 unless the
  step chooses among several, as curation does);
* ``select(key, family, params, draws, weights)``: used where ``law`` is ``None``:
  ``draws`` holds ``n_candidates * n`` rows (rows ``j K .. j K + K - 1`` are the
  candidates of kept draw ``j``) and ``weights`` their 0/1 validity; it returns
  ``n`` rows and their weights (a rejected row gets weight 0).

Steps in a sequence apply in order; ``simulate`` applies every ``law`` first and then
every ``select``, so a sequence whose ``law`` steps follow a ``select`` step is
refused.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

PyTree = Any


class Step:
    """Base class of loop steps (the contract and its defaults: the identity).

    Example:
        >>> import jax, jaxcollapse as jc
        >>> s = identity()
        >>> fam = jc.Gaussian()
        >>> s.law(fam, fam.params()) == fam.params(), s.n_candidates
        (True, 1)
    """

    name: ClassVar[str] = "step"

    @property
    def n_candidates(self) -> int:
        return 1

    def check(self, family: Any) -> None:
        """Raises a clear error if this step cannot act on ``family``."""

    def law(self, family: Any, params: PyTree) -> PyTree | None:
        return params

    def select(self, key: jax.Array, family: Any, params: PyTree, draws: PyTree,
               weights: jax.Array) -> tuple[PyTree, jax.Array]:
        return draws, weights


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Identity(Step):
    """Keeps every draw as it is (the default loop).

    Example:
        >>> Identity().n_candidates
        1
    """

    name: ClassVar[str] = "identity"


def identity() -> Identity:
    """The identity step: faithful sampling.

    Example:
        >>> identity().name
        'identity'
    """
    return Identity()


def as_steps(step: Any, family: Any, params0: PyTree) -> tuple[Step, ...]:
    """``step`` (``None``, one step or a sequence) as a validated tuple of steps.

    Raises ``TypeError`` for something that is not a step and ``ValueError`` where a
    step cannot act on ``family`` or a ``law`` step follows a ``select`` step.

    Example:
        >>> import jaxcollapse as jc
        >>> fam = jc.Gaussian()
        >>> as_steps(None, fam, fam.params())
        ()
        >>> as_steps("temperature", fam, fam.params())
        Traceback (most recent call last):
        ...
        TypeError: step must be a loop step from jaxcollapse.steps (or a sequence of ...
    """
    if step is None:
        return ()
    steps = tuple(step) if isinstance(step, Sequence) and not isinstance(step, str) \
        else (step,)
    for s in steps:
        if not isinstance(s, Step):
            raise TypeError(f"step must be a loop step from jaxcollapse.steps (or a "
                            f"sequence of them); got {s!r}"[:300])
        s.check(family)
    selecting = False
    for s in steps:
        is_law = has_law(s, family, params0)
        if selecting and is_law:
            raise ValueError(f"step {s.name!r} changes the sampling law but follows a step "
                             f"that selects among draws; put it first")
        selecting = selecting or not is_law
    return steps


def has_law(step: Step, family: Any, params0: PyTree) -> bool:
    """Whether ``step`` acts on ``family`` through its law (decided from shapes).

    Traced once per (step structure, family, shapes): ``simulate`` asks on every call,
    and a fresh trace costs about a millisecond, as much as a small exact-path run.

    Example:
        >>> import jaxcollapse as jc
        >>> fam = jc.Gaussian()
        >>> has_law(identity(), fam, fam.params())
        True
    """
    leaves, tree = jax.tree.flatten((step, params0))
    shapes = tuple(jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x))
                   for x in leaves)
    try:
        return _has_law(tree, shapes, family)
    except TypeError:  # an unhashable static field or family: trace without the cache
        return jax.eval_shape(lambda: step.law(family, params0)) is not None


@functools.lru_cache(maxsize=256)
def _has_law(tree: Any, shapes: tuple, family: Any) -> bool:
    def law(*leaves):
        step, params0 = jax.tree.unflatten(tree, leaves)
        return step.law(family, params0)

    return jax.eval_shape(law, *shapes) is not None


def laws(steps: tuple[Step, ...], family: Any, params: PyTree) -> PyTree:
    """The sampling law after every ``law`` step, in order."""
    for s in steps:
        p = s.law(family, params)
        if p is not None:
            params = p
    return params


def selectors(steps: tuple[Step, ...], family: Any, params0: PyTree) -> tuple[Step, ...]:
    """The steps that act through ``select`` for ``family``."""
    return tuple(s for s in steps if not has_law(s, family, params0))


def n_candidates(steps: tuple[Step, ...]) -> int:
    """Candidate draws per kept draw for the ``select`` steps (their product)."""
    n = 1
    for s in steps:
        n *= int(s.n_candidates)
    return n
