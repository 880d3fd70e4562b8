"""The Ray path of the train stage: TorchTrainer over Ray Data shards, an MLflow run, a registered model.

``run_ray_training(stage_config, checked)`` is what ``colorization/stages/train.py`` calls when
``scaling.num_workers >= 1`` (after its checks: shards, splits, sizes, the prior's bins, the output folder, all
before Ray starts). It

1. computes the rebalancing weights from the prior on the driver (workers need no access to the prior file);
2. starts or joins Ray (``ray_session``) and checks that CPU workers leave at least one CPU to Ray Data
   (ray-mlflow-notes 1.4: otherwise the read tasks never run and ``fit`` hangs);
3. creates the MLflow run, or reuses the one recorded in the newest checkpoint of ``OUT`` (a resumed run
   continues its record), else the one noted in ``OUT/mlflow_run_id`` when it was created (a run that failed
   before its first checkpoint is continued by the re-run, not left behind empty); a run that fails or is
   stopped is marked FAILED / KILLED in MLflow with the reason, and the re-run sets it running again;
4. runs ``TorchTrainer(train_worker, ScalingConfig, RunConfig(name="checkpoints", storage_path=OUT), TorchConfig,
   datasets={"train", "val"})``: Ray keeps the run's state in ``OUT/checkpoints`` and each checkpoint in
   ``OUT/checkpoints/step_<n>`` (the plain path's layout), so re-running the same command resumes, and
   ``FailureConfig(max_failures)`` restarts failed workers from the newest checkpoint;
5. publishes ``OUT/model.safetensors``, logs it to the MLflow run as a pickle-free pyfunc and registers it as
   ``<family>@candidate``, e.g. ``zhang-eccv16@candidate`` (``colorization/model_registry.py``); writes
   ``OUT/summary.json``.

On a cluster, ``OUT`` must be on storage every node sees (NFS, or a mounted bucket): it is Ray Train's
``storage_path``. See docs/training-cluster.md.
"""

from __future__ import annotations

import hashlib
import math
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from colorization.errors import UserError

__all__ = ["RayTrainOptions", "run_ray_training", "RAY_RUN_NAME"]

RAY_RUN_NAME = "checkpoints"  # Ray's experiment folder under OUT (= the stage's CHECKPOINTS_DIR)
RUN_ID_FILE = "mlflow_run_id"  # under OUT: the run created for this output, before any checkpoint exists
_RUN_ID_LENGTH = 32  # MLflow run ids are 32 lowercase hex digits
_MIN_DATA_CPUS = 1.0  # one Ray Data read/crop task at a time at least


@dataclass(frozen=True)
class RayTrainOptions:
    """Settings of the Ray path that are about the cluster, not the run (so they stay out of TrainConfig).

    Attributes:
        placement_strategy: Ray placement of the worker group: PACK (default), SPREAD, STRICT_SPREAD (one worker
            per node: what the 2-node test forces), STRICT_PACK.
        data_cpus: CPUs Ray Data may use for the ingest; None: whatever the workers leave (CPU training) or no
            limit (GPU training).
        registered_model: registry name of the final model; None: the family's (``zhang-eccv16``,
            ``larsson-hypercolumn``), so ``models:/zhang-eccv16@candidate`` is the newest trained Zhang network.
        alias: alias moved to the new version.
        register: log and register the final model (a few seconds).
    """

    placement_strategy: str = "PACK"
    data_cpus: float | None = None
    registered_model: str | None = None
    alias: str = "candidate"
    register: bool = True


def _file_digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _prior_params(prior: str | None) -> dict[str, Any]:
    if prior is None:
        return {"prior.path": "None"}
    from colorization.io.prior_file import load_ab_prior, prior_paths

    path = prior_paths(prior)[0]
    params = {"prior.path": str(path.resolve()), "prior.sha256": _file_digest(path)[:16]}
    run_id = load_ab_prior(path)["metadata"].get("mlflow_run_id")
    if run_id:
        params["prior.mlflow_run_id"] = run_id
    return params


def _family_and_weights(train) -> tuple[str, list[float] | None]:
    """The model family (names the registered model) and the rebalancing weights from the prior, if any."""
    import torch

    from colorization.models.registry import family_of
    from colorization.training.loop import build_model
    from colorization.training.rebalancing import class_weights_from_prior

    with torch.random.fork_rng(devices=[]):
        model = build_model(train)
    weights = class_weights_from_prior(train.loss.prior, model, train.loss.uniform_mix)
    return family_of(model), None if weights is None else weights.tolist()


def _data_cpus(train, options: RayTrainOptions) -> float | None:
    """CPUs left to Ray Data, checked against the cluster (UserError when CPU workers would take them all)."""
    import ray

    if options.data_cpus is not None:
        return options.data_cpus
    if train.scaling.use_gpu:
        return None
    total = float(ray.cluster_resources().get("CPU", 0.0))
    left = total - train.scaling.num_workers * train.scaling.cpus_per_worker
    if left < _MIN_DATA_CPUS:
        raise UserError(
            f"scaling: {train.scaling.num_workers} worker(s) x "
            f"scaling.cpus_per_worker={train.scaling.cpus_per_worker:g} take {total - max(left, 0):g} of the "
            f"{total:g} CPUs and leave none for Ray Data's reading; lower scaling.cpus_per_worker (fractions are "
            "fine, e.g. 0.5) or scaling.num_workers"
        )
    return left


def _check_local_gpus(train) -> None:
    """UserError when GPU workers are asked of a Ray started on this machine that has fewer GPUs than workers."""
    import ray

    if not train.scaling.use_gpu:
        return
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if gpus < train.scaling.num_workers:
        raise UserError(
            f"scaling.use_gpu / --gpu: {train.scaling.num_workers} GPU worker(s) asked for, but this machine's Ray "
            f"has {gpus} GPU(s); drop --gpu, lower --num-workers, or submit to a cluster with GPU nodes"
        )


def _recorded_run_id(out: Path, client) -> str | None:
    """The run id noted in ``OUT/RUN_ID_FILE`` when it names a run of this tracking store, else None."""
    try:
        text = (out / RUN_ID_FILE).read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if len(text) != _RUN_ID_LENGTH or any(char not in "0123456789abcdef" for char in text):
        return None  # not something this stage wrote: a new run is created (and noted)
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(text)
    except MlflowException:  # e.g. another tracking store than the one that created it
        return None
    return text


def _run_id(out: Path, checked, experiment_id: str) -> tuple[str, bool]:
    """The MLflow run of this output: the one in its newest checkpoint, else the one noted in OUT when it was
    created, else a new one (named after OUT, and noted)."""
    from mlflow import MlflowClient

    from colorization.distributed.train_worker import RUN_ID_KEY
    from colorization.io.safe_outputs import atomic_write
    from colorization.models.checkpoint import read_checkpoint_metadata
    from colorization.training.state import MODEL_FILE, latest_checkpoint

    newest = latest_checkpoint(out / RAY_RUN_NAME)
    if newest is not None:
        run_id = read_checkpoint_metadata(newest / MODEL_FILE).get("extra", {}).get(RUN_ID_KEY)
        if run_id:
            return run_id, True
    client = MlflowClient()
    recorded = _recorded_run_id(out, client)
    if recorded is not None:
        return recorded, True
    run = client.create_run(experiment_id, run_name=out.name, tags={"colorization.out": str(out)})
    out.mkdir(parents=True, exist_ok=True)
    with atomic_write(out / RUN_ID_FILE) as temporary:
        Path(temporary).write_text(run.info.run_id + "\n", encoding="ascii")
    return run.info.run_id, False


def _mark_run_ended(run_id: str, status: str, reason: str) -> None:
    """Marks the MLflow run FAILED or KILLED with the reason (best effort: the user's error line matters more)."""
    from mlflow import MlflowClient

    try:
        client = MlflowClient()
        client.set_tag(run_id, "colorization.stopped_because", reason[:5000])
        client.set_terminated(run_id, status=status)
    except Exception:  # noqa: BLE001 - a tracking store that went away must not hide the training error
        pass


def _datasets(train, checked) -> dict:
    from colorization.distributed.train_data import TRAIN_DATASET, VAL_DATASET, shard_dataset

    crops_in_data = train.data.resize is None  # with a resize, the worker shrinks whole images, then crops
    datasets = {
        TRAIN_DATASET: shard_dataset(
            checked.train_files, crop=train.data.crop if crops_in_data else None, flip=train.data.flip
        )
    }
    if checked.val_files and train.cadence.validate_every:
        datasets[VAL_DATASET] = shard_dataset(
            checked.val_files,
            crop=train.data.val_size if crops_in_data else None,
            centre=True,
            limit=train.cadence.val_images,
            shuffle_files=False,
        )
    return datasets


def _trainer(stage_config, checked, options: RayTrainOptions, loop_config: dict, data_cpus: float | None):
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from colorization.distributed.train_data import ingest_data_config
    from colorization.distributed.train_worker import train_worker

    train = stage_config.train
    scaling = ScalingConfig(
        num_workers=train.scaling.num_workers,
        use_gpu=train.scaling.use_gpu,
        resources_per_worker={"CPU": train.scaling.cpus_per_worker},
        placement_strategy=options.placement_strategy,
    )
    run_config = RunConfig(
        name=RAY_RUN_NAME,
        storage_path=str(Path(stage_config.out).resolve()),
        failure_config=FailureConfig(max_failures=stage_config.max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=train.cadence.keep_checkpoints),
    )
    return TorchTrainer(
        train_worker,
        train_loop_config=loop_config,
        scaling_config=scaling,
        run_config=run_config,
        torch_config=TorchConfig(backend="nccl" if train.scaling.use_gpu else "gloo"),
        datasets=_datasets(train, checked),
        dataset_config=ingest_data_config(data_cpus),
    )


def run_ray_training(stage_config, checked, options: RayTrainOptions | None = None):
    """Trains with Ray Train (see the module doc); returns the stage's ``TrainResult``.

    Args:
        stage_config: ``colorization.stages.train.TrainStageConfig`` (already checked).
        checked: ``CheckedInputs`` of ``check_inputs`` (shard files, manifest digest, resume point).
        options: cluster settings (placement, Ray Data CPUs, registry name and alias).

    Raises:
        UserError: CPU workers leave no CPU to Ray Data; training failed more than ``max_failures`` times.
    """
    from colorization.distributed.runtime import ray_session
    from colorization.model_registry import log_and_register, registered_name_for
    from colorization.stages.train import SUMMARY_FILE, TrainResult, _publish_final
    from colorization.tracking import configure_tracking
    from colorization.training.state import checkpoint_folders

    options = options or RayTrainOptions()
    train = stage_config.train
    out = Path(stage_config.out).resolve()
    family, class_weights = _family_and_weights(train)
    params = {
        **train.flatten(),
        "data.manifest_digest": checked.manifest_digest,
        "data.train_shards": len(checked.train_files),
        **_prior_params(train.loss.prior),
        "ray.placement_strategy": options.placement_strategy,
        "ray.max_failures": stage_config.max_failures,
    }
    started = time.perf_counter()
    with ray_session(stage_config.address, stage_config.num_cpus) as started_here:
        if started_here:  # a local Ray has no autoscaler: GPUs it lacks now never come, and fit() would wait forever
            _check_local_gpus(train)
        data_cpus = _data_cpus(train, options)  # before the MLflow run: a refused config leaves no empty run
        tracking_uri, experiment_id = configure_tracking(stage_config.experiment, stage_config.tracking_uri)
        run_id, continued = _run_id(out, checked, experiment_id)
        loop_config = {
            "train": train.to_dict(),
            "run_id": run_id,
            "tracking_uri": tracking_uri,
            "params": params,
            "class_weights": class_weights,
            "resume_from": checked.resume_from,
            "call": uuid.uuid4().hex,
            "has_val": bool(checked.val_files and train.cadence.validate_every),
            "torch_threads": max(1, math.floor(train.scaling.cpus_per_worker)),
        }
        trainer = _trainer(stage_config, checked, options, loop_config, data_cpus)
        try:
            result = trainer.fit()
        except (KeyboardInterrupt, SystemExit):  # Ctrl-C: Ray Train aborts the workers, ray.get exits
            _mark_run_ended(run_id, "KILLED", "interrupted")
            raise UserError(
                f"training stopped (interrupted); re-run the same command to resume from the newest checkpoint in "
                f"{out / RAY_RUN_NAME}"
            ) from None
        except Exception as error:  # TrainingFailedError and friends: the workers' error, in one line
            reason = f"training failed in the Ray workers: {type(error).__name__}: {error}"
            _mark_run_ended(run_id, "FAILED", reason)
            raise UserError(reason) from None
    seconds = time.perf_counter() - started
    metrics = dict(result.metrics or {})
    if getattr(result, "error", None) is not None or not metrics.get("final"):
        # Aborted (Ctrl-C: Ray Train stops the workers and fit returns) or failed: nothing final to publish.
        stopped = f"training stopped at step {metrics.get('step', 0)} of {train.schedule.max_steps} before its end"
        _mark_run_ended(run_id, "FAILED" if getattr(result, "error", None) is not None else "KILLED", stopped)
        raise UserError(
            f"{stopped}; re-run the same command to resume from the newest checkpoint in {out / RAY_RUN_NAME}"
        )
    folders = checkpoint_folders(out / RAY_RUN_NAME)
    if not folders:
        raise UserError(f"shards {train.data.shards}: no colourful training images to train on")
    final = folders[-1]
    model_path = _publish_final(final, out)
    registered = None
    if options.register:
        registered = log_and_register(
            model_path,
            run_id=run_id,
            registered_name=options.registered_model or registered_name_for(family),
            alias=options.alias,
        )
    step = int(final.name.rsplit("_", 1)[-1])
    start_step = int(metrics.get("start_step", 0))  # what the workers resumed from (RayReporter)
    record = {
        "step": step,
        "start_step": start_step,
        "seconds": round(seconds, 3),
        "workers": train.scaling.num_workers,
        "data_cpus": data_cpus,
        "manifest_digest": checked.manifest_digest,
        "last_metrics": {k: v for k, v in metrics.items() if k not in ("step", "final", "start_step")},
        "mlflow_run_id": run_id,
        "mlflow_run_continued": continued,
        "registered_model": None if registered is None else registered.uri,
        "registered_version": None if registered is None else registered.version,
    }
    from colorization.io.safe_outputs import write_json_atomic

    write_json_atomic(out / SUMMARY_FILE, record)
    return TrainResult(
        out=str(out),
        model_path=str(model_path),
        step=step,
        start_step=start_step,
        skipped=False,
        mlflow_run_id=run_id,
        summary=record,
        validation={},
    )
