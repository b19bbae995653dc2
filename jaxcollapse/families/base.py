"""The contract every family of generative models follows.

A *family* is a frozen, hashable dataclass that holds only static
hyperparameters (dimension, number of components, bias correction, ...). Its
*parameters* are a pytree (a NamedTuple such as ``GaussianParams(mean, cov)``)
and its *data* are a pytree of arrays whose leading axis indexes samples.

Every family offers:

* ``fit(key, data, weights) -> params``: fit on ``data`` where ``weights`` (shape
  ``(n,)``, usually 0/1) says which rows count. Weights let ``lax.scan`` keep fixed
  shapes while the training set grows (accumulate) or mixes (mix regimes).
* ``sample(key, params, n) -> data``: ``n`` (static) draws from the model.
* ``log_prob(params, x)`` where it exists.
* ``check_params(params) -> params``: host-side validation before tracing.
* ``default_metrics() -> dict[str, Metric]``: per-generation metrics.
* ``is_degenerate(params) -> bool[]``: whether a fitted model has collapsed to a
  state where the family's formulas break (variance 0, a lost category, ...).

Families whose fit is a function of additive sufficient statistics (exponential
families) may also offer an *exact* path: set ``exact = True`` and provide
``stats``, ``sample_stats``, ``add_stats`` and ``fit_stats``. ``simulate`` then
combines sufficient statistics instead of materialising samples (replace = the new
statistics; accumulate = old + new; mix = human + synthetic), which costs O(1) in
the number of samples per generation.

Optional *noise hooks* let ``simulate`` draw the randomness of many generations
and all chains in one vectorised call, leaving only cheap arithmetic to the scan
over generations. They split a draw into its noise, whose law does not depend on
the parameters, and a deterministic map:

* ``sample_noise(key, n, dtype)`` and ``sample_from_noise(params, noise, n)`` with
  ``sample(key, params, n) == sample_from_noise(params, sample_noise(key, n, dtype), n)``;
* ``stats_noise(key, n, dtype)`` and ``stats_from_noise(params, noise, n)`` with the
  same identity for ``sample_stats`` (exact path; the noise may depend on ``n``);
* optionally ``stats_noise_at(key, counter, n, dtype)``: the noise of draw number
  ``counter`` (uint32, broadcast with the keys) under each key, independent for
  different counters, with the law of ``stats_noise``. ``simulate`` then draws
  generation ``t`` of a chain as draw ``t`` under one noise key of the chain,
  instead of deriving a key for every chain and generation (a hash each);
* optionally ``sample_noise_stats(noise, m)`` and ``stats_from_noise_stats(params,
  sums, m)``: the sums of the first ``m`` standard draws in ``noise`` and the
  sufficient statistics of the samples built from them, with ``stats``,
  ``add_stats`` and ``fit_stats``. Under replace and mix, the samples path then
  fits the drawn samples through these sums instead of the samples themselves.

A noise function must accept an array of keys (and, for ``stats_noise``, ``n`` of
the same shape) and give, in front of every output, the keys' axes: element for
element what ``vmap`` over the keys gives (``jaxcollapse.random`` samplers do this).
Families without the hooks are simulated through ``sample`` / ``sample_stats``.

Metrics are pure functions ``metric(params, params0) -> scalar``. Wrap one with
:func:`with_key` if it needs randomness (it is then called as
``metric(key, params, params0)``) or with :func:`successive` if it compares each
generation with the previous one rather than with generation 0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import jax
import jax.numpy as jnp

PyTree = Any
Metric = Callable[..., jax.Array]


@runtime_checkable
class Family(Protocol):
    """A model family usable by :func:`jaxcollapse.simulate`.

    Example:
        >>> import jaxcollapse as jc
        >>> all(isinstance(f, Family) for f in (jc.Gaussian(), jc.Categorical(3), jc.KDE()))
        True
    """

    def fit(self, key: jax.Array, data: PyTree, weights: jax.Array) -> PyTree: ...

    def sample(self, key: jax.Array, params: PyTree, n: int) -> PyTree: ...

    def check_params(self, params: PyTree) -> PyTree: ...

    def check_data(self, data: PyTree, name: str = "data") -> PyTree: ...

    def default_metrics(self) -> Mapping[str, Metric]: ...

    def is_degenerate(self, params: PyTree) -> jax.Array: ...


@runtime_checkable
class ExactFamily(Family, Protocol):
    """A family with additive sufficient statistics and an exact statistic sampler.

    ``sample_stats(key, params, n)`` must have exactly the law of
    ``stats(sample(key', params, n_max), weights=first n rows)`` for a traced
    integer ``n``; ``fit_stats(stats)`` must equal ``fit`` on the same data.

    Example:
        >>> import jaxcollapse as jc
        >>> isinstance(jc.Gaussian(), ExactFamily), isinstance(jc.GMM(2, 1), ExactFamily)
        (True, False)
    """

    exact: bool

    def stats(self, data: PyTree, weights: jax.Array) -> PyTree: ...

    def sample_stats(self, key: jax.Array, params: PyTree, n: jax.Array) -> PyTree: ...

    def add_stats(self, a: PyTree, b: PyTree) -> PyTree: ...

    def fit_stats(self, stats: PyTree) -> PyTree: ...


class StatsFit:
    """Mixin of the families whose fit is a function of additive sufficient statistics:
    ``fit`` is ``fit_stats(stats(data, weights))``, so it equals ``fit_stats`` on the
    same data by construction (what :class:`ExactFamily` asks of the exact path).

    Example:
        >>> import jax.numpy as jnp, jaxcollapse as jc
        >>> fam = jc.Poisson()
        >>> float(fam.fit(None, jnp.array([1, 3]), jnp.ones(2)).rate)
        2.0
    """

    def fit(self, key: jax.Array, data: PyTree, weights: jax.Array) -> PyTree:
        """``fit_stats(stats(data, weights))`` (``key`` unused: the fit is exact)."""
        del key
        return self.fit_stats(self.stats(data, weights))


@runtime_checkable
class NoiseFamily(Protocol):
    """A family whose draws split into parameter-free noise and a map (samples path):
    ``sample(key, p, n) == sample_from_noise(p, sample_noise(key, n, dtype), n)``.
    ``simulate`` then draws the noise of blocks of generations for all chains at once.

    Example:
        >>> import jaxcollapse as jc
        >>> isinstance(jc.Gaussian(), NoiseFamily), isinstance(jc.KDE(), NoiseFamily)
        (True, False)
    """

    def sample_noise(self, key: jax.Array, n: int, dtype: Any) -> PyTree: ...

    def sample_from_noise(self, params: PyTree, noise: PyTree, n: int) -> PyTree: ...


@runtime_checkable
class StatsNoiseFamily(Protocol):
    """The statistics path's noise hooks: ``sample_stats(key, p, n) ==
    stats_from_noise(p, stats_noise(key, n, dtype), n)``.

    Example:
        >>> import jaxcollapse as jc
        >>> isinstance(jc.Gaussian(), StatsNoiseFamily)
        True
    """

    def stats_noise(self, key: jax.Array, n: Any, dtype: Any) -> PyTree: ...

    def stats_from_noise(self, params: PyTree, noise: PyTree, n: Any) -> PyTree: ...


@runtime_checkable
class CounterNoise(Protocol):
    """``stats_noise_at(key, counter, n, dtype)``: the noise of draw number ``counter``
    under each key (counter-mode), so ``simulate`` draws generation ``t`` of a chain
    as draw ``t`` under one noise key instead of hashing a key per generation.

    Example:
        >>> import jaxcollapse as jc
        >>> isinstance(jc.Gaussian(), CounterNoise), isinstance(jc.Categorical(3), CounterNoise)
        (True, False)
    """

    def stats_noise_at(self, key: jax.Array, counter: Any, n: Any, dtype: Any) -> PyTree: ...

    def stats_from_noise(self, params: PyTree, noise: PyTree, n: Any) -> PyTree: ...


@runtime_checkable
class NoiseStats(NoiseFamily, Protocol):
    """The sums of the first ``m`` standard draws of a noise block and the sufficient
    statistics of the samples built from them: under replace, accumulate and mix the
    samples path fits through these sums instead of the samples (with ``stats``,
    ``add_stats``, ``fit_stats``).

    Example:
        >>> import jaxcollapse as jc
        >>> isinstance(jc.Gaussian(method="samples"), NoiseStats)
        True
    """

    def sample_noise_stats(self, noise: PyTree, m: Any) -> PyTree: ...

    def stats_from_noise_stats(self, params: PyTree, sums: PyTree, m: Any) -> PyTree: ...

    def stats(self, data: PyTree, weights: jax.Array) -> PyTree: ...

    def add_stats(self, a: PyTree, b: PyTree) -> PyTree: ...

    def fit_stats(self, stats: PyTree) -> PyTree: ...


@runtime_checkable
class DataSetFamily(Protocol):
    """A family whose parameters hold a data set (KDE): generation 0's rows start an
    accumulating pool (as the peers define accumulate), and ``simulate`` sizes the
    parameters to the regime's training set with ``pad_params`` (zero-weight rows),
    so any ``n_samples`` and regime work.

    Example:
        >>> import jaxcollapse as jc
        >>> isinstance(jc.KDE(), DataSetFamily), isinstance(jc.Gaussian(), DataSetFamily)
        (True, False)
    """

    def initial_data(self, params: PyTree) -> tuple[PyTree, jax.Array]: ...

    def pad_params(self, params: PyTree, rows: int) -> PyTree: ...


@runtime_checkable
class FastRunner(Protocol):
    """A family with a specialised runner that :func:`jaxcollapse.simulate` uses by
    itself where it applies (``fast_simulate(..., check_only=True)`` says whether).

    Example:
        >>> import jaxcollapse as jc
        >>> isinstance(jc.Categorical(3), FastRunner), isinstance(jc.Gaussian(), FastRunner)
        (True, False)
    """

    def fast_simulate(self, key: jax.Array, params0: PyTree, *, regime: str,
                      n_generations: int, n_samples: int, n_chains: int,
                      metrics: tuple[str, ...], progress: bool = False,
                      check_only: bool = False) -> Any: ...


def check_points(data: Any, dim: int, name: str = "data") -> jax.Array:
    """Validates a point array ``(n, dim)`` (``(n,)`` when dim = 1) of finite floats.

    Shared by the families whose data are points in R^dim (Gaussian, GMM, KDE).

    Example:
        >>> check_points([0.0, 1.0], 1).shape
        (2, 1)
        >>> check_points([[0.0, 1.0]], 3, "human_data")
        Traceback (most recent call last):
        ...
        ValueError: human_data must have shape (n, 3); got (1, 2)
    """
    import numpy as np

    x = jnp.asarray(data)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        x = x.astype(jnp.result_type(float))
    if x.ndim == 1 and dim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} must have shape (n, {dim}); got {x.shape}")
    if not np.all(np.isfinite(np.asarray(x))):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    return x


def noise_hooks(family: Any, exact: bool) -> tuple[Callable, Callable] | None:
    """The (draw noise, apply noise) pair of ``family`` for the samples or exact path,
    or ``None`` if it does not offer one (see the module docstring).

    Example:
        >>> import jaxcollapse as jc
        >>> noise_hooks(jc.Gaussian(), exact=True)[1].__name__
        'stats_from_noise'
    """
    if exact:
        return (family.stats_noise, family.stats_from_noise) \
            if isinstance(family, StatsNoiseFamily) else None
    return (family.sample_noise, family.sample_from_noise) \
        if isinstance(family, NoiseFamily) else None


def uses_exact_path(family: Any) -> bool:
    """Whether ``simulate`` should run ``family`` through sufficient statistics.

    Example:
        >>> import jaxcollapse as jc
        >>> uses_exact_path(jc.Gaussian(method="exact")), uses_exact_path(jc.KDE())
        (True, False)
    """
    return bool(getattr(family, "exact", False))


def with_key(fn: Metric) -> Metric:
    """Marks a metric as random: ``simulate`` calls it as ``fn(key, params, ref)``.

    Example:
        >>> import jax.numpy as jnp
        >>> m = with_key(lambda key, p, p0: jnp.zeros(()))
        >>> m.needs_key
        True
    """
    return _mark(fn, "needs_key")


def successive(fn: Metric) -> Metric:
    """Marks a metric as comparing generation ``n`` with ``n - 1`` (not with 0).

    At generation 0 the reference is generation 0 itself.

    Example:
        >>> import jax.numpy as jnp
        >>> m = successive(lambda p, prev: jnp.zeros(()))
        >>> m.successive
        True
    """
    return _mark(fn, "successive")


def _mark(fn: Metric, marker: str) -> Metric:
    try:
        return _marked(fn, marker)
    except TypeError:  # an unhashable callable: marked afresh, never changed
        return _marked.__wrapped__(fn, marker)


@functools.cache
def _marked(fn: Metric, marker: str) -> Metric:
    """``fn`` with ``marker`` set, as a new function: the caller's ``fn`` (possibly a
    family's shared default metric) is never changed. Cached, so marking the same
    function twice gives the same object and ``simulate`` does not recompile."""
    if getattr(fn, marker, False):
        return fn

    @functools.wraps(fn)
    def marked(*args):
        return fn(*args)

    for m in ("needs_key", "successive", "pairwise"):
        if getattr(fn, m, False):
            setattr(marked, m, True)
    setattr(marked, marker, True)
    return marked


def call_metric(fn: Metric, key: jax.Array, params: PyTree, params0: PyTree,
                prev: PyTree) -> jax.Array:
    """Evaluates one metric with the reference and key its markers ask for.

    Example:
        >>> import jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1)
        >>> p0, p1 = fam.params(), fam.params(mean=[1.0])
        >>> w2 = fam.default_metrics()["w2sq"]
        >>> float(call_metric(w2, None, p1, p0, p1)), float(
        ...     call_metric(successive(w2), None, p1, p0, p1))
        (1.0, 0.0)
    """
    ref = prev if getattr(fn, "successive", False) else params0
    if getattr(fn, "needs_key", False):
        return fn(key, params, ref)
    return fn(params, ref)


def as_params(params: Any, cls: type, name: str = "params0") -> Any:
    """``params`` as the NamedTuple ``cls``; a plain tuple of its length is converted.

    Shared by the families' ``check_params`` (GMM, KDE).

    Example:
        >>> from typing import NamedTuple
        >>> class P(NamedTuple):
        ...     loc: float
        ...     scale: float
        >>> as_params((0.0, 1.0), P)
        P(loc=0.0, scale=1.0)
        >>> as_params([0.0], P)
        Traceback (most recent call last):
        ...
        TypeError: params0 must be P(loc, scale); got <class 'list'>
    """
    if isinstance(params, cls):
        return params
    if isinstance(params, tuple) and len(params) == len(cls._fields):
        return cls(*params)
    raise TypeError(f"{name} must be {cls.__name__}({', '.join(cls._fields)}); got "
                    f"{type(params)}")


def check_weights(weights: Any, n: int, dtype: Any, name: str = "weights", *,
                  nonzero: bool = False) -> jax.Array:
    """Validates sample weights ``(n,)``: finite and >= 0 (and, with ``nonzero``, not
    all 0); ``None`` gives ones.

    Shared by the families that take optional weights on the host side (GMM, KDE).

    Example:
        >>> check_weights(None, 2, float).tolist()
        [1.0, 1.0]
        >>> check_weights([0.0, 0.0], 2, float, nonzero=True)
        Traceback (most recent call last):
        ...
        ValueError: weights must be finite, >= 0 and not all 0
    """
    import numpy as np

    if weights is None:
        return jnp.ones((n,), dtype)
    w = jnp.asarray(weights, dtype)
    if w.shape != (n,):
        raise ValueError(f"{name} must have shape ({n},); got {w.shape}")
    wn = np.asarray(w)
    if not np.all(np.isfinite(wn)) or np.any(wn < 0) or (nonzero and wn.sum() <= 0):
        allowed = "finite, >= 0 and not all 0" if nonzero else "finite and >= 0"
        raise ValueError(f"{name} must be {allowed}")
    return w
