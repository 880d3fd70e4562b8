"""The Ray Train per-worker function: Ray's few lines around the plain-PyTorch loop of ``training/loop.py``.

Only four things here are Ray (marked ``# [Ray]``): the dataset shard, ``prepare_model`` (DDP), the checkpoint
to resume from, and ``ray.train.report`` with the checkpoint folder. Everything else is the same loop, the same
"shard batch -> Lab" functions and the same checkpoint folders as the Ray-free path.

Rank 0 alone logs to MLflow (:class:`MlflowLogger`): the run is created by the driver (``trainer.py``) and its id
travels in the config and in every checkpoint, so a worker restarted after a failure, or a re-run of the same
command, continues the same run. Logged: params (the flattened config, the dataset manifest digest, the prior's
path and digest) once; every ``cadence.log_every`` steps the loop's metrics (loss, unweighted loss, lr, images/s,
data-wait fraction, ...); validation metrics and the sample grid (grey | prediction | truth) as image artifacts;
``resumed_from_step`` whenever a worker group starts from a checkpoint.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from typing import Any

import torch

from colorization.training.config import TrainConfig
from colorization.training.loop import LoopStart, Snapshot, TrainHooks, TrainSummary, ValidationResult

__all__ = ["train_worker", "MlflowLogger", "RayReporter", "SyncCalibration", "RUN_ID_KEY"]

RUN_ID_KEY = "mlflow_run_id"  # in the training state's extra and the model's metadata
CALL_KEY, CALL_START_KEY = "train_call", "train_call_start_step"  # in the training state's extra: which command
# wrote the checkpoint and the step it started from, so a worker group restarted within the same command reports
# the command's start, and a re-run (a new call id) reports its own


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {name: float(value) for name, value in metrics.items() if math.isfinite(float(value))}


class MlflowLogger(TrainHooks):
    """Rank 0's MLflow record of the run (the run already exists; this worker attaches to it)."""

    def __init__(self, tracking_uri: str, run_id: str, params: dict[str, Any], config_json: str) -> None:
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(tracking_uri)
        self.run = mlflow.start_run(run_id=run_id)
        self.params = params
        self.config_json = config_json

    def on_start(self, start: LoopStart) -> None:
        if start.start_step == 0:  # params are written once; a resumed run already has them
            self.mlflow.log_params(self.params)
            self.mlflow.log_text(self.config_json, "train_config.json")
        else:
            self.mlflow.log_metric("resumed_from_step", start.start_step, step=start.start_step)
        facts = {"world_size": start.world_size, "per_worker_batch": start.per_worker_batch, **start.calibration}
        self.mlflow.log_metrics(_finite({f"setup_{k}": v for k, v in facts.items()}), step=start.start_step)

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self.mlflow.log_metrics(_finite(metrics), step=step)

    def on_validation(self, step: int, result: ValidationResult) -> None:
        self.mlflow.log_metrics(_finite(result.metrics), step=step)
        for name, grid in result.samples.items():
            self.mlflow.log_image(grid, artifact_file=f"samples/{name}_step_{step:09d}.png")

    def on_end(self, summary: TrainSummary) -> None:
        self.mlflow.log_metrics(
            _finite({"final_step": summary.step, "run_data_wait_fraction": summary.data_wait_fraction}),
            step=summary.step,
        )
        self.mlflow.end_run()


class SyncCalibration(TrainHooks):
    """After the loop's calibration (Larsson's hypercolumn balancing, on each rank's own first batch), every rank
    takes rank 0's weights, so DDP starts from one network (DDP broadcast them once, before the calibration)."""

    def __init__(self, model: torch.nn.Module, world_size: int) -> None:
        self.model, self.world_size = model, world_size

    def on_start(self, start: LoopStart) -> None:
        if self.world_size > 1 and start.calibration and torch.distributed.is_initialized():
            from colorization.families import adapter_for

            for tensor in adapter_for(self.model).core(self.model).state_dict().values():
                torch.distributed.broadcast(tensor, src=0)


class RayReporter(TrainHooks):
    """Every rank reports at each checkpoint (Ray needs all of them); rank 0 attaches the checkpoint folder.

    Reports carry ``start_step``, the step this command's first worker group started from, so the driver states
    what the workers did (Ray resumes from its newest registered checkpoint, which may be older than the newest
    folder on disk when the job was stopped while checkpoints were being written)."""

    def __init__(self, rank: int, run_id: str, call: str, call_start_step: int) -> None:
        self.rank, self.run_id = rank, run_id
        self.call, self.start_step = call, call_start_step

    def on_checkpoint(self, step: int, snapshot: Snapshot, final: bool) -> None:
        import ray.train

        from colorization.training.state import save_training_state, step_folder

        metrics = {"step": step, "final": final, "start_step": self.start_step, **_finite(snapshot.metrics)}
        if self.rank != 0:
            ray.train.report(metrics)  # [Ray]
            return
        snapshot.state.extra.update({RUN_ID_KEY: self.run_id, CALL_KEY: self.call, CALL_START_KEY: self.start_step})
        with tempfile.TemporaryDirectory(prefix="colorization-ckpt-") as scratch:
            folder = save_training_state(
                step_folder(scratch, step),
                model=snapshot.model,
                state=snapshot.state,
                config=snapshot.config,
                model_metadata={RUN_ID_KEY: self.run_id},
            )
            checkpoint = ray.train.Checkpoint.from_directory(str(folder))
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=folder.name)  # [Ray]


def _endless_batches(shard, train: TrainConfig, batch_size: int, device: torch.device, seed: int) -> Iterator:
    """Raw-Lab training batches on ``device``, epoch after epoch (ends only if an epoch yields nothing)."""
    from colorization.distributed.train_data import iter_shard_batches
    from colorization.training.data import lab_batch, train_lab_batch

    generator = torch.Generator().manual_seed(seed)
    while True:
        produced = False
        for batch in iter_shard_batches(shard, batch_size=batch_size, device=str(device)):
            produced = True
            if train.data.resize is None:  # Ray Data already cut the crops
                yield lab_batch(batch["L"], batch["ab"], device)
            else:
                yield train_lab_batch(batch, train.data, device, generator)
        if not produced:
            return


def _validation_images(shard, train: TrainConfig) -> torch.Tensor | None:
    """The fixed validation images (read once, in order) as raw Lab on the CPU."""
    from colorization.training.data import val_lab_batch

    parts = [val_lab_batch(batch, train.data, "cpu") for batch in shard.iter_batches(batch_format="numpy")]
    parts = [part for part in parts if len(part)]
    return torch.cat(parts)[: train.cadence.val_images] if parts else None


def train_worker(config: dict) -> None:
    """``train_loop_per_worker`` of the TorchTrainer (see the module doc).

    Args:
        config: ``{"train": TrainConfig.to_dict(), "run_id", "tracking_uri", "params", "class_weights" (list or
            None), "resume_from" (a checkpoint folder of an earlier run in the same output, or None), "call" (a
            new id per command: tells a restart within this command from a re-run),
            "has_val" (a validation dataset was given), "torch_threads"}``.
    """
    train = TrainConfig.from_dict(config["train"])  # first line: the typed config, rebuilt from plain data
    import ray.train
    import ray.train.torch

    from colorization.distributed.train_data import TRAIN_DATASET, VAL_DATASET
    from colorization.training.loop import build_model, loss_inputs_for, place_model, train_loop
    from colorization.training.progress import ProgressLine
    from colorization.training.state import load_training_state
    from colorization.training.validation import make_validator

    torch.set_num_threads(config["torch_threads"])
    context = ray.train.get_context()
    rank, world_size = context.get_world_rank(), context.get_world_size()
    device = ray.train.torch.get_device()

    resume = None
    checkpoint = ray.train.get_checkpoint()  # [Ray] the latest reported checkpoint after a failure or a re-run
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            model, resume, _ = load_training_state(folder)
    elif config["resume_from"]:
        model, resume, _ = load_training_state(config["resume_from"])
    else:
        model = build_model(train)
    model = place_model(model, train, device)
    model = ray.train.torch.prepare_model(model)  # [Ray] DDP across workers (a no-op wrapper for one)

    class_weights = None if config["class_weights"] is None else torch.tensor(config["class_weights"])
    start_step = 0 if resume is None else resume.step
    shard = ray.train.get_dataset_shard(TRAIN_DATASET)  # [Ray] this worker's share of the training rows
    batches = _endless_batches(
        shard, train, train.per_worker_batch(world_size), device, seed=train.seed * 7919 + rank + start_step
    )

    same_call = resume is not None and resume.extra.get(CALL_KEY) == config["call"]  # restarted after a failure
    call_start_step = int(resume.extra.get(CALL_START_KEY, 0)) if same_call else start_step
    reporter = RayReporter(rank, config["run_id"], config["call"], call_start_step)
    hooks: list[TrainHooks] = [SyncCalibration(model, world_size), reporter]
    validate = None
    if rank == 0:
        hooks.append(ProgressLine())
        hooks.append(MlflowLogger(config["tracking_uri"], config["run_id"], config["params"], train.to_json()))
        val_lab = None
        if config["has_val"] and train.cadence.validate_every:
            val_lab = _validation_images(ray.train.get_dataset_shard(VAL_DATASET), train)
        if val_lab is not None:
            validate = make_validator(
                val_lab,
                class_weights=class_weights,
                loss_inputs=loss_inputs_for(train),
                batch_size=train.per_worker_batch(world_size),
                sample_images=train.cadence.sample_images,
                device=device,
            )
    train_loop(
        train,
        model,
        batches,
        device=device,
        class_weights=class_weights,
        resume=resume,
        validate=validate,
        hooks=hooks,
        rank=rank,
        world_size=world_size,
    )
