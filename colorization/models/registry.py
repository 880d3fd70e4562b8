"""A small registry of model families and named variants (after timm's ``register_model`` / ``create_model``).

A *family* is a config dataclass plus the ``nn.Module`` built from it; checkpoints store the family name and
the config, so any checkpoint rebuilds its own network. A *variant* is a named factory (e.g.
``zhang_eccv16``, ``zhang_eccv16_w8``) returning a module of some family.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable
from typing import Any

from torch import nn

_FAMILIES: dict[str, tuple[type, type[nn.Module]]] = {}
_VARIANTS: dict[str, Callable[..., nn.Module]] = {}


def register_family(name: str, config_class: type, model_class: type[nn.Module]) -> None:
    """Declares that ``model_class(config_class(...))`` builds networks of family ``name``."""
    if not dataclasses.is_dataclass(config_class):
        raise TypeError(f"config class of family {name!r} must be a dataclass")
    _FAMILIES[name] = (config_class, model_class)


def register_model(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Decorator: registers a variant under the factory's function name (warns when a name is reused)."""
    name = factory.__name__
    if name in _VARIANTS:
        warnings.warn(f"model variant {name!r} registered twice; the last one wins", stacklevel=2)
    _VARIANTS[name] = factory
    return factory


def list_models() -> list[str]:
    """Names of all registered variants, sorted."""
    return sorted(_VARIANTS)


def create_model(name: str, **overrides: Any) -> nn.Module:
    """Builds the variant ``name``; keyword overrides replace fields of its config."""
    if name not in _VARIANTS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(sorted(_VARIANTS))}")
    return _VARIANTS[name](**overrides)


def family_classes(family: str) -> tuple[type, type[nn.Module]] | None:
    """(config class, model class) of a registered family, or None (checkpoint validation reads them)."""
    return _FAMILIES.get(family)


def list_families() -> list[str]:
    """Names of all registered families, sorted."""
    return sorted(_FAMILIES)


def family_of(model: nn.Module) -> str:
    """The registered family name of a model instance."""
    for name, (_, model_class) in _FAMILIES.items():
        if type(model) is model_class:
            return name
    raise KeyError(f"{type(model).__name__} is not a registered model family")


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    return dataclasses.asdict(config)


def _as_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_as_tuples(item) for item in value)
    return value


def build_model(family: str, config: dict[str, Any]) -> nn.Module:
    """Rebuilds a network of ``family`` from a config dict (as stored in a checkpoint)."""
    if family not in _FAMILIES:
        raise KeyError(f"unknown model family {family!r}; known: {', '.join(sorted(_FAMILIES))}")
    config_class, model_class = _FAMILIES[family]
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"config of family {family!r} has unknown fields {sorted(unknown)}")
    return model_class(config_class(**{key: _as_tuples(value) for key, value in config.items()}))
