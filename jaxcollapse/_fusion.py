"""Keeping XLA from fusing where fusion costs time on CPU.

XLA gives every output array of a fusion its own loop and repeats in each the
cheap operations (a hash) they share; it simplifies a complex pair or a stack that
is taken apart right away back into separate arrays; it fuses a transpose with its
producer into a loop that walks memory with a stride; and it vectorises a
reduction only when the reduced array is plain (a sum of ``x`` or ``x * x``), not
when a select or a broadcast is fused into it. Optimisation barriers do not stop
any of this. A conditional does: XLA can neither see through nor fuse across
one whose predicate it cannot know, so :func:`apart` runs a function as the
branch taken by such a conditional.
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
