"""``simulate(..., truth=(family, params))``: generation 1 trains on draws from a truth
that need not be in the fitted family (a mixture truth for a Gaussian fit, the
functional-expressivity error of Shumailov et al.).

The truth enters as a wrapper around the run's regime (:class:`TruthFirst`), so the
chain step, the key schedule and every path of the simulator run unchanged: at
generation 1 the wrapper replaces the synthetic draws (which came from ``params0``)
by ``M_1`` draws from the truth, in the path's form (rows and weights, or their
sufficient statistics), and hands them to the wrapped regime; from generation 2 on
it is the wrapped regime itself. The truth's draws use the chain's regime key
(``fold_in(regime_key, _TRUTH_KEY)``), so they do not depend on the path, the chain
count or chunking.

References:
    Shumailov et al., Nature 631 (2024) (functional expressivity error);
    THEORY.md section 7.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import regimes as rg
from jaxcollapse._memory import check_memory
from jaxcollapse._regime_contract import _float_dtype

PyTree = Any

# fold_in(a chain's regime key, _TRUTH_KEY) draws the truth's data; the wrapped
# regime keeps the regime key itself ("trut" in ASCII)
_TRUTH_KEY = np.uint32(0x74727574)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class TruthFirst(rg.Regime):
    """``inner``, except that generation 1's synthetic draws come from the truth.

    The truth's draws are made once, in :meth:`init` (outside the scan over
    generations), and kept in the state beside the wrapped regime's: their
    statistics on the statistics path (O(1)), their rows on the samples path.
    :meth:`update` takes them in place of the model's draws at generation 1 (a
    select, not a branch, so the scan's body stays one straight program).

    Attributes:
        inner: the wrapped regime (replace, accumulate, mix...).
        truth_family: the truth's family (static), e.g. ``GMM(2, 1)``.
        truth_params: its parameters (traced: a new truth reuses the program).
        m1: generation 1's training-set size ``M_1`` (traced).

    Example:
        >>> import jaxcollapse as jc
        >>> r = TruthFirst(jc.replace(), jc.GMM(2, 1), None, 10)
        >>> r.name, r.pools_stats
        ('replace+truth', True)
    """

    inner: Any
    truth_family: Any = dataclasses.field(metadata=dict(static=True))
    truth_params: PyTree
    m1: Any

    # the wrapped regime's flags (read by simulate after the wrapping)
    @property
    def name(self) -> str:
        return f"{self.inner.name}+truth"

    @property
    def uses_human(self) -> bool:
        return self.inner.uses_human

    @property
    def stats_path(self) -> bool:
        return self.inner.stats_path

    @property
    def pools_stats(self) -> bool:
        return self.inner.pools_stats

    def at(self, t):
        return dataclasses.replace(self, inner=self.inner.at(t))

    def n_synthetic(self, m):
        return self.inner.n_synthetic(m)

    def train_rows(self, spec):
        return self.inner.train_rows(spec)

    def pool_rows(self, spec):
        return self.inner.pool_rows(spec)

    def human_slots(self, n_rows, n_max, need):
        return self.inner.human_slots(n_rows, n_max, need)

    def init(self, spec, key, params0, human):
        # n_max rows (the shape of every generation's synthetic draws after the loop
        # steps), of which the first n_synthetic(M_1) count
        x = self.truth_family.sample(jax.random.fold_in(key, _TRUTH_KEY), self.truth_params,
                                     spec.n_max)
        template = jax.eval_shape(lambda: spec.family.sample(jax.random.key(0), params0, 1))
        x = jax.tree.map(lambda a, s: a.astype(s.dtype), x, template)
        w = (jnp.arange(spec.n_max) < self.inner.at(1).n_synthetic(self.m1)).astype(
            _float_dtype(params0))
        return {"inner": self.inner.init(spec, key, params0, human),
                "truth": spec.family.stats(x, w) if spec.exact else (x, w)}

    def update(self, spec, state, gen):
        first = gen.t == 1
        syn = jax.tree.map(lambda a, b: jnp.where(first, a.astype(b.dtype), b),
                           state["truth"], gen.synthetic)
        params, inner = self.inner.update(spec, state["inner"], gen._replace(synthetic=syn))
        return params, dict(state, inner=inner)


def check_truth(truth, family, params0, regime, *, n_max: int, n_chains: int):
    """Validates ``truth`` before tracing and returns ``(family, params)`` (the params
    in ``params0``'s float dtype): a pair whose family draws rows of the fitted
    family's form, a regime that draws no fresh data from ``params0`` (which would not
    be the truth), and memory for the truth's ``n_chains x n_max`` draws."""
    if not (isinstance(truth, tuple) and len(truth) == 2):
        raise TypeError(f"truth must be a pair (family, params) to draw generation 1's "
                        f"training data from, e.g. (jc.GMM(2, 1), gmm_params), or None; "
                        f"got {truth!r}"[:300])
    t_family, t_params = truth
    if not (hasattr(t_family, "sample") and hasattr(t_family, "check_params")):
        raise TypeError(f"truth[0] must be a family (with sample and check_params), e.g. "
                        f"jc.GMM(2, 1); got {t_family!r}"[:300])
    try:
        hash(t_family)
    except TypeError:
        raise TypeError(f"truth[0] must be hashable (a frozen dataclass); got "
                        f"{t_family!r}"[:300]) from None
    try:
        t_params = t_family.check_params(t_params)
    except (TypeError, ValueError) as e:
        raise type(e)(f"truth[1] must be valid parameters of {t_family!r}: {e}") from e
    if isinstance(regime, rg.WeightedFresh):
        raise ValueError(f"regime {regime.name!r} draws fresh human data from params0 every "
                         f"generation, which with truth= is not the distribution generation "
                         f"1's data come from; use replace, accumulate, "
                         f"accumulate-subsample or mix with truth=, or leave truth out")
    dt = _float_dtype(params0)
    t_params = jax.tree.map(
        lambda x: jnp.asarray(x, dt) if jnp.issubdtype(jnp.result_type(x), jnp.floating)
        else x, t_params)
    # (the parameters and key as arguments: simulate validates under
    # ensure_compile_time_eval, where closed-over concrete values run op by op)
    key = jax.random.key(0)
    rows = jax.eval_shape(lambda k, p: family.sample(k, p, 1), key, params0)
    t_rows = jax.eval_shape(lambda k, p: t_family.sample(k, p, 1), key, t_params)
    shape = jax.tree.map(lambda s: s.shape[1:], rows)
    t_shape = jax.tree.map(lambda s: s.shape[1:], t_rows)
    if jax.tree.structure(rows) != jax.tree.structure(t_rows) or shape != t_shape:
        raise ValueError(f"truth's draws must be rows of the fitted family's form: "
                         f"{t_family!r} draws rows of shape {t_shape}, {family!r} of "
                         f"shape {shape}")
    row_bytes = sum(math.prod(s.shape[1:]) * s.dtype.itemsize for s in jax.tree.leaves(rows))
    # the drawn rows (kept in the state on the samples path) and about two
    # intermediates of their size (component indices, normals), once a chain
    check_memory(3 * n_chains * n_max * row_bytes,
                 f"simulate's truth draws ({n_chains:,} chains x {n_max:,} rows)",
                 "use fewer chains or a smaller n_samples")
    return t_family, t_params
