"""The Serve application graph: one ``ColorizerDeployment`` per model, all behind one ``Ingress``.

:func:`build_app` is what ``colorization serve`` runs; :func:`app_builder` is the ``import_path`` of the Serve
config file (``cluster/serve.yaml``: ``import_path: colorization.serving.app:app_builder`` with the settings as
``args``), so ``serve run`` / ``serve deploy`` / KubeRay build the same graph from YAML.
"""

from __future__ import annotations

from typing import Any

from ray.serve import Application

from colorization.serving.deployments import ColorizerDeployment, Ingress
from colorization.serving.settings import ServingSettings

MAX_CONCURRENT_BATCHES = 1  # ``@serve.batch`` default: one forward pass at a time per replica


def model_deployment_name(model: str) -> str:
    return f"colorizer-{model}"


def build_app(settings: ServingSettings) -> Application:
    """The application for ``settings`` (models, batching, replicas, resources)."""
    as_dict = settings.to_dict()
    handles = {}
    for spec in settings.models:
        batch_size = settings.batch_size_of(spec)
        actor_options: dict[str, Any] = {"num_cpus": settings.model_num_cpus}
        if settings.device.startswith("cuda"):
            actor_options["num_gpus"] = 1
        deployment = ColorizerDeployment.options(
            name=model_deployment_name(spec.name),
            num_replicas=settings.replicas,
            # at least one full batch in flight plus the next one forming, or batches never fill
            max_ongoing_requests=max(2 * batch_size * MAX_CONCURRENT_BATCHES, 4),
            ray_actor_options=actor_options,
        )
        handles[spec.name] = deployment.bind(
            {"name": spec.name, "source": spec.source, "max_batch_size": spec.max_batch_size}, as_dict
        )
    return Ingress.options(ray_actor_options={"num_cpus": settings.ingress_num_cpus}).bind(as_dict, handles)


def app_builder(args: dict[str, Any]) -> Application:
    """Serve config entry point: ``args`` are :class:`ServingSettings` fields (``models`` as ``{NAME: SOURCE}``)."""
    return build_app(ServingSettings.from_dict(args))
