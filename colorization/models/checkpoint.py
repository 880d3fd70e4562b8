"""Checkpoints as one safetensors file: tensors plus JSON metadata (family, config, extra). Never pickle.

The metadata carries the model family and its full config, so ``load_checkpoint`` rebuilds the exact network
(nanoGPT stores ``model_args`` the same way). Training state (optimizer, step) is saved separately by the trainer.
Checkpoints are untrusted input: ``load_checkpoint`` validates everything before allocating (checkpoint_checks).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from colorization.io.safe_outputs import atomic_write
from colorization.models.checkpoint_checks import (
    METADATA_KEY,
    SUPPORTED_FORMAT_VERSIONS,
    CheckpointError,
    check_finite,
    inspect_checkpoint,
)
from colorization.models.registry import config_to_dict, family_of

CHECKPOINT_FORMAT_VERSION = SUPPORTED_FORMAT_VERSIONS[-1]  # what save_checkpoint writes


def save_checkpoint(model: nn.Module, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Writes ``model`` (weights + family + config) to ``path`` (a ``.safetensors`` file).

    Args:
        model: a registered network (unwrap DDP first).
        path: destination file, written atomically; parent folders are created.
        extra: JSON-serializable facts to keep with the weights (e.g. source, training step).

    Returns:
        The written path.
    """
    path = Path(path)
    metadata = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "family": family_of(model),
        "config": config_to_dict(model.config),
        "extra": extra or {},
    }
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    with atomic_write(path) as temporary:
        save_file(tensors, str(temporary), metadata={METADATA_KEY: json.dumps(metadata)})
    return path


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The validated JSON metadata of a checkpoint, without loading its tensors or building its network.

    Raises:
        CheckpointError: (a UserError and a ValueError) the file fails any check of ``checkpoint_checks``.
    """
    return inspect_checkpoint(path).metadata


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds the network stored in ``path`` and loads its weights (strict), treating the file as untrusted.

    Metadata, config bounds and tensor shapes are checked before the network is allocated, and the weights
    must be finite (see :mod:`colorization.models.checkpoint_checks`).

    Returns:
        (model in eval mode on ``device``, metadata dict with ``format_version``, ``family``, ``config``, ``extra``).

    Raises:
        CheckpointError: (a UserError and a ValueError) one line naming the file and the reason.
    """
    checked = inspect_checkpoint(path)
    try:
        tensors = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as error:
        raise CheckpointError(f"checkpoint {path}: cannot read its tensors ({error})") from None
    check_finite(path, tensors)
    model = checked.model_class(checked.config)
    model.load_state_dict(tensors, strict=True)
    return model.to(device).eval(), checked.metadata
