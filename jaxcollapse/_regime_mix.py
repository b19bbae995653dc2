"""The mix regime (human rows beside synthetic draws, counted or weighted) and its
helpers; re-exported by :mod:`jaxcollapse.regimes`, its documented home."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse import random as jcr
from jaxcollapse._regime_contract import (
    Regime,
    _concat,
    _float_dtype,
    _n_rows,
    _take,
)

HUMAN_SOURCES = ("fixed", "fresh")


def check_alpha(alpha: Any, name: str = "alpha") -> None:
    """Raises ``ValueError`` unless every value of ``alpha`` is finite and in [0, 1].

    Example:
        >>> check_alpha([0.0, 0.5])
        >>> check_alpha(1.5)
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in [0, 1]; got 1.5
    """
    if isinstance(alpha, jax.core.Tracer):
        return
    if np.iscomplexobj(alpha):
        raise TypeError(f"{name} must be real; got {alpha!r}")
    a = np.asarray(alpha, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        shown = a.item() if a.ndim == 0 else a.tolist()
        raise ValueError(f"{name} must lie in [0, 1]; got {shown}")



@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Mix(Regime):
    """A fraction ``alpha`` of each training set is human data, the rest synthetic.

    Attributes:
        alpha: human fraction in [0, 1] (traced: sweepable), or a schedule
            ``alpha_1..alpha_n`` of one fraction a generation (shape
            ``(n_generations,)``). A training set holds room for ``round(max alpha
            M)`` human rows rounded up to a multiple of 4, so a new alpha reuses the
            compiled program while that room stays the same (a sweep is one
            program: :func:`jaxcollapse.simulate_grid`).
        source: ``"fixed"`` reuses one random human subset (per chain) every
            generation; ``"fresh"`` draws a new uniformly random subset (without
            replacement) of the human rows each generation.
        weighting: ``"count"`` (the field's convention, as in Shumailov et al.):
            a training set of size M holds ``round(alpha M)`` human rows and
            ``M - round(alpha M)`` synthetic draws, all of weight 1; its outcome is
            a step function of alpha, whose derivative is 0 almost everywhere, so
            differentiating it is refused. ``"relaxed"``: the weighted relaxation
            that ``jax.grad`` can follow: M synthetic draws of weight ``1 - alpha``
            and the human rows (``min(rows, M)`` of them, every row of the subset)
            sharing a total weight ``alpha M``, fitted by weighted maximum
            likelihood (total weight M, so ``ddof`` keeps its meaning). Equal to
            ``"count"`` at alpha = 0 and 1; in between it is a different estimator
            (every human row of the subset counts a little instead of a few counting
            fully), whose mean shift has the closed form of
            :func:`jaxcollapse.theory.mixing.relaxed_moments`.

    Example:
        >>> m = Mix(0.1, "fresh")
        >>> m.name, m.alpha, m.source, m.weighting
        ('mix', 0.1, 'fresh', 'count')
    """

    alpha: Any = 0.1
    source: str = dataclasses.field(default="fixed", metadata=dict(static=True))
    weighting: str = dataclasses.field(default="count", metadata=dict(static=True))
    name: ClassVar[str] = "mix"
    uses_human: ClassVar[bool] = True

    def __repr__(self):  # the count weighting (the default) is left out, as before
        extra = "" if self.weighting == "count" else f", weighting={self.weighting!r}"
        return f"Mix(alpha={self.alpha!r}, source={self.source!r}{extra})"

    def check(self):
        check_alpha(self.alpha)
        if self.source not in HUMAN_SOURCES:
            raise ValueError(f"source must be one of {HUMAN_SOURCES}; got {self.source!r}")
        if self.weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}; got "
                             f"{self.weighting!r}")

    def check_family(self, family):
        from jaxcollapse.families.base import NoiseStats, uses_exact_path

        if self.weighting == "relaxed" and not hasattr(family, "scale_stats") and (
                uses_exact_path(family) or isinstance(family, NoiseStats)):
            raise ValueError(f"mix(weighting='relaxed') weights statistics, which "
                             f"{family!r} cannot (no scale_stats); use its samples path "
                             f"(method='samples') or weighting='count'")

    def at(self, t):
        if jnp.ndim(self.alpha) == 1:  # a schedule alpha_1..alpha_n
            return dataclasses.replace(self, alpha=jnp.asarray(self.alpha)[t - 1])
        return self

    def n_human(self, m):
        if self.weighting == "relaxed":
            return jnp.asarray(m, jnp.int32)  # every row of the subset (weighted)
        return _counted(jnp.asarray(self.alpha), m)

    def n_synthetic(self, m):
        if self.weighting == "relaxed":
            return m
        return m - self.n_human(m)

    def train_rows(self, spec):
        return spec.human_slots + spec.n_max

    def human_slots(self, n_rows, n_max, need):
        """Counted mixing uses at most ``need = round(max alpha n_max)`` rows: room for
        them rounded up to a multiple of 4, so that a new alpha of about the same size
        reuses the compiled program (a traced alpha comes with ``need = n_max``);
        drawing them costs O(room^2). Relaxed weighting uses every row of the subset.
        The rows' indices do not depend on the room (each comes from its own counter
        in :func:`jaxcollapse.random.subset_indices`).

        Example:
            >>> Mix(0.1).human_slots(1000, 100, 10), Mix(0.1, weighting="relaxed"
            ...                                          ).human_slots(1000, 100, 10)
            (12, 100)
        """
        full = min(n_rows, n_max)
        if self.weighting != "count":
            return full
        return min(full, max(4, -(-need // 4) * 4))

    def init(self, spec, key, params0, human):
        if self.source == "fixed":
            # a uniform subset in uniform order: O(slots^2), never a sort of the pool
            idx = jcr.subset_indices(key, _n_rows(human), spec.human_slots)
            state = {"human_idx": idx}
            if _pools_stats(spec):
                state["human_prefix"] = _prefix_stats(spec.family, _take(human, idx),
                                                      _float_dtype(params0))
            return state
        return {"human_key": key}

    def human_rows(self, spec, state, gen):
        """This generation's human rows (``human_slots`` of them; the first
        ``round(alpha m)`` count, or all of them when relaxed)."""
        if self.source == "fixed":
            idx = state["human_idx"]
        else:
            # the first round(alpha m) indices of a uniform random subset: the draw
            # loop stops there (the rest of the slots get weight 0)
            idx = jcr.subset_indices(jax.random.fold_in(state["human_key"], gen.t),
                                     _n_rows(gen.human), spec.human_slots,
                                     n_used=jnp.minimum(self.n_human(gen.m),
                                                        spec.human_slots))
        return _take(gen.human, idx)

    def update(self, spec, state, gen):
        fam = spec.family
        rows = self.human_rows(spec, state, gen)
        dt = _float_dtype(gen.params0)
        used = (jnp.arange(spec.human_slots) < self.n_human(gen.m)).astype(dt)
        syn = gen.synthetic
        if self.weighting == "relaxed":
            a = jnp.asarray(self.alpha, dt)
            # the human rows share alpha m; the m synthetic draws weigh 1 - alpha each
            n_h = jnp.maximum(jnp.minimum(gen.m, spec.human_slots), 1).astype(dt)
            w_h = used * (a * gen.m.astype(dt) / n_h)
            if spec.exact:
                syn = fam.scale_stats(syn, 1 - a)
            else:
                syn = (syn[0], syn[1] * (1 - a).astype(syn[1].dtype))
        else:
            w_h = used
        if spec.exact and "human_prefix" in state:
            # the fixed subset's statistics were pooled once, for every count of rows
            n_used = jnp.minimum(self.n_human(gen.m), spec.human_slots)
            st = jax.tree.map(lambda a: a[n_used], state["human_prefix"])
            if self.weighting == "relaxed":
                st = fam.scale_stats(st, w_h[0] if spec.human_slots else 0.0)
            train = fam.add_stats(st, syn)
        elif spec.exact:
            train = fam.add_stats(fam.stats(rows, w_h), syn)
        else:
            x, w = syn
            train = (_concat(rows, x), jnp.concatenate([w_h.astype(w.dtype), w]))
        return gen.fit(train), state


WEIGHTINGS = ("count", "relaxed")


def _pools_stats(spec) -> bool:
    """Whether a generation's training set may be pooled statistics (the exact path,
    or a samples path that fits through the draws' statistics)."""
    from jaxcollapse.families.base import NoiseStats

    return spec.exact or isinstance(spec.family, NoiseStats)


def _prefix_stats(fam, rows, dtype):
    """The statistics of the first j rows for j = 0..len(rows) (leading axis), pooled
    by a parallel prefix of ``add_stats`` (Chan et al.'s update: no cancellation)."""
    n = _n_rows(rows)
    one = jax.vmap(lambda r: fam.stats(jax.tree.map(lambda x: x[None], r),
                                       jnp.ones((1,), dtype)))(rows)
    zero = fam.stats(jax.tree.map(lambda x: x[:1], rows), jnp.zeros((1,), dtype))
    if n == 0:
        return jax.tree.map(lambda z: z[None], zero)
    prefix = lax.associative_scan(jax.vmap(fam.add_stats), one)
    return jax.tree.map(lambda z, p: jnp.concatenate([z[None], p]), zero, prefix)


@jax.custom_jvp
def _counted(alpha, m):
    """``round(alpha m)`` as an integer; differentiating it is refused (below)."""
    return jnp.round(alpha * m).astype(jnp.int32)


@_counted.defjvp
def _counted_jvp(primals, tangents):
    raise ValueError(
        "alpha of mix(weighting='count') sets the integer count round(alpha M) of human "
        "rows: the outcome is a step function of alpha and its derivative is 0 almost "
        "everywhere. Differentiate mix(alpha, weighting='relaxed') instead (human rows "
        "weighted alpha, synthetic draws 1 - alpha; see jaxcollapse.regimes.Mix)")




Mix.__module__ = "jaxcollapse.regimes"
