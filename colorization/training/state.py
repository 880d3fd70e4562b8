"""Training state on disk: one folder per checkpoint, enough to resume a run exactly where it stopped.

A checkpoint folder holds

* ``model.safetensors``: the network (weights + family + config, ``models/checkpoint.py``), with the step, the
  recipe and the prior in its metadata; any command that takes ``--checkpoint`` reads it directly;
* ``train_state.pt``: optimizer and scheduler state dicts, the step, RNG states, written with ``torch.save`` and
  read back with ``torch.load(weights_only=True)`` (tensors, numbers, strings and containers only: no pickle of
  code);
* ``train_config.json``: the :class:`TrainConfig` of the run.

Files are written to a temporary folder that is renamed into place, so a folder that exists is complete. The same
folder is what Ray Train reports as a ``Checkpoint`` (``Checkpoint.from_directory``).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorization.models.checkpoint import load_checkpoint, save_checkpoint
from colorization.training.config import TrainConfig

__all__ = [
    "MODEL_FILE",
    "STATE_FILE",
    "CONFIG_FILE",
    "TrainingState",
    "checkpoint_folders",
    "latest_checkpoint",
    "load_training_state",
    "save_training_state",
]

MODEL_FILE = "model.safetensors"
STATE_FILE = "train_state.pt"
CONFIG_FILE = "train_config.json"
_STEP_PREFIX = "step_"
_STEP_DIGITS = 9


@dataclass
class TrainingState:
    """What resumes a run (model weights travel separately, in the safetensors file).

    Attributes:
        step: optimizer steps completed.
        optimizer: ``optimizer.state_dict()``.
        scheduler: ``scheduler.state_dict()``.
        rng: named RNG states (uint8 tensors): ``torch`` (CPU global), ``loss`` (the loss's generator), ...
        extra: JSON-ready facts (e.g. MLflow run id, images seen, seconds trained).
    """

    step: int
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    rng: dict[str, torch.Tensor] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


def _step_folder_name(step: int) -> str:
    return f"{_STEP_PREFIX}{step:0{_STEP_DIGITS}d}"


def save_training_state(
    folder: str | Path,
    *,
    model: nn.Module,
    state: TrainingState,
    config: TrainConfig,
    model_metadata: dict[str, Any] | None = None,
) -> Path:
    """Writes a complete checkpoint folder (atomically: a temporary sibling renamed into place).

    Args:
        folder: the checkpoint folder to create (replaced when it exists, e.g. a re-saved final step).
        model: the bare network (unwrapped from DDP / mixed precision).
        state: optimizer, scheduler, step and RNG states.
        config: the run's config.
        model_metadata: JSON-ready facts stored in the safetensors metadata besides the step and recipe.

    Returns:
        ``folder``.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        extra = {"step": state.step, "recipe": config.recipe, "prior": config.loss.prior, **(model_metadata or {})}
        save_checkpoint(model, temporary / MODEL_FILE, extra=extra)
        torch.save(
            {
                "step": state.step,
                "optimizer": state.optimizer,
                "scheduler": state.scheduler,
                "rng": state.rng,
                "extra_json": json.dumps(state.extra),
            },
            temporary / STATE_FILE,
        )
        (temporary / CONFIG_FILE).write_text(config.to_json() + "\n")
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(temporary, folder)
    except BaseException:
        shutil.rmtree(temporary, ignore_errors=True)
        raise
    return folder


def load_training_state(
    folder: str | Path, *, device: str | torch.device = "cpu"
) -> tuple[nn.Module, TrainingState, TrainConfig]:
    """Reads a checkpoint folder written by :func:`save_training_state`.

    Returns:
        (network in train mode on ``device``, training state, the run's config).
    """
    folder = Path(folder)
    model, _ = load_checkpoint(folder / MODEL_FILE, device=device)
    raw = torch.load(folder / STATE_FILE, map_location="cpu", weights_only=True)
    state = TrainingState(
        step=int(raw["step"]),
        optimizer=raw["optimizer"],
        scheduler=raw["scheduler"],
        rng=raw["rng"],
        extra=json.loads(raw["extra_json"]),
    )
    config = TrainConfig.from_dict(json.loads((folder / CONFIG_FILE).read_text()))
    return model.train(), state, config


def checkpoint_folders(root: str | Path) -> list[Path]:
    """Complete checkpoint folders under ``root`` (``step_<n>``), oldest first."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = [
        path for path in root.iterdir()
        if path.is_dir() and path.name.startswith(_STEP_PREFIX) and (path / STATE_FILE).is_file()
    ]
    return sorted(folders, key=lambda path: path.name)


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint folder under ``root``, or None."""
    folders = checkpoint_folders(root)
    return folders[-1] if folders else None


def step_folder(root: str | Path, step: int) -> Path:
    """Where the checkpoint of ``step`` lives under ``root``."""
    return Path(root) / _step_folder_name(step)
