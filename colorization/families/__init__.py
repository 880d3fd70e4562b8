"""Family adapters: one per registered model family (importing this package registers them)."""

from colorization.families import larsson, zhang  # noqa: F401  (registers the adapters)
from colorization.families.base import (
    DecodeOptions,
    FamilyAdapter,
    LossInputs,
    LossTerms,
    Outputs,
    adapter_for,
    registered_families,
)

__all__ = [
    "DecodeOptions",
    "FamilyAdapter",
    "LossInputs",
    "LossTerms",
    "Outputs",
    "adapter_for",
    "registered_families",
]
