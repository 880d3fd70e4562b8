"""Proof of learning: each network overfits a few real dev photos at small size.

The loss must fall well below its start and the decoded colours must approach the truth: the mean ab error of
the decoded prediction ends far below both its starting value and the grey (ab = 0) baseline.
"""

from __future__ import annotations

import pytest
import torch

from colorization.color import larsson_decode, zhang_decode
from colorization.color.ab_prior import colourful_images
from colorization.color.hue_chroma import larsson_grey
from colorization.color.lab import lab_to_rgb, rgb_to_lab, split_lab
from colorization.color.larsson_bins import gaussian_quantile_centres
from colorization.io.images import image_to_tensor, read_image, resize_shorter_side_and_center_crop
from colorization.models.registry import create_model
from colorization.training.larsson_step import larsson_train_step
from colorization.training.zhang_step import subsample_ab_to_logits, zhang_train_step

SIZE = 64
PHOTOS = 4
STEPS = 200


@pytest.fixture(scope="module")
def photo_lab(dev_image_paths) -> torch.Tensor:
    """(PHOTOS, 3, SIZE, SIZE) raw Lab of the first colourful dev photos."""
    labs = []
    for path in dev_image_paths:
        rgb = image_to_tensor(resize_shorter_side_and_center_crop(read_image(path, draft_size=SIZE).rgb, SIZE))
        lab = rgb_to_lab(rgb[None])
        if colourful_images(split_lab(lab)[1], threshold=20.0).item():
            labs.append(lab)
        if len(labs) == PHOTOS:
            break
    return torch.cat(labs)


def mean_ab_error(pred_ab: torch.Tensor, true_ab: torch.Tensor) -> float:
    return float((pred_ab - true_ab).norm(dim=1).mean())


def test_zhang_overfits_real_photos(photo_lab):
    torch.manual_seed(0)
    model = create_model("zhang_eccv16_w8").train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    lightness, ab = split_lab(photo_lab)
    bins = model.ab_bins_tensor(dtype=torch.float32)

    def decoded_error() -> float:
        model.eval()
        with torch.no_grad():
            logits = model(model.normalize_lightness(lightness))
        model.train()
        target = subsample_ab_to_logits(ab, tuple(logits.shape[-2:]))
        return mean_ab_error(zhang_decode.annealed_mean_ab(logits, bins), target)

    grey_error = mean_ab_error(torch.zeros_like(ab), ab)
    start_error = decoded_error()
    losses = [zhang_train_step(model, optimizer, photo_lab, class_weights=None)["loss"] for _ in range(STEPS)]
    end_error = decoded_error()
    print(f"Zhang overfit: loss {losses[0]:.3f} -> {losses[-1]:.3f}; ab error {start_error:.2f} -> {end_error:.2f}"
          f" (grey baseline {grey_error:.2f})")
    assert losses[-1] < 0.5 * losses[0]
    assert end_error < 0.6 * start_error
    assert end_error < 0.6 * grey_error


def test_larsson_overfits_real_photos(photo_lab):
    torch.manual_seed(0)
    model = create_model("larsson_hypercolumn_w16", heads=("lab_marginal",), dropout=0.0).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    _, ab = split_lab(photo_lab)
    grey = larsson_grey(lab_to_rgb(photo_lab))
    model.estimate_hypercolumn_scales(grey)
    centres = gaussian_quantile_centres(model.config.marginal_bins, model.config.lab_sigma)
    generator = torch.Generator().manual_seed(0)

    def decoded_error() -> float:
        model.eval()
        with torch.no_grad():
            parts = model.split_head("lab_marginal", model(grey)["lab_marginal"])
        model.train()
        pred = torch.stack(
            [larsson_decode.decode_expectation(torch.softmax(parts[axis], dim=1), centres) for axis in ("a", "b")],
            dim=1,
        )  # (N, 2, SIZE/4, SIZE/4), on the dense 1/4 grid whose cell i sits at pixel 4i + 1.5
        target = torch.nn.functional.avg_pool2d(ab, model.config.dense_stride)
        return mean_ab_error(pred, target)

    grey_error = mean_ab_error(torch.zeros_like(ab), ab)
    start_error = decoded_error()
    losses = [larsson_train_step(model, optimizer, photo_lab, generator=generator)["loss"] for _ in range(STEPS)]
    end_error = decoded_error()
    print(f"Larsson overfit: loss {losses[0]:.3f} -> {losses[-1]:.3f}; ab error {start_error:.2f} -> "
          f"{end_error:.2f} (grey baseline {grey_error:.2f})")
    assert losses[-1] < 0.5 * losses[0]
    assert end_error < 0.6 * start_error
    assert end_error < 0.6 * grey_error
