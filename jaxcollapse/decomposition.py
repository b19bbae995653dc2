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

Each arm is one :func:`jaxcollapse.simulate` run (replace) from ``params0`` = the
Gaussian truth:

=================  ===================================  ===========================
arm                family                               ``truth=``
=================  ===================================  ===========================
``statistical``    ``Gaussian(dim=1, method="exact")``  none (params0 is the truth)
``expressivity``   ``Gaussian(dim=1, method="exact")``  the mixture as a ``GMM``
``approximation``  :class:`GradientGaussian`            none
``all``            :class:`GradientGaussian`            the mixture as a ``GMM``
=================  ===================================  ===========================

Gaussian generations draw their sufficient statistics exactly, so only generation 1
of the mixture arms materialises samples (simulate's ``truth=``: ``M`` draws from
the mixture, then their statistics). The distances are computed from the saved
parameters (simulate's metrics compare with ``params0``, which the mixture is not).

Numbers at a given key changed in this version (0.1.0), when the arms moved from a
runner of their own onto simulate: chain c of arm i still runs under
``fold_in(fold_in(key, i), c)``, but its generations are drawn with simulate's key
schedule. The law is the same (tests/test_decompose.py compares every arm with its
theory within Monte Carlo standard errors).

References:
    Shumailov et al., AI models collapse when trained on recursively generated
    data, Nature 631 (2024) (the three sources). THEORY.md sections 2, 6, 7.
"""

from __future__ import annotations

import dataclasses
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
from jaxcollapse.families.gaussian import Gaussian, GaussianParams, GaussianStats
from jaxcollapse.families.gmm import GMM, GMMParams
from jaxcollapse.simulation import simulate

__all__ = ["ARMS", "DecompositionResult", "GradientGaussian", "Mixture", "decompose",
           "gaussian_l2sq", "mixture_moments"]

ARMS = ("statistical", "expressivity", "approximation", "all")
_METRIC = {"statistical": "w2sq", "expressivity": "l2sq", "approximation": "w2sq",
           "all": "l2sq"}
_SGD = ("approximation", "all")  # the arms of the imperfect fitter
_POPULATION = ("expressivity", "approximation")  # the arms of N_pop draws a generation


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


@dataclasses.dataclass(frozen=True)
class GradientGaussian(Gaussian):
    """A one-dimensional Gaussian fitted by a few gradient steps from a poor start.

    The imperfect fitter of the functional approximation arm: every generation runs
    ``steps`` curvature-bounded gradient steps on the mean NLL of its training data
    (:func:`_sgd_fit`, the module docstring) from the start ``(mean0 + a std0, b
    std0)``, where ``(mean0, std0)`` is generation 0's Gaussian and ``start = (a,
    b)``, so it stops short of the MLE by a bias that compounds over generations.
    The data enter through their mean and MLE variance, so the exact statistics path
    runs it at O(steps) a generation.

    ``fit``/``fit_stats`` give the MLE; :func:`jaxcollapse.simulate` then applies the
    gradient fit through :meth:`from_params0` (the start depends on generation 0), as
    it does for the KDE's ``"params0"`` bandwidth. The hyperparameters are static (a
    new value compiles a new program, as GMM's ``max_iter``); the start relative to
    generation 0 lets a new ``params0`` reuse the program.

    Attributes:
        steps: gradient steps a generation (>= 1).
        learning_rate: the step size, in (0, 2) (the bounded step is stable there).
        start: ``(a, b)``: the start ``(mean0 + a std0, b std0)``; ``b > 0``.

    References:
        Shumailov et al., Nature 631 (2024) (functional approximation error);
        THEORY.md section 7.

    Example:
        >>> import jax, jaxcollapse as jc
        >>> fam = GradientGaussian(steps=5)
        >>> res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=3,
        ...                   n_samples=10**6, n_chains=2)
        >>> m, v = _sgd_fit(0.0, 1.0, jnp.array([1.0, 0.5]), 0.5, 5)  # the population map
        >>> bool(abs(res.params.cov[0, 1, 0, 0] - v) < 0.01), round(float(v), 2)  # short of 1
        (True, 0.9)
    """

    method: str = "exact"
    steps: int = 50
    learning_rate: float = 0.5
    start: tuple[float, float] = (1.0, 0.5)

    def __post_init__(self):
        super().__post_init__()
        if self.dim != 1 or self.method != "exact":
            raise ValueError(f"GradientGaussian is one-dimensional on the exact path (dim=1, "
                             f"method='exact'); got dim={self.dim!r}, method={self.method!r}")
        _check_int("steps", self.steps, 1)
        lr = self.learning_rate
        if isinstance(lr, bool) or not isinstance(lr, int | float | np.floating) or not (
                math.isfinite(lr) and 0 < lr < 2):
            raise ValueError(f"learning_rate must be a finite number in (0, 2); got {lr!r}")
        st = self.start
        if not (isinstance(st, tuple) and len(st) == 2 and all(
                isinstance(x, int | float | np.floating) and math.isfinite(x) for x in st)
                and st[1] > 0):
            raise ValueError(f"start must be a tuple (a, b) of finite numbers with b > 0 (the "
                             f"start (mean0 + a std0, b std0)); got {st!r}")

    def fit_stats(self, stats: GaussianStats) -> GaussianParams:
        """The MLE (mean, scatter / n): what :meth:`from_params0` fits towards."""
        return GaussianParams(stats.mean, stats.scatter / jnp.maximum(stats.n, 1.0))

    def from_params0(self, params0: GaussianParams, fitted: GaussianParams) -> GaussianParams:
        """The gradient fit to data whose MLE is ``fitted``, from the start set by
        generation 0's ``params0``."""
        s0 = jnp.sqrt(params0.cov[0, 0])
        a, b = self.start
        init = jnp.stack([params0.mean[0] + a * s0, b * s0])
        mu, var = _sgd_fit(fitted.mean[0], fitted.cov[0, 0], init, self.learning_rate,
                           self.steps)
        return GaussianParams(mu[None], var[None, None])


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
        key: a PRNG key; arm i runs :func:`jaxcollapse.simulate` under
            ``fold_in(key, i)``, whose chain c uses ``fold_in(., c)`` (so a chain's
            result does not depend on ``n_chains``) and simulate's generation keys.
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
            stable there; see the module docstring). ``sgd_steps``,
            ``learning_rate`` and ``sgd_init`` are static hyperparameters of the
            fitter's family (:class:`GradientGaussian`): a new value compiles the two
            fitter arms anew; a new key or mixture does not.
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
    s0 = math.sqrt(var0)
    if sgd_init is None:  # (mean0 + std0, std0 / 2): the start (1, 1/2) in units of p0
        start = (1.0, 0.5)
    else:
        if len(sgd_init) != 2 or not all(math.isfinite(float(x)) for x in sgd_init) or \
                float(sgd_init[1]) <= 0:
            raise ValueError(f"sgd_init must be (mean, std) with std > 0; got {sgd_init!r}")
        start = ((float(sgd_init[0]) - mean0) / s0, float(sgd_init[1]) / s0)
    dtype = jnp.result_type(float)
    mix = Mixture(*(jnp.asarray(a, dtype) for a in mixture))
    # the families and truths of the arms; only the truth's values are traced, so a new
    # mixture reuses the compiled programs
    exact = Gaussian(dim=1, method="exact")
    sgd = GradientGaussian(steps=sgd_steps, learning_rate=float(learning_rate), start=start)
    params0 = exact.params(mean=[mean0], cov=[[var0]], dtype=dtype)
    k = mix.weights.shape[0]
    truth = (GMM(n_components=k, dim=1), GMMParams(mix.weights, mix.means[:, None],
                                                   (mix.stds**2)[:, None, None]))
    out = {}
    for i, arm in enumerate(arms):
        res = simulate(jax.random.fold_in(key, i), sgd if arm in _SGD else exact, params0,
                       n_generations=n_generations,
                       n_samples=n_population if arm in _POPULATION else n_samples,
                       n_chains=n_chains, truth=truth if _METRIC[arm] == "l2sq" else None,
                       metrics={}, save_params=True)
        out[arm] = _distance(_METRIC[arm], res.params, params0, mix)
    return DecompositionResult(out, {a: _METRIC[a] for a in arms}, mean0, var0)


@functools.partial(jax.jit, static_argnames="metric")
def _distance(metric, params, params0, mixture):
    """Each generation's distance to p0 (``(chain, generation)``; generation 0 is p0
    itself: 0): W2² to the Gaussian truth ``params0`` or L2 to the mixture."""
    m, v = params.mean[..., 0], params.cov[..., 0, 0]
    if metric == "w2sq":
        d = _w2sq(m, v, params0.mean[0], params0.cov[0, 0])
    else:
        d = jax.vmap(jax.vmap(lambda a, b: gaussian_l2sq(mixture, a, b)))(m, v)
    return d.at[:, 0].set(0.0)
