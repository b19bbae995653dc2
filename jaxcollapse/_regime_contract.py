"""The regime contract: the static sizes a regime is built for (:class:`PoolSpec`),
what one generation hands it (:class:`Generation`) and the base class with its
defaults (:class:`Regime`). The regimes themselves, the registry and the factories
are in :mod:`jaxcollapse.regimes`, which re-exports these names.

References:
    Shumailov et al., Nature 631 (2024); THEORY.md section 1.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp

PyTree = Any


# ------------------------------------------------------------------ the contract


@dataclasses.dataclass(frozen=True)
class PoolSpec:
    """Static sizes and the family, fixed before tracing (part of the program's key).

    Attributes:
        family: the model family.
        exact: whether the run combines sufficient statistics (statistics path)
            rather than rows (samples path).
        n_max: rows of one generation's synthetic draws (the schedule's maximum).
        n_generations: generations after generation 0.
        human_slots: human rows a training set can hold (0 if the regime uses none).
        init_rows: rows of generation 0's own data set (data-set families such as
            KDE; 0 for parametric families).

    Example:
        >>> import jaxcollapse as jc
        >>> spec = PoolSpec(jc.Gaussian(), exact=True, n_max=100, n_generations=10)
        >>> jc.accumulate().train_rows(spec), jc.mix(0.1).train_rows(spec)
        (1000, 100)
    """

    family: Any
    exact: bool
    n_max: int
    n_generations: int
    human_slots: int = 0
    init_rows: int = 0


class Generation(NamedTuple):
    """What :meth:`Regime.update` sees of one generation of one chain.

    Attributes:
        t: the generation being fitted (1 .. n_generations), int32.
        m: its training-set size M_t, int32.
        key: the regime's own key for this generation (subsampling, human rows).
        synthetic: the synthetic draws: ``(rows, weights)`` on the samples path,
            their sufficient statistics on the statistics path.
        human: the human data (leading axis = rows), or ``None``.
        params0: generation 0's parameters.
        fit: ``fit(training_set) -> params`` for this path (rows and weights, or
            statistics).
        draw: ``draw(key, params, n) -> training_set``: ``n`` (static) fresh draws
            from ``params`` in this path's form (regimes that draw fresh data).
        fresh: on the statistics path of a family with counter-mode noise, the
            statistics of the ``fresh_rows()`` fresh draws from ``params0`` the
            regime declared (drawn with the synthetic noise of a block of
            generations, outside the per-generation step); ``None`` elsewhere
            (the regime then calls ``draw``).

    Example:
        >>> import jax, jax.numpy as jnp
        >>> import jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1)
        >>> spec = PoolSpec(fam, exact=True, n_max=10, n_generations=1)
        >>> syn = fam.stats(jnp.ones((10, 1)), jnp.ones(10))
        >>> gen = Generation(jnp.int32(1), jnp.int32(10), jax.random.key(0), syn, None,
        ...                  fam.params(), fam.fit_stats, None)
        >>> params, state = jc.replace().update(spec, (), gen)
        >>> params.mean.tolist()
        [1.0]
    """

    t: jax.Array
    m: jax.Array
    key: jax.Array
    synthetic: PyTree
    human: PyTree | None
    params0: PyTree
    fit: Callable[[PyTree], PyTree]
    draw: Callable[[jax.Array, PyTree, int], PyTree]
    fresh: PyTree | None = None


class Regime:
    """Base class of the regimes (the contract and its defaults).

    Subclasses are frozen dataclasses registered as pytrees. They override:

    * ``at(t)``: the regime of generation ``t`` (a parameter schedule's entry);
    * ``n_synthetic(m)``: synthetic draws in a training set of size ``m``;
    * ``train_rows(spec)``: rows of a samples-path training set;
    * ``init(spec, key, params0, human) -> state``;
    * ``update(spec, state, gen) -> (params, state)``.

    Example:
        >>> import jaxcollapse as jc
        >>> from jaxcollapse.regimes import REGIMES
        >>> sorted(REGIMES)[:2]
        ['accumulate', 'accumulate-subsample']
        >>> jc.replace().n_synthetic(100)
        100
    """

    name: ClassVar[str] = "regime"
    uses_human: ClassVar[bool] = False
    #: whether the statistics path can run it (a subsample of a pool is not a
    #: function of the pool's statistics)
    stats_path: ClassVar[bool] = True
    #: whether ``update`` may take the synthetic draws as their statistics on the
    #: samples path too (where the family fits through them): it pools or fits the
    #: draws whole (its fresh draws, ``Generation.draw``, then come as statistics)
    pools_stats: ClassVar[bool] = True

    def check(self) -> None:
        """Host-side validation of the regime's own values (before tracing)."""

    def check_family(self, family: Any) -> None:
        """Host-side: raise a clear error if the regime cannot run ``family``."""

    def at(self, t: Any) -> Regime:
        """The regime of generation ``t`` (traced): itself, or, for a regime with a
        per-generation schedule of a parameter, the regime holding entry ``t - 1``."""
        return self

    def n_synthetic(self, m: Any) -> Any:
        return m

    def train_rows(self, spec: PoolSpec) -> int:
        return spec.n_max

    def pool_rows(self, spec: PoolSpec) -> int:
        """Rows the regime holds across generations (for the memory estimate)."""
        return 0

    def fresh_rows(self) -> int:
        """Fresh draws from generation 0's distribution a generation (static), which
        do not depend on the chain's state: the runner may draw their statistics
        ahead, in blocks (``Generation.fresh``). 0: none."""
        return 0

    def human_slots(self, n_rows: int, n_max: int, need: int) -> int:
        """Human rows a training set holds room for (static), given ``n_rows`` human
        rows, ``n_max`` rows a training set and ``need`` human rows at most (0 for a
        regime that uses none)."""
        return min(n_rows, n_max) if self.uses_human else 0

    def init(self, spec: PoolSpec, key: jax.Array, params0: PyTree,
             human: PyTree | None) -> PyTree:
        return ()

    def update(self, spec: PoolSpec, state: PyTree, gen: Generation
               ) -> tuple[PyTree, PyTree]:
        return gen.fit(gen.synthetic), state


def _take(tree, idx):
    return jax.tree.map(lambda x: x[idx], tree)


def _concat(a, b):
    return jax.tree.map(lambda x, y: jnp.concatenate([x, y], axis=0), a, b)


def _float_dtype(tree):
    """The floating dtype of a parameter pytree (its first floating leaf)."""
    for leaf in jax.tree.leaves(tree):
        if jnp.issubdtype(leaf.dtype, jnp.floating):
            return leaf.dtype
    return jnp.result_type(float)


def _n_rows(tree) -> int:
    return jax.tree.leaves(tree)[0].shape[0]


# Report the public home as the module (the documented names).
for _obj in (PoolSpec, Generation, Regime):
    _obj.__module__ = "jaxcollapse.regimes"
del _obj
