"""The loop-step flags of ``jaxcollapse run`` (issue 15): parsing, validation that names
the flag, and the theory printed beside the Monte Carlo.

* ``--sampling-bias LAM`` (gaussian, gmm, kde): :func:`jaxcollapse.steps.sampling_bias`.
* ``--temperature TAU --top-k K --top-p P --curate K --reward SPEC --eta ETA``
  (categorical): the steps apply in one fixed order, whatever the order on the command
  line: temperature, top-k, top-p (the order of
  :func:`jaxcollapse.theory.decoding.decode_map`, as common decoders do), then curation
  (the curator chooses among candidates decoded that way). A share ``1 - ETA`` of each
  training set comes from the human law of generation 0.

A reward ``SPEC`` is ``linear:SCALE`` (``r_i = SCALE * i / (K - 1)`` for categories
``i = 0..K-1``; with a Zipf start the rare categories have the high rewards when
SCALE > 0), or the path of a ``.npy`` file holding one finite reward per category.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import steps as jst
from jaxcollapse.theory import curation as tc
from jaxcollapse.theory import decoding as td

ORDER = ("temperature", "top_k", "top_p", "curate")


def add_bias_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--sampling-bias LAM``: every synthetic draw comes from the model with ``what``
    shrunk by LAM in (0, 1]."""
    p.add_argument("--sampling-bias", type=float, default=None, metavar="LAM",
                   help=f"sample each generation with {what} times LAM in (0, 1] (the MAD "
                        f"paper's sampling bias; default: none)")


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def bias_step(args) -> jst.SamplingBias | None:
    """The step of ``--sampling-bias`` (None when not given); ``ValueError`` naming the
    flag for a value outside (0, 1].

    Example:
        >>> import argparse
        >>> bias_step(argparse.Namespace(sampling_bias=1.5))
        Traceback (most recent call last):
        ...
        ValueError: --sampling-bias must be in (0, 1] (it shrinks the sampling law; ...); got 1.5
    """
    lam = getattr(args, "sampling_bias", None)
    if lam is None:
        return None
    if not _finite(lam) or not 0.0 < lam <= 1.0:
        raise ValueError(f"--sampling-bias must be in (0, 1] (it shrinks the sampling law; "
                         f"1 is faithful sampling); got {lam}")
    return jst.sampling_bias(lam)


def add_categorical_arguments(p: argparse.ArgumentParser) -> None:
    """The decoding and curation flags of ``run categorical``."""
    g = p.add_argument_group(
        "loop steps (applied in the order temperature, top-k, top-p, curation, whatever "
        "the order given)")
    g.add_argument("--temperature", type=float, default=None, metavar="TAU",
                   help="sample from q ∝ p^(1/TAU), TAU > 0 (default: 1, faithful)")
    g.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="sample from the K most likely categories, 1 <= K <= --categories")
    g.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="nucleus sampling with mass P in (0, 1]")
    g.add_argument("--curate", type=int, default=None, metavar="K",
                   help="keep one of K >= 2 draws by the Bradley–Terry choice on --reward")
    g.add_argument("--reward", default=None, metavar="SPEC",
                   help="reward for --curate: linear:SCALE (r_i = SCALE i/(K-1)) or a .npy "
                        "file of one finite reward per category")
    g.add_argument("--eta", type=float, default=None, metavar="ETA",
                   help="synthetic share in [0, 1] for --curate; 1 - ETA of each training set "
                        "comes from the generation-0 law (default: 1)")


def parse_reward(spec: str, n_categories: int) -> np.ndarray:
    """The reward of ``--reward SPEC`` for ``n_categories`` categories, shape ``(K,)``.

    Example:
        >>> parse_reward("linear:2", 3).tolist()
        [0.0, 1.0, 2.0]
        >>> parse_reward("quadratic:2", 3)
        Traceback (most recent call last):
        ...
        ValueError: --reward must be linear:SCALE (a finite SCALE) or ...; got 'quadratic:2'
    """
    allowed = (f"linear:SCALE (a finite SCALE) or the path of a .npy file of {n_categories} "
               f"finite rewards")
    if spec.startswith("linear:"):
        try:
            scale = float(spec.split(":", 1)[1])
        except ValueError:
            scale = math.nan
        if not math.isfinite(scale):
            raise ValueError(f"--reward must be {allowed}; got {spec!r}")
        return scale * np.arange(n_categories, dtype=np.float64) / (n_categories - 1)
    if not spec.endswith(".npy"):
        raise ValueError(f"--reward must be {allowed}; got {spec!r}")
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"--reward {spec!r}: no such file (give {allowed})")
    try:
        r = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"--reward {spec!r} is not a readable .npy file: {e}") from None
    if r.shape != (n_categories,) or not np.issubdtype(r.dtype, np.number):
        raise ValueError(f"--reward {spec!r} must hold one number per category, shape "
                         f"({n_categories},); got shape {r.shape}, dtype {r.dtype}")
    r = r.astype(np.float64)
    if not np.all(np.isfinite(r)):
        raise ValueError(f"--reward {spec!r} must hold finite rewards; got "
                         f"{int(np.sum(~np.isfinite(r)))} non-finite values")
    return r


class CategoricalSteps:
    """The validated categorical steps of the command line (``steps`` in
    :data:`ORDER`, possibly empty), the reward, and the settings for the record."""

    def __init__(self, args, n_categories: int, probs0) -> None:
        K = n_categories
        tau, k, p = args.temperature, args.top_k, args.top_p
        ck, spec, eta = args.curate, args.reward, args.eta
        if tau is not None and not (_finite(tau) and tau > 0):
            raise ValueError(f"--temperature must be a finite number > 0; got {tau}")
        if k is not None and not 1 <= k <= K:
            raise ValueError(f"--top-k must be an integer in [1, --categories = {K}]; "
                             f"got {k}")
        if p is not None and not (_finite(p) and 0.0 < p <= 1.0):
            raise ValueError(f"--top-p must be in (0, 1]; got {p}")
        if ck is None:
            for flag, v in (("--reward", spec), ("--eta", eta)):
                if v is not None:
                    raise ValueError(f"{flag} applies to --curate only; got {flag} {v} "
                                     f"without --curate")
        else:
            if ck < 2:
                raise ValueError(f"--curate must be an integer >= 2 (candidates per kept "
                                 f"draw); got {ck}")
            if spec is None:
                raise ValueError("--curate needs --reward (linear:SCALE or a .npy file of "
                                 "one reward per category)")
            if eta is not None and not (_finite(eta) and 0.0 <= eta <= 1.0):
                raise ValueError(f"--eta must be in [0, 1] (the synthetic share); got {eta}")
        self.tau, self.k, self.p, self.curate_k = tau, k, p, ck
        self.eta = 1.0 if eta is None else float(eta)
        self.reward = None if ck is None else parse_reward(spec, K)
        self.probs0 = np.asarray(probs0, np.float64)
        chosen = []
        if tau is not None:
            chosen.append(jst.temperature(tau))
        if k is not None:
            chosen.append(jst.top_k(k))
        if p is not None:
            chosen.append(jst.top_p(p))
        if ck is not None:
            ref = self.probs0 if self.eta < 1.0 else None
            chosen.append(jst.curate(jnp.asarray(self.reward), ck, self.eta,
                                     None if ref is None else jnp.asarray(ref)))
        self.steps = tuple(chosen)

    def __bool__(self) -> bool:
        return bool(self.steps)

    def record(self, spec: str | None) -> dict:
        """The settings as they go into ``summary.json`` (None where not used)."""
        return dict(temperature=self.tau, top_k=self.k, top_p=self.p,
                    curate=self.curate_k, reward=spec,
                    eta=None if self.curate_k is None else self.eta,
                    step_order=[s.name for s in self.steps])

    def describe(self) -> str:
        parts = []
        if self.tau is not None:
            parts.append(f"temperature {self.tau:g}")
        if self.k is not None:
            parts.append(f"top-k {self.k}")
        if self.p is not None:
            parts.append(f"top-p {self.p:g}")
        if self.curate_k is not None:
            parts.append(f"curate K={self.curate_k} eta={self.eta:g}")
        return " -> ".join(parts)

    def theory_path(self, n_generations: int) -> np.ndarray:
        """The deterministic (M -> ∞) loop ``p_{t+1} = F(p_t)``, ``(G + 1, K)``, with F
        the composed expected map from the theory modules: E[p_{t+1} | p_t] = F(p_t)
        exactly at every M (one generation ahead)."""
        p0 = jnp.asarray(self.probs0)
        r = None if self.reward is None else jnp.asarray(self.reward, p0.dtype)
        return np.asarray(_theory_path(
            p0, jnp.asarray(1.0 if self.tau is None else self.tau, p0.dtype),
            jnp.asarray(1.0 if self.p is None else self.p, p0.dtype),
            r if r is not None else jnp.zeros_like(p0), jnp.asarray(self.eta, p0.dtype),
            n=int(n_generations), k=self.k, truncate_p=self.p is not None,
            curate_k=self.curate_k))


def _theory_path_impl(p0, tau, p, reward, eta, *, n, k, truncate_p, curate_k):
    def step(q, _):
        q = td.decode_map(q, tau, k, p if truncate_p else None)
        if curate_k is not None:
            q = tc._next_law(q, reward, float(curate_k), eta, p0)
        return q, q

    _, qs = jax.lax.scan(step, p0, None, length=n)
    return jnp.concatenate([p0[None], qs])


_theory_path = jax.jit(_theory_path_impl,
                       static_argnames=("n", "k", "truncate_p", "curate_k"))


def reward_metric(reward: np.ndarray):
    """A ``simulate`` metric: the expected reward ``E_{p_t} r`` of each fit."""
    r = jnp.asarray(reward)

    def expected_reward(params, params0):
        del params0
        return jnp.sum(params.probs * r.astype(params.probs.dtype))

    return expected_reward
