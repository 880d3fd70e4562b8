"""The Ray Serve classes: one batched model deployment per served model, and the FastAPI ingress.

``ColorizerDeployment`` loads its model in ``__init__`` (Ray's Serve examples do the same) and answers through
``@serve.batch``: concurrent uploads to one replica ride in one forward pass. The batch size and wait come from
the settings (set on the batch queue at start-up), and the deployment's ``max_ongoing_requests`` is at least the
batch size, or batches never form (ray-mlflow-notes section 3). The network runs in a worker thread so the
replica keeps accepting requests, which then form the next batch.

``Ingress`` builds its FastAPI app at replica start (``__serve_build_asgi_app__``): the routes live in ``api.py``
and talk to the model deployments through a :class:`HandleBackend`.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ray import serve
from ray.serve.handle import DeploymentHandle

from colorization.serving.settings import ModelInfo, ModelSpec, ServingSettings
from colorization.serving.worker import ColorizeJob, ModelWorker, Refusal, Rendered


@serve.deployment(name="colorizer", health_check_period_s=10, health_check_timeout_s=30)
class ColorizerDeployment:
    """One model behind ``@serve.batch``.

    Args:
        spec: the model to load (by name and source).
        settings: the server's settings (batching, cache, device, threads).
    """

    def __init__(self, spec: dict[str, Any], settings: dict[str, Any]) -> None:
        import torch

        from colorization.serving.model_loading import load_served_model

        self.settings = ServingSettings.from_dict(settings)
        self.spec = ModelSpec(**spec)
        threads = self.settings.torch_threads or max(1, int(self.settings.model_num_cpus))
        torch.set_num_threads(threads)
        model, _ = load_served_model(self.spec, self.settings.device, self.settings.tracking_uri)
        batch_size = self.settings.batch_size_of(self.spec)
        self.worker = ModelWorker(self.spec, model, max_batch_size=batch_size, cache_bytes=self.settings.cache_bytes)
        self.colorize.set_max_batch_size(batch_size)
        self.colorize.set_batch_wait_timeout_s(self.settings.batch_wait_timeout_s)

    def info(self) -> ModelInfo:
        return self.worker.info

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.02)
    async def colorize(self, jobs: list[ColorizeJob]) -> list[Rendered | Refusal]:
        return await asyncio.to_thread(self.worker.run_batch, jobs)

    async def rerender(self, result_id: str, decoder: str | None, temperature: float | None) -> Rendered | Refusal:
        return await asyncio.to_thread(self.worker.rerender, result_id, decoder, temperature)

    def check_health(self) -> None:
        """Serve calls this periodically; raising marks the replica unhealthy (and Serve replaces it)."""
        if not any(True for _ in self.worker.colorizer.model.parameters()):
            raise RuntimeError(f"model {self.spec.name!r} has no parameters loaded")


class HandleBackend:
    """What the API needs from the models, over Serve deployment handles.

    Args:
        handles: model name -> handle of its :class:`ColorizerDeployment`.
        infos: model name -> its :class:`ModelInfo` (asked once at start-up).
    """

    def __init__(self, handles: dict[str, DeploymentHandle], infos: dict[str, ModelInfo]) -> None:
        self.handles = handles
        self.infos = infos

    async def colorize(self, model: str, job: ColorizeJob) -> Rendered | Refusal:
        return await self.handles[model].colorize.remote(job)

    async def rerender(self, model: str, result_id: str, decoder: str | None, temperature: float | None):
        return await self.handles[model].rerender.remote(result_id, decoder, temperature)

    async def healthy(self) -> dict[str, bool]:
        """Asks every model deployment for its info (a cheap round trip through Serve)."""
        names = list(self.handles)
        answers = await asyncio.gather(*(self.handles[n].info.remote() for n in names), return_exceptions=True)
        return {name: not isinstance(answer, BaseException) for name, answer in zip(names, answers)}


@serve.deployment(name="ingress", max_ongoing_requests=256)
@serve.ingress()
class Ingress:
    """The HTTP front: request limits, decoding, encoding and the page; the models sit behind handles.

    Args:
        settings: the server's settings (a dict, as Serve configs carry them).
        handles: model name -> handle of its deployment (Serve passes bound deployments as handles).
    """

    async def __init__(self, settings: dict[str, Any], handles: dict[str, DeploymentHandle]) -> None:
        self.settings = ServingSettings.from_dict(settings)
        infos = await asyncio.gather(*(handle.info.remote() for handle in handles.values()))
        self.backend = HandleBackend(dict(handles), dict(zip(handles, infos)))
        self.api_key = os.environ.get(self.settings.api_key_env) or None

    def __serve_build_asgi_app__(self):
        from colorization.serving.api import build_api

        return build_api(self.backend, self.settings, api_key=self.api_key)

    def check_health(self) -> None:
        """The ingress holds no state that can break; the models report their own health."""
