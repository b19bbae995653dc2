"""Loop steps that filter synthetic data: Bradley–Terry curation and a verifier.

``curate(reward, k, eta=1.0, reference=None)``: each kept draw is chosen among ``k``
draws of the current model with probability ``e^{r(x_i)} / Σ_j e^{r(x_j)}``; a share
``1 - eta`` of each training set comes from ``reference`` instead.

* :class:`~jaxcollapse.families.categorical.Categorical`: ``reward`` is an array of one
  reward per category (or a function of a category index, evaluated once on all of
  them); ``law`` is exact, ``(1 - η) p_ref + η p H_p``
  (:func:`jaxcollapse.theory.curation.curated_law`), so every path of ``simulate`` takes
  it and ``reference`` is a probability vector.
* Families whose draws are points ``(n, d)`` (Gaussian, and others with a ``dim``):
  ``reward`` is a traceable function of one draw ``(d,) -> ()``; ``law`` is None (the
  samples path), ``n_candidates = k`` and ``select`` keeps one of each ``k`` consecutive
  candidate rows by the Bradley–Terry choice (invalid rows and non-finite rewards are
  never chosen); ``reference`` is family params, and the first ``round((1 - η) m)`` of
  the ``m`` kept rows are replaced by reference draws.

``verify(region=(c, a))`` keeps the draws with ``|x - c| <= a`` (points; rejected rows'
weights set to 0, so the number kept is random). ``verify(tpr=a, fpr=b)`` acts on a
Categorical whose category 0 is "right" and every other category "wrong": a right draw
is kept with probability a, a wrong one with b; ``law`` is the exact law of a kept draw,
``p_0' = a p_0 / (a p_0 + b (1 - p_0))`` (the others scaled by ``b``), i.e. the loop
samples until M draws are kept (:mod:`jaxcollapse.theory.verification`).

References:
    Ferbach et al., Self-Consuming Generative Models with Curated Data Provably Optimize
    Human Preferences, NeurIPS 2024; Feng et al., Beyond Model Collapse: Scaling Up with
    Synthesized Data Requires Verification, ICLR 2025. THEORY.md section 10.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse.families.categorical import Categorical, CategoricalParams
from jaxcollapse.steps._base import Step
from jaxcollapse.theory import curation as _th
from jaxcollapse.theory import verification as _tv

__all__ = ["Curate", "Verify", "curate", "verify"]


def _static(**kw):
    return dataclasses.field(metadata=dict(static=True), **kw)


def _points_dim(family: Any, step: str) -> int:
    dim = getattr(family, "dim", None)
    if isinstance(family, Categorical) or not isinstance(dim, int | np.integer):
        raise TypeError(f"{step} on {type(family).__name__} needs a family whose draws are "
                        f"points (n, d) with a `dim` attribute, or a Categorical")
    return int(dim)


def _rows(tree: Any) -> int:
    return jax.tree.leaves(tree)[0].shape[0]


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Curate(Step):
    """Bradley–Terry curation among ``k`` candidates (build with :func:`curate`).

    Attributes:
        reward: one reward per category, shape ``(K,)`` (Categorical), else None; traced.
        eta: synthetic share in [0, 1], traced.
        reference: the reference law (CategoricalParams or the family's params), or None.
        k: candidates per kept draw (static); also ``n_candidates``.
        reward_fn: a traceable function of one draw (static), or None.
        n_nodes: quadrature nodes of the exact categorical law (static); in float64,
            and in float32 too unless ``n_nodes_f32`` is set.
        n_nodes_f32: the nodes in float32 where the error bound chose them (static):
            the float32 bound (``ε = 1e-8``) needs about 3.5x fewer; or None.

    Example:
        >>> import jax.numpy as jnp
        >>> step = curate(jnp.array([0.0, 1.0, 2.0]), 4)
        >>> step.n_candidates, step.name
        (4, 'curate')
    """

    name: ClassVar[str] = "curate"

    reward: Any
    eta: Any
    reference: Any
    k: int = _static()
    reward_fn: Callable | None = _static(default=None)
    n_nodes: int = _static(default=_th.N_NODES)
    n_nodes_f32: int | None = _static(default=None)

    @property
    def n_candidates(self) -> int:
        """Candidate draws per kept draw on the samples path: ``k``."""
        return self.k

    def nodes(self, dtype: Any) -> int:
        """The quadrature nodes that the exact categorical law uses in ``dtype``.

        Example:
            >>> import jax.numpy as jnp
            >>> step = curate(jnp.linspace(0.0, 3.0, 10), 4)
            >>> step.nodes(jnp.float64), step.nodes(jnp.float32)
            (302, 85)
        """
        if self.n_nodes_f32 is not None and jnp.dtype(dtype) == jnp.float32:
            return self.n_nodes_f32
        return self.n_nodes

    def _reward_array(self, family: Categorical) -> jax.Array:
        if self.reward is not None:
            return jnp.asarray(self.reward)
        return jax.vmap(self.reward_fn)(jnp.arange(family.n_categories))

    def check(self, family: Any) -> None:
        """Host-side check that this step can act on ``family`` (shapes, finiteness)."""
        if isinstance(family, Categorical):
            n = family.n_categories
            if self.reward is not None:
                _th.check_reward(self.reward, n)
            else:
                r = np.asarray(self._reward_array(family))
                if r.shape != (n,):
                    raise ValueError(f"reward must return a scalar per category; "
                                     f"got shape {r.shape[1:]}")
                _th.check_reward(r, n)
            if self.reference is not None:
                ref = self.reference
                ref = ref.probs if isinstance(ref, CategoricalParams) else ref
                family.check_params(CategoricalParams(ref), name="reference")
            return
        d = _points_dim(family, "curate")
        if self.reward_fn is None:
            raise TypeError(f"reward must be a function of one draw ({d},) -> () for "
                            f"{type(family).__name__}; got an array")
        _check_reward_fn(self.reward_fn, d)
        if self.reference is not None:
            family.check_params(self.reference)

    def law(self, family: Any, params: Any) -> Any:
        """Categorical: the exact law of one kept draw mixed with the reference
        (:func:`jaxcollapse.theory.curation.curated_law`); None for other families."""
        if not isinstance(family, Categorical):
            return None
        p = params.probs
        r = self._reward_array(family).astype(p.dtype)
        kept = p * _th._factor(p, r, float(self.k), self.nodes(p.dtype)).astype(p.dtype)
        kept = kept / jnp.sum(kept)
        if self.reference is None:
            return CategoricalParams(kept)
        ref = self.reference
        ref = jnp.asarray(ref.probs if isinstance(ref, CategoricalParams) else ref, p.dtype)
        eta = jnp.asarray(self.eta, p.dtype)
        return CategoricalParams((1.0 - eta) * ref + eta * kept)

    def select(self, key, family, params, draws, weights):
        """Keeps one of each ``k`` consecutive candidates with probability softmax(r).

        Args:
            key: PRNG key.
            draws: the family's data, ``k * n`` rows (rows ``j k .. j k + k - 1`` are the
                candidates of kept draw j); weights: ``(k * n,)`` 0/1.

        Returns:
            ``(kept draws with n rows, weights (n,))``.
        """
        k = self.k
        n = _rows(draws) // k
        key_pick, key_ref = jax.random.split(key)
        r = jax.vmap(self.reward_fn)(draws)
        ok = ((weights > 0) & jnp.isfinite(r)).reshape(n, k)
        pick = _softmax_choice(key_pick, r.reshape(n, k), ok)
        idx = jnp.arange(n) * k + pick
        kept = jax.tree.map(lambda x: x[idx], draws)
        w = jnp.max(ok, axis=-1).astype(weights.dtype)
        if self.reference is not None:
            ref = family.sample(key_ref, self.reference, n)
            m = jnp.sum(w)
            n_ref = jnp.round((1.0 - jnp.asarray(self.eta, m.dtype)) * m)
            # the kept rows are the valid ones; the first n_ref valid rows go to reference
            rank = jnp.cumsum(w) - w
            use_ref = (w > 0) & (rank < n_ref)
            kept = jax.tree.map(
                lambda a, b: jnp.where(use_ref.reshape((n,) + (1,) * (a.ndim - 1)), b, a),
                kept, ref)
        return kept, w


def _softmax_choice(key: jax.Array, r: jax.Array, ok: jax.Array) -> jax.Array:
    """One column of each row ``i`` with probability ``e^{r_ij} / Σ_{valid l} e^{r_il}``
    over the valid (``ok``) columns, by inversion of the cumulative weights: one uniform
    per row and O(k) work. (The Gumbel-max trick of ``jax.random.categorical`` draws k
    uniforms and 2k logarithms per row, and XLA:CPU leaves its fused variadic argmax
    reduction unvectorised: 7x slower than this in the loop at k = 8.)

    Args:
        key: PRNG key.
        r: rewards, ``(n, k)`` (non-finite ones only where ``ok`` is False).
        ok: ``(n, k)`` bool; a row with no valid column returns column 0.

    Returns:
        ``(n,)`` int32 column indices; never an invalid column of a row that has a
        valid one.
    """
    n, k = r.shape
    top = jnp.max(jnp.where(ok, r, -jnp.inf), axis=-1, keepdims=True)
    e = jnp.where(ok, jnp.exp(r - jnp.where(jnp.isfinite(top), top, 0.0)), 0.0)
    c = jnp.cumsum(e, axis=-1)  # nondecreasing up to rounding; the total is c[:, -1]
    u = jax.random.uniform(key, (n, 1), e.dtype) * c[:, -1:]
    col = jnp.arange(k, dtype=jnp.int32)
    # the last valid column: the choice when rounding puts u at or above the total
    last = jnp.max(jnp.where(e > 0, col, 0), axis=-1, keepdims=True)
    # the first valid column whose cumulative weight exceeds u; a column of weight 0
    # is never chosen, whatever the rounding of the cumulative sums
    pick = jnp.where((e > 0) & (c > u), col, last)
    return jnp.min(pick, axis=-1)


def _check_reward_fn(fn: Callable, d: int) -> None:
    try:
        out = fn(jnp.zeros((d,)))
    except Exception as e:  # noqa: BLE001 - any failure means it cannot take one draw
        raise TypeError(f"reward must be a traceable function of one draw of shape ({d},); "
                        f"calling it on zeros({d}) raised {type(e).__name__}: {e}") from e
    a = np.asarray(out)
    if a.shape != ():
        raise ValueError(f"reward must return a scalar for one draw ({d},); got shape "
                         f"{a.shape}")
    if not np.isfinite(a):
        raise ValueError(f"reward must return finite values; got {a} at zeros({d})")


def curate(reward: Any, k: int, eta: Any = 1.0, reference: Any = None,
           n_nodes: int | None = None) -> Curate:
    """Bradley–Terry curation: keep one of ``k`` draws with probability softmax(reward).

    Args:
        reward: Categorical: an array of one reward per category, shape ``(K,)`` (or a
            function of a category index). Point families: a traceable function of one
            draw ``(d,) -> ()``.
        k: candidates per kept draw, an integer >= 2 (static).
        eta: share of synthetic data in [0, 1] (traced); ``1 - eta`` comes from
            ``reference``, which is then required.
        reference: Categorical: a probability vector or CategoricalParams; else the
            family's params.
        n_nodes: quadrature nodes for the exact categorical law (static). ``None``
            (default): the fewest that meet the quadrature's error bound for this
            reward range and k in the dtype the law is computed in
            (:func:`jaxcollapse.theory.curation.nodes_for`: in float64 the kept law
            within 3e-17, about 300 nodes for a range of 3 nats; in float32 within
            3e-8, below float32's rounding, about 85 nodes), or 1024 for a reward
            given as a function or traced (under ``jax.grad``, where the range is
            unknown; give ``n_nodes`` for a wide range); see
            :mod:`jaxcollapse.theory.curation`).

    Returns:
        A :class:`Curate` step.

    References:
        Ferbach et al. (NeurIPS 2024); THEORY.md section 10.

    Example:
        >>> from jaxcollapse.families.categorical import Categorical, CategoricalParams
        >>> step = curate(jnp.array([0.0, 1.0]), k=2)
        >>> fam = Categorical(2)
        >>> step.check(fam)
        >>> law = step.law(fam, CategoricalParams(jnp.array([0.5, 0.5])))
        >>> [round(float(x), 4) for x in law.probs]
        [0.3845, 0.6155]
        >>> curate(jnp.array([0.0, 1.0]), k=1)
        Traceback (most recent call last):
        ...
        ValueError: k must be >= 2 (candidates per kept draw); got 1
    """
    kk = _th.check_k(k, allow_inf=False)
    _th.check_eta(eta)
    if n_nodes is not None and (not isinstance(n_nodes, int | np.integer) or n_nodes < 16):
        raise ValueError(f"n_nodes must be an integer >= 16 or None; got {n_nodes!r}")
    concrete_eta = not isinstance(eta, jax.core.Tracer)
    if reference is None and concrete_eta and np.any(np.asarray(eta) < 1):
        raise ValueError(f"reference is required when eta < 1 (a share 1 - eta of each "
                         f"training set comes from it); got eta={eta!r} and no reference")
    if callable(reward):
        return Curate(None, jnp.asarray(eta), reference, int(kk), reward,
                      _th.N_NODES if n_nodes is None else int(n_nodes))
    if isinstance(reward, jax.core.Tracer):  # under jax.grad/jit: the shape only
        if reward.ndim != 1:
            raise ValueError(f"reward must be an array of shape (K,) (one per category) "
                             f"or a function of one draw; got shape {reward.shape}")
        return Curate(reward, jnp.asarray(eta), reference, int(kk), None,
                      _th.N_NODES if n_nodes is None else int(n_nodes))
    a = np.asarray(reward, dtype=np.float64)
    if a.ndim != 1:
        raise ValueError(f"reward must be an array of shape (K,) (one per category) or a "
                         f"function of one draw; got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"reward must be finite; got {a.tolist()[:8]}")
    n_f32 = None
    if n_nodes is None and a.size:
        span = float(a.max() - a.min())
        n_nodes, n_f32 = _th.nodes_for(span, kk), _th.nodes_for(span, kk, jnp.float32)
    elif n_nodes is None:
        n_nodes = _th.N_NODES
    return Curate(jnp.asarray(reward), jnp.asarray(eta), reference, int(kk), None,
                  int(n_nodes), n_f32)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Verify(Step):
    """A verifier (build with :func:`verify`): an acceptance region or rates (a, b).

    Attributes:
        center, half_width: the region ``|x - c| <= a`` (points), or None.
        tpr, fpr: the verifier's rates (Categorical, category 0 right), or None.

    Example:
        >>> verify(region=(0.0, 1.0)).name
        'verify'
    """

    name: ClassVar[str] = "verify"

    center: Any
    half_width: Any
    tpr: Any
    fpr: Any

    n_candidates = 1

    def check(self, family: Any) -> None:
        """Host-side check that this step can act on ``family``."""
        if self.tpr is not None:
            if not isinstance(family, Categorical):
                raise TypeError(f"verify(tpr=..., fpr=...) acts on a Categorical (category "
                                f"0 right); got {type(family).__name__}")
            return
        d = _points_dim(family, "verify(region=...)")
        c = np.empty(np.shape(self.center))  # the shape only (the value may be traced)
        if c.shape not in ((), (d,)):
            raise ValueError(f"region center must be a scalar or have shape ({d},); got "
                             f"{c.shape}")

    def law(self, family: Any, params: Any) -> Any:
        """Categorical with rates: the exact law of a kept draw; None otherwise."""
        if self.tpr is None or not isinstance(family, Categorical):
            return None
        p = params.probs
        a = jnp.asarray(self.tpr, p.dtype)
        b = jnp.asarray(self.fpr, p.dtype)
        keep = jnp.full_like(p, b).at[0].set(a)
        kept = p * keep
        acc = jnp.sum(kept)
        # a verifier that keeps nothing leaves the law as it is (acceptance 0)
        return CategoricalParams(jnp.where(acc > 0, kept / jnp.where(acc > 0, acc, 1.0), p))

    def select(self, key, family, params, draws, weights):
        """Sets the weight of rows outside ``|x - c| <= a`` to 0 (same rows)."""
        del key, params
        x = draws
        dist2 = jnp.sum((x - jnp.asarray(self.center, x.dtype)) ** 2, axis=-1)
        inside = dist2 <= jnp.asarray(self.half_width, x.dtype) ** 2
        return draws, jnp.where(inside, weights, 0).astype(weights.dtype)


def verify(region: Any = None, tpr: Any = None, fpr: Any = None) -> Verify:
    """A verifier that keeps the synthetic draws that pass.

    Give either ``region=(center, half_width)`` (points: keep ``|x - c| <= a``, Euclidean
    in d dimensions) or ``tpr=a, fpr=b`` (Categorical, category 0 is "right": a right draw
    is kept with probability a, a wrong one with b).

    Args:
        region: ``(center, half_width)``; half_width > 0 (traced).
        tpr, fpr: rates in [0, 1], not both 0 (traced).

    Returns:
        A :class:`Verify` step.

    References:
        Feng et al. (ICLR 2025); THEORY.md section 10.

    Example:
        >>> from jaxcollapse.families.categorical import Categorical, CategoricalParams
        >>> step = verify(tpr=0.9, fpr=0.1)
        >>> p = step.law(Categorical(2), CategoricalParams(jnp.array([0.5, 0.5])))
        >>> [round(float(x), 4) for x in p.probs]
        [0.9, 0.1]
        >>> verify(region=(0.0, 0.0))
        Traceback (most recent call last):
        ...
        ValueError: half_width must be finite and > 0 (a region ... accepts nothing); got 0.0
    """
    if (region is None) == (tpr is None and fpr is None):
        raise TypeError("verify needs either region=(center, half_width) or tpr=..., fpr=...; "
                        f"got region={region!r}, tpr={tpr!r}, fpr={fpr!r}")
    if region is not None:
        if not isinstance(region, tuple | list) or len(region) != 2:
            raise TypeError(f"region must be a pair (center, half_width); got {region!r}")
        c, hw = region
        _tv.check_half_width(hw)
        if not isinstance(c, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(c))):
            raise ValueError(f"region center must be finite; got {c!r}")
        return Verify(jnp.asarray(c), jnp.asarray(hw), None, None)
    if tpr is None or fpr is None:
        raise TypeError(f"verify needs both tpr and fpr; got tpr={tpr!r}, fpr={fpr!r}")
    _tv.check_rate(tpr, "tpr")
    _tv.check_rate(fpr, "fpr")
    if not isinstance(tpr, jax.core.Tracer) and not isinstance(fpr, jax.core.Tracer) and (
            np.all(np.asarray(tpr) == 0) and np.all(np.asarray(fpr) == 0)):
        raise ValueError("tpr and fpr must not both be 0 (the verifier would accept "
                         "nothing); got tpr=0, fpr=0")
    return Verify(None, None, jnp.asarray(tpr), jnp.asarray(fpr))

