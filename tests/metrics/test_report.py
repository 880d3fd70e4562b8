"""ColorizationScores: the mergeable accumulator an evaluation job sums across workers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.color.ab_bins import default_ab_bins
from colorization.color.lab import rgb_to_lab
from colorization.io.images import read_image, resize_shorter_side_and_center_crop
from colorization.metrics.auc import AbErrorHistogram
from colorization.metrics.colourfulness import colourfulness
from colorization.metrics.psnr import psnr
from colorization.metrics.report import ColorizationScores


@pytest.fixture(scope="module")
def photos(dev_image_paths: list[Path]) -> torch.Tensor:
    """Five clearly colourful photos and one black-and-white photo, 32x32, uint8 (6, 3, 32, 32)."""
    grey = next(path for path in dev_image_paths if Image.open(path).mode == "L")
    crops = []
    for path in dev_image_paths[::50]:
        crop = torch.from_numpy(np.asarray(resize_shorter_side_and_center_crop(read_image(path).rgb, 32)))
        if rgb_to_lab(crop.permute(2, 0, 1).float() / 255)[1:].norm(dim=0).max() > 20 and len(crops) < 5:
            crops.append(crop)
    crops.append(torch.from_numpy(np.asarray(resize_shorter_side_and_center_crop(read_image(grey).rgb, 32))))
    return torch.stack(crops).permute(0, 3, 1, 2).contiguous()


def _greyed(rgb_8bit: torch.Tensor) -> torch.Tensor:
    return rgb_8bit.float().mean(dim=1, keepdim=True).round().to(torch.uint8).expand(-1, 3, -1, -1)


def test_summary_matches_the_separate_metrics_and_excludes_the_grey_truth(photos: torch.Tensor) -> None:
    bins = default_ab_bins()
    pred = _greyed(photos)
    summary = ColorizationScores.empty(bins).update(pred, photos).summary()
    colour = photos[:5]  # the last photo is the black-and-white one
    histogram = AbErrorHistogram.zeros(len(bins)).update(
        rgb_to_lab(pred[:5].float() / 255)[:, 1:], rgb_to_lab(colour.float() / 255)[:, 1:], bins=bins
    )
    assert summary["images"] == 5 and summary["excluded_colourless"] == 1
    assert summary["auc"] == histogram.auc()
    assert summary["rebalanced_auc"] == histogram.rebalanced_auc()
    assert summary["psnr"] == pytest.approx(psnr(pred[:5], colour).mean().item(), rel=1e-12)
    assert summary["colourfulness_pred"] == pytest.approx(0.0, abs=1e-12)
    assert summary["colourfulness_truth"] == pytest.approx(colourfulness(colour).mean().item(), rel=1e-12)


def test_merge_of_parts_equals_whole(photos: torch.Tensor) -> None:
    bins = default_ab_bins()
    pred = _greyed(photos)
    whole = ColorizationScores.empty(bins).update(pred, photos)
    parts = [ColorizationScores.empty(bins).update(pred[i : i + 2], photos[i : i + 2]) for i in range(0, 6, 2)]
    merged = sum(parts)
    np.testing.assert_array_equal(merged.histogram.counts, whole.histogram.counts)
    for key, value in whole.summary().items():
        assert merged.summary()[key] == pytest.approx(value, rel=1e-12)


def test_float_predictions_score_like_their_saved_files(photos: torch.Tensor) -> None:
    bins = default_ab_bins()
    pred_float = photos.float() / 255 + 0.03 * torch.randn(photos.shape, generator=torch.Generator().manual_seed(1))
    pred_saved = (pred_float.clamp(0, 1) * 255).round().to(torch.uint8)
    from_float = ColorizationScores.empty(bins).update(pred_float, photos.float() / 255).summary()
    from_files = ColorizationScores.empty(bins).update(pred_saved, photos).summary()
    assert from_float == from_files


def test_perfect_prediction_and_errors(photos: torch.Tensor) -> None:
    bins = default_ab_bins()
    summary = ColorizationScores.empty(bins).update(photos, photos).summary()
    assert summary["auc"] == 100.0 and summary["rebalanced_auc"] == 100.0 and summary["psnr"] == 100.0
    empty = ColorizationScores.empty(bins).update(photos[5:], photos[5:]).summary()
    assert empty["images"] == 0 and empty["excluded_colourless"] == 1 and np.isnan(empty["auc"])
    with pytest.raises(ValueError, match="different ab bin sets"):
        ColorizationScores.empty(bins).merge(ColorizationScores.empty(default_ab_bins(grid_step=5.0)))
    with pytest.raises(ValueError):
        ColorizationScores.empty(bins).update(photos, photos[:, :, :4])
