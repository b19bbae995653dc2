"""Loop steps: what happens to the synthetic draws between sampling and fitting.

``simulate(..., step=...)`` takes one step or a sequence applied in order. See
:mod:`jaxcollapse.steps._base` for the contract a step follows and
``docs/architecture.md`` for where to add one.

* :func:`sampling_bias`, :func:`temperature`, :func:`top_k`, :func:`top_p`: sampling
  that does not follow the model (Alemohammad et al., ICLR 2024; Marchi et al. 2024).
* :func:`curate`, :func:`verify`: curated and verified loops (Ferbach et al., NeurIPS
  2024; Feng et al., ICLR 2025).
"""

from jaxcollapse.steps._base import Identity, Step, as_steps, identity
from jaxcollapse.steps.bias import (
    SamplingBias,
    Temperature,
    TopK,
    TopP,
    sampling_bias,
    temperature,
    top_k,
    top_p,
)
from jaxcollapse.steps.curation import Curate, Verify, curate, verify

__all__ = ["Curate", "Identity", "SamplingBias", "Step", "Temperature", "TopK", "TopP",
           "Verify", "as_steps", "curate", "identity", "sampling_bias", "temperature", "top_k",
           "top_p", "verify"]
