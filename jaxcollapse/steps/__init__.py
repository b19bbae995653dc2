"""Loop steps between sampling and fitting (``jc.steps``); see STEPS_SPEC in the issue.

Minimal placeholder of the curation branch; the lead's version replaces it.
"""

from jaxcollapse.steps.curation import Curate, Verify, curate, verify

__all__ = ["Curate", "Verify", "curate", "verify"]
