"""Where a network comes from: a checkpoint file, or the MLflow model registry (``models:/NAME@ALIAS``).

``load_model(spec)`` is what the CLI (``colorize --checkpoint``), serving and evaluation call, so every one of
them accepts both forms. A registry URI names a model logged by training (``colorization/model_registry.py``):
its safetensors artifact is downloaded and loaded exactly like a local file, with the same validation of
untrusted checkpoints (``colorization.models.checkpoint``); the pyfunc code logged next to it is never run and
nothing is unpickled. MLflow is imported only for registry URIs.

Accepted specs:

* a path to a ``.safetensors`` checkpoint of this project;
* ``models:/NAME@ALIAS`` (e.g. ``models:/zhang-eccv16@candidate``) or ``models:/NAME/VERSION``.

The registry is the one of ``colorization.tracking.resolve_tracking_uri`` ($MLFLOW_TRACKING_URI, else
``sqlite:///mlflow.db`` in the working directory) unless ``tracking_uri`` is given.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorization.errors import UserError

__all__ = ["MODEL_URI_PREFIX", "CHECKPOINT_SUFFIX", "is_registry_uri", "parse_registry_uri", "load_model"]

MODEL_URI_PREFIX = "models:/"
CHECKPOINT_SUFFIX = ".safetensors"
_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def is_registry_uri(spec: str | Path) -> bool:
    """True for ``models:/...`` specs."""
    return str(spec).startswith(MODEL_URI_PREFIX)


def parse_registry_uri(spec: str) -> tuple[str, str | None, str | None]:
    """``models:/NAME@ALIAS`` -> (NAME, ALIAS, None); ``models:/NAME/VERSION`` -> (NAME, None, VERSION).

    Raises:
        UserError: any other form.
    """
    match = _URI.match(spec)
    if match is None:
        raise UserError(f"model {spec}: expected models:/NAME@ALIAS or models:/NAME/VERSION")
    return match.group("name"), match.group("alias"), match.group("version")


def _resolve_version(client, spec: str, name: str, alias: str | None, version: str | None):
    """The registry's ModelVersion for the URI, or a UserError naming what is missing."""
    from mlflow.exceptions import MlflowException

    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        raise UserError(f"model {spec}: no registered model named {name!r} in the registry") from None
    try:
        if alias is not None:
            return client.get_model_version_by_alias(name, alias)
        return client.get_model_version(name, version)
    except MlflowException:
        if alias is not None:
            known = ", ".join(sorted(registered.aliases)) or "none"
            raise UserError(
                f"model {spec}: registered model {name!r} has no alias {alias!r} (aliases: {known})"
            ) from None
        raise UserError(f"model {spec}: registered model {name!r} has no version {version}") from None


def _download_checkpoint(spec: str, tracking_uri: str | None, destination: Path) -> tuple[Path, str]:
    """Downloads the safetensors artifact of a registered model version into ``destination``; (file, version)."""
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from colorization.tracking import check_tracking_server, resolve_tracking_uri

    name, alias, version = parse_registry_uri(spec)
    uri = resolve_tracking_uri(tracking_uri)
    try:  # an unreachable server: one line in seconds, not after MLflow's minutes of retries
        check_tracking_server(uri)
    except UserError as error:
        raise UserError(f"model {spec}: {error}") from None
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    model_version = _resolve_version(client, spec, name, alias, version)
    try:
        # The version's own artifacts (MLmodel, the code file, artifacts/<checkpoint>); the weights are one file.
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"models:/{name}/{model_version.version}", dst_path=str(destination), tracking_uri=uri
        )
    except (MlflowException, OSError) as error:
        raise UserError(f"model {spec}: cannot download version {model_version.version} ({error})") from None
    found = sorted(Path(local).rglob(f"*{CHECKPOINT_SUFFIX}"))
    if len(found) != 1:
        raise UserError(
            f"model {spec}: version {model_version.version} holds {len(found)} {CHECKPOINT_SUFFIX} files; "
            "expected exactly one (was it logged by colorization train?)"
        )
    return found[0], str(model_version.version)


def load_model(
    spec: str | Path, device: str | torch.device = "cpu", *, tracking_uri: str | None = None
) -> tuple[nn.Module, dict[str, Any]]:
    """The network named by ``spec`` (a checkpoint file or a registry URI), validated, in eval mode.

    Args:
        spec: checkpoint path, ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.
        device: where to put the network.
        tracking_uri: the MLflow store of registry URIs (None: ``colorization.tracking`` default).

    Returns:
        (network, checkpoint metadata: ``family``, ``config``, ``extra``; registry URIs add ``extra["source"]``
        = the URI and ``extra["registry_version"]``).

    Raises:
        UserError: one line when the file is missing or fails validation, or the URI names no model, alias or
            version.
    """
    from colorization.models.checkpoint import load_checkpoint

    text = str(spec)
    if not is_registry_uri(text):
        path = Path(text)
        if not path.is_file():
            raise UserError(f"checkpoint {text}: no such file")
        try:
            return load_checkpoint(path, device=device)
        except UserError:
            raise
        except (ValueError, KeyError, TypeError, OSError) as error:
            raise UserError(f"checkpoint {text}: not a usable colorization checkpoint ({error})") from None
    with tempfile.TemporaryDirectory(prefix="colorization-model-") as folder:
        checkpoint, version = _download_checkpoint(text, tracking_uri, Path(folder))
        try:
            model, metadata = load_checkpoint(checkpoint, device=device)
        except UserError as error:
            raise UserError(f"model {text}: {error}") from None
        except (ValueError, KeyError, TypeError, OSError) as error:
            raise UserError(f"model {text}: not a usable colorization checkpoint ({error})") from None
    metadata = dict(metadata)
    metadata["extra"] = {**metadata.get("extra", {}), "source": text, "registry_version": version}
    return model, metadata
