"""Monte Carlo estimates of a loop design's objective and its gradient, with their
standard errors.

A *loss* is ``loss(key, theta) -> metric`` where ``metric`` holds one value a chain:
shape ``(n_chains,)``, or a per-generation trajectory ``(n_chains, n_generations + 1)``
(usually a metric of :func:`jaxcollapse.simulate`) from which ``generation`` picks
the objective (an index, or ``"mean"``: the average over generations 1..n). A
trajectory lets a non-finite gradient be traced to the generation where it began.

The per-chain derivatives come from forward mode (:func:`jax.jacfwd`: one pushforward
a parameter, batched), so the gradient of the chain mean has a Monte Carlo standard
error from the spread of the chains' own gradients. Forward mode costs about
``len(theta)`` forward simulations; it suits designs of a few to a few tens of
numbers (fractions, weights, a bandwidth, a per-generation schedule).

References:
    Mohamed, Rosca, Figurnov, Mnih, Monte Carlo Gradient Estimation in Machine
    Learning, JMLR 21 (2020) (pathwise estimators). THEORY.md sections 9 and 11.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

PyTree = Any
Loss = Callable[[jax.Array, PyTree], jax.Array]


class Estimate(NamedTuple):
    """The chain mean of a loss at ``theta``, its gradient, and their standard errors.

    Attributes:
        value: the chain mean of the objective (a float).
        value_se: its Monte Carlo standard error, ``sd / sqrt(n_chains)``.
        grad: the gradient of ``value`` with respect to ``theta`` (same structure).
        grad_se: the standard error of each gradient entry (same structure).
        chain_values: the per-chain objective, ``(n_chains,)`` (NumPy).
        chain_grads: the per-chain gradients, flattened, ``(n_chains, n_params)``
            (reverse mode: the per-batch gradients of the batch means,
            ``(n_batches, n_params)``); their mean is the gradient and their spread
            over the square root of their number its standard error.

    Example:
        >>> e = Estimate(1.0, 0.1, 0.5, 0.05, np.ones(4), np.ones((4, 1)))
        >>> e.n_chains
        4
    """

    value: float
    value_se: float
    grad: PyTree
    grad_se: PyTree
    chain_values: np.ndarray
    chain_grads: np.ndarray

    @property
    def n_chains(self) -> int:
        """The number of chains the estimate averages."""
        return int(self.chain_values.shape[0])

    @property
    def grad_flat(self) -> np.ndarray:
        """The gradient as a flat vector ``(n_params,)`` (the order of ``ravel_pytree``)."""
        return self.chain_grads.mean(axis=0)


def check_theta(theta: PyTree, name: str = "theta") -> PyTree:
    """Validates the design parameters before any tracing: a non-empty pytree of
    finite floating-point arrays.

    Raises:
        TypeError: a leaf is an integer or boolean (a static count: it has no
            derivative) or not numeric.
        ValueError: no leaves, or a non-finite value.

    Example:
        >>> check_theta({"w": 0.5})["w"].dtype.kind
        'f'
        >>> check_theta({"n": 3})
        Traceback (most recent call last):
        ...
        TypeError: theta['n'] = 3 is an integer: differentiating with respect to a static ...

    References:
        THEORY.md section 11.
    """
    leaves, tree = jax.tree_util.tree_flatten_with_path(theta)
    if not leaves:
        raise ValueError(f"{name} must hold at least one float parameter; got {theta!r}"[:300])
    out = []
    for path, leaf in leaves:
        where = name + jax.tree_util.keystr(path)
        if isinstance(leaf, jax.core.Tracer):
            raise TypeError(f"{where} is a tracer: call jaxcollapse.design outside jit/grad "
                            f"(it differentiates for you)")
        if isinstance(leaf, str | bytes) or leaf is None:
            raise TypeError(f"{where} must be a float array; got {leaf!r}"[:300])
        a = np.asarray(leaf)
        if a.dtype.kind in "biu":
            kind = "boolean" if a.dtype.kind == "b" else "integer"
            raise TypeError(f"{where} = {leaf!r} is an {kind}: differentiating with respect "
                            f"to a static (integer) parameter is not possible; pass a float "
                            f"(e.g. {float(np.ravel(a)[0]) if a.size else 0.0}) or leave it "
                            f"out of {name}"[:400])
        if a.dtype.kind not in "f":
            raise TypeError(f"{where} must be a real float array; got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where} must be finite; got {a.tolist()}"[:300])
        out.append(jnp.asarray(leaf))
    return jax.tree_util.tree_unflatten(tree, out)


def _check_generation(generation) -> int | str:
    if generation == "mean":
        return "mean"
    if isinstance(generation, bool) or not isinstance(generation, int | np.integer):
        raise TypeError(f"generation must be an int (an index into the trajectory, -1 the "
                        f"last) or 'mean'; got {generation!r}")
    return int(generation)


def _check_output(shape, dtype, generation) -> None:
    """The loss's output (from ``jax.eval_shape``) is a scalar metric per chain."""
    if len(shape) == 0:
        raise ValueError("the loss returned a scalar: return the per-chain values, shape "
                         "(n_chains,), or their trajectory (n_chains, n_generations + 1), "
                         "not their mean, so that the Monte Carlo standard error can be "
                         "estimated")
    if len(shape) > 2:
        raise ValueError(f"the loss returned shape {tuple(shape)}: a metric that is not a "
                         f"scalar per chain; reduce it to (n_chains,) or a trajectory "
                         f"(n_chains, n_generations + 1)")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"the loss must return floats; got dtype {dtype}")
    if shape[0] < 2:
        raise ValueError(f"the loss returned {shape[0]} chain(s); a standard error needs "
                         f"n_chains >= 2")
    if len(shape) == 2:
        if generation != "mean" and not -shape[1] <= generation < shape[1]:
            raise ValueError(f"generation={generation} is outside the trajectory's "
                             f"{shape[1]} generations (0..{shape[1] - 1})")
        if generation == "mean" and shape[1] < 2:
            raise ValueError("generation='mean' averages generations 1..n; the trajectory "
                             "has generation 0 only")


def _reduce(out: np.ndarray, generation, trajectory: bool) -> np.ndarray:
    """The objective per chain from the loss's output (and likewise its Jacobian,
    whose last axis is the parameters)."""
    if not trajectory:
        return out
    if generation == "mean":
        return out[:, 1:].mean(axis=1)
    return out[:, generation]


def _first_bad_generation(out: np.ndarray, jac: np.ndarray) -> str:
    """Where a trajectory (and its derivatives) first went non-finite."""
    if out.ndim != 2:
        return ("the loss returns no trajectory, so the generation is unknown (return "
                "the metric's trajectory, shape (n_chains, n_generations + 1), to have it "
                "reported)")
    bad_v = ~np.isfinite(out)
    bad_g = ~np.all(np.isfinite(jac), axis=-1)
    bad = bad_v | bad_g
    if not bad.any():
        return ("forward mode finds every generation finite: only the reverse-mode "
                "gradient is not (try n_batches=None)")
    t = int(np.argmax(bad.any(axis=0)))
    chains = np.flatnonzero(bad[:, t])
    what = "the metric" if bad_v[:, t].any() else "its derivative"
    return (f"{what} first went non-finite at generation {t} (in {chains.size} of "
            f"{out.shape[0]} chains, e.g. chain {int(chains[0])})")


def value_and_grad(loss: Loss, key: jax.Array, theta: PyTree, *,
                   generation: int | str = -1, n_batches: int | None = None) -> Estimate:
    """The chain mean of ``loss(key, theta)`` and its gradient, with standard errors.

    Args:
        loss: ``loss(key, theta)`` returning per-chain values ``(n_chains,)`` or a
            trajectory ``(n_chains, n_generations + 1)``; differentiable in ``theta``
            (e.g. a metric of :func:`jaxcollapse.simulate` whose regime, steps or
            ``params0`` are built from ``theta``).
        key: a JAX PRNG key, passed to ``loss`` unchanged (the same key gives the
            same chains: common random numbers across calls).
        theta: the design parameters: a float or a pytree of float arrays.
        generation: for a trajectory, the generation whose value is the objective
            (an index; -1 the last) or ``"mean"`` (the average of generations 1..n).
        n_batches: ``None`` (default): forward mode, one pushforward a parameter, the
            chains' own gradients. An integer >= 2: reverse mode (cost independent of
            the number of parameters, for long designs), on ``n_batches`` batches of
            chains (batch b calls ``loss(fold_in(key, b), theta)``), the SE from the
            spread of the batches' gradients.

    Returns:
        An :class:`Estimate`. The gradient is pathwise (reparameterised draws, forward
        mode, one pushforward a parameter); its standard error is the spread of the
        chains' gradients over ``sqrt(n_chains)``.

    Raises:
        TypeError: an integer or boolean parameter, or a loss returning non-floats.
        ValueError: a loss whose output is not a scalar metric per chain.
        FloatingPointError: the value or the gradient is not finite; the message says
            at which generation the trajectory first went non-finite.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> loss = jax.jit(lambda key, th: (jax.random.normal(key, (64,)) * th) ** 2)
        >>> e = value_and_grad(loss, jax.random.key(0), 2.0)
        >>> bool(abs(e.grad - e.value) < 1e-5)  # d/dth (z th)^2 = 2 z^2 th = value at th=2
        True

    References:
        Mohamed et al., JMLR 21 (2020). THEORY.md section 11.
    """
    est = Estimator.build(loss, key, theta, generation, n_batches)
    return est(key, est.flat0)


class Estimator(NamedTuple):
    """A loss checked once (parameters, output shape) and evaluated at flat parameter
    vectors: what :func:`value_and_grad` and the optimisers call at every step.

    Example:
        >>> import jax
        >>> loss = jax.jit(lambda key, th: th["a"] * jax.random.normal(key, (8, 3)))
        >>> est = Estimator.build(loss, jax.random.key(0), {"a": 1.0}, generation=-1)
        >>> est.trajectory, est(jax.random.key(0), np.array([2.0])).chain_grads.shape
        (True, (8, 1))
    """

    loss: Loss
    unravel: Callable
    flat0: np.ndarray
    dtype: Any
    generation: int | str
    trajectory: bool
    n_batches: int | None = None

    @classmethod
    def build(cls, loss: Loss, key: jax.Array, theta: PyTree,
              generation: int | str = -1, n_batches: int | None = None) -> Estimator:
        """Checks ``theta``, ``generation``, ``n_batches`` and the loss's output shape
        (traced once, nothing compiled)."""
        if n_batches is not None and (isinstance(n_batches, bool) or not isinstance(
                n_batches, int | np.integer) or n_batches < 2):
            raise ValueError(f"n_batches must be None (forward mode, per-chain gradients) "
                             f"or an integer >= 2 (reverse mode); got {n_batches!r}")
        if not callable(loss):
            raise TypeError(f"loss must be a callable loss(key, theta); got {loss!r}"[:200])
        theta = check_theta(theta)
        generation = _check_generation(generation)
        flat, unravel = ravel_pytree(theta)
        shape = jax.eval_shape(lambda x: _concrete_checks(loss, key, unravel(x)), flat)
        if not hasattr(shape, "shape"):
            raise ValueError(f"the loss must return one array of per-chain values; got "
                             f"{jax.tree.structure(shape)}: a metric that is not a scalar")
        _check_output(shape.shape, shape.dtype, generation)
        return cls(loss, unravel, np.asarray(flat, np.float64), flat.dtype, generation,
                   len(shape.shape) == 2, None if n_batches is None else int(n_batches))

    def theta(self, flat: np.ndarray) -> PyTree:
        """A flat vector as the structure (and dtypes) of theta."""
        return self.unravel(jnp.asarray(flat, self.dtype))

    def __call__(self, key: jax.Array, flat: np.ndarray) -> Estimate:
        x = jnp.asarray(flat, self.dtype)
        if self.n_batches is not None:
            return self._reverse(key, x)
        out, jac = _jacobian(self.loss, key, x, self.unravel)
        traj, gen = self.trajectory, self.generation
        values, grads = _reduce(out, gen, traj), _reduce(jac, gen, traj)
        if not (np.all(np.isfinite(values)) and np.all(np.isfinite(grads))):
            self._raise(out, jac, x)
        return self._estimate(values, grads)

    def _raise(self, out, jac, x):
        raise FloatingPointError(
            f"the loss or its gradient at theta={_fmt(self.unravel(x))} is not "
            f"finite: {_first_bad_generation(out, jac)}; keep the metric away from "
            f"its singular points (log or sqrt at 0, a variance that underflows) or "
            f"change theta")

    def _reverse(self, key, x) -> Estimate:
        """Reverse mode: the gradient of each batch's chain mean (batch b runs the loss
        with ``fold_in(key, b)``); the spread of the batch gradients gives the SE."""
        traj, gen = self.trajectory, self.generation

        def mean(y, kb):
            v = self.loss(kb, self.unravel(y))
            v = v if not traj else (v[:, 1:].mean(axis=1) if gen == "mean" else v[:, gen])
            return v.mean(), v

        values, grads = [], []
        for b in range(self.n_batches):
            kb = jax.random.fold_in(key, b)
            (_, v), g = jax.value_and_grad(mean, has_aux=True)(x, kb)
            v, g = np.asarray(v, np.float64), np.asarray(g, np.float64)
            if not (np.all(np.isfinite(v)) and np.all(np.isfinite(g))):
                self._raise(*_jacobian(self.loss, kb, x, self.unravel), x)  # locate it
            values.append(v)
            grads.append(g)
        return self._estimate(np.concatenate(values), np.array(grads))

    def _estimate(self, values, grads) -> Estimate:
        n = values.shape[0]
        g = grads.mean(axis=0)
        g_se = grads.std(axis=0, ddof=1) / np.sqrt(grads.shape[0])
        return Estimate(float(values.mean()), float(values.std(ddof=1) / np.sqrt(n)),
                        _unravel_np(self.unravel, g), _unravel_np(self.unravel, g_se),
                        values, grads)


def _concrete_checks(loss, key, theta):
    # simulate checks concrete inputs (params0) with jnp on the host; inside a trace
    # (eval_shape) those would be staged out: keep them eager
    with jax.ensure_compile_time_eval():
        return loss(key, theta)


def _jacobian(loss, key, flat, unravel):
    """``(out, d out / d flat)`` on the host, float64; the Jacobian's last axis is the
    flat parameter vector."""
    def f(x):
        y = loss(key, unravel(x))
        return y, y

    jac, out = jax.jacfwd(f, has_aux=True)(flat)
    return np.asarray(out, np.float64), np.asarray(jac, np.float64)


def _unravel_np(unravel, vec: np.ndarray) -> PyTree:
    """A flat NumPy vector back to the structure of theta (NumPy leaves, or a float
    for a scalar theta)."""
    tree = unravel(jnp.asarray(vec))
    return jax.tree.map(lambda a: float(a) if np.ndim(a) == 0 else np.asarray(a), tree)


def _fmt(theta) -> str:
    return str(jax.tree.map(lambda a: np.round(np.asarray(a), 6).tolist(), theta))[:200]
