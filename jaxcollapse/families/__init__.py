"""Model families. Adding a family is one file here and one line in ``FAMILIES``."""

from jaxcollapse.families.base import ExactFamily, Family, successive, with_key

FAMILIES: dict[str, type] = {}

__all__ = ["FAMILIES", "ExactFamily", "Family", "successive", "with_key"]
