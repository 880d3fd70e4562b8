"""The train stage: a :class:`TrainConfig` + an output folder -> checkpoints and a final model.

``run(TrainStageConfig) -> TrainResult``. Everything the user can get wrong (shards, splits, crop sizes, the
prior's bin set, the output folder, a different config in a folder that holds another run) is checked first, by
:func:`check_inputs`, before any data is read, any network is trained or Ray is started.

Two ways to run the same loop (``colorization/training/loop.py``):

* ``scaling.num_workers == 0`` (``--no-ray``): :func:`_run_plain`, a ``torch.utils.data.DataLoader`` over the shards
  in this process, on the CPU or one GPU. Needs no Ray: what a GPU machine without a cluster runs.
* ``scaling.num_workers >= 1``: :func:`_run_with_ray`, Ray Train workers fed by Ray Data, tracked in MLflow
  (``colorization/distributed/``).

Output folder layout (both paths)::

    OUT/checkpoints/step_<n>/{model.safetensors, train_state.pt, train_config.json}
    OUT/model.safetensors        the final network (``colorization colorize --checkpoint OUT/model.safetensors``)
    OUT/train_config.json        the run's config
    OUT/summary.json             steps, time, throughput, last metrics and validation
    OUT/metrics.jsonl            plain path: one JSON line per log and validation
    OUT/samples/step_<n>.png     plain path: validation grids (grey | prediction | truth)
    OUT/mlflow_run_id            Ray path: the MLflow run of this output (a re-run continues it)

Re-running the same command with the same ``OUT`` resumes from the newest checkpoint (a finished run is reported
as skipped); a different config in the same folder is refused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from colorization.errors import UserError
from colorization.training.config import TrainConfig

__all__ = ["TrainStageConfig", "TrainResult", "check_inputs", "run", "CHECKPOINTS_DIR", "FINAL_MODEL"]

CHECKPOINTS_DIR = "checkpoints"
FINAL_MODEL = "model.safetensors"
CONFIG_FILE = "train_config.json"
SUMMARY_FILE = "summary.json"
METRICS_FILE = "metrics.jsonl"
SAMPLES_DIR = "samples"
# Settings a resumed run may change: how long, how often it reports, where and how fast it runs.
_RESUMABLE_CHANGES = ("schedule.max_steps", "cadence.", "scaling.", "data.loader_workers", "data.shards", "loss.prior")


@dataclass(frozen=True)
class TrainStageConfig:
    """Everything the train stage needs.

    Attributes:
        train: the training config (recipe + overrides); ``data.shards`` must be set.
        out: output folder (checkpoints, final model, summary); reused to resume.
        device: device of the plain path; None: ``cuda`` when ``scaling.use_gpu`` else ``cpu``.
        tracking_uri: MLflow tracking URI of the Ray path (None: $MLFLOW_TRACKING_URI, else sqlite).
        experiment: MLflow experiment of the Ray path.
        max_failures: Ray Train worker failures survived by restarting from the last checkpoint.
        address: Ray cluster address (None: $RAY_ADDRESS, else a local Ray).
        num_cpus: CPUs of a local Ray (None: all).
        threads: torch CPU threads of the plain path (None: torch's default). On a shared, oversubscribed
            machine 1 thread is several times faster than 2 (threads wait for each other at every layer).
    """

    train: TrainConfig
    out: str
    device: str | None = None
    tracking_uri: str | None = None
    experiment: str = "colorization-train"
    max_failures: int = 0
    address: str | None = None
    num_cpus: int | None = None
    threads: int | None = None


@dataclass(frozen=True)
class TrainResult:
    """What the stage produced.

    Attributes:
        out: the output folder.
        model_path: the final network (safetensors + config).
        step: optimizer steps completed.
        start_step: where this call started (> 0 when it resumed).
        skipped: the run had already finished in ``out``; nothing was trained.
        mlflow_run_id: the MLflow run (Ray path), else None.
        summary: throughput and time facts, the last metrics.
        validation: the last validation metrics.
    """

    out: str
    model_path: str
    step: int
    start_step: int
    skipped: bool
    mlflow_run_id: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class CheckedInputs:
    """What :func:`check_inputs` found (so the run does not look again)."""

    train_files: tuple[str, ...]
    val_files: tuple[str, ...]
    shard_size: int
    manifest_digest: str
    resume_from: str | None  # newest checkpoint folder in OUT, if any
    finished: bool  # that checkpoint is at max_steps


def _manifest_digest(manifest: dict) -> str:
    from colorization.io.shards import file_digest

    return file_digest(sorted(f"{shard['file']}:{shard.get('rows', '')}" for shard in manifest["shards"]))


def _first_difference(stored: dict[str, Any], wanted: dict[str, Any]) -> str | None:
    for key in sorted(set(stored) | set(wanted)):
        if key.startswith(_RESUMABLE_CHANGES) or key in _RESUMABLE_CHANGES:
            continue
        if stored.get(key) != wanted.get(key):
            return f"{key} ({stored.get(key)!r} there, {wanted.get(key)!r} now)"
    return None


def check_inputs(config: TrainStageConfig) -> CheckedInputs:
    """Checks shards, splits, sizes, prior and output folder; raises UserError before any compute.

    Returns:
        The shard files of both splits, the stored image size, the manifest digest and the resume point.
    """
    from colorization.io.manifest import MANIFEST_NAME, OutputConflictError, read_manifest, shard_files
    from colorization.io.safe_outputs import check_output_dir
    from colorization.training.loop import build_model
    from colorization.training.rebalancing import class_weights_from_prior
    from colorization.training.recipes import check_model
    from colorization.training.state import CONFIG_FILE as STATE_CONFIG_FILE
    from colorization.training.state import latest_checkpoint

    train = config.train
    if train.data.shards is None:
        raise UserError("no shards given: pass --shards DIR (the output folder of `colorization preprocess`)")
    shards = Path(train.data.shards)
    if not (shards / MANIFEST_NAME).is_file():
        raise UserError(f"shards {shards}: no {MANIFEST_NAME} (run `colorization preprocess INPUT {shards}`)")
    try:
        manifest = read_manifest(shards)
        train_files = shard_files(shards, train.data.train_split, manifest)
        val_files = shard_files(shards, train.data.val_split, manifest)
    except (OutputConflictError, OSError, ValueError, KeyError) as error:
        raise UserError(f"shards {shards}: {error}") from None
    if not train_files:
        raise UserError(f"shards {shards}: the {train.data.train_split!r} split has no shard files")
    if train.cadence.validate_every and not val_files:
        raise UserError(
            f"shards {shards}: the {train.data.val_split!r} split is empty; preprocess with --val-fraction > 0 "
            "or set cadence.validate_every=0"
        )
    shard_size = int(manifest.get("config", {}).get("size") or manifest.get("size") or 0)
    source_side = train.data.resize or shard_size
    if shard_size and (train.data.crop > source_side or train.data.val_size > source_side):
        raise UserError(
            f"data.crop {train.data.crop} / data.val_size {train.data.val_size} do not fit the "
            f"{source_side} x {source_side} images ({'data.resize' if train.data.resize else 'shard size'})"
        )
    check_model(train)
    if train.loss.prior is not None:
        import torch

        with torch.random.fork_rng(devices=[]):
            model = build_model(train)
        class_weights_from_prior(train.loss.prior, model, train.loss.uniform_mix)  # refuses other bins
    inputs = [str(shards)] + ([train.loss.prior] if train.loss.prior else [])
    out = check_output_dir(config.out, inputs=inputs, what="output folder")
    resume_from = latest_checkpoint(out / CHECKPOINTS_DIR)
    finished = False
    if resume_from is not None:
        stored = TrainConfig.from_dict(json.loads((resume_from / STATE_CONFIG_FILE).read_text())).flatten()
        difference = _first_difference(stored, train.flatten())
        if difference:
            raise UserError(
                f"output folder {out} holds a run with another config: {difference}; use another --out to start anew"
            )
        finished = int(resume_from.name.rsplit("_", 1)[-1]) >= train.schedule.max_steps
    return CheckedInputs(
        train_files=tuple(str(path) for path in train_files),
        val_files=tuple(str(path) for path in val_files),
        shard_size=shard_size,
        manifest_digest=_manifest_digest(manifest),
        resume_from=None if resume_from is None else str(resume_from),
        finished=finished,
    )


def run(config: TrainStageConfig) -> TrainResult:
    """Trains (or resumes, or reports a finished run) into ``config.out``; see the module docstring."""
    checked = check_inputs(config)
    out = Path(config.out)
    if checked.finished:
        return _finished_result(out, checked)
    if config.train.scaling.num_workers == 0:
        return _run_plain(config, checked)
    return _run_with_ray(config, checked)


def _finished_result(out: Path, checked: CheckedInputs) -> TrainResult:
    summary_path = out / SUMMARY_FILE
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    model_path = out / FINAL_MODEL
    if not model_path.is_file():
        _publish_final(Path(checked.resume_from), out)
    step = int(Path(checked.resume_from).name.rsplit("_", 1)[-1])
    return TrainResult(
        out=str(out),
        model_path=str(model_path),
        step=step,
        start_step=step,
        skipped=True,
        mlflow_run_id=summary.get("mlflow_run_id"),
        summary=summary,
        validation=summary.get("last_validation", {}),
    )


def _publish_final(checkpoint: Path, out: Path) -> Path:
    """Copies the final checkpoint's network to OUT/model.safetensors (atomically) and the config beside it."""
    from colorization.io.safe_outputs import atomic_write
    from colorization.training.state import CONFIG_FILE as STATE_CONFIG_FILE
    from colorization.training.state import MODEL_FILE

    with atomic_write(out / FINAL_MODEL) as temporary:
        shutil.copyfile(checkpoint / MODEL_FILE, temporary)
    with atomic_write(out / CONFIG_FILE) as temporary:
        shutil.copyfile(checkpoint / STATE_CONFIG_FILE, temporary)
    return out / FINAL_MODEL


# ---------------------------------------------------------------------------------------------------------------
# Without Ray: a DataLoader in this process
# ---------------------------------------------------------------------------------------------------------------


def _run_plain(config: TrainStageConfig, checked: CheckedInputs) -> TrainResult:
    """The Ray-free path: shards -> DataLoader -> the loop, on ``config.device`` (CPU or one GPU)."""
    import torch

    from colorization.io.safe_outputs import write_json_atomic
    from colorization.training.data import read_rows, train_batches, val_lab_batch
    from colorization.training.loop import build_model, loss_inputs_for, place_model, train_loop
    from colorization.training.progress import ProgressLine
    from colorization.training.rebalancing import class_weights_from_prior
    from colorization.training.stage_hooks import CheckpointFolders, MetricsFile
    from colorization.training.state import load_training_state
    from colorization.training.validation import make_validator

    train = config.train
    out = Path(config.out)
    device = torch.device(config.device or ("cuda" if train.scaling.use_gpu else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("scaling.use_gpu / --gpu: no CUDA device is available on this machine")
    if config.threads is not None:
        torch.set_num_threads(config.threads)
    resume = None
    if checked.resume_from is not None:
        model, resume, _ = load_training_state(checked.resume_from)
    else:
        model = build_model(train)
    model = place_model(model, train, device)
    class_weights = class_weights_from_prior(train.loss.prior, model, train.loss.uniform_mix)
    start_step = 0 if resume is None else resume.step
    batches = train_batches(
        checked.train_files,
        train.data,
        batch_size=train.per_worker_batch(1),
        device=device,
        seed=train.seed + start_step,  # a resumed run draws new images rather than replaying the first ones
    )
    validate = None
    if checked.val_files:
        val_lab = val_lab_batch(read_rows(checked.val_files, train.cadence.val_images), train.data, "cpu")
        validate = make_validator(
            val_lab,
            class_weights=class_weights,
            loss_inputs=loss_inputs_for(train),
            batch_size=max(1, train.per_worker_batch(1)),
            sample_images=train.cadence.sample_images,
            device=device,
        )
    checkpoints = CheckpointFolders(out / CHECKPOINTS_DIR, keep=train.cadence.keep_checkpoints)
    checkpoints.last = None if checked.resume_from is None else Path(checked.resume_from)
    hooks = [ProgressLine(), MetricsFile(out / METRICS_FILE, out / SAMPLES_DIR), checkpoints]
    summary = train_loop(
        train, model, batches, device=device, class_weights=class_weights, resume=resume, validate=validate, hooks=hooks
    )
    if checkpoints.last is None:
        raise UserError(f"shards {train.data.shards}: no colourful training images to train on")
    model_path = _publish_final(checkpoints.last, out)
    record = {
        "step": summary.step,
        "start_step": summary.start_step,
        "seconds": round(summary.seconds, 3),
        "seconds_per_step": round(summary.seconds / max(1, summary.step - summary.start_step), 4),
        "images": summary.images,
        "images_per_s": round(summary.images / summary.seconds, 2) if summary.seconds else 0.0,
        "data_wait_fraction": round(summary.data_wait_fraction, 4),
        "skipped_steps": summary.skipped_steps,
        "stopped_early": summary.stopped_early,
        "device": str(device),
        "manifest_digest": checked.manifest_digest,
        "last_metrics": summary.last_metrics,
        "last_validation": summary.last_validation,
        "mlflow_run_id": None,
    }
    write_json_atomic(out / SUMMARY_FILE, record)
    return TrainResult(
        out=str(out),
        model_path=str(model_path),
        step=summary.step,
        start_step=summary.start_step,
        skipped=False,
        summary=record,
        validation=summary.last_validation,
    )


# ---------------------------------------------------------------------------------------------------------------
# With Ray: Ray Train workers, Ray Data ingest, MLflow (colorization/distributed/, helper D2)
# ---------------------------------------------------------------------------------------------------------------


def _run_with_ray(config: TrainStageConfig, checked: CheckedInputs) -> TrainResult:
    """Ray Train + Ray Data + MLflow (``colorization/distributed``); the tracking store is checked first."""
    from colorization.tracking import check_tracking_store

    check_tracking_store(config.tracking_uri)  # an unreachable or unwritable store: one line, before Ray starts
    try:
        from colorization.distributed.trainer import run_ray_training  # noqa: PLC0415  (imports Ray)
    except ImportError as error:
        raise UserError(
            f"the Ray Train path is not available here ({error}); run without Ray with --no-ray "
            "(scaling.num_workers=0)"
        ) from None
    return run_ray_training(config, checked)
