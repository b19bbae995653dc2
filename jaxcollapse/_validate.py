"""Shared validators for the public boundary: one place for the checks every entry
point needs, so that every error names the argument, its value and what is allowed.

Use these instead of writing another private ``_check_int`` (the package had seven
integer validators under different names). Each validator runs on the host, in
Python/NumPy, before anything is traced; given a JAX tracer (a function called
under ``jit``/``vmap``) it checks only what is static (dtype, shape) and lets the
value through, so library code may call a validated public function inside
compiled code.

* :func:`check_int` – one integer (``int``, NumPy integer or an integral float;
  never ``bool``), with optional bounds; returns a Python ``int``.
* :func:`check_int_array` – an array of integer values (e.g. generations ``n``).
* :func:`check_real` – a real array (no complex, no strings) with optional bounds
  and finiteness; :func:`check_positive` and :func:`check_fraction` are the two
  usual special cases.
* :func:`check_choice` – one of a few allowed values (a method, a format, a rule).
* :func:`check_probs` – a probability vector (non-negative, finite, sums to 1).
* :func:`check_psd` – square, symmetric, finite, positive (semi-)definite matrices.
* :func:`float_array` – the dtype rule at a family boundary (see its docstring):
  integers and bools become the default float dtype, float16/bfloat16 become
  float32, float32/float64 stay, complex and anything else is refused.
* :func:`check_key` – a JAX PRNG key from ``jax.random.key``.
* :func:`check_instance` – an instance, not its class (``jc.Gaussian()``, not
  ``jc.Gaussian``).

Every validator raises ``TypeError`` for a wrong kind of value (a string, a
complex number, a float where an integer is needed) and ``ValueError`` for a value
outside its domain, with the argument's name first in the message.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "check_choice",
    "check_finite",
    "check_fraction",
    "check_int",
    "check_instance",
    "check_int_array",
    "check_key",
    "check_positive",
    "check_probs",
    "check_psd",
    "check_real",
    "float_array",
    "is_traced",
]

_MAX_SHOWN = 120


def _show(value: Any) -> str:
    """A short repr of ``value`` for an error message."""
    text = repr(value)
    if isinstance(value, np.ndarray | jax.Array) and np.size(value) > 6:
        a = np.asarray(value)
        text = f"array of shape {a.shape} starting {a.ravel()[:4].tolist()}"
    return text if len(text) <= _MAX_SHOWN else text[:_MAX_SHOWN] + "..."


def is_traced(value: Any) -> bool:
    """Whether ``value`` is (or holds) a JAX tracer, whose values are unknown.

    Example:
        >>> import jax
        >>> seen = []
        >>> _ = jax.jit(lambda x: seen.append(is_traced(x)) or x)(1.0)
        >>> is_traced(1.0), seen
        (False, [True])
    """
    return any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(value))


def _numeric(value: Any, name: str) -> np.ndarray:
    """``value`` as a real NumPy array (no tracers), or a TypeError naming ``name``."""
    if isinstance(value, str | bytes) or value is None:
        raise TypeError(f"{name} must be a real number or array; got {_show(value)}")
    try:
        a = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything NumPy cannot convert
        raise TypeError(f"{name} must be a real number or array; got {_show(value)}") from None
    if a.dtype.kind == "c":
        raise TypeError(f"{name} must be real; got complex dtype {a.dtype} (pass the real "
                        f"part explicitly if that is what is meant)")
    if a.dtype.kind not in "biuf" and a.dtype.name != "bfloat16":
        raise TypeError(f"{name} must be a real number or array; got dtype {a.dtype}")
    return a


def check_choice(value: Any, name: str, choices: tuple) -> Any:
    """One of ``choices`` (a method, a format, a rule: a few allowed values, usually
    strings); returns it.

    Example:
        >>> check_choice("exact", "method", ("samples", "exact"))
        'exact'
        >>> check_choice("fast", "method", ("samples", "exact"))
        Traceback (most recent call last):
        ...
        ValueError: method must be one of ('samples', 'exact'); got 'fast'
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}; got {value!r}")
    return value


def check_int(value: Any, name: str, minimum: int | None = None,
              maximum: int | None = None) -> int:
    """One integer in ``[minimum, maximum]``; an integral float (``10.0``) is accepted.

    Example:
        >>> check_int(3, "M", minimum=2)
        3
        >>> check_int(1, "M", minimum=2)
        Traceback (most recent call last):
        ...
        ValueError: M must be an integer >= 2; got 1
        >>> check_int(2.5, "M")
        Traceback (most recent call last):
        ...
        TypeError: M must be an integer; got 2.5
    """
    allowed = "an integer" + ("" if minimum is None else f" >= {minimum}") + (
        "" if maximum is None else f" <= {maximum}")
    if isinstance(value, bool | np.bool_) or isinstance(value, str | bytes):
        raise TypeError(f"{name} must be {allowed}; got {_show(value)}")
    if isinstance(value, jax.Array | np.ndarray):
        if value.ndim != 0:
            raise TypeError(f"{name} must be {allowed} (a scalar); got an array of shape "
                            f"{value.shape}")
        if isinstance(value, jax.core.Tracer):
            raise TypeError(f"{name} must be a concrete (static) integer; got a traced "
                            f"value")
        value = value.item()
    if isinstance(value, int | np.integer):
        v = int(value)
    elif isinstance(value, float | np.floating) and math.isfinite(value) and \
            float(value).is_integer():
        v = int(value)
    else:
        raise TypeError(f"{name} must be an integer; got {_show(value)}")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be {allowed}; got {v}")
    return v


def check_int_array(value: Any, name: str, minimum: int | None = None) -> Any:
    """An array (or scalar) of integer values ``>= minimum``; integral floats pass.

    Returns ``value`` unchanged (a tracer passes after a dtype check).

    Example:
        >>> check_int_array([0, 1, 5], "n", minimum=0)
        [0, 1, 5]
        >>> check_int_array([0, -1], "n", minimum=0)
        Traceback (most recent call last):
        ...
        ValueError: n must be >= 0 (integer valued); got [0, -1]
    """
    allowed = ("" if minimum is None else f">= {minimum} ") + "(integer valued)"
    if is_traced(value):
        if jnp.issubdtype(jnp.result_type(value), jnp.complexfloating):
            raise TypeError(f"{name} must be integer valued; got a complex dtype")
        return value
    a = _numeric(value, name)
    if a.dtype.kind == "b":
        raise TypeError(f"{name} must be integer valued; got booleans")
    if a.dtype.kind == "f" or a.dtype.name == "bfloat16":
        af = a.astype(np.float64)
        if not np.all(np.isfinite(af)):
            raise ValueError(f"{name} must be {allowed}; got NaN or inf in {_show(value)}")
        if not np.all(af == np.round(af)):
            raise TypeError(f"{name} must be integer valued; got {_show(value)}")
    if minimum is not None and a.size and np.min(a) < minimum:
        raise ValueError(f"{name} must be {allowed}; got {_show(value)}")
    return value


def check_real(value: Any, name: str, *, minimum: float | None = None,
               maximum: float | None = None, strict_min: bool = False,
               finite: bool = True) -> Any:
    """A real array (or scalar) within bounds; ``strict_min`` makes the lower bound
    exclusive. NaN is always refused; inf unless ``finite=False``.

    Returns ``value`` unchanged (a tracer passes after a dtype check).

    Example:
        >>> check_real(0.5, "q", minimum=0, maximum=1)
        0.5
        >>> check_real(-1.0, "sigma0_sq", minimum=0)
        Traceback (most recent call last):
        ...
        ValueError: sigma0_sq must be >= 0 and finite; got -1.0
        >>> check_real(1j, "h")
        Traceback (most recent call last):
        ...
        TypeError: h must be real; got complex dtype complex128 (pass the real part ...
    """
    parts = []
    if minimum is not None:
        parts.append(f"{'>' if strict_min else '>='} {minimum:g}")
    if maximum is not None:
        parts.append(f"<= {maximum:g}")
    parts.append("finite" if finite else "not NaN")
    allowed = " and ".join(parts)
    if is_traced(value):
        if jnp.issubdtype(jnp.result_type(value), jnp.complexfloating):
            raise TypeError(f"{name} must be real; got a complex dtype")
        return value
    a = _numeric(value, name).astype(np.float64)
    bad = np.isnan(a) | (~np.isfinite(a) if finite else False)
    if minimum is not None:
        bad = bad | ((a <= minimum) if strict_min else (a < minimum))
    if maximum is not None:
        bad = bad | (a > maximum)
    if np.any(bad):
        raise ValueError(f"{name} must be {allowed}; got {_show(value)}")
    return value


def check_positive(value: Any, name: str, allow_zero: bool = False) -> Any:
    """A finite real array ``> 0`` (``>= 0`` with ``allow_zero``).

    Example:
        >>> check_positive(0.0, "h")
        Traceback (most recent call last):
        ...
        ValueError: h must be > 0 and finite; got 0.0
    """
    return check_real(value, name, minimum=0.0, strict_min=not allow_zero)


def check_fraction(value: Any, name: str) -> Any:
    """A real array in ``[0, 1]`` (a probability, a quantile level, a mixing weight).

    Example:
        >>> check_fraction(1.5, "q")
        Traceback (most recent call last):
        ...
        ValueError: q must be >= 0 and <= 1 and finite; got 1.5
    """
    return check_real(value, name, minimum=0.0, maximum=1.0)


def check_finite(value: Any, name: str) -> Any:
    """A real array without NaN or inf.

    Example:
        >>> check_finite([1.0, float("nan")], "mean1")
        Traceback (most recent call last):
        ...
        ValueError: mean1 must be finite; got [1.0, nan]
    """
    return check_real(value, name)


def check_probs(value: Any, name: str = "probs", sum_tol: float = 1e-4,
                axis_min: int = 1) -> Any:
    """Probabilities along the last axis: finite, ``>= 0``, summing to 1 within
    ``sum_tol`` (``axis_min``: the fewest categories allowed).

    Example:
        >>> check_probs([0.5, 0.5])
        [0.5, 0.5]
        >>> check_probs([1.5, -0.5])
        Traceback (most recent call last):
        ...
        ValueError: probs must be >= 0; got minimum -0.5
    """
    if is_traced(value):
        return value
    a = _numeric(value, name).astype(np.float64)
    if a.ndim < 1 or a.shape[-1] < axis_min:
        raise ValueError(f"{name} must have shape (..., K) with K >= {axis_min}; got "
                         f"shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    if np.any(a < 0):
        raise ValueError(f"{name} must be >= 0; got minimum {a.min()}")
    s = a.sum(-1)
    if np.any(np.abs(s - 1.0) > sum_tol):
        raise ValueError(f"{name} must sum to 1 (within {sum_tol:g}); got sums "
                         f"{_show(s if s.ndim else float(s))}")
    return value


def check_psd(value: Any, name: str, definite: bool = False, rtol: float | None = None
              ) -> Any:
    """Square ``(..., d, d)`` matrices that are finite, symmetric and positive
    semi-definite (``definite``: positive definite). An eigenvalue may fall below
    zero by rounding: ``-rtol * max|eigenvalue|`` with ``rtol`` of ``d`` machine
    epsilons of the input's dtype by default.

    Example:
        >>> check_psd([[1.0, 0.0], [0.0, -1.0]], "cov1")
        Traceback (most recent call last):
        ...
        ValueError: cov1 must be positive semi-definite; got an eigenvalue -1 (largest 1)
    """
    if is_traced(value):
        shape = jnp.shape(value)
        if len(shape) < 2 or shape[-1] != shape[-2]:
            raise ValueError(f"{name} must have shape (..., d, d); got {shape}")
        return value
    a = _numeric(value, name)
    if a.ndim < 2 or a.shape[-1] != a.shape[-2] or a.shape[-1] == 0:
        raise ValueError(f"{name} must have shape (..., d, d) with d >= 1; got {a.shape}")
    eps = float(np.finfo(a.dtype).eps) if a.dtype.kind == "f" else float(
        np.finfo(np.float64).eps)
    a = a.astype(np.float64)
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be finite; got NaN or inf")
    scale = np.max(np.abs(a)) if a.size else 0.0
    at = np.swapaxes(a, -1, -2)
    if np.any(np.abs(a - at) > 1e-5 * np.maximum(np.abs(a), np.abs(at)) + 1e-8 * scale):
        raise ValueError(f"{name} must be symmetric")
    w = np.linalg.eigvalsh(0.5 * (a + at))
    top = np.max(np.abs(w), axis=-1, keepdims=True)
    tol = (a.shape[-1] * eps if rtol is None else rtol) * top
    low = w[..., :1]
    bad = (low <= 0) if definite else (low < -tol)
    if np.any(bad):
        what = "positive definite" if definite else "positive semi-definite"
        i = np.unravel_index(np.argmax(bad), bad.shape)
        raise ValueError(f"{name} must be {what}; got an eigenvalue {w[i[:-1]][0]:.3g} "
                         f"(largest {w[i[:-1]][-1]:.3g})")
    return value


def float_array(value: Any, name: str) -> jax.Array:
    """``value`` as a JAX floating array, by the dtype rule of the family boundary.

    * float32 and float64 stay as they are;
    * float16 and bfloat16 become float32 (the families' scans, linear algebra and
      samplers need at least single precision; a half-precision carry would fail
      deep inside ``lax.scan``);
    * integers and booleans become the default float dtype (float64 under
      ``jax_enable_x64``, else float32);
    * complex numbers are refused (a ``TypeError`` naming ``name``): their imaginary
      part would be dropped silently;
    * strings, objects and anything else NumPy cannot read as numbers: ``TypeError``.

    Example:
        >>> import numpy as np
        >>> float_array(np.ones(2, np.float16), "data").dtype.name
        'float32'
        >>> float_array(np.ones(2, np.complex64), "data")
        Traceback (most recent call last):
        ...
        TypeError: data must be real; got complex dtype complex64 (pass the real part ...
    """
    if is_traced(value):
        dtype = jnp.result_type(value)
        if jnp.issubdtype(dtype, jnp.complexfloating):
            raise TypeError(f"{name} must be real; got complex dtype {dtype}")
        x = jnp.asarray(value)
    else:
        if isinstance(value, jax.Array):
            dt = value.dtype
            if jnp.issubdtype(dt, jnp.complexfloating):
                raise TypeError(f"{name} must be real; got complex dtype {dt} (pass the "
                                f"real part explicitly if that is what is meant)")
            x = value
        else:
            x = jnp.asarray(_numeric(value, name))
    if x.dtype in (jnp.float16, jnp.bfloat16):
        return x.astype(jnp.float32)
    if not jnp.issubdtype(x.dtype, jnp.floating):
        return x.astype(jnp.result_type(float))
    return x


def check_key(key: Any, name: str = "key") -> jax.Array:
    """A (scalar or batched) JAX PRNG key made by ``jax.random.key``.

    Example:
        >>> import jax
        >>> check_key(jax.random.key(0)).shape
        ()
        >>> check_key(0)
        Traceback (most recent call last):
        ...
        TypeError: key must be a JAX PRNG key from jax.random.key(seed); got 0
    """
    if not (isinstance(key, jax.Array) and jax.dtypes.issubdtype(key.dtype,
                                                                  jax.dtypes.prng_key)):
        raise TypeError(f"{name} must be a JAX PRNG key from jax.random.key(seed); got "
                        f"{_show(key)}")
    return key


def check_instance(value: Any, name: str = "family") -> Any:
    """Refuses a class passed where an instance of it is needed (``jc.Gaussian``
    for ``jc.Gaussian()``), naming the argument and the call to make.

    Example:
        >>> import jaxcollapse as jc
        >>> check_instance(jc.Gaussian(dim=2)).dim
        2
        >>> check_instance(jc.Gaussian)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: family must be an instance, not the class Gaussian: instantiate it, ...
    """
    if isinstance(value, type):
        cls = value.__name__
        where = "jc." if getattr(value, "__module__", "").startswith("jaxcollapse") else ""
        raise TypeError(f"{name} must be an instance, not the class {cls}: instantiate it, "
                        f"e.g. {name}={where}{cls}() (with its settings, such as dim=...)")
    return value
