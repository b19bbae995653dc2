"""Which devices a computation is spread over: one helper for every entry point.

``simulate`` shards chains over a mesh axis named ``"chains"``; the Gram, KDE and MMD
evaluators and data-parallel training split their data over an axis named
``"data"``. All of them take ``devices=`` (an int, a list of devices or ``None``)
or ``mesh=`` (a :class:`jax.sharding.Mesh`) and resolve them here, so the rules and
the error messages are the same everywhere.
"""

from __future__ import annotations

import jax
import numpy as np

CHAIN_AXIS = "chains"
DATA_AXIS = "data"


def resolve_mesh(devices, mesh, axis: str, what: str = "chains"):
    """The 1-D mesh (axis ``axis``) to split ``what`` over, or ``None`` for one device.

    ``devices=None`` means all local devices; an int ``k`` the first ``k`` devices;
    a list, those devices. A given ``mesh`` must have an axis named ``axis`` and no
    other axis of size > 1.

    Example:
        >>> resolve_mesh(1, None, "data") is None
        True
        >>> resolve_mesh(0, None, "data")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: devices=0 requested but 1 exist (cpu); allowed: 1..1
    """
    if mesh is not None:
        if devices is not None:
            raise ValueError("give either devices= or mesh=, not both")
        if not isinstance(mesh, jax.sharding.Mesh):
            raise TypeError(f"mesh must be a jax.sharding.Mesh; got {type(mesh).__name__}")
        if axis not in mesh.axis_names:
            raise ValueError(f"mesh must have an axis named {axis!r} to shard {what} over; "
                             f"got axis names {mesh.axis_names}")
        if mesh.devices.size != mesh.shape[axis]:
            raise ValueError(f"mesh axes other than {axis!r} must have size 1; got "
                             f"{dict(mesh.shape)}")
        # the same devices as a 1-D mesh with automatic axis types
        return jax.sharding.Mesh(mesh.devices.reshape(-1), (axis,)) \
            if mesh.devices.size > 1 else None
    # a process can only run on its own devices (in a multi-process run jax.devices()
    # also lists the other processes')
    available = jax.local_devices()
    if devices is None:
        devs = jax.local_devices()
    elif isinstance(devices, int | np.integer) and not isinstance(devices, bool):
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices} requested but {len(available)} exist "
                             f"({jax.default_backend()}); allowed: 1..{len(available)}")
        devs = available[:devices]
    else:
        devs = list(devices)
        if not devs or not all(isinstance(d, jax.Device) for d in devs):
            raise TypeError("devices must be an int, a list of jax devices or None")
    if len(devs) == 1:
        return None
    return jax.sharding.Mesh(np.array(devs), (axis,))


def mesh_size(mesh) -> int:
    """Number of devices of a resolved mesh (1 for ``None``).

    Example:
        >>> mesh_size(None)
        1
    """
    return 1 if mesh is None else int(mesh.devices.size)


def on_mesh(fn, mesh, in_specs, out_specs):
    """``fn`` itself for ``mesh=None`` (one device), else ``fn`` under ``shard_map``
    (``PartitionSpec(axis)`` splits an argument's leading axis, ``PartitionSpec()``
    replicates it).

    Example:
        >>> import jax.numpy as jnp
        >>> on_mesh(jnp.sum, None, None, None)(jnp.ones(3)).item()
        3.0
    """
    if mesh is None:
        return fn
    return jax.shard_map(fn, mesh=mesh, in_specs=in_specs, out_specs=out_specs,
                         check_vma=False)
