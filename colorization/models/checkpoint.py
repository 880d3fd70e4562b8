"""Checkpoints as one safetensors file: tensors plus JSON metadata (family, config, extra). Never pickle.

The metadata carries the model family and its full config, so ``load_checkpoint`` rebuilds the exact network
(nanoGPT stores ``model_args`` the same way). Training state (optimizer, step) is saved separately by the trainer.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from colorization.models.registry import build_model, config_to_dict, family_of

CHECKPOINT_FORMAT_VERSION = 1
_METADATA_KEY = "colorization"


def save_checkpoint(model: nn.Module, path: str | Path, *, extra: dict[str, Any] | None = None) -> Path:
    """Writes ``model`` (weights + family + config) to ``path`` (a ``.safetensors`` file).

    Args:
        model: a registered network (unwrap DDP first).
        path: destination file; parent folders are created.
        extra: JSON-serializable facts to keep with the weights (e.g. source, training step).

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {
        "format_version": CHECKPOINT_FORMAT_VERSION,
        "family": family_of(model),
        "config": config_to_dict(model.config),
        "extra": extra or {},
    }
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    save_file(tensors, str(path), metadata={_METADATA_KEY: json.dumps(metadata)})
    return path


def read_checkpoint_metadata(path: str | Path) -> dict[str, Any]:
    """The JSON metadata of a checkpoint, without loading its tensors."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            raw = (handle.metadata() or {}).get(_METADATA_KEY)
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path} is not a readable safetensors checkpoint: {error}") from None
    if raw is None:
        raise ValueError(f"{path} is a safetensors file but not a colorization checkpoint (no metadata)")
    return json.loads(raw)


def load_checkpoint(path: str | Path, *, device: str | torch.device = "cpu") -> tuple[nn.Module, dict[str, Any]]:
    """Rebuilds the network stored in ``path`` and loads its weights (strict).

    Returns:
        (model in eval mode on ``device``, metadata dict with ``family``, ``config`` and ``extra``).
    """
    metadata = read_checkpoint_metadata(path)
    model = build_model(metadata["family"], metadata["config"])
    model.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return model.to(device).eval(), metadata
