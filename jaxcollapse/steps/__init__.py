"""Loop steps between sampling and fitting (minimal placeholder; the lead's version
with the shared contract replaces this file)."""

from jaxcollapse.steps.bias import sampling_bias, temperature, top_k, top_p

__all__ = ["sampling_bias", "temperature", "top_k", "top_p"]
