"""What a colorization server runs: its models (by name), request limits and batching, validated once.

Everything here is plain data (no Ray, no FastAPI), so the CLI can check a configuration before Ray starts and
the Serve config file (``cluster/serve.yaml``) can carry it as the application's ``args`` (a JSON-able dict).
Models come from this configuration only, never from a path a client sends.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from colorization.errors import UserError

MODEL_REGISTRY_SCHEME = "models:/"  # MLflow registry URIs, e.g. models:/colorizer-zhang@champion
_MODEL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # used in URLs and result ids ("<name>.<hex>")

DEFAULT_HOST = "127.0.0.1"  # loopback unless told otherwise: nothing outside this machine can reach the server
DEFAULT_PORT = 8000  # Serve's own default
API_KEY_ENV = "COLORIZATION_API_KEY"  # when set (in the ingress replica's environment), requests need the key
OUTPUT_FORMATS = ("png", "jpeg", "webp")


@dataclass(frozen=True)
class ModelSpec:
    """One served model.

    Attributes:
        name: how clients address it (``?model=NAME``); letters, digits, ``_`` and ``-``.
        source: a checkpoint file of this project (``.safetensors``) or ``models:/NAME@ALIAS`` / ``models:/NAME/V``.
        max_batch_size: overrides :attr:`ServingSettings.max_batch_size` for this model (1 turns batching off).
    """

    name: str
    source: str
    max_batch_size: int | None = None

    def __post_init__(self) -> None:
        if not _MODEL_NAME.match(self.name):
            raise UserError(f"model name {self.name!r}: use 1-64 letters, digits, '_' or '-'")
        if not self.source:
            raise UserError(f"model {self.name!r}: the checkpoint or models:/ URI is empty")
        if self.max_batch_size is not None and self.max_batch_size < 1:
            raise UserError(f"model {self.name!r}: max_batch_size must be >= 1; got {self.max_batch_size}")

    @property
    def is_registry_uri(self) -> bool:
        return self.source.startswith(MODEL_REGISTRY_SCHEME)


def parse_model_arg(text: str) -> ModelSpec:
    """``NAME=CHECKPOINT`` or ``NAME=models:/...`` (the ``--model`` argument) -> :class:`ModelSpec`."""
    name, separator, source = text.partition("=")
    if not separator:
        raise UserError(f"--model {text!r}: expected NAME=CHECKPOINT or NAME=models:/NAME@ALIAS")
    return ModelSpec(name=name.strip(), source=source.strip())


@dataclass(frozen=True)
class ServingSettings:
    """Everything the Serve application needs; one instance is shared by the ingress and every model replica.

    Attributes:
        models: the served models; the first is the default when a request names none.
        max_body_bytes: largest request body accepted (Serve itself has no limit: ray-mlflow-notes section 3).
        max_pixels: largest decoded image (width x height), refused from the header before decoding.
        request_timeout_s: a request still waiting for its model after this long gets 504.
        max_batch_size: images per forward pass (``@serve.batch``); 1 turns batching off.
        batch_wait_timeout_s: how long a batch waits to fill.
        cache_bytes: per model replica, network outputs kept for re-rendering (temperature slider), in bytes.
        replicas: replicas of each model deployment.
        model_num_cpus: CPUs Ray reserves per model replica (0 lets tests pack several on 2 cores).
        ingress_num_cpus: CPUs Ray reserves per ingress replica (it decodes and encodes, mostly waits on models).
        torch_threads: intra-op threads per model replica; None uses max(1, model_num_cpus).
        device: torch device of the model replicas (``cuda`` puts each on a GPU: one GPU per replica).
        api_key_env: name of the environment variable holding the API key (unset or empty: no key needed).
        tracking_uri: the MLflow store of ``models:/`` sources (None: $MLFLOW_TRACKING_URI or ./mlflow.db, resolved
            by the driver before the replicas start).
    """

    models: tuple[ModelSpec, ...]
    max_body_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    request_timeout_s: float = 60.0
    max_batch_size: int = 8
    batch_wait_timeout_s: float = 0.01
    cache_bytes: int = 256 * 1024 * 1024
    replicas: int = 1
    model_num_cpus: float = 1.0
    ingress_num_cpus: float = 0.25
    torch_threads: int | None = None
    device: str = "cpu"
    api_key_env: str = API_KEY_ENV
    tracking_uri: str | None = None

    def __post_init__(self) -> None:
        if not self.models:
            raise UserError("no model to serve: give at least one --model NAME=CHECKPOINT")
        names = [spec.name for spec in self.models]
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise UserError(f"model names must be unique; repeated: {', '.join(duplicates)}")
        positive = {
            "max_body_bytes": self.max_body_bytes,
            "max_pixels": self.max_pixels,
            "request_timeout_s": self.request_timeout_s,
            "max_batch_size": self.max_batch_size,
            "replicas": self.replicas,
        }
        for name, value in positive.items():
            if not value > 0:
                raise UserError(f"{name} must be positive; got {value}")
        for name, value in {"batch_wait_timeout_s": self.batch_wait_timeout_s, "cache_bytes": self.cache_bytes,
                            "model_num_cpus": self.model_num_cpus, "ingress_num_cpus": self.ingress_num_cpus}.items():
            if not value >= 0:
                raise UserError(f"{name} must be >= 0; got {value}")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise UserError(f"torch_threads must be >= 1; got {self.torch_threads}")

    def batch_size_of(self, spec: ModelSpec) -> int:
        """The batch size of ``spec``'s deployment (its own override or the server's)."""
        return spec.max_batch_size or self.max_batch_size

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able dict (the Serve config's application ``args``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ServingSettings:
        """Inverse of :meth:`to_dict`; ``models`` may also be ``{"NAME": "SOURCE"}`` or ``["NAME=SOURCE"]``."""
        data = dict(data)
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown serving settings: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        models = data.pop("models", ())
        if isinstance(models, dict):
            specs = [ModelSpec(name=name, source=str(source)) for name, source in models.items()]
        else:
            specs = [parse_model_arg(item) if isinstance(item, str) else ModelSpec(**item) for item in models]
        return cls(models=tuple(specs), **data)

    def with_models(self, *specs: ModelSpec) -> ServingSettings:
        return replace(self, models=tuple(specs))


@dataclass(frozen=True)
class ModelInfo:
    """What ``GET /v1/models`` says about one model (filled by its replica from the loaded checkpoint)."""

    name: str
    family: str
    decoders: tuple[str, ...]
    default_decoder: str
    default_temperature: float | None  # None: no decoder of this family has a temperature
    working_size: int
    max_batch_size: int
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
