"""Hooks that keep a run's record on local disk: checkpoint folders (pruned) and a metrics/sample-grid log.

The plain-PyTorch path of the train stage uses them; the Ray path reports checkpoints through Ray Train and
logs to MLflow instead, but may reuse :class:`CheckpointFolders` to write the folder it reports. Only rank 0
writes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from PIL import Image

from colorization.io.safe_outputs import atomic_write
from colorization.training.loop import Snapshot, TrainHooks, ValidationResult
from colorization.training.state import checkpoint_folders, save_training_state, step_folder

__all__ = ["CheckpointFolders", "MetricsFile"]


class CheckpointFolders(TrainHooks):
    """Writes ``root/step_<n>/`` at each checkpoint and keeps only the newest ``keep`` of them.

    Attributes:
        last: the newest folder written (or set by the caller to the folder a run resumed from).
    """

    def __init__(self, root: str | Path, *, keep: int, rank: int = 0, model_metadata: dict | None = None) -> None:
        self.root = Path(root)
        self.keep = keep
        self.rank = rank
        self.model_metadata = model_metadata or {}
        self.last: Path | None = None

    def on_checkpoint(self, step: int, snapshot: Snapshot, final: bool) -> None:
        if self.rank != 0:
            return
        folder = save_training_state(
            step_folder(self.root, step),
            model=snapshot.model,
            state=snapshot.state,
            config=snapshot.config,
            model_metadata=self.model_metadata,
        )
        self.last = folder
        for old in checkpoint_folders(self.root)[: -self.keep]:
            if old != folder:
                shutil.rmtree(old, ignore_errors=True)


class MetricsFile(TrainHooks):
    """Appends one JSON line per log and per validation to ``path``; saves validation grids as PNG files."""

    def __init__(self, path: str | Path, samples_dir: str | Path, rank: int = 0) -> None:
        self.path = Path(path)
        self.samples_dir = Path(samples_dir)
        self.rank = rank

    def _append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as handle:
            handle.write(json.dumps(record) + "\n")

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        if self.rank == 0:
            self._append({"step": step, "kind": "train", **metrics})

    def on_validation(self, step: int, result: ValidationResult) -> None:
        if self.rank != 0:
            return
        self._append({"step": step, "kind": "validation", **result.metrics})
        self.samples_dir.mkdir(parents=True, exist_ok=True)
        for name, grid in result.samples.items():
            with atomic_write(self.samples_dir / f"{name}_step_{step:09d}.png") as temporary:
                Image.fromarray(grid).save(temporary, format="PNG")
