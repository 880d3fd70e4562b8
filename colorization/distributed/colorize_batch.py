"""Batch colorization with Ray Data: an actor pool of Colorizers writes PNGs; the driver collects one status per file.

:class:`ColorizeWorker` holds one Colorizer (the model is loaded once per actor). Each batch of (source,
destination) rows is decoded, colorized and written atomically with its provenance (``io.provenance``); a file
that cannot be read or written becomes a ``failed`` status with the reason and never stops the batch. The same
worker runs in a plain loop (:func:`colorize_locally`) when Ray is not used, so both paths write the same files.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from colorization.families import DecodeOptions
from colorization.inference import Colorizer, load_model
from colorization.io.images import ImageDecodeError, read_image
from colorization.io.provenance import save_png, source_icc_profile
from colorization.io.safe_outputs import atomic_write

WRITTEN, FAILED = "written", "failed"
IO_THREADS = 2  # decoding and PNG encoding release the GIL; two threads keep up with the network on a CPU


def source_stamp(path: str | Path) -> dict:
    """Size and mtime of a source file: what makes an existing output 'done' for resuming."""
    stat = os.stat(path)
    return {"source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns}


class ColorizeWorker:
    """Colorizes batches of files (a Ray Data actor, or called in a plain loop).

    Decoding the sources and encoding the PNGs release the GIL, so they run on a few I/O threads: the files of a
    batch are read and written side by side, and the local loop (:func:`colorize_locally`) reads the next batch and
    writes the last one while the network runs on the current one.

    Args:
        model: checkpoint path or ``models:/NAME@ALIAS``.
        options: decode options (resolved against the model here).
        record: provenance fields every output carries (model name, digest, decoder, T ...).
        device: torch device.
        batch_size: images per forward pass.
        io_threads: threads that decode sources and write outputs.
    """

    def __init__(
        self,
        model: str,
        options: DecodeOptions,
        record: dict,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        io_threads: int = IO_THREADS,
    ):
        self.colorizer = Colorizer(load_model(model, device=device), options, device=device, batch_size=batch_size)
        self.record = dict(record)
        self.io = ThreadPoolExecutor(max_workers=max(1, io_threads), thread_name_prefix="colorize-io")

    def submit_reads(self, jobs: Sequence[tuple[str, str]]) -> list[tuple[str, str, Future]]:
        """Starts decoding the sources of (source, destination) ``jobs`` on the I/O threads."""
        return [(source, destination, self.io.submit(read_image, source)) for source, destination in jobs]

    def colorize_read(self, reads: list[tuple[str, str, Future]]) -> tuple[list[Future], list[tuple]]:
        """Waits for ``reads``, colorizes what decoded and starts writing it; returns (write futures, failures)."""
        decoded, failures = [], []
        for source, destination, future in reads:
            try:
                decoded.append((source, destination, future.result()))
            except ImageDecodeError as error:
                failures.append((source, destination, FAILED, f"{error.reason}: {error.detail}"))
        if not decoded:
            return [], failures
        outputs = self.colorizer.colorize_images([image.rgb for _, _, image in decoded])
        writes = [
            self.io.submit(self._write, source, destination, image, output)
            for (source, destination, image), output in zip(decoded, outputs)
        ]
        return writes, failures

    def _write(self, source: str, destination: str, image, output) -> tuple[str, str, str, str]:
        """Writes one output atomically with its provenance; a status either way."""
        if image.alpha is not None:
            output.putalpha(image.alpha)
        try:
            record = {**self.record, "source": os.path.basename(source), **source_stamp(source)}
            with atomic_write(destination) as temporary:
                save_png(output, temporary, record, source_icc_profile(source))
            return (source, destination, WRITTEN, "")
        except OSError as error:
            return (source, destination, FAILED, f"cannot write {destination}: {error.strerror or error}")

    def process(self, sources: Sequence[str], destinations: Sequence[str]) -> list[tuple[str, str, str, str]]:
        """Colorizes and writes one batch; returns (source, destination, status, reason) per row."""
        writes, failures = self.colorize_read(self.submit_reads(list(zip(sources, destinations))))
        return failures + [write.result() for write in writes]

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Ray Data entry: ``source``, ``destination`` in; the same plus ``status`` and ``reason`` out."""
        statuses = self.process([str(s) for s in batch["source"]], [str(d) for d in batch["destination"]])
        columns = ("source", "destination", "status", "reason")
        return {name: np.array([row[i] for row in statuses], dtype=object) for i, name in enumerate(columns)}


def colorize_locally(worker: ColorizeWorker, jobs: Sequence[tuple[str, str]], batch_size: int, progress=None) -> list:
    """The single-process path: the same worker over batches of ``jobs`` ((source, destination) pairs), pipelined.

    While the network runs on batch k, the I/O threads decode batch k + 1 and write batch k - 1; at most three
    batches are in memory.
    """
    chunks = [list(jobs[start : start + batch_size]) for start in range(0, len(jobs), batch_size)]
    statuses: list = []
    reads = worker.submit_reads(chunks[0]) if chunks else []
    previous: tuple[list[Future], int] | None = None
    for index in range(len(chunks)):
        current = reads
        if index + 1 < len(chunks):
            reads = worker.submit_reads(chunks[index + 1])
        writes, failures = worker.colorize_read(current)
        statuses += failures
        if previous is not None:
            statuses += _finish(previous, progress)
        previous = (writes, len(chunks[index]))
    if previous is not None:
        statuses += _finish(previous, progress)
    return statuses


def _finish(pending: tuple[list[Future], int], progress) -> list:
    """The statuses of a batch's writes, once written; reports the batch's size to ``progress``."""
    writes, count = pending
    statuses = [write.result() for write in writes]
    if progress is not None:
        progress(count)
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
