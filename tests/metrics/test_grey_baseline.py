"""The grey baseline of Zhang et al. (ECCV 2016, Table 1: AuC 89.1 %, rebalanced 58.0 % on 10k ImageNet val).

Predicting ab = 0 everywhere (the input L, no colour) on the 500 real dev photos, resized to 256 (shorter side)
and centre-cropped to 256x256. Run with ``-s`` or ``-rA`` to see the figures.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from colorization.color.ab_bins import default_ab_bins
from colorization.color.ab_prior import colourful_images
from colorization.color.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab
from colorization.io.ab_bins_file import load_ab_bins
from colorization.io.images import image_to_tensor, read_image, resize_shorter_side_and_center_crop
from colorization.metrics.auc import AbErrorHistogram
from colorization.metrics.colourfulness import colourfulness
from colorization.metrics.psnr import psnr

IMAGE_SIZE = 256  # Zhang et al. feed 256x256 images at test time
BATCH_SIZE = 25  # images converted together: about 20 MB of Lab per batch


@pytest.mark.slow  # about 11 s of CPU: 500 JPEG decodes and 2 x 33M pixels through Lab
def test_grey_baseline_on_dev_photos(dev_image_paths: list[Path], zhang_bins_file: Path) -> None:
    official_bins, default_bins = load_ab_bins(zhang_bins_file), default_ab_bins()
    official = AbErrorHistogram.zeros(len(official_bins))
    default = AbErrorHistogram.zeros(len(default_bins))
    psnr_values, colourfulness_pred, colourfulness_truth = [], [], []
    excluded = 0
    for start in range(0, len(dev_image_paths), BATCH_SIZE):
        batch_paths = dev_image_paths[start : start + BATCH_SIZE]
        # draft_size lets the JPEG decoder skip detail that the resize to 256 throws away anyway.
        decoded = [read_image(path, draft_size=IMAGE_SIZE).rgb for path in batch_paths]
        crops = [resize_shorter_side_and_center_crop(image, IMAGE_SIZE) for image in decoded]
        true_rgb = torch.stack([image_to_tensor(crop) for crop in crops])  # (B, 3, 256, 256) in [0, 1]
        lightness, true_ab = split_lab(rgb_to_lab(true_rgb))
        colourful = colourful_images(true_ab)
        excluded += int((~colourful).sum())
        true_rgb, lightness, true_ab = true_rgb[colourful], lightness[colourful], true_ab[colourful]
        grey_ab = torch.zeros_like(true_ab)  # the grey baseline's prediction
        official.update(grey_ab, true_ab, bins=official_bins)
        default.update(grey_ab, true_ab, bins=default_bins)
        grey_rgb = lab_to_rgb(join_lab(lightness, grey_ab))
        psnr_values.append(psnr(grey_rgb, true_rgb))
        colourfulness_pred.append(colourfulness(grey_rgb))
        colourfulness_truth.append(colourfulness(true_rgb))
    scored = len(dev_image_paths) - excluded
    figures = {
        "auc": official.auc(),
        "rebalanced_auc_official_bins": official.rebalanced_auc(),
        "rebalanced_auc_default_bins": default.rebalanced_auc(),
        "psnr": torch.cat(psnr_values).mean().item(),
        "colourfulness_pred": torch.cat(colourfulness_pred).mean().item(),
        "colourfulness_truth": torch.cat(colourfulness_truth).mean().item(),
    }
    print(
        f"\ngrey baseline (ab = 0) on {scored} dev photos at {IMAGE_SIZE}x{IMAGE_SIZE}, {excluded} colourless excluded:"
        f"\n  AuC {figures['auc']:.2f} %  (Zhang et al. Table 1: 89.1)"
        f"\n  rebalanced AuC {figures['rebalanced_auc_official_bins']:.2f} % with the official"
        f" {len(official_bins)} bins, {figures['rebalanced_auc_default_bins']:.2f} % with the default"
        f" {len(default_bins)} bins  (Table 1: 58.0)"
        f"\n  PSNR {figures['psnr']:.2f} dB; colourfulness {figures['colourfulness_pred']:.2f} (grey)"
        f" vs {figures['colourfulness_truth']:.2f} (truth)"
    )
    assert scored == official.num_pixels // IMAGE_SIZE**2 and excluded >= 9  # the 9 black-and-white photos
    assert official.auc() == default.auc()  # the pooled curve does not depend on the bins
    # Every 8-bit sRGB colour rounds to a grid cell that is a default bin, and the official set contains all of
    # those, so both sets split the pixels identically (the extra official bins stay empty).
    assert figures["rebalanced_auc_official_bins"] == pytest.approx(figures["rebalanced_auc_default_bins"], abs=1e-9)
    # Measured: 88.98 / 59.17 %, 22.84 dB, 0.07 vs 40.83 (Zhang et al.: 89.1 / 58.0 on their 10k images). The
    # bounds allow about +-1.5 points of AuC and +-3 of rebalanced AuC: room for changes of resizing or decoding,
    # while a unit error (ab divided by 110, as networks see it, would score about 99) falls far outside.
    assert 87.5 <= figures["auc"] <= 90.5
    assert 56.0 <= figures["rebalanced_auc_official_bins"] <= 62.0
    assert 21.0 <= figures["psnr"] <= 25.0
    assert figures["colourfulness_pred"] < 0.5  # R = G = B up to 8-bit rounding
    assert 35.0 <= figures["colourfulness_truth"] <= 47.0
