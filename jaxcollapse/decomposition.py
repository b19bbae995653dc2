"""The three sources of model-collapse error, each switched on alone (THEORY.md §7).

:func:`decompose` runs one recursion (fit a one-dimensional Gaussian, sample from
it, refit) in four configurations and reports each generation's distance to the
truth ``p0``:

=================  ==================  ===============  ============================
arm                truth p0            data a gen.      fitter
=================  ==================  ===============  ============================
``statistical``    Gaussian            M draws          exact (mean, unbiased var)
``expressivity``   2-comp. mixture     N_pop draws      exact Gaussian moment match
``approximation``  Gaussian            N_pop draws      a few gradient steps on the
                                                        NLL from a poor start
``all``            2-comp. mixture     M draws          a few gradient steps
=================  ==================  ===============  ============================

Why each isolates one source:

* statistical approximation: the family contains the truth and the fit is the
  exact sufficient-statistic estimator, so the only error is finite M. The curve
  follows THEORY.md section 2 (``E W2² ≈ (3/2) n σ²/M``) and vanishes as M → ∞.
* functional expressivity: the data are population sized (N_pop ≫ M, sampling
  error ~1/N_pop) and the fit is exact, but a Gaussian cannot represent the
  mixture: generation 1 jumps to the best Gaussian approximation (the moment
  match) and stays there. The error is present for any M.
* functional approximation: the truth is a Gaussian (so the family can represent
  it) and the data are population sized, but the fitter is imperfect (gradient
  descent on the NLL stopped after ``sgd_steps`` steps from a poor start, which
  every generation restarts from, as trained generators do); its small bias
  towards the start compounds over generations, again for any M.
* all: a mixture truth, M draws and the imperfect fitter together.

The gradient fitter works in ``(mu, log s)`` and bounds each coordinate's step by
its curvature: the step is ``learning_rate * gradient / max(1, curvature)`` with
the curvatures ``1/s²`` (mu) and ``2 (v + (m - mu)²)/s²`` (log s) of the NLL of
data with mean m and variance v. Where the curvature is at most 1 this is plain
gradient descent; where it is larger it is ``learning_rate`` times a Newton step
(half of one at the default 0.5), so the fit approaches the MLE geometrically and
after ``sgd_steps`` steps from the poor start still stops short of it (the
functional approximation error). Plain descent (the mean step
``lr (m - mu)/s²``) diverges once the variance has collapsed below ``lr / 2``,
which the finite-M chains of the ``all`` arm reach; the bounded step multiplies
the mean error by ``1 - lr min(1, 1/s²)`` (of modulus < 1 for ``0 < lr < 2``)
and moves ``log s`` by at most ``lr`` a step, so every chain stays finite.

The Gaussian truth of the statistical and approximation arms is the moment-
matched Gaussian of the mixture, so all arms live on one scale. Distances: W2²
between Gaussians for the Gaussian-truth arms and the L2 distance ∫(p - q)²
between densities for the mixture-truth arms (closed form, THEORY.md §6).

Gaussian generations draw their sufficient statistics exactly
(:class:`jaxcollapse.Gaussian` with ``method="exact"``), so only generation 1 of
the mixture arms materialises samples.

References:
    Shumailov et al., AI models collapse when trained on recursively generated
    data, Nature 631 (2024) (the three sources). THEORY.md sections 2, 6, 7.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from jaxcollapse._memory import check_memory
from jaxcollapse._validate import check_key
from jaxcollapse.families.gaussian import Gaussian, GaussianParams

__all__ = ["ARMS", "DecompositionResult", "Mixture", "decompose", "gaussian_l2sq",
           "mixture_moments"]

ARMS = ("statistical", "expressivity", "approximation", "all")
_METRIC = {"statistical": "w2sq", "expressivity": "l2sq", "approximation": "w2sq",
           "all": "l2sq"}


class Mixture(NamedTuple):
    """A one-dimensional Gaussian mixture.

    Attributes:
        weights: ``(k,)``, positive, summing to 1.
        means: ``(k,)``.
        stds: ``(k,)``, positive.

    Example:
        >>> m = Mixture([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
        >>> float(sum(w * (s**2 + mu**2) for w, mu, s in zip(*m)))  # its variance
        5.0
    """

    weights: Any
    means: Any
    stds: Any


class DecompositionResult(NamedTuple):
    """Output of :func:`decompose`.

    Attributes:
        distance: arm -> ``(n_chains, n_generations + 1)`` distance to p0
            (generation 0 is p0 itself: 0).
        metric: arm -> ``"w2sq"`` (W2² between Gaussians) or ``"l2sq"``
            (∫(p - q)² between densities).
        truth_mean: mean of the mixture (and of the Gaussian truth).
        truth_var: variance of the mixture (and of the Gaussian truth).

    Example:
        >>> import numpy as np
        >>> r = DecompositionResult({"statistical": np.zeros((2, 3))}, {"statistical": "w2sq"},
        ...                         0.0, 5.0)
        >>> r.distance["statistical"].shape, r.metric["statistical"], r.truth_var
        ((2, 3), 'w2sq', 5.0)
    """

    distance: dict
    metric: dict
    truth_mean: float
    truth_var: float


def mixture_moments(mixture: Mixture) -> tuple[jax.Array, jax.Array]:
    """Mean and variance of a 1-D Gaussian mixture (its moment-matched Gaussian).

    References:
        THEORY.md section 7 (the best Gaussian approximation).

    Example:
        >>> m, v = mixture_moments(Mixture([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0]))
        >>> float(m), float(v)
        (0.0, 5.0)
    """
    w, mu, s = (jnp.asarray(a, dtype=jnp.result_type(float)) for a in mixture)
    mean = jnp.sum(w * mu)
    return mean, jnp.sum(w * (s**2 + mu**2)) - mean**2


def _npdf(x, var):
    return jnp.exp(-0.5 * x * x / var) / jnp.sqrt(2 * jnp.pi * var)


def gaussian_l2sq(mixture: Mixture, mean: Any, var: Any) -> jax.Array:
    """``∫ (p - q)²`` between a 1-D mixture ``p`` and the Gaussian ``q = N(mean, var)``.

    Uses ``∫ N(x; a, s) N(x; b, t) dx = N(a; b, s + t)`` term by term.

    References:
        Shumailov et al. (2024) (the GMM metric); THEORY.md section 6.

    Example:
        >>> mix = Mixture([1.0], [0.0], [1.0])
        >>> float(gaussian_l2sq(mix, 0.0, 1.0))
        0.0
    """
    w, mu, s = (jnp.asarray(a, dtype=jnp.result_type(float)) for a in mixture)
    v = s**2
    pp = jnp.sum(w[:, None] * w[None, :] * _npdf(mu[:, None] - mu[None, :],
                                                 v[:, None] + v[None, :]))
    qq = 1.0 / jnp.sqrt(4 * jnp.pi * var)
    pq = jnp.sum(w * _npdf(mu - mean, v + var))
    return jnp.maximum(pp + qq - 2 * pq, 0.0)


def _w2sq(mean, var, mean0, var0):
    return (mean - mean0) ** 2 + (jnp.sqrt(var) - jnp.sqrt(var0)) ** 2


def _sgd_fit(mean, var_mle, init, lr, steps):
    # Gradient descent on the mean Gaussian NLL of the data,
    #   L(mu, log s) = log s + (var_mle + (mean - mu)²) / (2 s²),
    # which depends on the data only through their mean and (MLE) variance: exactly
    # full-batch descent at O(1) a step. Each step is lr * gradient / max(1, Hessian
    # diagonal) (1/s² for mu, 2r for log s with r = (var_mle + (mean - mu)²)/s²),
    # the curvature-bounded step of the module docstring: plain descent diverges
    # once s² < lr/2, this one cannot for 0 < lr < 2.
    log_s0 = jnp.log(init[1])

    def body(_, theta):
        mu, log_s = theta
        d = mean - mu
        # r in log space: 0 (not NaN) for a zero variance at any s
        r = jnp.exp(jnp.log(var_mle + d * d) - 2 * log_s)
        # (1 - r) / max(1, 2r), the scaled d L / d log s, without inf / inf
        g_log_s = jnp.where(r > 0.5, 0.5 / r - 0.5, 1.0 - r)
        return mu + lr * d * jnp.minimum(1.0, jnp.exp(-2 * log_s)), log_s - lr * g_log_s

    mu, log_s = lax.fori_loop(0, steps, body, (init[0], log_s0))
    return mu, jnp.exp(2 * log_s)


def _mixture_moments_of_draws(key, mixture, n):
    kc, kz = jax.random.split(key)
    w, mu, s = mixture
    comp = jax.random.categorical(kc, jnp.log(w), shape=(n,))
    x = mu[comp] + s[comp] * jax.random.normal(kz, (n,), mu.dtype)
    m = jnp.mean(x)
    ss = jnp.sum((x - m) ** 2)
    return m, ss / (n - 1), ss / n


@functools.partial(jax.jit, static_argnames=("arms", "n_generations", "n_samples",
                                             "n_population", "n_chains"))
def _run(key, mixture, init, lr, steps, *, arms, n_generations, n_samples, n_population,
         n_chains):
    fam = Gaussian(dim=1, method="exact")
    mean0, var0 = mixture_moments(mixture)
    mixture = Mixture(*(jnp.asarray(a, mean0.dtype) for a in mixture))

    def one_chain(arm, chain_key):
        mixture_truth = _METRIC[arm] == "l2sq"
        n = n_population if arm in ("expressivity", "approximation") else n_samples
        sgd = arm in ("approximation", "all")

        def fit(m, v_unb, v_mle):
            return _sgd_fit(m, v_mle, init, lr, steps) if sgd else (m, v_unb)

        def dist(m, v):
            return gaussian_l2sq(mixture, m, v) if mixture_truth else _w2sq(m, v, mean0, var0)

        k1 = jax.random.fold_in(chain_key, 1)
        if mixture_truth:
            m, v_unb, v_mle = _mixture_moments_of_draws(k1, mixture, n)
        else:
            st = fam.sample_stats(k1, GaussianParams(mean0[None], var0[None, None]), n)
            m, v_unb, v_mle = st.mean[0], st.scatter[0, 0] / (n - 1), st.scatter[0, 0] / n
        m, v = fit(m, v_unb, v_mle)

        def step(carry, t):
            m, v = carry
            st = fam.sample_stats(jax.random.fold_in(chain_key, t),
                                  GaussianParams(m[None], v[None, None]), n)
            m, v = fit(st.mean[0], st.scatter[0, 0] / (n - 1), st.scatter[0, 0] / n)
            return (m, v), dist(m, v)

        _, rest = lax.scan(step, (m, v), jnp.arange(2, n_generations + 1))
        return jnp.concatenate([jnp.zeros((1,), m.dtype), dist(m, v)[None], rest])

    out = {}
    for i, arm in enumerate(arms):
        keys = jax.vmap(lambda c, i=i: jax.random.fold_in(jax.random.fold_in(key, i), c))(
            jnp.arange(n_chains))
        out[arm] = jax.vmap(functools.partial(one_chain, arm))(keys)
    return out, mean0, var0


def _check_int(name, v, lo):
    if isinstance(v, bool) or not isinstance(v, int | np.integer):
        raise TypeError(f"{name} must be an integer; got {v!r}")
    if v < lo:
        raise ValueError(f"{name} must be >= {lo}; got {v}")
    return int(v)


def _check_mixture(mixture) -> Mixture:
    if not isinstance(mixture, Mixture):
        raise TypeError(f"mixture must be a Mixture(weights, means, stds); got {mixture!r}")
    w, mu, s = (np.asarray(a, dtype=np.float64) for a in mixture)
    if not (w.ndim == mu.ndim == s.ndim == 1 and w.shape == mu.shape == s.shape
            and w.size >= 1):
        raise ValueError(f"mixture weights, means and stds must be 1-D of one length; got "
                         f"shapes {w.shape}, {mu.shape}, {s.shape}")
    if not (np.all(np.isfinite(w)) and np.all(np.isfinite(mu)) and np.all(np.isfinite(s))):
        raise ValueError("mixture must be finite; got NaN or inf")
    if np.any(w <= 0) or abs(w.sum() - 1) > 1e-6:
        raise ValueError(f"mixture.weights must be > 0 and sum to 1; got {w.tolist()}")
    if np.any(s <= 0):
        raise ValueError(f"mixture.stds must be > 0; got {s.tolist()}")
    return mixture


def _check_memory(arms, n_generations, n_samples, n_population, n_chains, itemsize):
    """Refuses a run whose memory cannot fit, before compiling: per chain and arm the
    distances (``n_generations + 1``) and, for the mixture-truth arms, generation 1's
    draws (component indices, normals and points: 3 arrays of the arm's data size);
    the Gaussian-truth arms draw sufficient statistics (O(1))."""
    per_chain = 0
    for arm in arms:
        per_chain += (n_generations + 1) * itemsize
        if _METRIC[arm] == "l2sq":
            n = n_population if arm == "expressivity" else n_samples
            per_chain += 3 * n * itemsize
    mixture_arms = [a for a in arms if _METRIC[a] == "l2sq"]
    check_memory(
        n_chains * per_chain,
        f"decompose ({n_chains:,} chains, n_population={n_population:,}, arms "
        f"{list(arms)})",
        "use fewer chains (n_chains) or a smaller n_population"
        + (f" (the mixture-truth arms {mixture_arms} draw that many points per chain "
           f"at generation 1; the Gaussian-truth arms draw sufficient statistics "
           f"and need no points)" if mixture_arms else ""))


def decompose(key: jax.Array, *, n_generations: int, n_samples: int = 100,
              n_population: int = 20_000, n_chains: int = 256,
              mixture: Mixture | None = None, sgd_steps: int = 50,
              learning_rate: float = 0.5, sgd_init: tuple[float, float] | None = None,
              arms: Sequence[str] = ARMS) -> DecompositionResult:
    """Runs the recursion with each source of error switched on alone, and all together.

    Args:
        key: a PRNG key; arm i uses ``fold_in(key, i)`` and chain c of it
            ``fold_in(., c)``.
        n_generations: generations after generation 0 (>= 1).
        n_samples: M, the training-set size of the finite-sample arms (>= 2).
        n_population: N_pop, the "population-sized" training set of the
            expressivity and approximation arms (>= 2; choose N_pop ≫ M).
        n_chains: chains per arm.
        mixture: the two-component (or any k-component) mixture truth; default
            ``0.5 N(-2, 1) + 0.5 N(2, 1)``.
        sgd_steps: gradient steps of the imperfect fitter (each generation restarts
            from ``sgd_init``).
        learning_rate: the gradient step size, in (0, 2) (the bounded step is
            stable there; see the module docstring).
        sgd_init: the poor start ``(mean, std)`` of the imperfect fitter; default
            ``(truth mean + truth std, truth std / 2)``.
        arms: which of :data:`ARMS` to run.

    Returns:
        A :class:`DecompositionResult` (distances per arm, chain and generation).

    References:
        Shumailov et al., Nature 631 (2024); THEORY.md section 7.

    Example:
        >>> import jax
        >>> res = decompose(jax.random.key(0), n_generations=5, n_chains=4,
        ...                 n_population=1000, arms=("expressivity",))
        >>> res.distance["expressivity"].shape, res.metric["expressivity"]
        ((4, 6), 'l2sq')
        >>> float(res.distance["expressivity"][0, 0])
        0.0
    """
    key = check_key(key)
    if key.shape != ():
        raise ValueError(f"key must be a single PRNG key (shape ()); got shape {key.shape}")
    n_generations = _check_int("n_generations", n_generations, 1)
    n_samples = _check_int("n_samples", n_samples, 2)
    n_population = _check_int("n_population", n_population, 2)
    n_chains = _check_int("n_chains", n_chains, 1)
    sgd_steps = _check_int("sgd_steps", sgd_steps, 1)
    if not isinstance(learning_rate, int | float | np.floating) or not (
            math.isfinite(learning_rate) and 0 < learning_rate < 2):
        raise ValueError(f"learning_rate must be a finite number in (0, 2); got "
                         f"{learning_rate!r}")
    arms = tuple(arms)
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise ValueError(f"arms must be a non-empty subset of {ARMS}; got {list(arms)}")
    if mixture is None:
        mixture = Mixture([0.5, 0.5], [-2.0, 2.0], [1.0, 1.0])
    mixture = _check_mixture(mixture)
    _check_memory(arms, n_generations, n_samples, n_population, n_chains,
                  np.dtype(jnp.result_type(float)).itemsize)
    mean0, var0 = (float(x) for x in mixture_moments(mixture))
    if sgd_init is None:
        sgd_init = (mean0 + math.sqrt(var0), math.sqrt(var0) / 2)
    if len(sgd_init) != 2 or not all(math.isfinite(float(x)) for x in sgd_init) or \
            float(sgd_init[1]) <= 0:
        raise ValueError(f"sgd_init must be (mean, std) with std > 0; got {sgd_init!r}")
    dtype = jnp.result_type(float)
    mix = Mixture(*(jnp.asarray(a, dtype) for a in mixture))
    out, m0, v0 = _run(key, mix, jnp.asarray(sgd_init, dtype), jnp.asarray(learning_rate, dtype),
                       jnp.asarray(sgd_steps), arms=arms, n_generations=n_generations,
                       n_samples=n_samples, n_population=n_population, n_chains=n_chains)
    return DecompositionResult(out, {a: _METRIC[a] for a in arms}, float(m0), float(v0))
