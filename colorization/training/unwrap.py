"""Finding the network inside wrappers (DDP from Ray's ``prepare_model``, ``MixedPrecision``)."""

from __future__ import annotations

from typing import TypeVar

from torch import nn

ModelT = TypeVar("ModelT", bound=nn.Module)


def unwrap_model(model: nn.Module, expected: type[ModelT]) -> ModelT:
    """Follows ``.module`` through wrappers until an instance of ``expected``; raises TypeError otherwise."""
    core = model
    while not isinstance(core, expected) and isinstance(getattr(core, "module", None), nn.Module):
        core = core.module
    if not isinstance(core, expected):
        raise TypeError(f"expected a {expected.__name__} (possibly wrapped); got {type(model).__name__}")
    return core
