"""From stored shard rows to the raw-Lab batches the training loop eats (pure torch; no Ray).

Shards store L as uint8 and ab as int8 (``io/shards.py``). Batches travel in that form, 3 bytes a pixel, to the
device that trains (Ray Data's ``iter_torch_batches`` or a ``DataLoader``) and become float Lab there, in one
function used by both paths: :func:`lab_batch`. Augmentation follows Zhang et al.'s solver (random crops of the
stored 256 x 256 images, mirrored half of the time); the small local recipes first shrink the whole image
(``data.resize``) so that they learn from the same framing the Colorizer later sees. Every random choice comes
from an explicit ``torch.Generator``, so a seed fixes a run.

The plain-PyTorch path (:class:`ShardRowStream`, :func:`train_batches`) streams row groups in a shuffled order
through a shuffle buffer, never the whole split in memory, and is what a GPU machine without Ray runs.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from torchvision.ops import roi_align

from colorization.io.shards import as_writable_tensor, check_shard_files, lab_batch, read_shard_arrays
from colorization.training.config import DataConfig

__all__ = [
    "centre_crop",
    "lab_batch",
    "random_crop_flip",
    "random_zoom_crop_flip",
    "read_rows",
    "resize_lab",
    "ShardRowStream",
    "train_batches",
    "train_lab_batch",
    "val_lab_batch",
]

L_COLUMN, AB_COLUMN, COLOURLESS_COLUMN = "L", "ab", "colourless"


def resize_lab(lab: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, size, size) by area averaging (a no-op at the same size)."""
    if tuple(lab.shape[-2:]) == (size, size):
        return lab
    return F.interpolate(lab, size=(size, size), mode="area")


def random_crop_flip(
    images: torch.Tensor, size: int, *, flip: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """An independent random ``size`` x ``size`` crop of each image, mirrored left-right with probability 1/2.

    Args:
        images: (N, C, H, W), any dtype and device.
        size: crop side, at most min(H, W).
        flip: whether to mirror.
        generator: a CPU generator for the offsets and flips (None: the global one).

    Returns:
        (N, C, size, size), contiguous.
    """
    count, _, height, width = images.shape
    if size > height or size > width:
        raise ValueError(f"crop {size} does not fit images of {height}x{width}")
    tops = torch.randint(0, height - size + 1, (count,), generator=generator).tolist()
    lefts = torch.randint(0, width - size + 1, (count,), generator=generator).tolist()
    mirrors = (torch.rand(count, generator=generator) < 0.5).tolist() if flip else [False] * count
    crops = []
    for image, top, left, mirror in zip(images, tops, lefts, mirrors):
        crop = image[:, top : top + size, left : left + size]
        crops.append(crop.flip(-1) if mirror else crop)
    return torch.stack(crops) if crops else images[:, :, :size, :size].contiguous()


def random_zoom_crop_flip(
    images: torch.Tensor,
    size: int,
    scale: tuple[float, float],
    *,
    flip: bool,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Random square windows of each image, of an area fraction uniform in ``scale``, shrunk to ``size`` x ``size``.

    One ``roi_align`` call for the whole batch: each output pixel averages the ceil(window / size)^2 samples of
    its cell (about an area filter), so small recipes see photos at several zooms without aliasing.

    Args:
        images: (N, C, H, W) float, any device.
        size: output side.
        scale: (min, max) fraction of the area a window covers, 0 < min <= max <= 1: of the image for the square
            shard images, of the largest square min(H, W)^2 in general.
        flip: whether to mirror half of the windows left-right.
        generator: a CPU generator for the sizes, offsets and flips (None: the global one).

    Returns:
        (N, C, size, size), contiguous.
    """
    count, _, height, width = images.shape
    low, high = scale
    fractions = low + (high - low) * torch.rand(count, generator=generator, dtype=torch.float64)
    sides = fractions.sqrt() * min(height, width)
    lefts = torch.rand(count, generator=generator, dtype=torch.float64) * (width - sides)
    tops = torch.rand(count, generator=generator, dtype=torch.float64) * (height - sides)
    boxes = torch.stack((torch.arange(count, dtype=torch.float64), lefts, tops, lefts + sides, tops + sides), dim=1)
    windows = roi_align(images, boxes.to(images.device, images.dtype), size, sampling_ratio=-1, aligned=True)
    if not flip:
        return windows
    mirrored = (torch.rand(count, generator=generator) < 0.5).to(images.device).view(-1, 1, 1, 1)
    return torch.where(mirrored, windows.flip(-1), windows)


def centre_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, H, W) -> the central (N, C, size, size)."""
    height, width = images.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop {size} does not fit images of {height}x{width}")
    top, left = (height - size) // 2, (width - size) // 2
    return images[..., top : top + size, left : left + size].contiguous()


def train_lab_batch(
    batch: dict, config: DataConfig, device: torch.device | str, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A training batch of shard columns (``L``, ``ab``, optional ``colourless``) -> augmented raw Lab on ``device``.

    Without ``resize`` the crop is cut from the stored integers before they move (fewer bytes); with it, the
    whole image is dequantized and shrunk on the device first; with ``scale``, zoomed windows of the whole
    stored image are shrunk to the crop instead.

    Args:
        batch: {"L": (N, 1, S, S) uint8, "ab": (N, 2, S, S) int8, "colourless": (N,) bool, optional}.
        config: the data section (resize, crop, flip).
        device: where training runs.
        generator: CPU generator of the crops and flips.

    Returns:
        (M, 3, crop, crop) float32 raw Lab (colourless rows dropped).
    """
    colourless = batch.get(COLOURLESS_COLUMN)
    if config.resize is None:
        lightness, ab = as_writable_tensor(batch[L_COLUMN]), as_writable_tensor(batch[AB_COLUMN])
        if colourless is not None:
            keep = ~as_writable_tensor(colourless).to(torch.bool).reshape(-1)
            lightness, ab = lightness[keep], ab[keep]
        stacked = random_crop_flip(
            torch.cat((lightness, ab.view(torch.uint8)), dim=1), config.crop, flip=config.flip, generator=generator
        )
        return lab_batch(stacked[:, :1], stacked[:, 1:].view(torch.int8), device)
    lab = lab_batch(batch[L_COLUMN], batch[AB_COLUMN], device, colourless=colourless)
    if config.scale is not None:
        return random_zoom_crop_flip(lab, config.crop, config.scale, flip=config.flip, generator=generator)
    return random_crop_flip(resize_lab(lab, config.resize), config.crop, flip=config.flip, generator=generator)


def val_lab_batch(batch: dict, config: DataConfig, device: torch.device | str) -> torch.Tensor:
    """A validation batch -> raw Lab (M, 3, val_size, val_size): resized like training, centre-cropped, no flips."""
    lab = lab_batch(batch[L_COLUMN], batch[AB_COLUMN], device, colourless=batch.get(COLOURLESS_COLUMN))
    if config.resize is not None:
        lab = resize_lab(lab, config.resize)
    return centre_crop(lab, config.val_size)


# ---------------------------------------------------------------------------------------------------------------
# The plain-PyTorch path: shard files -> DataLoader -> Lab batches
# ---------------------------------------------------------------------------------------------------------------


def read_rows(files: Sequence[str | Path], limit: int) -> dict[str, np.ndarray]:
    """The first ``limit`` colourful rows of ``files`` in order (deterministic: validation sees the same images).

    Returns:
        {"L": (M, 1, S, S) uint8, "ab": (M, 2, S, S) int8}, M <= limit.
    """
    parts: dict[str, list[np.ndarray]] = {L_COLUMN: [], AB_COLUMN: []}
    check_shard_files(files)  # either shard version; a bad one is named
    remaining = limit
    for file in files:
        parquet = pq.ParquetFile(file)
        for group in range(parquet.num_row_groups):
            if remaining <= 0:
                break
            table = parquet.read_row_group(group, columns=[L_COLUMN, AB_COLUMN, COLOURLESS_COLUMN])
            arrays = read_shard_arrays(table, columns=(L_COLUMN, AB_COLUMN, COLOURLESS_COLUMN))
            keep = np.flatnonzero(~arrays[COLOURLESS_COLUMN])[:remaining]
            parts[L_COLUMN].append(arrays[L_COLUMN][keep])
            parts[AB_COLUMN].append(arrays[AB_COLUMN][keep])
            remaining -= len(keep)
    if not parts[L_COLUMN]:
        raise ValueError("no shard files to read")
    return {name: np.concatenate(values) for name, values in parts.items()}


class ShardRowStream(torch.utils.data.IterableDataset):
    """Endless stream of stored rows ({"L": uint8 (1, S, S), "ab": int8 (2, S, S)}) for a ``DataLoader``.

    Each epoch visits every row group of ``files`` once, in an order shuffled by (seed, epoch), split between
    DataLoader workers; colourful rows pass through a shuffle buffer of ``buffer_size`` rows. Only the buffer
    and one row group per worker are in memory.

    Args:
        files: shard files of one split.
        seed: seeds the order (the same seed gives the same stream).
        buffer_size: rows mixed at once.
        rank, world_size: a distributed worker sees every world_size-th row group.
    """

    def __init__(self, files: Iterable[str | Path], *, seed: int, buffer_size: int, rank: int = 0, world_size: int = 1):
        self.files = [str(file) for file in files]
        if not self.files:
            raise ValueError("no shard files to train on")
        check_shard_files(self.files)  # either shard version; a bad one is named
        self.groups = [
            (file, group) for file in self.files for group in range(pq.ParquetFile(file).num_row_groups)
        ]
        self.seed, self.buffer_size, self.rank, self.world_size = seed, buffer_size, rank, world_size

    def _rows(self, order: random.Random, worker: int, workers: int) -> Iterator[dict]:
        groups = list(self.groups)
        order.shuffle(groups)
        shard_index = self.rank * workers + worker
        for file, group in groups[shard_index :: self.world_size * workers]:
            table = pq.ParquetFile(file).read_row_group(group, columns=[L_COLUMN, AB_COLUMN, COLOURLESS_COLUMN])
            arrays = read_shard_arrays(table, columns=(L_COLUMN, AB_COLUMN, COLOURLESS_COLUMN))
            for row in np.flatnonzero(~arrays[COLOURLESS_COLUMN]):
                yield {L_COLUMN: torch.from_numpy(arrays[L_COLUMN][row].copy()),
                       AB_COLUMN: torch.from_numpy(arrays[AB_COLUMN][row].copy())}

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, workers = (0, 1) if info is None else (info.id, info.num_workers)
        epoch = 0
        buffer: list[dict] = []
        mixer = random.Random(f"{self.seed}/{self.rank}/{worker}/buffer")
        while True:
            produced = False
            for row in self._rows(random.Random(f"{self.seed}/{epoch}"), worker, workers):
                produced = True
                if len(buffer) < self.buffer_size:
                    buffer.append(row)
                    continue
                index = mixer.randrange(len(buffer))
                buffer[index], row = row, buffer[index]
                yield row
            if not produced and not buffer:
                raise ValueError("the shards hold no colourful rows for this worker")
            epoch += 1


def train_batches(
    files: Sequence[str | Path],
    config: DataConfig,
    *,
    batch_size: int,
    device: torch.device | str,
    seed: int,
    rank: int = 0,
    world_size: int = 1,
) -> Iterator[torch.Tensor]:
    """Endless augmented raw-Lab training batches (batch_size, 3, crop, crop) on ``device``, from a DataLoader.

    Args:
        files: the training split's shard files.
        config: the data section.
        batch_size: images per batch (per-worker batch of the config).
        device: where training runs.
        seed: seeds the row order and the crops.
        rank, world_size: this worker's share of the row groups.
    """
    stream = ShardRowStream(files, seed=seed, buffer_size=config.shuffle_buffer, rank=rank, world_size=world_size)
    loader = torch.utils.data.DataLoader(
        stream,
        batch_size=batch_size,
        num_workers=config.loader_workers,
        pin_memory=torch.device(device).type == "cuda",
        persistent_workers=config.loader_workers > 0,
    )
    generator = torch.Generator().manual_seed(seed * 1_000_003 + rank)
    for batch in loader:
        yield train_lab_batch(batch, config, device, generator)
