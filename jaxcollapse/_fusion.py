"""The compiler workarounds of jaxcollapse, in one place, apart from the maths.

Every helper here computes what its name says; the form it computes it in is
chosen for XLA:CPU, where jaxcollapse's runs are measured. What each avoids:

XLA gives every output array of a fusion its own loop and repeats in each the
cheap operations (a hash) they share; it simplifies a complex pair or a stack that
is taken apart right away back into separate arrays; it fuses a transpose with its
producer into a loop that walks memory with a stride; and it vectorises a
reduction only when the reduced array is plain (a sum of ``x`` or ``x * x``), not
when a select or a broadcast is fused into it. Optimisation barriers do not stop
any of this. A conditional does: XLA can neither see through nor fuse across
one whose predicate it cannot know, so :func:`apart` runs a function as the
branch taken by such a conditional.

======================== ========================================================
helper                   avoids (XLA:CPU)
======================== ========================================================
:func:`apart`            a fusion that recomputes shared work per output, or a
                         transpose fused with its producer (strided loop)
:func:`transpose_apart`  the same, for swapping the two leading axes
:func:`hash_once`        keys re-hashed inside every consumer of them
:func:`any_negative`     an unvectorised ``any`` reduction (a select fused in)
:func:`top_k_indices`    a TopK turned into a full sort by a consumer fused in
:data:`SMALL_DIM`,       batched products of tiny matrices run as slow dot calls
:func:`small_matvec`...
:func:`row_sum`...       scalar reductions, slow ``cumsum`` over a leading axis
======================== ========================================================

Other backends: every helper gives the same numbers on every backend (the
same operations in the same order), which the same-key guarantee needs, so none
switches by backend on its own. On GPU and TPU the conditionals of :func:`apart`
cost a launch each and the unrolled forms are no faster than the plain ones; a
port tuned for them would set :data:`SMALL_DIM` to 0 and make :func:`apart` call
``fn`` directly (numbers then change in the last bits). Inline CPU-shaped code
that stays in the mathematical modules, because it is part of the formula's
evaluation order: the Threefry rounds written out (:mod:`jaxcollapse._threefry`),
the one-dimensional Gaussian paths (flat vectors instead of a trailing axis of
size 1) and the Wright–Fisher metrics' separate pairwise sums.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax


def apart(flag: jax.Array, fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)``, computed in loops of its own and materialised.

    ``flag`` must be true at run time but unknown to XLA (:func:`runtime_true`).
    The other branch gives zeros: it never runs. (With ``fn`` in both branches
    XLA:CPU no longer splits the loops over its threads.) ``flag`` should not be
    batched under ``vmap``, which would turn the conditional into a select.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> x = jnp.arange(6.0).reshape(2, 3)
        >>> apart(runtime_true(jax.random.key(0)), jnp.transpose, x).tolist()
        [[0.0, 3.0], [1.0, 4.0], [2.0, 5.0]]
    """
    def zeros(*args):
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(fn, *args))

    return lax.cond(flag, fn, zeros, *args)


def runtime_true(x: jax.Array) -> jax.Array:
    """A boolean scalar that is always true but that XLA cannot predict, from the
    first element of ``x`` (a key, or data known only at run time).

    Example:
        >>> import jax
        >>> bool(runtime_true(jax.random.key(0)))
        True
    """
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    first = jnp.ravel(x)[0]
    if jnp.issubdtype(first.dtype, jnp.floating):
        return ~(first > jnp.inf)  # false for no float, NaN included
    return (first | jnp.ones((), first.dtype)) != 0  # integers


def transpose_apart(flag: jax.Array, tree: Any) -> Any:
    """Every leaf with its two leading axes swapped, each transposed in a loop of its
    own (:func:`apart`): fused with the concatenation or scan that produces it,
    XLA:CPU's transpose walks memory with a stride.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> flag = runtime_true(jax.random.key(0))
        >>> transpose_apart(flag, {"a": jnp.zeros((2, 3))})["a"].shape
        (3, 2)
    """
    return jax.tree.map(lambda y: apart(flag, lambda y: jnp.swapaxes(y, 0, 1), y), tree)


def hash_once(keys: jax.Array) -> jax.Array:
    """``keys`` unchanged, hashed once: an optimisation barrier on their words keeps
    XLA from re-hashing them inside every consumer (a barrier cannot stop fusion
    across outputs, but it does stop the producer being duplicated into consumers).
    Free on every backend.

    Example:
        >>> import jax
        >>> k = jax.random.split(jax.random.key(0), 3)
        >>> bool((jax.random.key_data(hash_once(k)) == jax.random.key_data(k)).all())
        True
    """
    return jax.random.wrap_key_data(lax.optimization_barrier(jax.random.key_data(keys)),
                                    impl=jax.random.key_impl(keys))


def top_k_indices(x: jax.Array, k: int) -> jax.Array:
    """The indices of ``lax.top_k(x, k)``, materialised: XLA:CPU keeps its fast TopK
    only when nothing consumes its output inside the same fusion; compared with
    targets there, it became a full sort of every row (32 s instead of 1 s per 32 x
    128 tokens at WikiText-2's 33,278 words). Free on every backend.

    Example:
        >>> import jax.numpy as jnp
        >>> top_k_indices(jnp.array([[0.1, 0.7, 0.2]]), 2).tolist()
        [[1, 2]]
    """
    return lax.optimization_barrier(lax.top_k(x, k)[1])


def any_negative(x: jax.Array, axis: int | None = None) -> jax.Array:
    """Whether any element (along ``axis``) is below zero, as ``min(x) < 0``.

    Avoids: ``jnp.any(x < 0)``, whose reduction has the comparison fused in and is
    not vectorised on XLA:CPU; a minimum of a plain array is. The same result on
    every backend for arrays without NaN (a NaN minimum compares false; the
    samplers that use it never hold NaN).

    Example:
        >>> import jax.numpy as jnp
        >>> any_negative(jnp.array([[1.0, -1.0], [2.0, 3.0]]), axis=1).tolist()
        [True, False]
    """
    return jnp.min(x, axis=axis) < 0


# Products of small matrices.
#
# Avoids: under vmap, XLA:CPU runs batched products of tiny matrices (d <= 8) as
# slow dot calls; broadcast-and-sum is elementwise work that fuses and vectorises,
# several times faster. On GPU and TPU the dot is as fast or faster, but the
# threshold is kept on every backend so that one key gives the same numbers
# everywhere (the two forms round differently); set SMALL_DIM = 0 to always use the
# dot (numbers then change in the last bits for d <= 8). families/gmm.py and
# kernels.py unroll their own per-coordinate algebra below this same dimension.
SMALL_DIM = 8


def small_matvec(a: jax.Array, x: jax.Array) -> jax.Array:
    """``a (d, d)`` times each row of ``x (..., d)``: ``x @ a.T``, as a broadcast sum
    for ``d <= SMALL_DIM``.

    Example:
        >>> import jax.numpy as jnp
        >>> small_matvec(jnp.array([[1.0, 2.0], [0.0, 1.0]]), jnp.array([[1.0, 1.0]])).tolist()
        [[3.0, 1.0]]
    """
    if a.shape[-1] <= SMALL_DIM:
        return jnp.sum(a * x[..., None, :], axis=-1)
    return x @ a.T


def small_gram(x: jax.Array) -> jax.Array:
    """``x^T x`` for ``x (n, d)``, as a broadcast sum for ``d <= SMALL_DIM``.

    Example:
        >>> import jax.numpy as jnp
        >>> small_gram(jnp.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
        [[10.0, 14.0], [14.0, 20.0]]
    """
    if x.shape[-1] <= SMALL_DIM:
        return jnp.sum(x[:, :, None] * x[:, None, :], axis=0)
    return x.T @ x


def small_matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """``a @ b`` for ``(d, d)`` matrices, as a broadcast sum for ``d <= SMALL_DIM``.

    Example:
        >>> import jax.numpy as jnp
        >>> small_matmul(jnp.eye(2), jnp.array([[1.0, 2.0], [3.0, 4.0]])).tolist()
        [[1.0, 2.0], [3.0, 4.0]]
    """
    if a.shape[-1] <= SMALL_DIM:
        return jnp.sum(a[:, :, None] * b[None, :, :], axis=1)
    return a @ b


# Reductions over the leading (slot) axis by adjacent pairs.


def pair_rows(x: jax.Array) -> jax.Array:
    """Sums of adjacent rows (axis 0; a zero row pads an odd count): the next level
    of a pairwise tree.

    Example:
        >>> import jax.numpy as jnp
        >>> pair_rows(jnp.arange(3.0)).tolist()
        [1.0, 2.0]
    """
    if x.shape[0] % 2:
        x = jnp.concatenate([x, jnp.zeros((1,) + x.shape[1:], x.dtype)])
    return x[0::2] + x[1::2]


def row_sum(x: jax.Array) -> jax.Array:
    """Sum over axis 0 by adjacent pairs.

    Avoids: ``jnp.sum`` over axis 0 of a fused expression, which XLA:CPU runs as a
    scalar loop. The pairwise order also makes the additions for a chain's packed
    slots the same whatever the width (padding adds exact zeros), which the
    Wright–Fisher runner's same-key guarantee relies on, so keep it on every backend.

    Example:
        >>> import jax.numpy as jnp
        >>> row_sum(jnp.ones((5, 2))).tolist()
        [5.0, 5.0]
    """
    while x.shape[0] > 1:
        x = pair_rows(x)
    return x[0]


def row_min(x: jax.Array) -> jax.Array:
    """Minimum over axis 0 by adjacent pairs (padding with ``inf``).

    Avoids: XLA's reduction fused with the elementwise work before it, which runs
    scalar on CPU. Exact on every backend (a minimum does not round); on GPU
    ``jnp.min(x, 0)`` would do as well.

    Example:
        >>> import jax.numpy as jnp
        >>> row_min(jnp.array([[3.0], [1.0], [2.0]])).tolist()
        [1.0]
    """
    while x.shape[0] > 1:
        if x.shape[0] % 2:
            x = jnp.concatenate([x, jnp.full((1,) + x.shape[1:], jnp.inf, x.dtype)])
        x = jnp.minimum(x[0::2], x[1::2])
    return x[0]


def row_exclusive_prefix(x: jax.Array) -> jax.Array:
    """Exclusive prefix sums over axis 0 by a tree of pairwise sums and a top-down
    pass.

    Avoids: ``jnp.cumsum`` over axis 0, several times slower on XLA:CPU. Used on
    integer counts, so exact on every backend; on GPU ``jnp.cumsum(x, 0) - x`` is
    the simpler choice.

    Example:
        >>> import jax.numpy as jnp
        >>> row_exclusive_prefix(jnp.array([1, 0, 2, 1])).tolist()
        [0, 1, 1, 3]
    """
    levels = [x]
    while levels[-1].shape[0] > 1:
        levels.append(pair_rows(levels[-1]))
    p = jnp.zeros_like(levels[-1])
    for lv in levels[-2::-1]:
        p = jnp.stack([p, p + lv[0::2]], 1).reshape((2 * p.shape[0],) + lv.shape[1:])
        p = p[:lv.shape[0]]
    return p
