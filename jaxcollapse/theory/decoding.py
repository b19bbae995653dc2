"""Categorical decoding maps in the loop: temperature, top-k, top-p (THEORY.md section 9).

A decoder turns the model's probabilities ``p (..., K)`` into the law ``q(p)`` that the
synthetic data are drawn from. One generation of M draws from q and a refit gives
``E[p_{t+1} | p_t] = q(p_t)`` exactly (the empirical frequencies of a multinomial are
unbiased), at every M. As M -> infinity the loop becomes the deterministic iteration
``p_t = q^t(p_0)``; for temperature it is ``p_t ∝ p_0^(tau^-t)``: tau < 1 tends to the
uniform law on the modes of p_0, tau > 1 to the uniform law on its support. Truncation
(top-k, top-p) only ever removes categories: the support shrinks to a fixed set in at
most K steps and stays there.

Conventions: ties are broken by index (the lower index ranks first); top-p keeps the
smallest set of largest categories whose mass is >= p (a category is kept when the mass
strictly above it in the ranking is < p, in floating point); the maps apply in the order
temperature, top-k, top-p (as common decoders do). Zero-probability categories stay 0.

References:
    Alemohammad et al., Self-Consuming Generative Models Go MAD, ICLR 2024; Marchi et al.,
    Heat death of generative models in closed-loop learning, arXiv 2404.02325 (2024);
    Holtzman et al., The Curious Case of Neural Text Degeneration, ICLR 2020 (top-p).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "decode_map",
    "deterministic_path",
    "entropy",
    "lost_mass",
    "temperature_limit",
    "temperature_map",
    "temperature_path",
    "top_k_map",
    "top_p_map",
    "truncation_limit",
]


def check_tau(tau, name: str = "tau"):
    """A temperature: finite and > 0 (host; tracers pass through).

    Example:
        >>> check_tau(0.0)
        Traceback (most recent call last):
        ...
        ValueError: tau must be a finite number > 0; got 0.0
    """
    if isinstance(tau, jax.core.Tracer):
        return tau
    a = np.asarray(tau, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise ValueError(f"{name} must be a finite number > 0; got {tau!r}")
    return tau


def check_top_p(p, name: str = "p"):
    """A nucleus mass: finite, in (0, 1] (host; tracers pass through).

    Example:
        >>> check_top_p(1.5)
        Traceback (most recent call last):
        ...
        ValueError: p must be in (0, 1]; got 1.5
    """
    if isinstance(p, jax.core.Tracer):
        return p
    a = np.asarray(p, dtype=float)
    if not np.all(np.isfinite(a)) or np.any(a <= 0) or np.any(a > 1):
        raise ValueError(f"{name} must be in (0, 1]; got {p!r}")
    return p


def check_top_k(k, n_categories: int | None = None, name: str = "k") -> int:
    """A top-k count: an integer in [1, K].

    Example:
        >>> check_top_k(5, 3)
        Traceback (most recent call last):
        ...
        ValueError: k must be an integer in [1, K = 3]; got 5
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1 or (
            n_categories is not None and k > n_categories):
        allowed = "an integer >= 1" if n_categories is None else \
            f"an integer in [1, K = {n_categories}]"
        raise ValueError(f"{name} must be {allowed}; got {k!r}")
    return int(k)


def _probs(probs):
    p = jnp.asarray(probs)
    if not jnp.issubdtype(p.dtype, jnp.floating):
        p = p.astype(jnp.result_type(float))
    return p


def _renormalise(p, keep):
    q = jnp.where(keep, p, 0.0)
    total = jnp.sum(q, axis=-1, keepdims=True)
    return q / jnp.where(total > 0, total, 1.0)


def _ranks(p):
    """Rank of each category (0 = largest), ties by index."""
    order = jnp.argsort(-p, axis=-1, stable=True)
    return jnp.argsort(order, axis=-1, stable=True), order


def temperature_map(probs, tau):
    """``q ∝ p^(1/tau)``, computed in log space; shape ``(..., K)``.

    Example:
        >>> [round(float(v), 4) for v in temperature_map([0.2, 0.8, 0.0], 0.5)]
        [0.0588, 0.9412, 0.0]

    References:
        Marchi et al. (2024); THEORY.md section 9.
    """
    p = _probs(probs)
    inv = 1.0 / jnp.asarray(check_tau(tau), p.dtype)
    pos = p > 0
    # finite logs under the mask: a derivative in tau never meets 0 x log(0)
    logp = jnp.log(jnp.where(pos, p, 1.0))
    z = jnp.where(pos, logp * (inv[..., None] if jnp.ndim(inv) else inv), -jnp.inf)
    z = z - jnp.max(z, axis=-1, keepdims=True)
    w = jnp.where(pos, jnp.exp(jnp.where(pos, z, 0.0)), 0.0)
    return w / jnp.sum(w, axis=-1, keepdims=True)


def top_k_map(probs, k: int):
    """``p`` restricted to its k largest categories (ties by index), renormalised.

    Example:
        >>> top_k_map([0.3, 0.1, 0.3, 0.3], 2).tolist()
        [0.5, 0.0, 0.5, 0.0]

    References:
        THEORY.md section 9.
    """
    p = _probs(probs)
    k = check_top_k(k, p.shape[-1])
    rank, _ = _ranks(p)
    return _renormalise(p, rank < k)


def top_p_map(probs, p):
    """``probs`` restricted to the smallest set of largest categories with mass >= p
    (ties by index), renormalised.

    Example:
        >>> top_p_map([0.1, 0.5, 0.4], 0.6).round(4).tolist()  # 0.5 < 0.6 <= 0.5 + 0.4
        [0.0, 0.5556, 0.4444]

    References:
        Holtzman et al. (2020); THEORY.md section 9.
    """
    q = _probs(probs)
    pp = jnp.asarray(check_top_p(p), q.dtype)
    rank, order = _ranks(q)
    s = jnp.take_along_axis(q, order, axis=-1)
    above = jnp.cumsum(s, axis=-1) - s  # mass strictly above each ranked category
    keep_sorted = above < (pp[..., None] if jnp.ndim(pp) else pp)
    keep = jnp.take_along_axis(keep_sorted, rank, axis=-1)
    return _renormalise(q, keep)


def decode_map(probs, tau=1.0, k: int | None = None, p=None):
    """The composed decoder: temperature, then top-k (if k), then top-p (if p).

    Example:
        >>> decode_map([0.5, 0.3, 0.2], tau=1.0, k=2).round(4).tolist()
        [0.625, 0.375, 0.0]

    References:
        THEORY.md section 9.
    """
    q = temperature_map(probs, tau)
    if k is not None:
        q = top_k_map(q, k)
    if p is not None:
        q = top_p_map(q, p)
    return q


def temperature_path(probs0, tau, n_generations: int):
    """The M -> infinity loop under temperature, in closed form:
    ``p_t ∝ p_0^(tau^-t)`` for t = 0..n, shape ``(n + 1, K)``.

    Example:
        >>> temperature_path([0.25, 0.75], 0.5, 2).round(4).tolist()
        [[0.25, 0.75], [0.1, 0.9], [0.0122, 0.9878]]

    References:
        Marchi et al. (2024); THEORY.md section 9.
    """
    p0 = _probs(probs0)
    tau = jnp.asarray(check_tau(tau), p0.dtype)
    t = jnp.arange(int(n_generations) + 1, dtype=p0.dtype)
    # tau^t is the effective temperature after t generations
    return jax.vmap(lambda e: temperature_map(p0, e))(tau**t)


def deterministic_path(probs0, n_generations: int, tau=1.0, k: int | None = None, p=None):
    """``q^t(p_0)`` for t = 0..n by iterating :func:`decode_map`, shape ``(n + 1, K)``.

    Example:
        >>> deterministic_path([0.1, 0.5, 0.4], 2, p=0.6).round(4).tolist()
        [[0.1, 0.5, 0.4], [0.0, 0.5556, 0.4444], [0.0, 0.5556, 0.4444]]

    References:
        THEORY.md section 9.
    """
    p0 = _probs(probs0)
    check_tau(tau)
    if p is not None:
        check_top_p(p)
    if k is not None:
        check_top_k(k, p0.shape[-1])
    return _path(p0, jnp.asarray(tau, p0.dtype), jnp.asarray(1.0 if p is None else p, p0.dtype),
                 n=int(n_generations), k=k, truncate_p=p is not None)


@functools.partial(jax.jit, static_argnames=("n", "k", "truncate_p"))
def _path(p0, tau, p, *, n, k, truncate_p):
    # jitted once per (shape, n, k): host callers iterate it without recompiling
    def step(q, _):
        q = decode_map(q, tau, k, p if truncate_p else None)
        return q, q

    _, qs = jax.lax.scan(step, p0, None, length=n)
    return jnp.concatenate([p0[None], qs])


def temperature_limit(probs0, tau):
    """The limit of the temperature loop: tau < 1, uniform on the modes of p_0;
    tau > 1, uniform on its support; tau = 1, p_0 itself.

    Example:
        >>> temperature_limit([0.4, 0.2, 0.4, 0.0], 0.9).tolist()
        [0.5, 0.0, 0.5, 0.0]
        >>> temperature_limit([0.4, 0.2, 0.4, 0.0], 1.5).round(4).tolist()
        [0.3333, 0.3333, 0.3333, 0.0]

    References:
        Marchi et al. (2024); THEORY.md section 9.
    """
    p0 = _probs(probs0)
    t = float(check_tau(tau))
    if t == 1.0:
        return p0
    keep = (p0 == jnp.max(p0, axis=-1, keepdims=True)) if t < 1.0 else p0 > 0
    return _renormalise(jnp.ones_like(p0), keep)


def truncation_limit(probs0, k: int | None = None, p=None):
    """The fixed point that top-k and/or top-p (no temperature) reach from p_0: the
    support can only shrink, so at most K iterations reach it exactly.

    Example:
        >>> truncation_limit([0.5, 0.3, 0.2], p=0.55).tolist()  # via [0.625, 0.375, 0]
        [1.0, 0.0, 0.0]

    References:
        THEORY.md section 9.
    """
    p0 = _probs(probs0)
    return deterministic_path(p0, p0.shape[-1], 1.0, k, p)[-1]


def entropy(probs):
    """Shannon entropy in nats over the last axis (0 log 0 = 0).

    Example:
        >>> round(float(entropy([0.5, 0.5, 0.0])), 6)
        0.693147

    References:
        THEORY.md section 4.
    """
    q = _probs(probs)
    return -jnp.sum(jnp.where(q > 0, q * jnp.log(jnp.where(q > 0, q, 1.0)), 0.0), axis=-1)


def lost_mass(probs, probs0):
    """Mass under p_0 of the categories that ``probs`` has lost (last axis).

    Example:
        >>> round(float(lost_mass([0.0, 1.0], [0.3, 0.7])), 6)
        0.3

    References:
        THEORY.md section 4.
    """
    return jnp.sum(jnp.where(_probs(probs) > 0, 0.0, _probs(probs0)), axis=-1)
