"""The model side of the server, without Ray: predict a batch of uploads, render, cache, re-render.

A Serve model replica (``deployments.py``) owns one :class:`ModelWorker` and feeds it the batches
``@serve.batch`` forms. Everything goes through the public :class:`~colorization.inference.Colorizer` API
(``working_batch`` -> ``predict`` -> ``render``), so serving decodes exactly as evaluation does. Refusals travel
back as values (:class:`Refusal`), not exceptions, so nothing depends on how Ray re-raises remote errors.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from colorization.families import DecodeOptions, Outputs
from colorization.inference import Colorizer
from colorization.serving.result_cache import ByteBoundedLRU
from colorization.serving.settings import ModelInfo, ModelSpec


@dataclass(frozen=True)
class ColorizeJob:
    """One upload for one model.

    Attributes:
        rgb: (H, W, 3) uint8, already shrunk to the request's max_side.
        alpha: (H, W) uint8 or None; kept with the cached outputs so re-renders return it too.
        decoder: a decoder of the model's family, or None for its default.
        temperature: annealed-mean T, or None for the model's default (ignored by families without one).
        keep: cache the network's outputs for :meth:`ModelWorker.rerender`.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    decoder: str | None = None
    temperature: float | None = None
    keep: bool = True


@dataclass(frozen=True)
class Rendered:
    """A colorized image and how it was made."""

    rgb: np.ndarray  # (H, W, 3) uint8
    alpha: np.ndarray | None
    result_id: str | None  # for re-rendering; None when the outputs were not cached
    provenance: dict[str, Any]
    batch_size: int  # images in the forward pass this one rode in (1 for re-renders)


@dataclass(frozen=True)
class Refusal:
    """A request the model cannot serve (bad decoder options, an expired result id)."""

    status: int
    code: str
    message: str


@dataclass(frozen=True)
class _Cached:
    rgb: np.ndarray
    alpha: np.ndarray | None
    outputs: Outputs = field(repr=False)


def _to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> (3, H, W) float32 in [0, 1]."""
    return torch.from_numpy(np.array(rgb, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div_(255.0)


def _to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(3, H, W) float in [0, 1] -> (H, W, 3) uint8."""
    return (rgb.clamp(0, 1) * 255.0).round_().to(torch.uint8).permute(1, 2, 0).contiguous().numpy()


class ModelWorker:
    """One loaded model answering colorize and re-render requests.

    Args:
        spec: the model's name and source (for provenance).
        model: the loaded network (eval mode, on its device).
        max_batch_size: images per forward pass (reported by ``info``).
        cache_bytes: bytes of network outputs kept for re-rendering.
    """

    def __init__(self, spec: ModelSpec, model: torch.nn.Module, *, max_batch_size: int, cache_bytes: int) -> None:
        self.spec = spec
        self.colorizer = Colorizer(model, batch_size=max_batch_size)
        self.cache: ByteBoundedLRU[_Cached] = ByteBoundedLRU(cache_bytes)
        defaults = self.colorizer.resolve(DecodeOptions())
        self.info = ModelInfo(
            name=spec.name,
            family=self.colorizer.adapter.family,
            decoders=tuple(self.colorizer.decoders),
            default_decoder=str(defaults.decoder),
            default_temperature=defaults.temperature,
            working_size=int(self.colorizer.working_size),
            max_batch_size=max_batch_size,
            details={
                "source": spec.source if spec.is_registry_uri else Path(spec.source).name,
                "parameters": sum(p.numel() for p in model.parameters()),
            },
        )

    def _options(self, decoder: str | None, temperature: float | None) -> DecodeOptions | Refusal:
        if self.info.default_temperature is None:
            temperature = None  # this family's decoders take no temperature
        try:
            return self.colorizer.resolve(DecodeOptions(decoder=decoder, temperature=temperature))
        except ValueError as error:
            return Refusal(422, "invalid_parameter", f"model {self.spec.name!r}: {error}")

    def _provenance(self, options: DecodeOptions) -> dict[str, Any]:
        return {
            "model": self.spec.name,
            "family": self.info.family,
            "decoder": options.decoder,
            "temperature": options.temperature,
            "source": self.info.details["source"],
        }

    def _render(self, cached: _Cached, options: DecodeOptions) -> np.ndarray:
        (rgb,) = self.colorizer.render([_to_tensor(cached.rgb)], cached.outputs, options)
        return _to_uint8(rgb)

    def run_batch(self, jobs: list[ColorizeJob]) -> list[Rendered | Refusal]:
        """Predicts all acceptable jobs in one forward pass and renders each with its own options."""
        replies: list[Rendered | Refusal | None] = [None] * len(jobs)
        options: dict[int, DecodeOptions] = {}
        for index, job in enumerate(jobs):
            resolved = self._options(job.decoder, job.temperature)
            if isinstance(resolved, Refusal):
                replies[index] = resolved
            else:
                options[index] = resolved
        if options:
            indices = list(options)
            working = self.colorizer.working_batch([_to_tensor(jobs[i].rgb) for i in indices])
            outputs = self.colorizer.predict(working)
            for row, index in enumerate(indices):
                job = jobs[index]
                own = {key: value[row : row + 1].clone() for key, value in outputs.items()}
                cached = _Cached(rgb=job.rgb, alpha=job.alpha, outputs=own)
                result_id = self._keep(cached) if job.keep else None
                replies[index] = Rendered(
                    rgb=self._render(cached, options[index]),
                    alpha=job.alpha,
                    result_id=result_id,
                    provenance=self._provenance(options[index]),
                    batch_size=len(indices),
                )
        return replies  # type: ignore[return-value]

    def _keep(self, cached: _Cached) -> str | None:
        size = cached.rgb.nbytes + (0 if cached.alpha is None else cached.alpha.nbytes)
        size += sum(value.numel() * value.element_size() for value in cached.outputs.values())
        result_id = f"{self.spec.name}.{uuid.uuid4().hex}"
        return result_id if self.cache.put(result_id, cached, size) else None

    def rerender(self, result_id: str, decoder: str | None, temperature: float | None) -> Rendered | Refusal:
        """Renders a cached upload with new decoder options (no network pass)."""
        cached = self.cache.get(result_id)
        if cached is None:
            return Refusal(404, "result_expired", f"result {result_id!r} is no longer cached: upload the image again")
        options = self._options(decoder, temperature)
        if isinstance(options, Refusal):
            return options
        return Rendered(
            rgb=self._render(cached, options),
            alpha=cached.alpha,
            result_id=result_id,
            provenance=self._provenance(options),
            batch_size=1,
        )
