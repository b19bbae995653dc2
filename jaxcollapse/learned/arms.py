"""Arms of a recursive learned-generator run, expressed with the regime objects of
:func:`jaxcollapse.simulate` (``jc.replace()``, ``jc.mix(alpha, source)``,
``jc.accumulate()``).

An arm is a regime plus, optionally, settings a plug-in reads (for the language
model, its decoding). Its random stream is ``fold_in(k_arms, arm.key_id)``, where
the key id depends only on the regime, so arms that differ only in their settings
share their random numbers (common random numbers: their differences are the
settings' effect, not noise).

References:
    Shumailov et al., Nature 631 (2024) (replace, 10% human data);
    Gerstgrasser et al., arXiv 2404.01413 (accumulate). THEORY.md section 1.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from jaxcollapse.regimes import Accumulate, Mix, Replace, get_regime, mix

_ACCUMULATE_ID = 10_000_001


class Arm(NamedTuple):
    """The original encoding of an arm: human fraction ``alpha`` or accumulate.

    Kept as an alias of ``RegimeArm(name, mix(alpha, "fresh"))`` (``accumulate``:
    ``RegimeArm(name, accumulate())``): both give bitwise the same run.

    Example:
        >>> Arm("alpha=0.1", 0.1, False).key_id
        100000
        >>> Arm("alpha=0.1", 0.1, False).regime
        Mix(alpha=0.1, source='fresh')
    """

    name: str
    alpha: float
    accumulate: bool

    @property
    def key_id(self) -> int:
        return _ACCUMULATE_ID if self.accumulate else int(round(self.alpha * 1_000_000))

    @property
    def regime(self):
        return Accumulate() if self.accumulate else mix(self.alpha, "fresh")


@dataclasses.dataclass(frozen=True)
class RegimeArm:
    """One arm: a name, a regime object and plug-in settings (for example decoding).

    Attributes:
        name: the arm's name in records and checkpoint folders.
        regime: ``replace()``, ``mix(alpha, "fresh" | "fixed")`` or ``accumulate()``.
            ``"fresh"`` keeps a new random share of the human units each generation
            (the seed study's arm); ``"fixed"`` the same share every generation.
        settings: plug-in settings as ``(name, value)`` pairs (hashable).

    Example:
        >>> from jaxcollapse.regimes import mix
        >>> a = RegimeArm("alpha=0.1", mix(0.1, "fresh"))
        >>> a.key_id, a.alpha, a.accumulates
        (100000, 0.1, False)
    """

    name: str
    regime: Any
    settings: tuple = ()

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "/" in self.name:
            raise ValueError(f"arm name must be a non-empty string without '/'; "
                             f"got {self.name!r}")
        if type(self.regime) not in (Replace, Mix, Accumulate):  # not a subclass
            raise ValueError(f"regime of arm {self.name!r} must be replace(), mix(alpha, "
                             f"source) or accumulate(); got {self.regime!r}")
        get_regime(self.regime)  # validates alpha and source

    @property
    def alpha(self) -> float:
        """Human fraction of each training set (0 for replace and accumulate)."""
        return float(self.regime.alpha) if isinstance(self.regime, Mix) else 0.0

    @property
    def accumulates(self) -> bool:
        return isinstance(self.regime, Accumulate)

    @property
    def fixed_human(self) -> bool:
        """True when the same human units are kept every generation."""
        return isinstance(self.regime, Mix) and self.regime.source == "fixed"

    @property
    def key_id(self) -> int:
        return _ACCUMULATE_ID if self.accumulates else int(round(self.alpha * 1_000_000))

    @property
    def setting(self) -> dict:
        return dict(self.settings)

    def describe(self) -> dict:
        """A JSON-able description (recorded in checkpoints and ``results.json``).

        Example:
            >>> from jaxcollapse.regimes import accumulate
            >>> RegimeArm("accumulate", accumulate()).describe()
            {'name': 'accumulate', 'regime': 'accumulate', 'alpha': 0.0, 'accumulate': True}
        """
        d = dict(name=self.name, regime=self.regime.name, alpha=self.alpha,
                 accumulate=self.accumulates)
        if isinstance(self.regime, Mix):
            d["source"] = self.regime.source
        d.update({k: _jsonable(v) for k, v in self.settings})
        return d


def _jsonable(v):
    if dataclasses.is_dataclass(v):
        return dataclasses.asdict(v)
    return v


def regime_name(regime) -> str:
    """The default arm name of a regime: ``replace``, ``alpha=0.1`` (fresh human
    units), ``alpha=0.1 fixed`` or ``accumulate``.

    Example:
        >>> from jaxcollapse.regimes import mix, replace
        >>> regime_name(mix(0.1, "fresh")), regime_name(mix(0.1)), regime_name(replace())
        ('alpha=0.1', 'alpha=0.1 fixed', 'replace')
    """
    if isinstance(regime, Mix):
        a = float(regime.alpha)
        return f"alpha={a:g}" + ("" if regime.source == "fresh" else " fixed")
    return regime.name


def as_arms(arms: Any) -> list[RegimeArm]:
    """Normalises arms: a sequence of :class:`RegimeArm`, :class:`Arm` (the old
    encoding) or regime objects (named by :func:`regime_name`), or a mapping
    name -> regime.

    Example:
        >>> from jaxcollapse.regimes import accumulate, mix, replace
        >>> [a.name for a in as_arms([replace(), mix(0.1, "fresh"), accumulate()])]
        ['replace', 'alpha=0.1', 'accumulate']
        >>> as_arms([replace(), replace()])
        Traceback (most recent call last):
        ...
        ValueError: arm names must be distinct; got ['replace', 'replace']
    """
    if isinstance(arms, Mapping):
        items = [RegimeArm(str(k), v) if not isinstance(v, RegimeArm)
                 else dataclasses.replace(v, name=str(k)) for k, v in arms.items()]
    elif isinstance(arms, Sequence) and not isinstance(arms, str | Arm | RegimeArm):
        items = []
        for a in arms:
            if isinstance(a, RegimeArm):
                items.append(a)
            elif isinstance(a, Arm):
                items.append(RegimeArm(a.name, a.regime))
            else:
                items.append(RegimeArm(regime_name(get_regime(a)), get_regime(a)))
    else:
        raise TypeError(f"arms must be a sequence of arms or regimes, or a mapping "
                        f"name -> regime; got {type(arms).__name__}")
    if not items:
        raise ValueError("arms must not be empty")
    names = [a.name for a in items]
    if len(set(names)) != len(names):
        raise ValueError(f"arm names must be distinct; got {names}")
    return items


def make_arms(alphas=(0.0, 0.1), accumulate: bool = True) -> list[Arm]:
    """Arms for human fractions ``alphas`` (and the accumulate regime), in the
    original encoding; equivalent to ``[mix(a, "fresh") for a in alphas] +
    [accumulate()]`` with the names ``alpha=a`` and ``accumulate``.

    Example:
        >>> [a.name for a in make_arms([0, 0.1])]
        ['alpha=0', 'alpha=0.1', 'accumulate']
        >>> make_arms([1.5])
        Traceback (most recent call last):
        ...
        ValueError: alpha must lie in [0, 1]; got 1.5
    """
    arms = []
    for a in alphas:
        a = float(a)
        if not (math.isfinite(a) and 0 <= a <= 1):
            raise ValueError(f"alpha must lie in [0, 1]; got {a}")
        arms.append(Arm(f"alpha={a:g}", a, False))
    if accumulate:
        arms.append(Arm("accumulate", 0.0, True))
    if len({a.name for a in arms}) != len(arms):
        raise ValueError(f"alphas must be distinct; got {list(alphas)}")
    if not arms:
        raise ValueError("no arms: give at least one alpha or accumulate=True")
    return arms
