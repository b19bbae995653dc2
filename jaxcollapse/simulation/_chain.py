"""One generation of one chain: the static configuration, the key schedule and the
step that samples (through the loop steps' law or select), hands the draws to the
regime and records the outputs."""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse import random as jcr
from jaxcollapse import regimes as rg
from jaxcollapse._fusion import runtime_true, transpose_apart
from jaxcollapse._regime_contract import _float_dtype
from jaxcollapse.families.base import (
    CounterNoise,
    NoiseStats,
    call_metric,
    noise_hooks,
)
from jaxcollapse.steps import _base as stp

PyTree = Any


_POOL_LIMIT_BYTES = 4 * 2**30
# the noise of a block of generations for all chains (noise hooks) stays below this:
# sample noise is read back soon enough to be in cache; the exact path's noise is
# small and each block pays a fixed cost (the gamma fallback), so its blocks are long
_NOISE_BLOCK_BYTES = {False: 4 * 2**20, True: 32 * 2**20}
_NOISE_BLOCK_MIN = 4  # generations: shorter blocks cost more in loop overhead
# fold_in(gen_key, _NOISE_KEY) keys a chain's counter-mode noise (stats_noise_at);
# generation keys fold_in(gen_key, t) use t = 0 .. n_generations
_NOISE_KEY = np.uint32(0xFFFFFFFF)
# fold_in(gen_key, _FRESH_KEY) keys the counter-mode noise of a regime's fresh draws
# from params0 (Regime.fresh_rows): generation t is draw t
_FRESH_KEY = np.uint32(0xFFFFFFFE)


class SimulationResult(NamedTuple):
    """Output of :func:`simulate`.

    Attributes:
        params: the fitted parameters, a pytree whose leaves have leading axes
            ``(chain, generation)`` (generation 0 = ``params0``); ``None`` when
            ``save_params=False``.
        metrics: dict name -> array ``(chain, generation)``.
        degenerate: bool ``(chain, generation)``: the fit collapsed to a state the
            family flags (variance underflow, lost support...). Its metrics stay
            finite.
        n_samples: the training-set size of each generation, ``(generation,)``
            (0 at generation 0).

    Example:
        >>> import jax
        >>> import jaxcollapse as jc
        >>> fam = jc.Gaussian(dim=1)
        >>> res = jc.simulate(jax.random.key(0), fam, fam.params(), n_generations=3,
        ...                   n_samples=10, n_chains=2)
        >>> res.metrics["w2sq"].shape, res.n_chains, res.n_generations
        ((2, 4), 2, 3)
    """

    params: PyTree
    metrics: dict[str, jax.Array]
    degenerate: jax.Array
    n_samples: jax.Array

    @property
    def n_chains(self) -> int:
        return int(self.degenerate.shape[-2])

    @property
    def n_generations(self) -> int:
        """Generations after generation 0."""
        return int(self.degenerate.shape[-1]) - 1

    def to_xarray(self, **kwargs):
        """As an ``xarray.Dataset`` (:func:`jaxcollapse.export.to_xarray`; needs the
        ``analysis`` extra)."""
        from jaxcollapse.export import to_xarray

        return to_xarray(self, **kwargs)

    def to_dataframe(self, **kwargs):
        """As a long ``pandas.DataFrame`` (:func:`jaxcollapse.export.to_dataframe`;
        needs the ``analysis`` extra)."""
        from jaxcollapse.export import to_dataframe

        return to_dataframe(self, **kwargs)




@dataclasses.dataclass(frozen=True)
class _Config:
    """Everything static about a simulation (part of the compiled program's key).

    The regime and the loop steps travel beside it as pytrees: their structure is
    static (part of the key through their tree structure), their values traced."""

    family: Any
    regime: str  # a description, for the store's fingerprint
    source: str
    n_generations: int
    n_max: int
    human_slots: int
    metrics: tuple[tuple[str, Callable], ...]
    save_params: bool
    exact: bool
    spec: rg.PoolSpec
    n_draw: int  # rows drawn a generation on the samples path (n_max x candidates)
    selects: tuple[bool, ...]  # which loop steps act through select (not their law)
    train_rows: int  # rows of a samples-path training set (data-set families' size)
    # generations a reverse-mode pass recomputes from a saved carry (0: none); set where
    # a loop parameter or params0 is traced, so the memory of jax.grad through G
    # generations grows like G / remat + remat instead of G
    remat: int = 0
    # a discrete family under a trace: the chain carries the log-probability of its
    # synthetic draws, and the metrics carry the score-function term (_score_metrics)
    score: bool = False


class _Keys(NamedTuple):
    """The keys of one generation of one chain, derived in one place.

    ``synthetic = fold_in(gen_key, t)`` draws the synthetic data; the others are
    ``fold_in(synthetic, i)``, one fold_in each (not a split), so the compiler
    removes the keys a path does not use."""

    synthetic: jax.Array
    fit: jax.Array
    regime: jax.Array
    metric: jax.Array
    step: jax.Array


_KEY_FIT, _KEY_REGIME, _KEY_METRIC, _KEY_STEP = 1, 2, 3, 4


def _gen_keys(gen_key, t) -> _Keys:
    syn = jax.random.fold_in(gen_key, t)
    return _Keys(syn, *(jax.random.fold_in(syn, i)
                        for i in (_KEY_FIT, _KEY_REGIME, _KEY_METRIC, _KEY_STEP)))


# ---------------------------------------------------------------------------- helpers


def _outputs(cfg: _Config, key, params, params0, prev):
    met = {name: call_metric(fn, jax.random.fold_in(key, i), params, params0, prev)
           for i, (name, fn) in enumerate(cfg.metrics)}
    out = {"metrics": met, "degenerate": cfg.family.is_degenerate(params)}
    if cfg.save_params:
        out["params"] = params
    return out


def _split2(key):
    """``jax.random.split(key)``; with partitionable Threefry (JAX's default) its keys
    are ``fold_in(key, 0)`` and ``fold_in(key, 1)``, hashed in fusible operations
    instead of JAX's rolled loop."""
    if jax.config.jax_threefry_partitionable and \
            str(jax.random.key_impl(key)) == "threefry2x32":
        keys = jcr.fold_in(key, jnp.arange(2, dtype=jnp.uint32))
        return keys[0], keys[1]
    return tuple(jax.random.split(key))


def _regime_spec(cfg: _Config, regime):
    """The pool spec the regime runs under: the statistics path's where the samples
    path fits through the draws' statistics (:func:`_noise_stats`)."""
    if _noise_stats(cfg, regime, sum(cfg.selects)):
        return dataclasses.replace(cfg.spec, exact=True)
    return cfg.spec


def _chain_init(cfg: _Config, regime, chain_key, params0, human):
    gen_key, regime_key = _split2(chain_key)
    carry = {"params": params0, "gen_key": gen_key,
             "regime": regime.init(_regime_spec(cfg, regime), regime_key, params0, human)}
    out0 = _outputs(cfg, jax.random.fold_in(gen_key, 0), params0, params0, params0)
    if cfg.score:
        carry["score"] = out0["score"] = jnp.zeros((), _float_dtype(params0))
    return carry, out0


def _fresh_noise(cfg: _Config, regime) -> bool:
    """Whether a regime's fresh draws from params0 (``Regime.fresh_rows``) come as
    counter-mode noise: generation t's is draw t under the chain's fresh key (on
    the statistics path of a family with ``stats_noise_at``)."""
    return bool(cfg.exact and _counter_noise(cfg.family) and regime.fresh_rows())


def _fresh_noise_at(cfg: _Config, regime, gen_key, t, dtype):
    """The noise of the regime's fresh draws of generation(s) ``t`` under the
    chain's (or chains') generation key(s), broadcast together."""
    return cfg.family.stats_noise_at(jcr.fold_in(gen_key, _FRESH_KEY),
                                     jnp.asarray(t, jnp.uint32),
                                     jnp.int32(regime.fresh_rows()), dtype)


def _counter_noise(family) -> bool:
    """Whether the exact path draws generation t as draw t under a chain's noise key
    (``stats_noise_at``, families/base.py)."""
    return isinstance(family, CounterNoise)


def _noise_stats(cfg: _Config, regime, n_select: int) -> bool:
    """Whether the samples path fits through the sums of the drawn normals
    (``sample_noise_stats`` and ``stats_from_noise_stats``, families/base.py): the
    family draws through noise hooks and pools statistics, no step selects among the
    draws, and the regime pools or fits the draws whole (``Regime.pools_stats``). The
    regime then runs as on the statistics path (``spec.exact``) from its ``init`` on."""
    return not cfg.exact and _pools_noise_stats(cfg.family, regime, n_select)


def _pools_noise_stats(family, regime, n_select) -> bool:
    """:func:`_noise_stats` before the configuration exists (the memory estimate)."""
    return (regime.pools_stats and not n_select and isinstance(family, NoiseStats)
            and noise_hooks(family, False) is not None)


def _fitter(cfg: _Config, key, params0):
    """``fit(training_set)`` for this path: statistics, or rows and weights (padded
    to the family's training-set size); a family with ``from_params0`` takes what it
    keeps from generation 0 (the KDE's ``"params0"`` bandwidth)."""
    fam = cfg.family
    fit = _fit_rows(cfg, key) if not cfg.exact else fam.fit_stats
    if hasattr(fam, "from_params0"):
        return lambda train: fam.from_params0(params0, fit(train))
    return fit


def _fit_rows(cfg: _Config, key):
    fam = cfg.family

    def fit(train):
        data, weights = train
        pad = cfg.train_rows - weights.shape[0]
        if pad > 0:  # a data-set family whose generation 0 holds more rows
            data = jax.tree.map(
                lambda x: jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]),
                data)
            weights = jnp.concatenate([weights, jnp.zeros((pad,), weights.dtype)])
        return fam.fit(key, data, weights)

    return fit


def _drawer(cfg: _Config, stats: bool = False):
    """``draw(key, params, n)`` in this path's form (fresh data for a regime): the
    exact law of ``n`` draws' statistics on the statistics path, or where the samples
    path fits through the draws' statistics (``stats``)."""
    fam = cfg.family
    if cfg.exact or stats:
        return lambda key, params, n: fam.sample_stats(key, params, jnp.int32(n))

    def draw(key, params, n):
        x = fam.sample(key, params, n)
        return x, jnp.ones((n,), _float_dtype(params))

    return draw


def _chain_step(cfg: _Config, regime, steps, params0, human, carry, xs):
    """One generation of one chain. ``xs`` is (t, m_t[, valid[, noise]]): ``valid``
    False leaves the state untouched (padding); ``noise`` is this generation's draw
    of the family's noise hook, used instead of sampling here."""
    fam = cfg.family
    t, m_t, valid, noise, fresh = (*xs, None, None, None)[:5]
    params = carry["params"]
    dt = _float_dtype(params)
    keys = _gen_keys(carry["gen_key"], t)
    regime = regime.at(t)
    m_syn = regime.n_synthetic(m_t)
    # the law the synthetic draws come from (the loop steps that act through it)
    law = stp.laws(tuple(s for s, sel in zip(steps, cfg.selects, strict=True) if not sel),
                   fam, params)
    select = tuple(_no_derivative(s) for s, sel in zip(steps, cfg.selects, strict=True)
                   if sel)
    noise_stats = noise is not None and _noise_stats(cfg, regime, len(select))

    if cfg.exact:
        if noise is None and _counter_noise(fam):
            # the draw the noise hooks would make for this generation
            noise = fam.stats_noise_at(jcr.fold_in(carry["gen_key"], _NOISE_KEY),
                                       jnp.asarray(t, jnp.uint32), m_syn, dt)
        syn = fam.sample_stats(keys.synthetic, law, m_syn) if noise is None else \
            fam.stats_from_noise(law, noise, m_syn)
        if _fresh_noise(cfg, regime):
            if fresh is None:  # the draw _scan_chains would make for this generation
                fresh = _fresh_noise_at(cfg, regime, carry["gen_key"], t, dt)
            fresh = fam.stats_from_noise(params0, fresh, jnp.int32(regime.fresh_rows()))
    elif noise is not None and noise_stats:
        # the drawn samples' statistics through their normals' sums
        syn = fam.stats_from_noise_stats(law, fam.sample_noise_stats(noise, m_syn), m_syn)
    else:
        noise_stats = False
        x = fam.sample(keys.synthetic, law, cfg.n_draw) if noise is None else \
            fam.sample_from_noise(law, noise, cfg.n_draw)
        w = (jnp.arange(cfg.n_draw) < m_syn * stp.n_candidates(select)).astype(dt)
        for i, s in enumerate(select):
            x, w = s.select(jax.random.fold_in(keys.step, i), fam, law, x, w)
        syn = (x, w)

    if cfg.score:  # the score-function term: the draws' log-probability under the law
        if getattr(fam, "discrete_draws", False):  # no pathwise derivative
            syn = jax.lax.stop_gradient(syn)
        score = carry["score"] + fam.draws_log_prob(law, syn)
    spec = _regime_spec(cfg, regime) if noise_stats else cfg.spec
    gen = rg.Generation(t=t, m=m_t, key=keys.regime, synthetic=syn, human=human,
                        params0=params0,
                        fit=fam.fit_stats if noise_stats else _fitter(cfg, keys.fit, params0),
                        draw=_drawer(cfg, noise_stats),
                        fresh=fresh if cfg.exact else None)
    new_params, regime_state = regime.update(spec, carry["regime"], gen)
    new_carry = dict(carry, params=new_params, regime=regime_state)
    if cfg.score:
        new_carry["score"] = score
    # with the parameters saved, metrics and flags are evaluated after the scan, for
    # all generations at once (_outputs_after), and the step's one output is the
    # parameters it started from (a plain copy of the carry; the caller appends the
    # final carry)
    out = {"params": _flat(params)} if cfg.save_params else \
        _outputs(cfg, keys.metric, new_params, params0, params)
    if cfg.score:
        out["score"] = score
    if valid is not None:
        # padded generations of a last, short chunk leave the state untouched
        new_carry = jax.tree.map(_keep_if(valid), new_carry, carry)
    return new_carry, out



def _no_derivative(step):
    """``step`` whose array parameters refuse differentiation: a step that selects
    among draws (curation, an acceptance region) makes a discrete choice, whose
    parameters have no pathwise derivative, and jaxcollapse estimates none; without
    this its derivative would silently be 0."""
    def guard(x):
        if not jnp.issubdtype(jnp.result_type(x), jnp.floating):
            return x
        return _refuse(step.name, x)

    return jax.tree.map(guard, step)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0,))
def _refuse(name, x):
    return x


@_refuse.defjvp
def _refuse_jvp(name, primals, tangents):
    raise ValueError(
        f"step {name!r} selects among the draws (a discrete choice): its parameters have "
        f"no pathwise derivative and jaxcollapse does not estimate one. Differentiate a "
        f"step that acts through the law (sampling_bias, temperature, top_p, or curate/"
        f"verify on a Categorical's exact path, differentiated by the score function)")


def _flat(params):
    """Each leaf as a vector, or a scalar if it has one element: the scan's outputs
    then have no unit axes, whose transposes XLA:CPU runs several times slower."""
    return jax.tree.map(lambda x: x.reshape(()) if x.size == 1 else x.reshape(-1), params)


def _unflat(flat, params0, lead: int):
    """Inverse of :func:`_flat` for leaves with ``lead`` leading axes."""
    return jax.tree.map(lambda x, p: x.reshape(x.shape[:lead] + p.shape), flat, params0)


def _chain_major(outs, key):
    """Outputs ``(generation, chain, ...)`` -> ``(chain, generation, ...)``, each
    transposed apart from the concatenation or scan that produces it (fused with
    them, XLA:CPU's transpose walks memory with a stride; see _fusion)."""
    return transpose_apart(runtime_true(key), outs)


def _keep_if(valid):
    def pick(new, old):
        if jax.dtypes.issubdtype(new.dtype, jax.dtypes.prng_key):
            return new  # keys never change within a chain
        return jnp.where(valid, new, old)

    return pick


