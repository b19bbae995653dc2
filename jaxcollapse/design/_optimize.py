"""Stochastic optimisation of a loop design (optax), with the optimum's Monte Carlo
uncertainty.

:func:`minimize` runs projected optax steps on the chain mean of a loss. With
``common_random_numbers=True`` (the default) every step uses the same key: the
objective is the sample average of one fixed set of chains, a smooth deterministic
function of the design (a *sample-average approximation*), so the optimiser
converges to its minimiser without step-size tuning against noise. With ``False``
each step draws fresh chains (``fold_in(key, step)``: stochastic approximation).
Either way the returned design is the average of the last iterates (Polyak–Ruppert).

Uncertainty (the *sandwich*, or delta method): near the optimum
``theta_hat - theta* ~ -H^{-1} g_bar(theta*)``, so
``Cov(theta_hat) ~ H^{-1} Sigma_g H^{-1} / n_chains`` with ``Sigma_g`` the covariance
of the chains' gradients and ``H`` the Hessian of the expected objective. Both are
estimated at the returned design on an independent set of chains (``H`` by central
differences of the chain-mean gradient under common random numbers), restricted to
the directions the feasible set allows (entries on a bound are exact there). It is
the error of the sample-average optimum over ``n_chains`` chains; with fresh keys the
averaged iterate has seen ``n_steps`` batches and is usually closer.

References:
    Kushner and Yin, Stochastic Approximation and Recursive Algorithms (2003);
    Polyak and Juditsky, SIAM J. Control Optim. 30 (1992); Shapiro, Dentcheva,
    Ruszczynski, Lectures on Stochastic Programming (2009), ch. 5 (sample average
    approximation). THEORY.md section 11.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxcollapse._progress import Progress
from jaxcollapse.design._estimate import Estimate, Estimator, Loss, PyTree, _unravel_np


class History(NamedTuple):
    """The optimiser's path, one row a step.

    Attributes:
        theta: the (flat) design before each step, ``(n_steps, n_params)``.
        value: the chain-mean objective there, ``(n_steps,)``.
        value_se: its standard error, ``(n_steps,)``.
        grad_norm: the norm of the projected gradient step, ``(n_steps,)``.

    Example:
        >>> h = History(np.zeros((3, 1)), np.ones(3), np.ones(3) / 10, np.zeros(3))
        >>> h.theta.shape
        (3, 1)
    """

    theta: np.ndarray
    value: np.ndarray
    value_se: np.ndarray
    grad_norm: np.ndarray


class DesignResult(NamedTuple):
    """The best design found and its Monte Carlo uncertainty.

    Attributes:
        theta: the design (the structure of ``theta0``): the average of the last
            iterates.
        theta_se: the standard error of each entry (the sandwich, see the module
            docstring), or ``None`` where it could not be estimated (``se_method``
            says why).
        value: the chain-mean objective at ``theta`` on independent chains.
        value_se: its standard error.
        grad: the gradient there (about 0 at an interior optimum), and ``grad_se``.
        history: the optimiser's :class:`History`.
        se_method: how ``theta_se`` was obtained, or why it is ``None``.
        estimate: the full :class:`~jaxcollapse.design.Estimate` at ``theta``.

    Example:
        >>> import jax
        >>> loss = jax.jit(lambda key, th: (jax.random.normal(key, (64,)) - th) ** 2)
        >>> r = minimize(loss, 0.5, key=jax.random.key(0), n_steps=5)
        >>> r.history.value.shape, r.se_method.split(":")[0]
        ((5,), 'sandwich')
    """

    theta: PyTree
    theta_se: PyTree | None
    value: float
    value_se: float
    grad: PyTree
    grad_se: PyTree
    history: History
    se_method: str
    estimate: Estimate


def _check_positive_int(value, name, lo=1):
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < lo:
        raise ValueError(f"{name} must be an integer >= {lo}; got {value!r}")
    return int(value)


def _project(projection, flat):
    if projection is None:
        return np.asarray(flat, np.float64)
    return np.asarray(projection(np.asarray(flat, np.float64)), np.float64).reshape(-1)


def minimize(loss: Loss, theta0: PyTree, *, key: jax.Array, n_steps: int = 100,
             learning_rate: float = 0.05, optimizer: Any = None,
             projection: Any = None, average: float = 0.5, generation: int | str = -1,
             common_random_numbers: bool = True, n_batches: int | None = None,
             progress: bool = False) -> DesignResult:
    """Minimises the chain mean of ``loss(key, theta)`` over designs ``theta``.

    Args:
        loss: ``loss(key, theta)`` returning per-chain values ``(n_chains,)`` or a
            trajectory ``(n_chains, n_generations + 1)`` (see
            :func:`~jaxcollapse.design.value_and_grad`).
        theta0: the starting design (a float or a pytree of float arrays).
        key: a JAX PRNG key; split into an optimisation key and an evaluation key.
        n_steps: optimiser steps (each one forward-mode evaluation of the loss).
        learning_rate: the peak step size of the default optimiser, Adam with a
            cosine decay to 1/20 of it over ``n_steps``.
        optimizer: any optax ``GradientTransformation`` instead of the default.
        projection: a feasible set, applied after every step: :func:`box`,
            :func:`budget`, or a callable ``flat -> flat`` (no standard errors for a
            callable without a ``tangent`` method). The starting design is projected.
        average: the fraction of the last iterates averaged into the result (0: the
            last iterate only).
        generation: for a trajectory, the generation whose value is the objective, or
            ``"mean"`` (generations 1..n).
        common_random_numbers: the same chains at every step (a sample-average
            approximation, the default) or fresh chains every step.
        n_batches: ``None``: forward mode (per-chain gradients); an integer >= 2:
            reverse mode over that many batches of chains (see
            :func:`~jaxcollapse.design.value_and_grad`), for designs with many entries.
        progress: show a progress bar.

    Returns:
        A :class:`DesignResult`.

    Raises:
        TypeError, ValueError: bad parameters or a loss that is not a scalar metric
            per chain (see :func:`~jaxcollapse.design.value_and_grad`).
        FloatingPointError: a non-finite value or gradient during the run, with the
            step and the generation where it began.

    Example:
        >>> import jax, numpy as np
        >>> from jaxcollapse import design
        >>> loss = jax.jit(lambda key, th: (jax.random.normal(key, (256,)) + 1.0 - th) ** 2)
        >>> r = design.minimize(loss, 0.0, key=jax.random.key(0), n_steps=150,
        ...                     learning_rate=0.2)
        >>> bool(abs(r.theta - 1.0) < 5 * r.theta_se)  # the minimiser of E (z + 1 - th)^2
        True

    References:
        Polyak and Juditsky (1992); Shapiro et al. (2009). THEORY.md section 11.
    """
    n_steps = _check_positive_int(n_steps, "n_steps")
    if not isinstance(average, float | int) or not 0.0 <= average < 1.0:
        raise ValueError(f"average must be a fraction in [0, 1); got {average!r}")
    if not isinstance(common_random_numbers, bool):
        raise TypeError(f"common_random_numbers must be True or False; got "
                        f"{common_random_numbers!r}")
    if projection is not None and not callable(projection):
        raise TypeError(f"projection must be design.box(...), design.budget(...) or a "
                        f"callable; got {projection!r}"[:200])
    import optax  # here: ``import jaxcollapse`` stays free of it

    if optimizer is None:
        if not learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0; got {learning_rate!r}")
        optimizer = optax.adam(optax.cosine_decay_schedule(learning_rate, n_steps, 0.05))
    elif not (callable(getattr(optimizer, "init", None)) and
              callable(getattr(optimizer, "update", None))):
        raise TypeError(f"optimizer must be an optax GradientTransformation (init, update); "
                        f"got {optimizer!r}"[:200])
    key_opt, key_eval = jax.random.split(key)
    est = Estimator.build(loss, key_opt, theta0, generation, n_batches)
    flat = _project(projection, est.flat0)
    state = optimizer.init(jnp.asarray(flat))
    update = jax.jit(optimizer.update)  # one small program instead of eager dispatches
    thetas, values, ses, norms = [], [], [], []
    with Progress(n_steps, "design", unit="step", enabled=progress) as bar:
        for step in range(n_steps):
            k = key_opt if common_random_numbers else jax.random.fold_in(key_opt, step)
            try:
                e = est(k, flat)
            except FloatingPointError as err:
                raise FloatingPointError(f"step {step}: {err}") from None
            g = e.grad_flat
            if hasattr(projection, "direction"):
                g = projection.direction(flat, g)
            updates, state = update(jnp.asarray(g), state, jnp.asarray(flat))
            new = _project(projection, flat + np.asarray(updates, np.float64))
            thetas.append(flat)
            values.append(e.value)
            ses.append(e.value_se)
            norms.append(float(np.linalg.norm(new - flat)))
            flat = new
            bar.update(step + 1, f"value {e.value:.4g}")
    thetas.append(flat)
    n_avg = max(1, math.ceil(average * n_steps))
    best = _project(projection, np.mean(thetas[-n_avg:], axis=0))
    final = est(key_eval, best)
    theta_se, how = _sandwich(est, key_eval, best, final, projection)
    return DesignResult(_unravel_np(est.unravel, best), theta_se, final.value,
                        final.value_se, final.grad, final.grad_se,
                        History(np.array(thetas[:-1]), np.array(values), np.array(ses),
                                np.array(norms)), how, final)


def _sandwich(est: Estimator, key, flat, at: Estimate, projection):
    """Standard errors of the optimum: ``H^{-1} Sigma H^{-1} / n`` on the feasible
    directions (``None`` and the reason where it cannot be estimated)."""
    p = flat.shape[0]
    if projection is None:
        basis, room = np.eye(p), np.inf
    elif hasattr(projection, "tangent"):
        basis = projection.tangent(flat)
        free = projection.free(flat)
        room = np.min(free[free > 1e-12], initial=np.inf)
    else:
        return None, "none: a projection without a tangent method (use design.box/budget)"
    if basis.shape[1] == 0:
        return _unravel_np(est.unravel, np.zeros(p)), \
            "the design lies on a vertex of the feasible set (exact: SE 0)"
    eps = float(np.finfo(np.dtype(est.dtype)).eps)
    delta = min(eps ** (1 / 3) * max(1.0, float(np.abs(flat).max())), 0.5 * room)
    cols = []
    for z in basis.T:
        g_up = est(key, flat + delta * z).grad_flat
        g_dn = est(key, flat - delta * z).grad_flat
        cols.append(basis.T @ (g_up - g_dn) / (2 * delta))
    h = np.array(cols).T
    h = 0.5 * (h + h.T)
    w = np.linalg.eigvalsh(h)
    if w.min() <= 0:
        return None, (f"none: the curvature along the feasible directions is not positive "
                      f"(smallest eigenvalue {w.min():.3g}): not at a minimum (more steps, "
                      f"more chains)")
    g = at.chain_grads @ basis
    sigma = np.atleast_2d(np.cov(g, rowvar=False))
    h_inv = np.linalg.inv(h)
    cov = basis @ h_inv @ sigma @ h_inv @ basis.T / g.shape[0]
    return (_unravel_np(est.unravel, np.sqrt(np.clip(np.diag(cov), 0.0, None))),
            "sandwich: H^-1 Sigma_g H^-1 / n_chains on the feasible directions")
