"""The pipeline's MLflow bookkeeping for trained models: a run for a training that logged none, registration,
promotion after evaluation.

* A training on the Ray path logs its own run (rank 0) and registers its model (``models:/FAMILY@candidate``).
  The one-process path (``scaling.num_workers=0``, what a laptop runs) logs nothing, so the pipeline logs the run
  afterwards from the stage's result (flattened config, lineage: manifest digest, prior file digest and MLflow
  run; last training and validation metrics; summary and sample grids) and registers the model the same way
  (``colorization.model_registry.log_and_register``: a pickle-free pyfunc holding the safetensors checkpoint).
* After the evaluation scored those versions, ``promote`` points the ``champion`` alias at them.

MLflow is imported inside the functions only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["log_training_run", "register_trained_model", "promote", "tag_run"]

_MAX_PARAM_CHARS = 500


def _numeric(values: dict[str, Any]) -> dict[str, float]:
    return {key: float(value) for key, value in values.items() if isinstance(value, (int, float)) and value == value}


def log_training_run(
    tracking_uri: str, experiment: str, family: str, train_config, result, lineage: dict[str, Any]
) -> str:
    """Logs a finished one-process training (a ``TrainResult``) as an MLflow run; returns its id."""
    import mlflow

    from colorization.tracking import configure_tracking

    configure_tracking(experiment, tracking_uri)
    folder = Path(result.out)
    with mlflow.start_run(run_name=f"train-{family}") as run:
        mlflow.set_tags({"colorization.stage": "train", "colorization.family": family, "colorization.path": "plain"})
        params = {key: value for key, value in train_config.flatten().items() if len(str(value)) <= _MAX_PARAM_CHARS}
        mlflow.log_params({**params, **{f"lineage.{key}": value for key, value in lineage.items()}})
        summary = result.summary or {}
        mlflow.log_metrics(_numeric({**summary.get("last_metrics", {}), "steps": result.step,
                                     "images_per_s": summary.get("images_per_s"), "seconds": summary.get("seconds")}))
        mlflow.log_metrics(_numeric({f"val_{key}": value for key, value in (result.validation or {}).items()}))
        for name in ("train_config.json", "summary.json", "metrics.jsonl"):
            if (folder / name).is_file():
                mlflow.log_artifact(str(folder / name), artifact_path="training")
        if (folder / "samples").is_dir():
            mlflow.log_artifacts(str(folder / "samples"), artifact_path="samples")
        return run.info.run_id


def _uris(name: str, version: str, alias: str) -> dict[str, Any]:
    return {"name": name, "version": str(version), "alias": alias, "uri": f"models:/{name}/{version}",
            "alias_uri": f"models:/{name}@{alias}"}


def register_trained_model(tracking_uri: str, model_path: str, run_id: str, summary: dict[str, Any]) -> dict:
    """The registered version of a trained model: the one the Ray path registered, else a new one.

    Returns:
        {"name", "version", "alias", "uri": models:/NAME/VERSION, "alias_uri": models:/NAME@ALIAS}.
    """
    from colorization.model_registry import DEFAULT_ALIAS, log_and_register, registered_name_for
    from colorization.models.checkpoint import load_checkpoint
    from colorization.tracking import configure_tracking

    if summary.get("registered_model") and summary.get("registered_version"):
        name = summary["registered_model"].removeprefix("models:/").split("@")[0]
        return _uris(name, summary["registered_version"], DEFAULT_ALIAS)
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    experiment_id = mlflow.get_run(run_id).info.experiment_id
    configure_tracking(mlflow.get_experiment(experiment_id).name, tracking_uri)
    _, metadata = load_checkpoint(model_path)
    registered = log_and_register(model_path, run_id=run_id, registered_name=registered_name_for(metadata["family"]))
    return _uris(registered.name, registered.version, registered.alias)


def promote(tracking_uri: str, name: str, version: str, alias: str, evaluation_run_id: str | None) -> dict:
    """Points ``alias`` at ``name`` version ``version`` and records which evaluation justified it."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    client.set_registered_model_alias(name, alias, version)
    if evaluation_run_id:
        client.set_model_version_tag(name, version, "colorization.evaluation_run_id", evaluation_run_id)
    return _uris(name, version, alias)


def tag_run(tracking_uri: str, run_id: str, tags: dict[str, Any]) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    for key, value in tags.items():
        client.set_tag(run_id, key, str(value)[:_MAX_PARAM_CHARS])
