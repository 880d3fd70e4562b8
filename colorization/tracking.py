"""Where MLflow records go: the tracking URI and the experiment, set up once by a workflow.

No run is opened here (runs belong to ``workflows/*.py``, STYLE.md section 1). The URI is, in order: an explicit
argument, the ``MLFLOW_TRACKING_URI`` environment variable, else ``sqlite:///<working directory>/mlflow.db``.
A local SQLite store is the default because MLflow 3.x refuses the old ``./mlruns`` file store unless
``MLFLOW_ALLOW_FILE_STORE`` is set (ray-mlflow-notes section 4). With a local SQLite store, a new experiment keeps
its artifacts in ``mlartifacts/`` next to the database file (not in whatever directory the run started from).
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
from pathlib import Path

from colorization.errors import UserError

__all__ = [
    "TRACKING_URI_ENV",
    "DEFAULT_DB_NAME",
    "resolve_tracking_uri",
    "configure_tracking",
    "check_tracking_server",
    "check_tracking_store",
]

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
DEFAULT_DB_NAME = "mlflow.db"
_ARTIFACTS_DIR_NAME = "mlartifacts"
_SQLITE_MAGIC = b"SQLite format 3\x00"
_GATEWAY_ERRORS = (502, 503, 504)
CHECK_TIMEOUT_S = 5.0  # an unreachable server must fail in seconds, not after MLflow's ~4 minutes of retries


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


def check_tracking_server(uri: str, *, timeout_s: float = CHECK_TIMEOUT_S) -> None:
    """For an ``http(s)://`` tracking URI: the server must answer (its ``/health`` endpoint; any HTTP answer counts)
    within ``timeout_s`` seconds. Other URIs pass unchecked.

    Raises:
        UserError: the server cannot be reached, named with the reason.
    """
    if not uri.startswith(("http://", "https://")):
        return
    try:
        with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=timeout_s):
            pass
    except urllib.error.HTTPError as error:
        if error.code in _GATEWAY_ERRORS:  # a proxy answered for a server it could not reach
            reason = f"HTTP {error.code}"
        else:
            reason = None  # the server answered (an older one without /health, or behind authentication)
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
    else:
        reason = None
    if reason is not None:
        raise UserError(
            f"MLflow tracking server {uri} is not reachable ({reason}); start it, or choose another store with "
            f"--tracking-uri or ${TRACKING_URI_ENV}"
        ) from None


def check_tracking_store(tracking_uri: str | None = None, *, timeout_s: float = CHECK_TIMEOUT_S) -> str:
    """Checks, before any work, that MLflow will be able to record there; returns the resolved URI.

    * ``sqlite:///PATH``: the folder of PATH must be writable, and an existing PATH must be an SQLite file;
    * ``http(s)://HOST``: the server must answer (its ``/health`` endpoint; any HTTP answer counts) within
      ``timeout_s`` seconds;
    * other schemes (e.g. ``postgresql://``, ``databricks``) are left to MLflow.

    Args:
        tracking_uri: as for :func:`resolve_tracking_uri`.
        timeout_s: how long to wait for a tracking server.

    Returns:
        The tracking URI that was checked.

    Raises:
        UserError: the store cannot be written or reached, named with the reason.
    """
    uri = resolve_tracking_uri(tracking_uri)
    database = _local_sqlite_path(uri)
    if database is not None:
        from colorization.io.safe_outputs import check_output_file

        check_output_file(database, what="MLflow tracking store")
        if database.exists() and database.stat().st_size:
            with database.open("rb") as stream:
                if stream.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
                    raise UserError(f"MLflow tracking store {database} exists and is not an SQLite database")
    else:
        check_tracking_server(uri, timeout_s=timeout_s)
    return uri


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
