"""Batch colorization with Ray Data: an actor pool of Colorizers writes PNGs; the driver collects one status per file.

:class:`ColorizeWorker` holds one Colorizer (the model is loaded once per actor). Each batch of (source,
destination) rows is decoded, colorized and written atomically with its provenance (``io.provenance``); a file
that cannot be read or written becomes a ``failed`` status with the reason and never stops the batch. The same
worker runs in a plain loop (:func:`colorize_locally`) when Ray is not used, so both paths write the same files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from colorization.families import DecodeOptions
from colorization.inference import Colorizer, load_model
from colorization.io.images import ImageDecodeError, read_image
from colorization.io.provenance import save_png, source_icc_profile
from colorization.io.safe_outputs import atomic_write

WRITTEN, FAILED = "written", "failed"


def source_stamp(path: str | Path) -> dict:
    """Size and mtime of a source file: what makes an existing output 'done' for resuming."""
    stat = os.stat(path)
    return {"source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}


class ColorizeWorker:
    """Colorizes batches of files (a Ray Data actor, or called in a plain loop).

    Args:
        model: checkpoint path or ``models:/NAME@ALIAS``.
        options: decode options (resolved against the model here).
        record: provenance fields every output carries (model name, digest, decoder, T ...).
        device: torch device.
        batch_size: images per forward pass.
    """

    def __init__(self, model: str, options: DecodeOptions, record: dict, *, device: str = "cpu", batch_size: int = 8):
        self.colorizer = Colorizer(load_model(model, device=device), options, device=device, batch_size=batch_size)
        self.record = dict(record)

    def process(self, sources: Sequence[str], destinations: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """Colorizes and writes; returns (source, destination, status, reason) per row."""
        statuses, decoded = [], []
        for source, destination in zip(sources, destinations):
            try:
                decoded.append((source, destination, read_image(source)))
            except ImageDecodeError as error:
                statuses.append((source, destination, FAILED, f"{error.reason}: {error.detail}"))
        if not decoded:
            return statuses
        outputs = self.colorizer.colorize_images([image.rgb for _, _, image in decoded])
        for (source, destination, image), output in zip(decoded, outputs):
            if image.alpha is not None:
                output.putalpha(image.alpha)
            try:
                record = {**self.record, "source": os.path.basename(source), **source_stamp(source)}
                with atomic_write(destination) as temporary:
                    save_png(output, temporary, record, source_icc_profile(source))
                statuses.append((source, destination, WRITTEN, ""))
            except OSError as error:
                statuses.append((source, destination, FAILED, f"cannot write {destination}: {error.strerror or error}"))
        return statuses

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data entry: ``source``, ``destination`` in; the same plus ``status`` and ``reason`` out."""
        statuses = self.process([str(s) for s in batch["source"]], [str(d) for d in batch["destination"]])
        columns = ("source", "destination", "status", "reason")
        return {name: np.array([row[i] for row in statuses], dtype=object) for i, name in enumerate(columns)}


def colorize_locally(worker: ColorizeWorker, jobs: Sequence[tuple[str, str]], batch_size: int, progress=None) -> list:
    """The single-process path: the same worker over batches of ``jobs`` ((source, destination) pairs)."""
    statuses = []
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start : start + batch_size]
        statuses += worker.process([s for s, _ in chunk], [d for _, d in chunk])
        if progress is not None:
            progress(len(chunk))
    return statuses


def colorize_with_ray(worker_kwargs: dict, jobs: Sequence[tuple[str, str]], *, batch_size: int, actors: int) -> list:
    """Ray Data path (Ray already up): an actor pool of ColorizeWorkers; GPU actors when the cluster has GPUs."""
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    worker_kwargs = dict(worker_kwargs, device="cuda" if gpus else worker_kwargs.get("device", "cpu"))
    dataset = ray.data.from_items([{"source": s, "destination": d} for s, d in jobs])
    dataset = dataset.map_batches(
        ColorizeWorker,
        fn_constructor_kwargs=worker_kwargs,
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=max(1, actors)),
        **({"num_gpus": 1} if gpus else {"num_cpus": 1}),
    )
    statuses = []
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        statuses += list(zip(batch["source"], batch["destination"], batch["status"], batch["reason"]))
    return [tuple(str(value) for value in row) for row in statuses]
