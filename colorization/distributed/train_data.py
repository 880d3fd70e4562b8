"""Ray Data ingest for Ray Train: Lab Parquet shards -> augmented quantized crops -> torch batches on each worker.

The pipeline (issue 7, "Data path"): one split's shard files (``io/manifest.py shard_files``), one row per file,
in a new random order each epoch -> one ``map_batches`` task per file that reads it Parquet row group by row group
(``L``, ``ab``, ``colourless`` only) with pyarrow, drops colourless rows and cuts a random crop with a random
left-right flip (a centre crop for validation) -> ``TorchTrainer(datasets=...)`` -> ``get_dataset_shard`` ->
``iter_torch_batches`` on the worker. The crops stay ``uint8`` L / ``int8`` ab as stored, so the object store and
the transfer to the worker carry 3 bytes a pixel; float Lab is made on the worker's device by the training
package's "shard batch -> Lab" function.

Why the task reads the files itself rather than through ``ray.data.read_parquet``: measured on the dev shards
(``tests/benchmarks/bench_train_ingest.py``, docs/data-pipeline.md), Ray's Parquet datasource spent about as
much CPU again as the decoding and cropping themselves (its own batching, chunk combining, threads and
per-fragment bookkeeping); reading row groups directly halved the task CPU per image. Shards of schema version 1
and 2 are both read (``io/shard_format.py``); every file's footer is checked before the dataset is made.

When a recipe resizes the shard images first (``data.resize``, the small local recipes), the area filter must
see the whole image, so the data stage only drops colourless rows and the worker resizes and crops in torch.

Nothing here changes the global ``DataContext``: the CPU budget of the ingest (``ingest_data_config``) is set on
the copies of the datasets Ray Train makes, so a later stage in the same process sees Ray's defaults.
The 2-core deadlock of ray-mlflow-notes 1.4 (training workers holding every CPU, Ray Data's read tasks never
scheduled) is avoided by the trainer, which gives each CPU worker ``scaling.cpus_per_worker`` (possibly a
fraction) and leaves the rest of the machine to this pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray

from colorization.io.shard_format import LAB_COLUMNS, check_shard_files, lab_column_to_numpy

__all__ = [
    "SHARD_COLUMNS",
    "TRAIN_DATASET",
    "VAL_DATASET",
    "random_crop_flip",
    "centre_crop",
    "crop_batch",
    "read_and_crop",
    "shard_dataset",
    "ingest_data_config",
    "iter_shard_batches",
]

SHARD_COLUMNS = ("L", "ab", "colourless")
TRAIN_DATASET = "train"
VAL_DATASET = "val"


def random_crop_flip(
    lightness: np.ndarray,
    ab: np.ndarray,
    *,
    crop: int,
    flip: bool,
    rng: np.random.Generator,
    rows: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """A random ``crop`` x ``crop`` window of each image, mirrored left-right with probability 1/2 when ``flip``.

    Args:
        lightness: (N, 1, S, S) uint8 as stored (read-only views are fine: nothing is written in place).
        ab: (N, 2, S, S) int8 as stored.
        crop: side of the window, at most S.
        flip: whether to mirror half of the windows.
        rng: source of the offsets and flips.
        rows: indices of the images to crop (default: all), so dropped rows are never copied.

    Returns:
        (n, 1, crop, crop) uint8 and (n, 2, crop, crop) int8 for the n rows, new contiguous arrays.
    """
    rows = np.arange(len(lightness)) if rows is None else np.asarray(rows)
    count, (height, width) = len(rows), lightness.shape[-2:]
    if crop > min(height, width):
        raise ValueError(f"crop {crop} is larger than the stored images ({height} x {width})")
    tops = rng.integers(0, height - crop + 1, size=count)
    lefts = rng.integers(0, width - crop + 1, size=count)
    mirrored = rng.random(count) < 0.5 if flip else np.zeros(count, dtype=bool)
    lightness_out = np.empty((count, lightness.shape[1], crop, crop), dtype=lightness.dtype)
    ab_out = np.empty((count, ab.shape[1], crop, crop), dtype=ab.dtype)
    for index, row in enumerate(rows):
        window_rows = slice(tops[index], tops[index] + crop)
        columns = slice(lefts[index], lefts[index] + crop)
        step = -1 if mirrored[index] else 1
        lightness_out[index] = lightness[row, :, window_rows, columns][..., ::step]
        ab_out[index] = ab[row, :, window_rows, columns][..., ::step]
    return lightness_out, ab_out


def centre_crop(
    lightness: np.ndarray, ab: np.ndarray, *, size: int, rows: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """The central ``size`` x ``size`` window of each image (or of ``rows``; validation: the same pixels every
    time), as new contiguous arrays."""
    height, width = lightness.shape[-2:]
    if size > min(height, width):
        raise ValueError(f"centre crop {size} is larger than the stored images ({height} x {width})")
    top, left = (height - size) // 2, (width - size) // 2
    window = (slice(None), slice(None), slice(top, top + size), slice(left, left + size))
    if rows is None:
        return np.ascontiguousarray(lightness[window]), np.ascontiguousarray(ab[window])
    return lightness[window][rows], ab[window][rows]  # fancy indexing copies only the windows


def _stored_arrays(batch: pa.Table | dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(L, ab, colourless) of a batch: numpy views of a pyarrow batch's columns (either shard version), or as given."""
    if isinstance(batch, pa.Table):
        colourless = batch.column("colourless").to_numpy(zero_copy_only=False)
        return (*(lab_column_to_numpy(batch.column(name), name) for name in LAB_COLUMNS), colourless)
    return batch["L"], batch["ab"], np.asarray(batch["colourless"])


def crop_batch(
    batch: pa.Table | dict[str, np.ndarray], *, crop: int | None, flip: bool, centre: bool, seed: int | None = None
) -> dict[str, np.ndarray]:
    """``map_batches`` UDF: colourless rows dropped, then a random (or centre) crop; None keeps whole images.

    Args:
        batch: columns ``L``, ``ab``, ``colourless`` of the shards: a pyarrow table (a row group read by
            :func:`read_and_crop`, or a Ray Data ``batch_format="pyarrow"`` batch; L / ab of either schema version
            are viewed in place, never turned into numpy arrays of Python bytes objects), or numpy arrays as
            stored.
        crop: window side; None passes the images through (the worker resizes first, then crops).
        flip: random left-right mirroring (training only).
        centre: centre crop instead of a random one (validation).
        seed: seeds the offsets and flips (tests); None draws fresh entropy, so every epoch and every task
            gets different crops.

    Returns:
        ``{"L": (n, 1, c, c) uint8, "ab": (n, 2, c, c) int8}`` for the n colourful rows: new contiguous (writable)
        arrays, never views of the input.
    """
    lightness, ab, colourless = _stored_arrays(batch)
    keep = np.flatnonzero(~colourless.astype(bool, copy=False))
    if crop is None or not len(keep):
        return {"L": lightness[keep], "ab": ab[keep]}  # fancy indexing copies
    if centre:
        lightness, ab = centre_crop(lightness, ab, size=crop, rows=keep)
    else:
        rng = np.random.default_rng(seed)
        lightness, ab = random_crop_flip(lightness, ab, crop=crop, flip=flip, rng=rng, rows=keep)
    return {"L": lightness, "ab": ab}


def read_and_crop(
    batch: dict[str, np.ndarray], *, crop: int | None, flip: bool, centre: bool, seed: int | None = None
) -> Iterator[dict[str, np.ndarray]]:
    """``map_batches`` UDF: shard files in (column ``file``), the crops of each of their row groups out.

    One Parquet row group (64 rows in the default shards) is read, viewed and cropped at a time (:func:`crop_batch`),
    so a task holds one group's stored images and yields its crops as they are cut.
    """
    for path in batch["file"]:
        parquet = pq.ParquetFile(str(path))
        for group in range(parquet.num_row_groups):
            table = parquet.read_row_group(group, columns=list(SHARD_COLUMNS))
            yield crop_batch(table, crop=crop, flip=flip, centre=centre, seed=seed)


def shard_dataset(
    files: Sequence[str | Path],
    *,
    crop: int | None,
    flip: bool = True,
    centre: bool = False,
    limit: int | None = None,
    shuffle_files: bool = True,
    seed: int | None = None,
) -> ray.data.Dataset:
    """A lazy dataset of quantized crops of the colourful images in ``files`` (nothing is read until iterated).

    Args:
        files: Parquet shards of one split.
        crop: window side (random for training, central with ``centre``); None keeps whole images.
        flip: random left-right mirroring.
        centre: centre crops (validation).
        limit: keep only this many (colourful) rows, e.g. the fixed validation images.
        shuffle_files: read the files in a new random order each epoch (training); False keeps the listed order
            (with ``preserve_order``, see ``ingest_data_config``).
        seed: seeds the crops (tests); None for fresh crops every epoch.

    Returns:
        A Ray Dataset with columns ``L`` (uint8) and ``ab`` (int8), channel-first.

    Raises:
        UserError: a file that is not a readable shard (e.g. an unknown schema version), named, from its footer.
    """
    if not files:
        raise ValueError("no shard files given")
    check_shard_files(files, SHARD_COLUMNS)  # one line naming a bad file, before any task starts
    paths = [str(path) for path in files]
    # One block (so one task, and one unit of the shuffle) per file. Making the blocks costs the driver about
    # 1.5 ms per file once per dataset (6 s for ImageNet's 4,000 train shards), the footer check 0.25 ms per file.
    dataset = ray.data.from_items([{"file": path} for path in paths], override_num_blocks=len(paths))
    if shuffle_files:
        dataset = dataset.randomize_block_order()  # one file per block; unseeded: a new order every epoch
    dataset = dataset.map_batches(
        read_and_crop,
        batch_size=1,  # one file per call; the UDF yields one output batch per row group
        batch_format="numpy",
        fn_kwargs={"crop": crop, "flip": flip and not centre, "centre": centre, "seed": seed},
    )
    if limit is not None:
        dataset = dataset.limit(limit)
    return dataset


def ingest_data_config(data_cpus: float | None = None, *, ordered: Sequence[str] = (VAL_DATASET,)):
    """How Ray Train hands the datasets to its workers: the training split is split, validation is not.

    Every worker gets a disjoint, equal share of the training rows (``streaming_split``); the validation set is
    given whole to every worker (rank 0 alone iterates it), read in a fixed order so the same images are scored
    each time.

    Args:
        data_cpus: CPUs Ray Data may use for the ingest (None: whatever the workers leave free). Set it on
            machines where training shares CPUs with the ingest, so neither starves the other.
        ordered: datasets whose row order must be kept.

    Returns:
        A ``ray.train.DataConfig``.
    """
    from ray.data import ExecutionOptions, ExecutionResources

    def options(preserve_order: bool) -> ExecutionOptions:
        limits = ExecutionResources.for_limits(cpu=data_cpus)  # None leaves the CPU count unlimited
        return ExecutionOptions(resource_limits=limits, preserve_order=preserve_order)

    per_dataset = {TRAIN_DATASET: options(False)}
    per_dataset.update({name: options(True) for name in ordered})
    return ray.train.DataConfig(datasets_to_split=[TRAIN_DATASET], execution_options=per_dataset)


def iter_shard_batches(
    iterator, *, batch_size: int, device: str = "auto", prefetch_batches: int = 2, drop_last: bool = True
) -> Iterator[dict]:
    """One epoch of quantized batches from a worker's ``DataIterator`` as torch tensors on ``device``.

    Args:
        iterator: ``ray.train.get_dataset_shard(name)`` (or any Ray DataIterator / Dataset).
        batch_size: images per batch (per worker).
        device: torch device, or "auto" for the worker's (Ray Train's) device.
        prefetch_batches: batches prepared ahead while the model computes.
        drop_last: drop the short last batch (training keeps every step's batch size).

    Yields:
        ``{"L": uint8 (B, 1, c, c), "ab": int8 (B, 2, c, c)}`` torch tensors.
    """
    yield from iterator.iter_torch_batches(
        batch_size=batch_size, device=device, prefetch_batches=prefetch_batches, drop_last=drop_last
    )
