"""Shard rows -> Lab batches: dequantization, colourless rows, crops and flips, the DataLoader stream."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from colorization.io.shards import dequantize_ab, dequantize_lightness
from colorization.training.config import DataConfig
from colorization.training.data import (
    ShardRowStream,
    centre_crop,
    lab_batch,
    random_crop_flip,
    random_zoom_crop_flip,
    read_rows,
    train_batches,
    train_lab_batch,
    val_lab_batch,
)
from tests.training.tiny_shards import write_shards


def _stored(count: int = 3, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {
        "L": torch.randint(0, 256, (count, 1, size, size), dtype=torch.uint8, generator=generator),
        "ab": torch.randint(-128, 128, (count, 2, size, size), dtype=torch.int8, generator=generator),
    }


def test_lab_batch_dequantizes_as_the_shard_format_says_and_drops_colourless_rows() -> None:
    stored = _stored()
    lab = lab_batch(stored["L"].numpy(), stored["ab"].numpy(), "cpu", colourless=np.array([False, True, False]))
    assert lab.shape == (2, 3, 16, 16) and lab.dtype == torch.float32
    keep = [0, 2]
    # The format's rule (io/shards.py docstring): L = L_q * 100 / 255, ab = ab_q + 0.5.
    torch.testing.assert_close(lab[:, :1], stored["L"][keep].double().mul(100 / 255).float())
    torch.testing.assert_close(lab[:, 1:], stored["ab"][keep].float() + 0.5)
    torch.testing.assert_close(lab[:, :1], dequantize_lightness(stored["L"][keep]))
    torch.testing.assert_close(lab[:, 1:], dequantize_ab(stored["ab"][keep]))
    with pytest.raises(ValueError):
        lab_batch(stored["L"].float(), stored["ab"])


def test_random_crops_are_windows_of_their_image_mirrored_about_half_the_time() -> None:
    images = torch.arange(64 * 2 * 10 * 12, dtype=torch.float32).reshape(64, 2, 10, 12)
    crops = random_crop_flip(images, 6, flip=True, generator=torch.Generator().manual_seed(0))
    assert crops.shape == (64, 2, 6, 6)
    mirrored = 0
    for image, crop in zip(images, crops):
        windows = image.unfold(1, 6, 1).unfold(2, 6, 1).permute(1, 2, 0, 3, 4)  # (5, 7, C, 6, 6)
        plain = (windows == crop).flatten(2).all(-1).any()
        flipped = (windows == crop.flip(-1)).flatten(2).all(-1).any()
        assert bool(plain) or bool(flipped)
        mirrored += int(bool(flipped))
    assert 16 <= mirrored <= 48
    again = random_crop_flip(images, 6, flip=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)
    assert not (random_crop_flip(images, 6, flip=False) == images.flip(-1)[..., :6, :6]).all()


def test_centre_crop_takes_the_middle() -> None:
    images = torch.arange(100.0).reshape(1, 1, 10, 10)
    assert torch.equal(centre_crop(images, 4), images[..., 3:7, 3:7])


def test_integer_crop_path_equals_crop_after_dequantization() -> None:
    """Without resize the crop is cut from the stored integers: same pixels as cropping the float Lab."""
    stored = _stored(count=4, size=16)
    config = DataConfig(crop=8, flip=True, val_size=8)
    fast = train_lab_batch(stored, config, "cpu", torch.Generator().manual_seed(3))
    reference = random_crop_flip(
        lab_batch(stored["L"], stored["ab"], "cpu"), 8, flip=True, generator=torch.Generator().manual_seed(3)
    )
    torch.testing.assert_close(fast, reference)


def test_resized_training_and_validation_batches() -> None:
    stored = _stored(count=2, size=16)
    config = DataConfig(resize=8, crop=8, flip=False, val_size=8)
    lab = lab_batch(stored["L"], stored["ab"], "cpu")
    area = lab.reshape(2, 3, 8, 2, 8, 2).mean(dim=(3, 5))  # area filter by hand: means of 2 x 2 blocks
    torch.testing.assert_close(train_lab_batch(stored, config, "cpu"), area)
    torch.testing.assert_close(val_lab_batch(stored, config, "cpu"), area)


def test_zoomed_crops_are_square_in_image_windows_of_the_asked_area_mirrored_about_half_the_time() -> None:
    """On ramps (channel 0 = column, channel 1 = row) an averaged window is again a ramp: its slope is the window
    side / output side, its first value the window's corner. So every window's place and size can be read back."""
    count, height, width, size, low, high = 200, 48, 60, 8, 0.25, 0.81
    rows, columns = torch.meshgrid(
        torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32), indexing="ij"
    )
    images = torch.stack((columns, rows)).expand(count, 2, height, width)
    crops = random_zoom_crop_flip(images, size, (low, high), flip=True, generator=torch.Generator().manual_seed(0))
    assert crops.shape == (count, 2, size, size)
    x_steps, y_steps = crops[:, 0].diff(dim=-1), crops[:, 1].diff(dim=-2)
    mirrored = x_steps[:, 0, 0] < 0
    x_steps = torch.where(mirrored.view(-1, 1, 1), -x_steps, x_steps)
    side = x_steps.mean(dim=(1, 2)) * size  # window side in pixels
    torch.testing.assert_close(x_steps, (side / size).view(-1, 1, 1).expand_as(x_steps), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(y_steps.mean(dim=(1, 2)) * size, side, rtol=1e-3, atol=1e-3)  # square
    fraction = side**2 / min(height, width) ** 2
    assert fraction.min() >= low - 1e-4 and fraction.max() <= high + 1e-4
    assert fraction.min() < low + 0.05 and fraction.max() > high - 0.05  # the whole range is drawn
    x_values = torch.where(mirrored.view(-1, 1), crops[:, 0].flip(-1).flatten(1), crops[:, 0].flatten(1))
    half_cell = side / size / 2
    assert (x_values.min(1).values - half_cell >= -0.5 - 1e-4).all()  # inside the image (pixel centres at k)
    assert (x_values.max(1).values + half_cell <= width - 0.5 + 1e-4).all()
    assert (crops[:, 1].amin((1, 2)) - half_cell >= -0.5 - 1e-4).all()
    assert (crops[:, 1].amax((1, 2)) + half_cell <= height - 0.5 + 1e-4).all()
    assert 70 <= int(mirrored.sum()) <= 130
    again = random_zoom_crop_flip(images, size, (low, high), flip=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(crops, again)


def test_a_zoom_over_the_whole_image_is_the_area_resize_and_training_batches_use_it() -> None:
    stored = _stored(count=2, size=16)
    lab = lab_batch(stored["L"], stored["ab"], "cpu")
    area = lab.reshape(2, 3, 8, 2, 8, 2).mean(dim=(3, 5))  # area filter by hand: means of 2 x 2 blocks
    torch.testing.assert_close(random_zoom_crop_flip(lab, 8, (1.0, 1.0), flip=False), area)
    assert random_zoom_crop_flip(lab[:0], 8, (0.5, 1.0), flip=True).shape == (0, 3, 8, 8)  # all rows colourless
    config = DataConfig(resize=12, crop=8, flip=False, val_size=8, scale=(1.0, 1.0))
    torch.testing.assert_close(train_lab_batch(stored, config, "cpu"), area)  # not the resize to 12 then a crop
    assert DataConfig(resize=12, crop=8, val_size=8, scale=[0.5, 1]).scale == (0.5, 1)


def test_stream_visits_every_colourful_row_and_never_a_colourless_one(tmp_path: Path) -> None:
    root = write_shards(tmp_path / "shards", size=16, train_images=12)
    files = sorted((root / "train").glob("*.parquet"))
    rows = iter(ShardRowStream(files, seed=0, buffer_size=4))
    seen = [int(next(rows)["L"][0, 0, 0]) for _ in range(11 * 3)]
    assert 1 not in seen  # row 1 is flagged colourless
    assert set(seen) == set(range(12)) - {1}
    first = iter(ShardRowStream(files, seed=0, buffer_size=4))
    assert [int(next(first)["L"][0, 0, 0]) for _ in range(11)] == seen[:11]  # a seed fixes the order
    import random

    epoch_rows = [
        {int(row["L"][0, 0, 0]) for row in ShardRowStream(files, seed=0, buffer_size=2, rank=rank, world_size=2)
         ._rows(random.Random("0/0"), 0, 1)}
        for rank in (0, 1)
    ]  # fmt: skip
    # One epoch: the two ranks share it without overlap.
    assert epoch_rows[0].isdisjoint(epoch_rows[1]) and epoch_rows[0] | epoch_rows[1] == set(range(12)) - {1}
    config = DataConfig(resize=None, crop=8, val_size=8, shuffle_buffer=4)
    batch = next(train_batches(files, config, batch_size=5, device="cpu", seed=0))
    assert batch.shape == (5, 3, 8, 8)
    val = read_rows(sorted((root / "val").glob("*.parquet")), 4)
    assert val["L"].shape == (4, 1, 16, 16) and val["ab"].dtype == np.int8
