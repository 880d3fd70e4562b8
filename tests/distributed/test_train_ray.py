"""The Ray path of training end to end on the session's local Ray: MLflow record, registry, models:/ loading,
and the checks that refuse a run before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.distributed.train_helpers import model_bins, stage_config, write_prior

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def _metric_steps(client, run_id: str, key: str) -> dict[int, float]:
    return {metric.step: metric.value for metric in client.get_metric_history(run_id, key)}


def _check_pyfunc_has_no_pickle(tracking_uri: str, version: str, folder: Path) -> None:
    """The logged model is code + one safetensors file, and MLflow's own loader colorizes with it."""
    import mlflow
    import numpy as np

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    uri = f"models:/zhang-eccv16/{version}"
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(folder)))
    names = sorted(path.name for path in local.rglob("*") if path.is_file())
    assert not [name for name in names if name.endswith((".pkl", ".pickle", ".pt", ".pth", ".cloudpickle"))], names
    assert [name for name in names if name.endswith(".safetensors")] == ["model.safetensors"]
    assert "tracking_pyfunc.py" in names
    images = np.random.default_rng(0).integers(0, 256, size=(2, 24, 40, 3), dtype=np.uint8)
    colorized = mlflow.pyfunc.load_model(uri).predict(images)
    assert colorized.shape == images.shape and colorized.dtype == np.uint8


def test_ray_run_logs_and_registers(ray_session, mixed_shards: Path, tmp_path: Path):
    """One Ray run of 4 steps: its MLflow record, the registered model, models:/ loading; a re-run is skipped.

    Resuming (after Ctrl-C, after a killed worker) is tested in test_train_recovery.py."""
    from mlflow import MlflowClient
    from safetensors.torch import load_file

    from colorization.model_source import load_model
    from colorization.stages.train import check_inputs, run

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    prior = write_prior(tmp_path / "prior", model_bins("zhang_eccv16_w8", input_size=32))
    out = tmp_path / "run"
    common = [
        f"loss.prior={prior}",
        "data.resize=null",  # crops cut by Ray Data from the stored 64 px images
        "data.crop=32",
        "data.val_size=32",
        "cadence.log_every=1",
        "cadence.validate_every=2",
        "cadence.checkpoint_every=2",
    ]
    first_config = stage_config(mixed_shards, out, tracking_uri, *common, "schedule.max_steps=4")
    digest = check_inputs(first_config).manifest_digest
    first = run(first_config)
    assert (first.step, first.start_step, first.skipped) == (4, 0, False)

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    run_id = first.mlflow_run_id
    record = client.get_run(run_id)
    params = record.data.params
    assert params["optimizer.lr"] == "0.001" and params["model.variant"] == "zhang_eccv16_w8"
    assert params["data.manifest_digest"] == digest
    assert params["prior.path"] == str((prior / "ab_prior.npz").resolve())
    for key in ("loss", "loss_unweighted", "lr", "images_per_s", "data_wait_fraction"):
        assert sorted(_metric_steps(client, run_id, key)) == [1, 2, 3, 4], key
    assert sorted(_metric_steps(client, run_id, "val_rebalanced_auc")) == [2, 4]
    samples = [item.path for item in client.list_artifacts(run_id, "samples")]
    assert samples and all(path.endswith(".png") for path in samples)
    assert "train_config.json" in [item.path for item in client.list_artifacts(run_id)]

    version = client.get_model_version_by_alias("zhang-eccv16", "candidate")
    assert version.run_id == run_id
    model, metadata = load_model("models:/zhang-eccv16@candidate", tracking_uri=tracking_uri)
    published = load_file(str(out / "model.safetensors"))
    assert metadata["extra"]["step"] == 4 and metadata["extra"]["registry_version"] == str(version.version)
    assert set(model.state_dict()) == set(published)
    assert all(torch.equal(tensor, published[name]) for name, tensor in model.state_dict().items())

    _check_pyfunc_has_no_pickle(tracking_uri, version.version, tmp_path / "download")

    again = run(stage_config(mixed_shards, out, tracking_uri, *common, "schedule.max_steps=4"))
    assert again.skipped and again.step == 4 and again.mlflow_run_id == run_id  # finished: nothing to train


def test_a_ray_run_trains_on_zoomed_crops_cut_on_its_worker(ray_session, mixed_shards: Path, tmp_path: Path):
    """With ``data.scale`` Ray Data passes whole images and the worker cuts the zoomed crops (the local recipe's
    path); the run finishes and records the zoom."""
    import json

    from colorization.stages.train import run

    prior = write_prior(tmp_path / "prior", model_bins("zhang_eccv16_w8", input_size=32))
    out = tmp_path / "run"
    zoom = ("data.resize=48", "data.scale=[0.3, 1.0]", "data.crop=32", "data.val_size=32")
    cadence = ("schedule.max_steps=2", "cadence.validate_every=0", "cadence.checkpoint_every=2")
    tracking_uri = f"sqlite:///{tmp_path / 'db'}"
    result = run(stage_config(mixed_shards, out, tracking_uri, f"loss.prior={prior}", *zoom, *cadence))
    assert (result.step, result.start_step) == (2, 0)
    assert json.loads((out / "train_config.json").read_text())["data"]["scale"] == [0.3, 1.0]


def test_prior_with_other_bins_is_refused_before_ray_starts(mixed_shards: Path, tmp_path: Path, monkeypatch):
    from colorization.distributed import runtime
    from colorization.errors import UserError
    from colorization.stages.train import run

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started for a config that should have been refused")

    monkeypatch.setattr(runtime, "init_ray", no_ray)
    bins = model_bins("zhang_eccv16_w8", input_size=32)
    prior = write_prior(tmp_path / "prior", bins[:-1])  # one bin short: a prior of another bin set
    config = stage_config(mixed_shards, tmp_path / "run", f"sqlite:///{tmp_path / 'db'}", f"loss.prior={prior}")
    with pytest.raises(UserError, match="bins"):
        run(config)
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_an_unreachable_tracking_server_is_refused_before_ray_starts(mixed_shards: Path, tmp_path: Path, monkeypatch):
    from colorization.distributed import runtime
    from colorization.errors import UserError
    from colorization.stages.train import run

    def no_ray(*args, **kwargs):
        raise AssertionError("Ray was started although MLflow could not record the run")

    monkeypatch.setattr(runtime, "init_ray", no_ray)
    config = stage_config(mixed_shards, tmp_path / "run", "http://127.0.0.1:9")  # port 9 (discard): nobody answers
    with pytest.raises(UserError, match="not reachable"):
        run(config)
    assert not (tmp_path / "run").exists()


def test_cpu_workers_must_leave_a_cpu_to_ray_data(ray_session, mixed_shards: Path, tmp_path: Path):
    """The 2-core deadlock (workers hold every CPU, Ray Data never reads) becomes one clear line."""
    from colorization.errors import UserError
    from colorization.stages.train import run

    cpus = ray_session.cluster_resources()["CPU"]
    config = stage_config(
        mixed_shards, tmp_path / "run", f"sqlite:///{tmp_path / 'db'}", f"scaling.cpus_per_worker={cpus}"
    )
    with pytest.raises(UserError, match="none for Ray Data"):
        run(config)


def test_gpu_workers_on_a_local_ray_without_gpus_are_refused(ray_session):
    """A Ray started on this machine has no autoscaler: asking it for GPU workers it lacks would wait forever."""
    from colorization.distributed.trainer import _check_local_gpus
    from colorization.errors import UserError
    from colorization.training.recipes import load_recipe

    gpus = int(ray_session.cluster_resources().get("GPU", 0))
    wanted = load_recipe("zhang-smoke", ["scaling.use_gpu=true", f"scaling.num_workers={gpus + 1}"])
    with pytest.raises(UserError, match="GPU"):
        _check_local_gpus(wanted)
    _check_local_gpus(load_recipe("zhang-smoke", ["scaling.use_gpu=false"]))  # CPU workers: nothing to check
