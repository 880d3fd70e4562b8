"""Evaluation with Ray Data: an actor pool of Colorizers scores image files or Lab shards; the driver adds.

Each actor (:class:`EvaluateWorker`) loads every model once, then turns each batch of inputs into the protocol's
ground-truth crops, runs each network once per image and decodes its outputs with every entry of the sweep
(``evaluation.scoring.score_batch``). A batch returns one serialized :class:`SweepScores`; the driver adds them.
The integer parts (AuC histograms, counts) are exact in any order, so the Ray result equals the single-process
result (:func:`evaluate_locally` runs the same worker in a plain loop). Unreadable images and bad shard rows are
recorded as failures, never raised.

Actors ask for one GPU each when the cluster has GPUs (``num_gpus``), else ``num_cpus`` CPUs.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from colorization.evaluation.protocol import EVAL_SIZE, truth_from_shard, uint8_batch
from colorization.evaluation.scoring import SweepScores, score_batch
from colorization.evaluation.sweep import SweepEntry
from colorization.inference import Colorizer, load_model
from colorization.io.images import ImageDecodeError, read_image, resize_shorter_side_and_center_crop

SHARD_COLUMNS = ("path", "split", "L", "ab")


class EvaluateWorker:
    """Scores batches of inputs (a Ray Data actor, or called in a plain loop).

    Args:
        models: (name, source) pairs; a source is a checkpoint path or a ``models:/NAME@ALIAS`` URI.
        sweeps: name -> sweep entries of that model.
        bins: (Q, 2) raw ab bin centres of the rebalanced AuC.
        size: the protocol's crop size for image files.
        split: for shard rows, the split to score (rows of other splits are skipped); None keeps all.
        device: torch device of the networks.
        batch_size: images per forward pass.
        tracking_uri: MLflow store of ``models:/`` URIs.
    """

    def __init__(
        self,
        models: Sequence[tuple[str, str]],
        sweeps: dict[str, list[SweepEntry]],
        bins: np.ndarray,
        *,
        size: int = EVAL_SIZE,
        split: str | None = None,
        device: str = "cpu",
        batch_size: int = 16,
        tracking_uri: str | None = None,
    ) -> None:
        self.bins = np.asarray(bins, dtype=np.float64)
        self.size = size
        self.split = split
        self.colorizers = {
            name: (
                Colorizer(load_model(source, device=device, tracking_uri=tracking_uri), device=device,
                          batch_size=batch_size),
                sweeps[name],
            )
            for name, source in models
        }

    def truth_from_files(self, paths: Sequence[str], scores: SweepScores) -> torch.Tensor:
        """Reads and crops image files; unreadable ones go to ``scores.failures``."""
        crops = []
        for path in paths:
            try:
                image = read_image(path).rgb
            except ImageDecodeError as error:
                scores.failures.append((str(path), f"{error.reason}: {error.detail}"))
                continue
            crops.append(np.asarray(resize_shorter_side_and_center_crop(image, self.size), dtype=np.uint8))
        if not crops:
            return torch.zeros((0, 3, self.size, self.size), dtype=torch.uint8)
        return uint8_batch(crops)

    def truth_from_shard_rows(self, batch: dict[str, np.ndarray]) -> torch.Tensor:
        """Shard rows (``SHARD_COLUMNS``) of the wanted split -> 8-bit ground truth."""
        keep = np.ones(len(batch["L"]), dtype=bool) if self.split is None else np.asarray(batch["split"]) == self.split
        return truth_from_shard(np.ascontiguousarray(batch["L"][keep]), np.ascontiguousarray(batch["ab"][keep]))

    def score(self, batch: dict[str, np.ndarray]) -> SweepScores:
        """One batch -> its scores (files when the batch has only ``path``, else shard rows)."""
        scores = SweepScores(self.bins)
        if "L" in batch:
            truth = self.truth_from_shard_rows(batch)
        else:
            truth = self.truth_from_files([str(path) for path in batch["path"]], scores)
        return score_batch(truth, self.colorizers, scores)

    def __call__(self, batch) -> dict[str, np.ndarray]:
        """Ray Data entry: one row holding the pickled scores of the batch (trusted: made by this worker).

        Shard rows arrive as a pyarrow table (L / ab of either shard version viewed as numpy), file paths as numpy.
        """
        import pyarrow as pa

        from colorization.io.shards import read_shard_arrays

        if isinstance(batch, pa.Table):
            batch = read_shard_arrays(batch, batch.column_names)
        return {"scores": np.array([pickle.dumps(self.score(batch))], dtype=object)}


def _shard_batches(
    shard_paths: Sequence[Path], batch_size: int, limit: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """Batches of shard rows, in file order, the first ``limit`` rows at most."""
    import pyarrow.parquet as pq

    from colorization.io.shards import read_shard_arrays

    remaining = float("inf") if limit is None else limit
    for path in shard_paths:
        parquet = pq.ParquetFile(path)
        for group in range(parquet.num_row_groups):
            arrays = read_shard_arrays(parquet.read_row_group(group, columns=list(SHARD_COLUMNS)), SHARD_COLUMNS)
            for start in range(0, len(arrays["L"]), batch_size):
                if remaining <= 0:
                    return
                stop = start + int(min(batch_size, remaining))
                remaining -= stop - start
                yield {key: value[start:stop] for key, value in arrays.items()}


def evaluate_locally(
    worker: EvaluateWorker,
    *,
    image_paths: Sequence[str] = (),
    shard_paths: Sequence[Path] = (),
    batch_size: int = 16,
    shard_limit: int | None = None,
) -> SweepScores:
    """The single-process evaluation: the same worker over the same batches, in a plain loop."""
    total = SweepScores(worker.bins)
    for start in range(0, len(image_paths), batch_size):
        total = total + worker.score({"path": np.array(image_paths[start : start + batch_size], dtype=object)})
    for batch in _shard_batches(shard_paths, batch_size, shard_limit):
        total = total + worker.score(batch)
    return total


def evaluate_with_ray(
    worker_kwargs: dict,
    *,
    image_paths: Sequence[str] = (),
    shard_paths: Sequence[Path] = (),
    batch_size: int = 16,
    actors: int = 2,
    shard_limit: int | None = None,
) -> SweepScores:
    """Ray Data evaluation; Ray must already be up (``distributed.runtime.ray_session``).

    Args:
        worker_kwargs: keyword arguments of :class:`EvaluateWorker` (models, sweeps, bins, size, split, ...).
        image_paths: image files to score (give these or ``shard_paths``).
        shard_paths: Lab Parquet shards to score.
        batch_size: rows per actor call.
        actors: size of the actor pool.
        shard_limit: score only the first N shard rows.

    Returns:
        The merged scores.
    """
    import ray

    gpus = ray.cluster_resources().get("GPU", 0)
    if image_paths:
        dataset = ray.data.from_items([{"path": str(path)} for path in image_paths])
    else:
        from colorization.io.shards import check_shard_files

        check_shard_files(shard_paths, SHARD_COLUMNS)
        dataset = ray.data.read_parquet([str(path) for path in shard_paths]).select_columns(list(SHARD_COLUMNS))
        if shard_limit is not None:
            dataset = dataset.limit(shard_limit)
    worker_kwargs = dict(worker_kwargs, device="cuda" if gpus else worker_kwargs.get("device", "cpu"))
    dataset = dataset.map_batches(
        EvaluateWorker,
        fn_constructor_kwargs=worker_kwargs,
        batch_size=batch_size,
        batch_format="numpy" if image_paths else "pyarrow",  # numpy would make version 2's L / ab Python bytes
        compute=ray.data.ActorPoolStrategy(size=max(1, actors)),
        **({"num_gpus": 1} if gpus else {"num_cpus": 1}),
    )
    total = SweepScores(np.asarray(worker_kwargs["bins"], dtype=np.float64))
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for blob in batch["scores"]:
            total = total + pickle.loads(blob)
    return total
