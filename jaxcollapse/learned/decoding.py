"""How the language model writes its synthetic text: part of the recorded
configuration, and sweepable as arms of one run.

Real loops never sample their model faithfully: they decode with a temperature,
top-k or top-p (nucleus) truncation, beam search and a repetition penalty (the
seed study's released code decodes with 5 beams and a repetition penalty of 3.0).
A :class:`Decoding` is one such setting; :func:`decoding_arms` crosses regimes
with decodings, so one run compares them on common random numbers.

References:
    Shumailov et al., Nature 631 (2024), THEORY.md section 8; Holtzman et al.,
    ICLR 2020 (top-p); Keskar et al., arXiv 1909.05858 (repetition penalty).
"""

from __future__ import annotations

import dataclasses
import math

from jaxcollapse.learned.arms import RegimeArm, as_arms

DECODINGS = ("sample", "beam")


@dataclasses.dataclass(frozen=True)
class Decoding:
    """One decoding setting of the language model.

    Attributes:
        method: ``"sample"`` (ancestral sampling) or ``"beam"`` (beam search).
        temperature: > 0, logits divided by it (sampling only).
        top_k: keep the k most likely tokens (0: all; sampling only).
        top_p: keep the smallest set of tokens with this much mass, in (0, 1]
            (sampling only).
        repetition_penalty: >= 1; logits of tokens already in the sequence are
            divided by it (multiplied when negative), as in Keskar et al.
        n_beams: beams (beam search only; the seed study used 5).

    Example:
        >>> Decoding("beam", repetition_penalty=3.0).name
        'beam5 rp3'
        >>> Decoding(temperature=0.8, top_p=0.9).name
        'sample T0.8 p0.9'
        >>> Decoding(top_p=0)
        Traceback (most recent call last):
        ...
        ValueError: top_p must lie in (0, 1]; got 0
    """

    method: str = "sample"
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    repetition_penalty: float = 1.0
    n_beams: int = 5

    def __post_init__(self):
        if self.method not in DECODINGS:
            raise ValueError(f"decoding method must be one of {DECODINGS}; "
                             f"got {self.method!r}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be > 0 and finite; got {self.temperature}")
        if not isinstance(self.top_k, int) or self.top_k < 0:
            raise ValueError(f"top_k must be an integer >= 0 (0: no cut); got {self.top_k!r}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must lie in (0, 1]; got {self.top_p}")
        if not (math.isfinite(self.repetition_penalty) and self.repetition_penalty >= 1):
            raise ValueError(f"repetition_penalty must be >= 1 and finite; "
                             f"got {self.repetition_penalty}")
        if not isinstance(self.n_beams, int) or self.n_beams < 1:
            raise ValueError(f"n_beams must be a positive integer; got {self.n_beams!r}")

    @property
    def name(self) -> str:
        """A short name for tables and arm names."""
        if self.method == "beam":
            parts = [f"beam{self.n_beams}"]
        else:
            parts = ["sample"]
            if self.temperature != 1:
                parts.append(f"T{self.temperature:g}")
            if self.top_k:
                parts.append(f"k{self.top_k}")
            if self.top_p != 1:
                parts.append(f"p{self.top_p:g}")
        if self.repetition_penalty != 1:
            parts.append(f"rp{self.repetition_penalty:g}")
        return " ".join(parts)


_FIELDS = {"temperature": float, "top_k": int, "top_p": float, "repetition_penalty": float,
           "n_beams": int}
_SHORT = {"t": "temperature", "k": "top_k", "p": "top_p", "rp": "repetition_penalty",
          "beams": "n_beams"}


def parse_decoding(spec: str, **defaults) -> Decoding:
    """A :class:`Decoding` from ``method[:field=value,...]`` (fields: temperature or
    t, top_k or k, top_p or p, repetition_penalty or rp, n_beams or beams);
    ``defaults`` fill the fields the spec does not name.

    Example:
        >>> parse_decoding("beam:rp=3").name
        'beam5 rp3'
        >>> parse_decoding("sample:t=0.7,k=40").name
        'sample T0.7 k40'
        >>> parse_decoding("sample:x=1")
        Traceback (most recent call last):
        ...
        ValueError: --decoding 'sample:x=1': unknown field 'x'; allowed: ...
    """
    method, _, rest = spec.partition(":")
    kw = {k: v for k, v in defaults.items() if k in _FIELDS}
    for item in filter(None, rest.split(",")):
        k, eq, v = item.partition("=")
        k = _SHORT.get(k.strip(), k.strip())
        if not eq or k not in _FIELDS:
            raise ValueError(f"--decoding {spec!r}: unknown field {k!r}; allowed: "
                             f"{sorted(_FIELDS) + sorted(_SHORT)} as field=value")
        try:
            kw[k] = _FIELDS[k](v)
        except ValueError:
            raise ValueError(f"--decoding {spec!r}: {k} must be a number; got {v!r}") from None
    return Decoding(method.strip(), **kw)


def decoding_arms(arms, decodings) -> list[RegimeArm]:
    """Every arm crossed with every decoding, named ``"<arm> | <decoding>"``; the
    arms of one regime share their random numbers across decodings.

    Example:
        >>> from jaxcollapse.regimes import mix, replace
        >>> [a.name for a in decoding_arms([replace()], [Decoding(), Decoding("beam")])]
        ['replace | sample', 'replace | beam5']
    """
    decodings = list(decodings)
    if not decodings or not all(isinstance(d, Decoding) for d in decodings):
        raise ValueError(f"decodings must be a non-empty sequence of Decoding; "
                         f"got {decodings!r}")
    if len({d for d in decodings}) != len(decodings):
        raise ValueError(f"decodings must be distinct; got {[d.name for d in decodings]}")
    return as_arms([RegimeArm(f"{a.name} | {d.name}", a.regime,
                              a.settings + (("decoding", d),))
                    for a in as_arms(arms) for d in decodings])


def format_text_table(runs) -> str:
    """A generation x arm table of the unigram entropy (nats) and the lost human
    mass of each generation's synthetic text (mean over seeds): how decoding
    narrows what the next generation trains on (THEORY.md section 4).

    Example:
        >>> r = {"replace | beam5": [dict(generation=0), dict(generation=1,
        ...      synthetic=dict(entropy=4.5, lost_mass=0.125))]}
        >>> print(format_text_table(r))
        gen  arm                           entropy  lost mass
          1  replace | beam5                4.5000     0.1250
    """
    import numpy as np

    runs = [runs] if isinstance(runs, dict) else list(runs)
    arms = list(runs[0])
    width = max(28, *(len(a) for a in arms))
    lines = [f"gen  {'arm':{width}s}  {'entropy':>8s}  {'lost mass':>9s}"]
    for g in range(1, max(len(r) for r in runs[0].values())):
        for a in arms:
            vals = [r[a][g]["synthetic"] for r in runs
                    if len(r[a]) > g and r[a][g].get("synthetic")]
            if vals:
                lines.append(f"{g:3d}  {a:{width}s}  "
                             f"{np.mean([v['entropy'] for v in vals]):8.4f}  "
                             f"{np.mean([v['lost_mass'] for v in vals]):9.4f}")
    return "\n".join(lines)
