"""A served model from the server's configuration: a checkpoint file or an MLflow registry URI.

Checkpoint files are this project's safetensors (no pickle). ``models:/NAME@ALIAS`` goes through the training
stage's loader (``colorization.model_source.load_model``) when that module is installed; until it is, such a
source is refused with a clear message before Ray starts.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from torch import nn

from colorization.errors import UserError
from colorization.serving.settings import ModelSpec


def check_source(spec: ModelSpec) -> None:
    """Fails fast (before Ray starts) on a source that cannot load: a missing or foreign file, no registry loader."""
    if spec.is_registry_uri:
        _registry_loader(spec)
    elif not Path(spec.source).is_file():
        raise UserError(f"model {spec.name!r}: checkpoint not found: {spec.source}")
    else:
        from colorization.models.checkpoint import read_checkpoint_metadata

        try:
            read_checkpoint_metadata(spec.source)  # the header only: a wrong file fails here, not in a replica
        except (OSError, ValueError) as error:
            raise UserError(f"model {spec.name!r}: {error}") from None


def _registry_loader(spec: ModelSpec):
    try:
        module = importlib.import_module("colorization.model_source")
    except ModuleNotFoundError:
        raise UserError(
            f"model {spec.name!r}: {spec.source} needs the MLflow model loader (colorization.model_source), which "
            "this installation lacks; serve a checkpoint file instead"
        ) from None
    return module.load_model


def load_served_model(spec: ModelSpec, device: str = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Loads ``spec`` in eval mode on ``device``.

    Returns:
        (model, metadata): metadata is the checkpoint's (``family``, ``config``, ``extra``) or the loader's.
    """
    if spec.is_registry_uri:
        return _registry_loader(spec)(spec.source, device)
    from colorization.models.checkpoint import load_checkpoint

    try:
        return load_checkpoint(spec.source, device=device)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"model {spec.name!r}: cannot load {spec.source}: {error}") from None
