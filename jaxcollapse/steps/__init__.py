"""Loop steps: what happens to the synthetic draws between sampling and fitting.

``simulate(..., step=...)`` takes one step or a sequence applied in order. See
:mod:`jaxcollapse.steps._base` for the contract a step follows.
"""

from jaxcollapse.steps._base import Identity, Step, as_steps, identity

__all__ = ["Identity", "Step", "as_steps", "identity"]
