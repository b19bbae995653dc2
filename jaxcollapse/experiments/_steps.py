"""The loop-step flags of ``jaxcollapse run`` (issue 15): parsing, validation that names
the flag, and the theory printed beside the Monte Carlo.

* ``--sampling-bias LAM`` (gaussian, gmm, kde): :func:`jaxcollapse.steps.sampling_bias`.
* ``--temperature TAU --top-k K --top-p P --verify TPR,FPR --curate K --reward SPEC
  --eta ETA`` (categorical): the steps apply in one fixed order, whatever the order on
  the command line: temperature, top-k, top-p (the order of
  :func:`jaxcollapse.theory.decoding.decode_map`, as common decoders do), then the
  verifier (category 0 is "right": a right draw is kept with probability TPR, a wrong
  one with FPR; :func:`jaxcollapse.steps.verify`), then curation (the curator chooses
  among candidates decoded and verified that way). A share ``1 - ETA`` of each training
  set comes from the human law of generation 0 (it is not verified).

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
from jaxcollapse.experiments._prdc import add_prdc_argument, check_prdc
from jaxcollapse.theory import curation as tc
from jaxcollapse.theory import decoding as td
from jaxcollapse.theory import verification as tv

ORDER = ("temperature", "top_k", "top_p", "verify", "curate")
#: the largest M for which the exact finite-M law of q_t (an (M + 1)^2 transition
#: matrix) is computed for ``--verify``
MAX_EXACT_M = 2000


def add_bias_argument(p: argparse.ArgumentParser, what: str) -> None:
    """``--sampling-bias LAM``: every synthetic draw comes from the model with ``what``
    shrunk by LAM in (0, 1]."""
    p.add_argument("--sampling-bias", type=float, default=None, metavar="LAM",
                   help=f"sample each generation with {what} times LAM in (0, 1] (the MAD "
                        f"paper's sampling bias; default: none)")


def add_step_arguments(p: argparse.ArgumentParser, what: str, *, prdc: bool = True) -> None:
    """The flags that :func:`run_step` reads, in the parser of a parametric experiment:
    ``--prdc N`` where the experiment has it (``prdc``, as for :func:`run_step`), then
    ``--sampling-bias LAM`` with ``what`` shrunk (:func:`add_bias_argument`).

    Example:
        >>> import argparse
        >>> p = argparse.ArgumentParser(); add_step_arguments(p, "the covariance")
        >>> a = p.parse_args(["--prdc", "200", "--sampling-bias", "0.9"])
        >>> a.prdc, a.sampling_bias
        (200, 0.9)
    """
    if prdc:
        add_prdc_argument(p)
    add_bias_argument(p, what)


def _finite(value: float) -> bool:
    return value is not None and math.isfinite(value)


def run_step(args, *, prdc: bool = True) -> jst.SamplingBias | None:
    """The start of a parametric experiment's ``run``: checks ``--chains`` (>= 1) and
    ``--prdc`` (where the experiment has it), and returns the step of
    ``--sampling-bias``.

    Example:
        >>> import argparse
        >>> run_step(argparse.Namespace(chains=0, prdc=0, sampling_bias=None))
        Traceback (most recent call last):
        ...
        ValueError: --chains must be >= 1; got 0
    """
    if args.chains < 1:
        raise ValueError(f"--chains must be >= 1; got {args.chains}")
    if prdc:
        check_prdc(args.prdc)
    return bias_step(args)


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
        "loop steps (applied in the order temperature, top-k, top-p, verify, curation, "
        "whatever the order given)")
    g.add_argument("--temperature", type=float, default=None, metavar="TAU",
                   help="sample from q ∝ p^(1/TAU), TAU > 0 (default: 1, faithful)")
    g.add_argument("--top-k", type=int, default=None, metavar="K",
                   help="sample from the K most likely categories, 1 <= K <= --categories")
    g.add_argument("--top-p", type=float, default=None, metavar="P",
                   help="nucleus sampling with mass P in (0, 1]")
    g.add_argument("--verify", default=None, metavar="TPR,FPR",
                   help="a verifier on category 0 (\"right\"): keep a right draw with "
                        "probability TPR, a wrong one with FPR (rates in [0, 1], not both 0)")
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


def parse_rates(spec: str) -> tuple[float, float]:
    """The verifier's ``(tpr, fpr)`` of ``--verify TPR,FPR``.

    Example:
        >>> parse_rates("0.9,0.2")
        (0.9, 0.2)
        >>> parse_rates("0.9")
        Traceback (most recent call last):
        ...
        ValueError: --verify must be TPR,FPR (two rates in [0, 1], not both 0); got '0.9'
    """
    allowed = "TPR,FPR (two rates in [0, 1], not both 0)"
    parts = str(spec).split(",")
    try:
        a, b = (float(x) for x in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        a = b = math.nan
    if not (_finite(a) and _finite(b)):
        raise ValueError(f"--verify must be {allowed}; got {spec!r}")
    for name, v in (("TPR", a), ("FPR", b)):
        if not 0.0 <= v <= 1.0:
            raise ValueError(f"--verify {name} must be in [0, 1]; got {spec!r}")
    if a == 0.0 and b == 0.0:
        raise ValueError(f"--verify TPR and FPR must not both be 0 (the verifier would keep "
                         f"nothing); got {spec!r}")
    return a, b


def verify_exact(q0: float, tpr: float, fpr: float, m: int, n_generations: int):
    """E q_t and E[draws per kept draw] of the verified loop at finite M, t = 0..n.

    ``M q_{t+1} | q_t ~ Binomial(M, f(q_t))`` with ``f(q) = a q/(a q + b(1 - q))``
    (:mod:`jaxcollapse.theory.verification`); generation 1 starts from the exact
    ``q_0`` (off the grid k/M), later ones from the chain on {0, 1/M, ..., 1}
    (``verifier_q_distribution`` rounds ``q_0`` to the grid instead). The cost of
    sampling generation t + 1 is ``1/(a q_t + b(1 - q_t))`` draws per kept draw.

    Returns:
        ``(mean_q, mean_cost)``, each of shape ``(n + 1,)`` (NumPy float64).

    Example:
        >>> q, c = verify_exact(0.5, 0.9, 0.1, 10, 1)
        >>> [round(float(x), 6) for x in q], round(float(c[0]), 6)
        ([0.5, 0.9], 2.0)
    """
    from scipy import stats

    grid = np.arange(m + 1) / m
    f_grid = np.asarray(tv.verifier_kept_accuracy(grid, tpr, fpr), np.float64)
    acc = np.asarray(tv.verifier_acceptance(grid, tpr, fpr), np.float64)
    with np.errstate(divide="ignore"):
        cost = np.where(acc > 0, 1.0 / np.where(acc > 0, acc, 1.0), np.inf)
    f0 = float(tv.verifier_kept_accuracy(q0, tpr, fpr))
    mean_q, mean_c = [q0], [float(tv.verifier_cost(q0, tpr, fpr))]
    if n_generations == 0:
        return np.array(mean_q), np.array(mean_c)
    pi = stats.binom.pmf(np.arange(m + 1), m, f0)
    trans = stats.binom.pmf(np.arange(m + 1)[None, :], m, f_grid[:, None]) \
        if n_generations > 1 else None
    for t in range(1, n_generations + 1):
        if t > 1:
            pi = pi @ trans
        mean_q.append(float(pi @ grid))
        mean_c.append(float(np.sum(np.where(pi > 0, pi * cost, 0.0))))
    return np.array(mean_q), np.array(mean_c)


class CategoricalSteps:
    """The validated categorical steps of the command line (``steps`` in
    :data:`ORDER`, possibly empty), the reward, and the settings for the record."""

    def __init__(self, args, n_categories: int, probs0) -> None:
        K = n_categories
        tau, k, p = args.temperature, args.top_k, args.top_p
        ck, spec, eta = args.curate, args.reward, args.eta
        rates = getattr(args, "verify", None)
        self.tpr, self.fpr = (None, None) if rates is None else parse_rates(rates)
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
        if self.tpr is not None:
            chosen.append(jst.verify(tpr=self.tpr, fpr=self.fpr))
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
                    verify_tpr=self.tpr, verify_fpr=self.fpr,
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
        if self.tpr is not None:
            parts.append(f"verify TPR={self.tpr:g} FPR={self.fpr:g}")
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
            jnp.asarray(0.0 if self.tpr is None else self.tpr, p0.dtype),
            jnp.asarray(0.0 if self.fpr is None else self.fpr, p0.dtype),
            n=int(n_generations), k=self.k, truncate_p=self.p is not None,
            curate_k=self.curate_k, verified=self.tpr is not None))

    def decoded_right(self, probs) -> jax.Array:
        """The probability of category 0 under the law the verifier sees (``probs``
        decoded by the steps before it), shape ``probs.shape[:-1]``."""
        tau = 1.0 if self.tau is None else self.tau
        dec = td.decode_map(probs, jnp.asarray(tau, probs.dtype), self.k,
                            None if self.p is None else jnp.asarray(self.p, probs.dtype))
        return dec[..., 0]

    def verify_theory(self, path: np.ndarray, m: int, regime: str = "replace") -> dict:
        """Theory for ``--verify`` at generations 0..G: ``right_inf`` (p_t[0] of the
        deterministic M -> inf path), ``cost_inf`` (draws per kept draw sampling from
        it) and, when the verifier is the only step, the regime is replace and
        M <= :data:`MAX_EXACT_M`, the exact finite-M ``right_exact`` and ``cost_exact``
        (:func:`verify_exact`)."""
        a, b = self.tpr, self.fpr
        pth = jnp.asarray(path)
        q = np.asarray(jax.vmap(self.decoded_right)(pth), np.float64)
        out = dict(right_inf=np.asarray(path[:, 0], np.float64),
                   cost_inf=np.asarray(tv.verifier_cost(q, a, b), np.float64))
        if len(self.steps) == 1 and regime == "replace" and m <= MAX_EXACT_M:
            out["right_exact"], out["cost_exact"] = verify_exact(
                float(self.probs0[0]), a, b, m, path.shape[0] - 1)
        return out


def _theory_path_impl(p0, tau, p, reward, eta, tpr, fpr, *, n, k, truncate_p, curate_k,
                      verified):
    def step(q, _):
        q = td.decode_map(q, tau, k, p if truncate_p else None)
        if verified:
            keep = jnp.full_like(q, fpr).at[0].set(tpr)
            kept = q * keep
            acc = jnp.sum(kept)
            q = jnp.where(acc > 0, kept / jnp.where(acc > 0, acc, 1.0), q)
        if curate_k is not None:
            q = tc._next_law(q, reward, float(curate_k), eta, p0)
        return q, q

    _, qs = jax.lax.scan(step, p0, None, length=n)
    return jnp.concatenate([p0[None], qs])


_theory_path = jax.jit(_theory_path_impl,
                       static_argnames=("n", "k", "truncate_p", "curate_k", "verified"))


def reward_metric(reward: np.ndarray):
    """A ``simulate`` metric: the expected reward ``E_{p_t} r`` of each fit."""
    r = jnp.asarray(reward)

    def expected_reward(params, params0):
        del params0
        return jnp.sum(params.probs * r.astype(params.probs.dtype))

    return expected_reward


def verify_metrics(loop: CategoricalSteps) -> dict:
    """``simulate`` metrics for ``--verify``: ``right`` (p_t[0], the share of right
    draws the fit makes) and ``cost`` (draws per kept draw when sampling generation
    t + 1 from the fit: 1/(a q + b(1 - q)) at the decoded law)."""
    a, b = loop.tpr, loop.fpr

    def right(params, params0):
        del params0
        return params.probs[..., 0]

    def cost(params, params0):
        del params0
        q = loop.decoded_right(params.probs)
        acc = a * q + b * (1.0 - q)
        return jnp.where(acc > 0, 1.0 / jnp.where(acc > 0, acc, 1.0), jnp.inf)

    return dict(right=right, cost=cost)
