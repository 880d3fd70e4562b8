"""Fault tolerance for real: a training worker process is SIGKILLed from outside after the first checkpoint.

No fault hook in the training code: a watcher thread waits until Ray Train has registered the first checkpoint
(``OUT/checkpoints/checkpoint_manager_snapshot.json`` names it; a folder copied but not yet registered would not be
restored), finds the Ray Train worker among this process's descendants (the session's local Ray) and kills it. With
``FailureConfig(max_failures=1)`` the run must finish at the planned step, restarted from the checkpoint (not
from step 0), in the same MLflow run.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
from pathlib import Path

import pytest

from tests.distributed.train_helpers import stage_config

pytestmark = [pytest.mark.ray, pytest.mark.slow]

_WORKER_TITLE = "RayTrainWorker"
_MAX_STEPS = 20
_CHECKPOINT_EVERY = 4


def _train_worker_pids() -> list[int]:
    import psutil

    pids = []
    for process in psutil.Process().children(recursive=True):
        try:
            if any(_WORKER_TITLE in part for part in process.cmdline()):
                pids.append(process.pid)
        except psutil.Error:
            continue
    return pids


def _registered_checkpoint(checkpoints: Path) -> str | None:
    try:
        snapshot = json.loads((checkpoints / "checkpoint_manager_snapshot.json").read_text())
    except (OSError, ValueError):
        return None
    latest = snapshot.get("latest_checkpoint_result") or {}
    return latest.get("checkpoint_dir_name")


def _kill_after_first_checkpoint(checkpoints: Path, killed: dict, stop: threading.Event) -> None:
    while not stop.is_set():
        registered = _registered_checkpoint(checkpoints)
        if registered:
            pids = _train_worker_pids()
            if pids:
                killed["registered"] = registered
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed["pids"] = pids
                return
        time.sleep(0.02)


def test_killed_worker_restarts_from_checkpoint(ray_session, mixed_shards: Path, tmp_path: Path):
    from mlflow import MlflowClient

    from colorization.stages.train import run

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "run"
    config = stage_config(
        mixed_shards,
        out,
        tracking_uri,
        f"schedule.max_steps={_MAX_STEPS}",
        "schedule.lr_steps=[15]",
        f"cadence.checkpoint_every={_CHECKPOINT_EVERY}",
        f"cadence.log_every={_CHECKPOINT_EVERY}",
        "cadence.validate_every=0",
        max_failures=1,
    )
    killed: dict = {}
    stop = threading.Event()
    watcher = threading.Thread(target=_kill_after_first_checkpoint, args=(out / "checkpoints", killed, stop))
    watcher.start()
    try:
        result = run(config)
    finally:
        stop.set()
        watcher.join()

    assert killed.get("pids"), "no training worker was killed (the run ended before its first checkpoint?)"
    assert result.step == _MAX_STEPS
    client = MlflowClient(tracking_uri=tracking_uri)
    resumed = [metric.value for metric in client.get_metric_history(result.mlflow_run_id, "resumed_from_step")]
    assert len(resumed) == 1 and resumed[0] >= _CHECKPOINT_EVERY and resumed[0] % _CHECKPOINT_EVERY == 0
    assert result.start_step == 0  # this command started at 0; its restarted workers resumed later
    assert client.get_run(result.mlflow_run_id).info.status == "FINISHED"
    experiment = client.get_run(result.mlflow_run_id).info.experiment_id
    assert len(client.search_runs([experiment])) == 1  # the restarted workers continued the same run
    logged = sorted(metric.step for metric in client.get_metric_history(result.mlflow_run_id, "loss"))
    assert logged[-1] == _MAX_STEPS and set(range(_CHECKPOINT_EVERY, _MAX_STEPS + 1, _CHECKPOINT_EVERY)) <= set(logged)


def test_stopped_job_resumes_when_the_same_command_runs_again(ray_session, mixed_shards: Path, tmp_path: Path):
    """Ctrl-C (SIGINT to the driver) after the first checkpoint stops the job without publishing a model; the
    same command then resumes from the newest checkpoint in the same MLflow run."""
    from mlflow import MlflowClient

    from colorization.errors import UserError
    from colorization.stages.train import run

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "run"
    overrides = (
        f"schedule.max_steps={_MAX_STEPS}",
        "schedule.lr_steps=[15]",
        f"cadence.checkpoint_every={_CHECKPOINT_EVERY}",
        f"cadence.log_every={_CHECKPOINT_EVERY}",
        "cadence.validate_every=0",
    )
    stopped: dict = {}
    stop = threading.Event()

    def interrupt_after_first_checkpoint() -> None:
        while not stop.is_set():
            if _registered_checkpoint(out / "checkpoints"):
                stopped["at"] = _registered_checkpoint(out / "checkpoints")
                os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the terminal sends
                return
            time.sleep(0.02)

    watcher = threading.Thread(target=interrupt_after_first_checkpoint)
    watcher.start()
    try:
        with pytest.raises(UserError, match="re-run the same command"):
            run(stage_config(mixed_shards, out, tracking_uri, *overrides))
    finally:
        stop.set()
        watcher.join()
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ray Train's handler stays installed otherwise
    assert stopped.get("at") and not (out / "model.safetensors").exists()
    stopped_run = MlflowClient(tracking_uri=tracking_uri).get_run((out / "mlflow_run_id").read_text().strip())
    assert stopped_run.info.status == "KILLED"  # not left RUNNING

    result = run(stage_config(mixed_shards, out, tracking_uri, *overrides))
    assert result.step == _MAX_STEPS and 0 < result.start_step < _MAX_STEPS
    client = MlflowClient(tracking_uri=tracking_uri)
    resumed = [metric.value for metric in client.get_metric_history(result.mlflow_run_id, "resumed_from_step")]
    assert resumed == [result.start_step]
    assert result.mlflow_run_id == stopped_run.info.run_id
    assert client.get_run(result.mlflow_run_id).info.status == "FINISHED"
    experiment = client.get_run(result.mlflow_run_id).info.experiment_id
    assert len(client.search_runs([experiment])) == 1


def _damage_data_pages(shard: Path) -> None:
    """Overwrites the middle of a Parquet file (its data pages) and keeps the footer: the schema still reads, so
    the stage's checks pass, and the workers fail when they decode the pixels."""
    data = bytearray(shard.read_bytes())
    start, end = len(data) // 4, len(data) // 2
    data[start:end] = bytes(end - start)
    shard.write_bytes(bytes(data))


def test_a_run_failing_before_its_first_checkpoint_is_marked_failed_and_continued_by_the_rerun(
    ray_session, mixed_shards: Path, tmp_path: Path
):
    """Workers that fail before any checkpoint (damaged shard pages): the MLflow run is marked FAILED with the
    reason, and the same command, once the data is repaired, continues that run instead of leaving it empty."""
    from mlflow import MlflowClient

    from colorization.errors import UserError
    from colorization.stages.train import run

    shards = tmp_path / "shards"
    shutil.copytree(mixed_shards, shards)
    train_files = sorted((shards / "train").glob("*.parquet"))
    originals = {path: path.read_bytes() for path in train_files}
    for path in train_files:
        _damage_data_pages(path)
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "run"
    overrides = ("schedule.max_steps=2", "cadence.checkpoint_every=2", "cadence.validate_every=0")
    with pytest.raises(UserError, match="training failed in the Ray workers"):
        run(stage_config(shards, out, tracking_uri, *overrides, max_failures=0))
    assert not (out / "checkpoints").exists() or not _registered_checkpoint(out / "checkpoints")
    client = MlflowClient(tracking_uri=tracking_uri)
    failed_id = (out / "mlflow_run_id").read_text().strip()
    failed = client.get_run(failed_id)
    assert failed.info.status == "FAILED"
    assert "training failed" in failed.data.tags["colorization.stopped_because"]

    for path, content in originals.items():
        path.write_bytes(content)
    result = run(stage_config(shards, out, tracking_uri, *overrides, max_failures=0))
    assert result.step == 2 and result.mlflow_run_id == failed_id
    assert client.get_run(failed_id).info.status == "FINISHED"
    assert len(client.search_runs([failed.info.experiment_id])) == 1  # no empty run left behind
