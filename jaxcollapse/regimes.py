"""Data regimes: what the training set of generation n + 1 is made of.

A regime is a small pytree: its *kind* (and, for mixing, the human-data source) is
static and picks the compiled program, while the human fraction ``alpha`` is a
traced leaf, so a sweep over ``alpha`` is one compiled program (see
:func:`jaxcollapse.simulate_grid`).

References:
    Shumailov et al., Nature 631 (2024) (replace, mix with 10% human data);
    Gerstgrasser et al., arXiv 2404.01413 (accumulate);
    Kazdan et al., arXiv 2410.16713 (accumulate-subsample). THEORY.md section 1.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

HUMAN_SOURCES = ("fixed", "fresh")


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Replace:
    """D_{n+1} = M fresh draws from the model of generation n.

    Example:
        >>> get_regime("replace") == Replace()
        True
    """

    name = "replace"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Accumulate:
    """D_{n+1} = D_n plus M draws from the model of generation n: the pool grows.

    Example:
        >>> get_regime("accumulate").name
        'accumulate'
    """

    name = "accumulate"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class AccumulateSubsample:
    """The pool grows as in :class:`Accumulate`; each fit uses a uniform M-subsample.

    Example:
        >>> isinstance(get_regime("accumulate-subsample"), AccumulateSubsample)
        True
    """

    name = "accumulate-subsample"


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class Mix:
    """A fraction ``alpha`` of each training set is human data, the rest synthetic.

    Attributes:
        alpha: human fraction in [0, 1] (traced: sweepable). The number of human
            points in a training set of size M is ``round(alpha * M)``.
        source: ``"fixed"`` reuses one random human subset (per chain) every
            generation; ``"fresh"`` draws a new random human subset each generation.

    Example:
        >>> m = Mix(0.1, "fresh")
        >>> m.name, m.alpha, m.source
        ('mix', 0.1, 'fresh')
    """

    alpha: Any = 0.1
    source: str = dataclasses.field(default="fixed", metadata=dict(static=True))
    name = "mix"


Regime = Replace | Accumulate | AccumulateSubsample | Mix

_BY_NAME = {
    "replace": Replace,
    "accumulate": Accumulate,
    "accumulate-subsample": AccumulateSubsample,
    "mix": Mix,
}
REGIMES = tuple(_BY_NAME)


def replace() -> Replace:
    """The replace regime.

    Example:
        >>> replace().name
        'replace'
    """
    return Replace()


def accumulate() -> Accumulate:
    """The accumulate regime.

    Example:
        >>> accumulate().name
        'accumulate'
    """
    return Accumulate()


def accumulate_subsample() -> AccumulateSubsample:
    """The accumulate-subsample regime.

    Example:
        >>> accumulate_subsample().name
        'accumulate-subsample'
    """
    return AccumulateSubsample()


def mix(alpha: Any = 0.1, source: str = "fixed") -> Mix:
    """The mix regime with human fraction ``alpha`` (validated).

    Example:
        >>> mix(0.1).alpha
        0.1
        >>> mix(1.5)
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in [0, 1]; got 1.5
    """
    check_alpha(alpha)
    if source not in HUMAN_SOURCES:
        raise ValueError(f"source must be one of {HUMAN_SOURCES}; got {source!r}")
    return Mix(alpha=alpha, source=source)


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
    a = np.asarray(alpha, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a < 0) or np.any(a > 1):
        shown = a.item() if a.ndim == 0 else a.tolist()
        raise ValueError(f"{name} must lie in [0, 1]; got {shown}")


def get_regime(regime: Any, *, alpha: Any = None, source: str = "fixed") -> Regime:
    """Turns a regime object or name (``"replace"``, ``"mix"``, ...) into a regime.

    Example:
        >>> get_regime("mix", alpha=0.1).name
        'mix'
        >>> get_regime("shuffle")
        Traceback (most recent call last):
        ...
        ValueError: regime must be one of (...); got 'shuffle'
    """
    if isinstance(regime, Replace | Accumulate | AccumulateSubsample | Mix):
        if isinstance(regime, Mix):
            check_alpha(regime.alpha)
            if regime.source not in HUMAN_SOURCES:
                raise ValueError(
                    f"source must be one of {HUMAN_SOURCES}; got {regime.source!r}")
        return regime
    if not isinstance(regime, str) or regime not in _BY_NAME:
        raise ValueError(f"regime must be one of {REGIMES}; got {regime!r}")
    if regime == "mix":
        return mix(0.1 if alpha is None else alpha, source)
    if alpha is not None:
        raise ValueError(f"alpha is only used by the 'mix' regime; got regime={regime!r}")
    return _BY_NAME[regime]()


def n_human(alpha: jax.Array, n: jax.Array) -> jax.Array:
    """Number of human points ``round(alpha * n)`` in a training set of size ``n``.

    Example:
        >>> n_human(0.1, 100).item(), n_human(0.5, 3).item()
        (10, 2)
    """
    return jnp.round(jnp.asarray(alpha) * n).astype(jnp.int32)


def schedule(kind: str, n_generations: int, start: int, *, rate: float = 1.0,
             power: float = 2.0) -> np.ndarray:
    """A per-generation sample-size schedule M_1..M_n (integers).

    Args:
        kind: ``"constant"`` (M_i = start), ``"linear"`` (M_i = start + rate (i - 1)),
            or ``"power"`` (M_i = ceil(start i^power), superlinear for power > 1,
            which keeps the Gaussian W2 bounded: THEORY.md section 2).
        n_generations: number of generations n.
        start: M_1.

    Example:
        >>> schedule("linear", 4, 10, rate=5).tolist()
        [10, 15, 20, 25]
        >>> schedule("power", 3, 10).tolist()
        [10, 40, 90]
    """
    if n_generations < 1:
        raise ValueError(f"n_generations must be >= 1; got {n_generations}")
    if start < 2:
        raise ValueError(f"start must be >= 2 samples; got {start}")
    i = np.arange(1, n_generations + 1, dtype=float)
    if kind == "constant":
        m = np.full_like(i, start)
    elif kind == "linear":
        m = start + rate * (i - 1)
    elif kind == "power":
        m = np.ceil(start * i**power)
    else:
        raise ValueError(f"kind must be 'constant', 'linear' or 'power'; got {kind!r}")
    if m.max() > 2**31 - 1 or not math.isfinite(m.max()):
        raise ValueError("schedule overflows int32; lower n_generations, rate or power")
    return m.astype(np.int64)
