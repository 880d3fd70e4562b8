"""Recipes: named training configurations shipped with the package, plus ``key=value`` overrides.

A recipe is a YAML mapping of :class:`TrainConfig` fields (``colorization/training/recipes/<name>.yaml``; copy one,
edit it and pass the file instead of a name). Overrides name a field by its dotted path and give a value in YAML
or JSON syntax: ``optimizer.lr=1e-4``, ``schedule.lr_steps=[1000,2000]``, ``model.overrides.heads=[lab_joint]``,
``batch.per_worker=null``. Each value is typed against the field it sets, so ``optimizer.lr=fast`` or an unknown
key fails with one line naming it, before anything runs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import yaml

from colorization.errors import UserError
from colorization.models.registry import create_model, list_models
from colorization.training.config import TrainConfig

__all__ = ["apply_overrides", "available_recipes", "check_model", "load_recipe", "parse_override", "recipe_mapping"]

_RECIPE_PACKAGE = "colorization.training"
_RECIPE_FOLDER = "recipes"
_RECIPE_SUFFIX = ".yaml"
_NULL_WORDS = ("None", "none")
_WIDTH_FIELD = "width_multiplier"
_CHECK_WIDTH = 1 / 64  # width of the throw-away network check_model builds


def available_recipes() -> list[str]:
    """Names of the recipes shipped with the package, sorted."""
    folder = resources.files(_RECIPE_PACKAGE) / _RECIPE_FOLDER
    return sorted(item.name[: -len(_RECIPE_SUFFIX)] for item in folder.iterdir() if item.name.endswith(_RECIPE_SUFFIX))


def recipe_mapping(name_or_file: str) -> tuple[dict[str, Any], str]:
    """The raw mapping of a shipped recipe (by name) or of a YAML file, and the recipe's name.

    Raises:
        UserError: no such recipe or file, or the file is not a YAML mapping.
    """
    shipped = resources.files(_RECIPE_PACKAGE) / _RECIPE_FOLDER / f"{name_or_file}{_RECIPE_SUFFIX}"
    if shipped.is_file():
        text, name = shipped.read_text(), name_or_file
    else:
        path = Path(name_or_file).expanduser()
        if not path.is_file():
            raise UserError(
                f"recipe {name_or_file}: neither a shipped recipe ({', '.join(available_recipes())}) nor a file"
            )
        text, name = path.read_text(), path.stem
    try:
        mapping = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"recipe {name_or_file}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(mapping, dict):
        raise UserError(f"recipe {name_or_file}: must be a YAML mapping of training settings")
    return mapping, name


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"optimizer.lr=1e-4"`` -> (["optimizer", "lr"], 0.0001); JSON first (so 1e-4 is a number), then YAML."""
    key, separator, raw = text.partition("=")
    key = key.strip()
    if not separator or not key or any(not part for part in key.split(".")):
        raise UserError(f"override {text!r}: expected KEY=VALUE with a dotted KEY, e.g. optimizer.lr=1e-4")
    raw = raw.strip()
    if raw in _NULL_WORDS:
        return key.split("."), None
    try:
        value = json.loads(raw)
    except ValueError:
        try:
            value = yaml.safe_load(raw) if raw else ""
        except yaml.YAMLError:
            value = raw
    return key.split("."), value


def apply_overrides(mapping: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """A copy of ``mapping`` with each ``KEY=VALUE`` override set (nested mappings created as needed)."""
    result = json.loads(json.dumps(mapping))  # deep copy of plain data
    for text in overrides:
        path, value = parse_override(text)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise UserError(f"override {text!r}: {part} is a value, not a group of settings")
            node = child
        node[path[-1]] = value
    return result


def check_model(config: TrainConfig) -> None:
    """Refuses an unknown variant, or overrides its config rejects, in well under a second.

    A narrow copy of the network (``width_multiplier`` 1/64) is built with the other overrides, so every field
    the family's config checks is checked without allocating a full network; the width itself is checked apart.
    """
    if config.model.variant not in list_models():
        raise UserError(f"model.variant {config.model.variant!r} is unknown; known: {', '.join(list_models())}")
    overrides = dict(config.model.overrides)
    width = overrides.pop(_WIDTH_FIELD, None)
    if width is not None and (
        isinstance(width, bool) or not isinstance(width, (int, float)) or not math.isfinite(width) or width <= 0
    ):
        raise UserError(f"model.overrides.{_WIDTH_FIELD} must be a positive number; got {width!r}")
    try:
        with torch.random.fork_rng(devices=[]):
            try:
                create_model(config.model.variant, **overrides, **{_WIDTH_FIELD: _CHECK_WIDTH})
            except TypeError as error:
                if _WIDTH_FIELD not in str(error):
                    raise
                create_model(config.model.variant, **config.model.overrides)  # a family without a width knob
    except (TypeError, ValueError) as error:
        raise UserError(f"model.overrides {config.model.overrides}: {error}") from None


def load_recipe(name_or_file: str, overrides: Sequence[str] = ()) -> TrainConfig:
    """A checked :class:`TrainConfig` from a recipe name or file and ``KEY=VALUE`` overrides.

    Raises:
        UserError: unknown recipe, unreadable file, unknown key, wrong type or value, unbuildable model.
    """
    mapping, name = recipe_mapping(name_or_file)
    mapping.setdefault("recipe", name)
    config = TrainConfig.from_dict(apply_overrides(mapping, overrides))
    check_model(config)
    return config
