"""Logging a trained network to MLflow without pickle and registering it under an alias.

The logged model is an MLflow "models from code" pyfunc: the code is ``colorization/tracking_pyfunc.py`` and the
only artifact is the project's safetensors checkpoint (weights + family + config). Registration adds a version
to the registered model (by default named after the model family, e.g. ``zhang-eccv16``) and points an alias
(``candidate``) at it, so ``colorization colorize --checkpoint models:/zhang-eccv16@candidate`` and
``colorization.model_source.load_model`` find the newest trained network. Promoting a candidate (e.g. to
``champion`` after evaluation) is one ``set_registered_model_alias`` call.

MLflow is imported inside the functions (a thin tracking module).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEFAULT_ALIAS", "RegisteredModel", "registered_name_for", "log_and_register"]

DEFAULT_ALIAS = "candidate"
_MODEL_ARTIFACT_NAME = "model"
# What the logged pyfunc needs at load time (MLflow would otherwise infer it by loading the model: seconds).
_PIP_REQUIREMENTS = ("torch", "numpy", "safetensors", "pillow", "scikit-image")


@dataclass(frozen=True)
class RegisteredModel:
    """A logged and registered network.

    Attributes:
        name: registered model name.
        version: its new version.
        alias: the alias now pointing at it.
        uri: ``models:/NAME@ALIAS``.
        model_uri: where MLflow logged it (``models:/m-...``).
    """

    name: str
    version: str
    alias: str
    uri: str
    model_uri: str


def registered_name_for(family: str) -> str:
    """The default registered name of a model family: ``zhang_eccv16`` -> ``zhang-eccv16``."""
    return family.replace("_", "-")


def _signature():
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types import Schema, TensorSpec

    images = Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, 3))])
    return ModelSignature(inputs=images, outputs=images)


def log_and_register(
    checkpoint: str | Path, *, run_id: str, registered_name: str, alias: str = DEFAULT_ALIAS
) -> RegisteredModel:
    """Logs ``checkpoint`` as a pyfunc model of the MLflow run ``run_id`` and registers it as ``name@alias``.

    The tracking URI must already be set (``colorization.tracking.configure_tracking``).

    Args:
        checkpoint: the final safetensors checkpoint.
        run_id: the training run the model belongs to (reopened if it has ended).
        registered_name: registered model name, e.g. ``registered_name_for(family)``.
        alias: alias to move to the new version.

    Returns:
        The registered version.
    """
    import mlflow
    from mlflow import MlflowClient

    from colorization import tracking_pyfunc

    active = mlflow.active_run()
    reopened = active is None or active.info.run_id != run_id
    if reopened:
        mlflow.start_run(run_id=run_id)
    try:
        with warnings.catch_warnings():
            # MLflow asks for type hints and an input example; the explicit tensor signature says the same.
            warnings.filterwarnings("ignore", category=UserWarning, module="mlflow")
            info = mlflow.pyfunc.log_model(
                name=_MODEL_ARTIFACT_NAME,
                python_model=str(Path(tracking_pyfunc.__file__)),
                artifacts={tracking_pyfunc.CHECKPOINT_ARTIFACT: str(checkpoint)},
                signature=_signature(),
                pip_requirements=list(_PIP_REQUIREMENTS),
                registered_model_name=registered_name,
            )
    finally:
        if reopened:
            mlflow.end_run()
    version = str(info.registered_model_version)
    MlflowClient().set_registered_model_alias(registered_name, alias, version)
    return RegisteredModel(
        name=registered_name,
        version=version,
        alias=alias,
        uri=f"models:/{registered_name}@{alias}",
        model_uri=info.model_uri,
    )
