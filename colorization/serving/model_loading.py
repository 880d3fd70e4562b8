"""A served model from the server's configuration: a checkpoint file or an MLflow registry URI.

Both go through the project's one loader, ``colorization.model_source.load_model``: checkpoint files are this
project's safetensors (validated, no pickle); ``models:/NAME@ALIAS`` (or ``/VERSION``) downloads the registered
version's safetensors artifact from the tracking store named in the settings (resolved once, by the driver, so
every replica reads the same store).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from colorization.errors import UserError
from colorization.serving.settings import ModelSpec


def check_source(spec: ModelSpec, tracking_uri: str | None = None) -> None:
    """Fails fast (before Ray starts) on a source that cannot load: a missing or foreign file, an unknown model,
    alias or version in the registry (registry models are loaded once here to find out)."""
    if spec.is_registry_uri:
        load_served_model(spec, "cpu", tracking_uri)
    elif not Path(spec.source).is_file():
        raise UserError(f"model {spec.name!r}: checkpoint not found: {spec.source}")
    else:
        from colorization.models.checkpoint import read_checkpoint_metadata

        try:
            read_checkpoint_metadata(spec.source)  # the header only: a wrong file fails here, not in a replica
        except (OSError, ValueError) as error:
            raise UserError(f"model {spec.name!r}: {error}") from None


def load_served_model(
    spec: ModelSpec, device: str = "cpu", tracking_uri: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """Loads ``spec`` in eval mode on ``device``.

    Returns:
        (model, metadata): the checkpoint's ``family``, ``config``, ``extra`` (registry URIs add the version).
    """
    from colorization.model_source import load_model

    try:
        return load_model(spec.source, device, tracking_uri=tracking_uri)
    except UserError as error:
        raise UserError(f"model {spec.name!r}: {error}") from None
