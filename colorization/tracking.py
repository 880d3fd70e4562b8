"""Where MLflow records go: the tracking URI and the experiment, set up once by a workflow.

No run is opened here (runs belong to ``workflows/*.py``, STYLE.md section 1). The URI is, in order: an explicit
argument, the ``MLFLOW_TRACKING_URI`` environment variable, else ``sqlite:///<working directory>/mlflow.db``.
A local SQLite store is the default because MLflow 3.x refuses the old ``./mlruns`` file store unless
``MLFLOW_ALLOW_FILE_STORE`` is set (ray-mlflow-notes section 4). With a local SQLite store, a new experiment keeps
its artifacts in ``mlartifacts/`` next to the database file (not in whatever directory the run started from).
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["TRACKING_URI_ENV", "DEFAULT_DB_NAME", "resolve_tracking_uri", "configure_tracking"]

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_DB_NAME = "mlflow.db"
_ARTIFACTS_DIR_NAME = "mlartifacts"


def resolve_tracking_uri(tracking_uri: str | None = None) -> str:
    """The tracking URI to use: argument > $MLFLOW_TRACKING_URI > sqlite:///<cwd>/mlflow.db."""
    if tracking_uri:
        return tracking_uri
    from_env = os.environ.get(TRACKING_URI_ENV)
    if from_env:
        return from_env
    return f"sqlite:///{(Path.cwd() / DEFAULT_DB_NAME).resolve()}"


def _local_sqlite_path(tracking_uri: str) -> Path | None:
    prefix = "sqlite:///"
    if not tracking_uri.startswith(prefix):
        return None
    location = tracking_uri[len(prefix) :]
    if not location or location == ":memory:":
        return None
    return Path(location).resolve()  # "sqlite:////abs/x.db" leaves "/abs/x.db"; "sqlite:///x.db" is cwd-relative


def configure_tracking(experiment_name: str, tracking_uri: str | None = None) -> tuple[str, str]:
    """Points MLflow at the store and selects (creating if needed) the experiment.

    Args:
        experiment_name: e.g. "colorization-prior".
        tracking_uri: overrides the environment / default (see the module doc).

    Returns:
        (tracking URI, experiment id).
    """
    import mlflow  # imported here: the package itself must import without MLflow

    uri = resolve_tracking_uri(tracking_uri)
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.get_experiment_by_name(experiment_name)
    if experiment is None:
        database = _local_sqlite_path(uri)
        artifact_location = (database.parent / _ARTIFACTS_DIR_NAME).as_uri() if database else None
        experiment_id = mlflow.create_experiment(experiment_name, artifact_location=artifact_location)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return uri, experiment_id
