"""Hasler & Suesstrunk (2003) colourfulness against a brute-force per-pixel numpy formula on real photographs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.io.images import read_image
from colorization.metrics.colourfulness import colourfulness


def brute_force_colourfulness(rgb_8bit: np.ndarray) -> float:
    """M of one (H, W, 3) uint8 image, pixel by pixel in plain Python sums."""
    pixels = rgb_8bit.reshape(-1, 3).astype(np.float64)
    rg = [r - g for r, g, _ in pixels]
    yb = [(r + g) / 2 - b for r, g, b in pixels]
    count = len(rg)
    mean_rg, mean_yb = sum(rg) / count, sum(yb) / count
    var_rg = sum((value - mean_rg) ** 2 for value in rg) / count
    var_yb = sum((value - mean_yb) ** 2 for value in yb) / count
    return math.sqrt(var_rg + var_yb) + 0.3 * math.sqrt(mean_rg**2 + mean_yb**2)


def _small_rgb(path: Path, size: int = 48) -> np.ndarray:
    image = read_image(path).rgb
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    return np.asarray(image)


def test_matches_brute_force_on_real_photos(dev_image_paths: list[Path]) -> None:
    photos = [_small_rgb(path) for path in dev_image_paths[::100]]
    for photo in photos:
        ours = colourfulness(torch.from_numpy(photo).permute(2, 0, 1)[None]).item()
        assert ours == pytest.approx(brute_force_colourfulness(photo), rel=1e-9, abs=1e-9)
    assert max(brute_force_colourfulness(photo) for photo in photos) > 10  # real colour photos are colourful


def test_batched_equals_one_by_one_and_float_input_is_quantized(dev_image_paths: list[Path]) -> None:
    first = _small_rgb(dev_image_paths[0])
    crops = np.stack([first[:32, :32], _small_rgb(dev_image_paths[1])[:32, :32]])  # (2, 32, 32, 3)
    batch = torch.from_numpy(crops).permute(0, 3, 1, 2)
    batched = colourfulness(batch)
    assert batched.shape == (2,) and batched.dtype == torch.float64
    assert torch.equal(batched, torch.cat([colourfulness(batch[:1]), colourfulness(batch[1:])]))
    assert torch.equal(colourfulness(batch.float() / 255.0), batched)


def test_grey_photos_score_zero_and_flat_colour_has_the_closed_form(dev_image_paths: list[Path]) -> None:
    grey = next(path for path in dev_image_paths if Image.open(path).mode == "L")
    assert colourfulness(torch.from_numpy(_small_rgb(grey)).permute(2, 0, 1)[None]).item() == 0.0
    red = torch.zeros(1, 3, 5, 5, dtype=torch.uint8)
    red[:, 0] = 255
    # rg = 255 and yb = 127.5 everywhere: no spread, only the mean term.
    assert colourfulness(red).item() == pytest.approx(0.3 * math.hypot(255.0, 127.5), abs=1e-12)
    with pytest.raises(ValueError):
        colourfulness(red[:, :2])
