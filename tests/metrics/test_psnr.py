"""PSNR in 8-bit RGB against scikit-image."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from skimage.metrics import peak_signal_noise_ratio

from colorization.io.images import tensor_to_image
from colorization.metrics.psnr import PSNR_CAP_DB, psnr, quantize_to_8bit


@settings(max_examples=50, deadline=None)
@given(
    st.integers(0, 2**32 - 1), st.integers(1, 3), st.integers(1, 12), st.integers(1, 12), st.sampled_from([1, 8, 80])
)
def test_psnr_matches_skimage_on_uint8(seed: int, batch: int, height: int, width: int, noise: int) -> None:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, 256, size=(batch, 3, height, width), dtype=np.uint8)
    pred = np.clip(truth.astype(np.int64) + rng.integers(-noise, noise + 1, size=truth.shape), 0, 255).astype(np.uint8)
    pred[:, 0, 0, 0] = truth[:, 0, 0, 0] ^ 1  # every image differs somewhere: skimage's value is finite
    ours = psnr(torch.from_numpy(pred), torch.from_numpy(truth))
    assert ours.dtype == torch.float64 and ours.shape == (batch,)
    for index in range(batch):
        expected = peak_signal_noise_ratio(truth[index], pred[index], data_range=255)
        assert ours[index].item() == pytest.approx(min(expected, PSNR_CAP_DB), abs=1e-9)


def test_float_inputs_are_quantized_like_saved_images() -> None:
    generator = torch.Generator().manual_seed(0)
    truth = torch.rand(2, 3, 10, 13, generator=generator)
    pred = (truth + 0.05 * torch.randn(truth.shape, generator=generator)).clamp(-0.2, 1.2)

    def saved(images: torch.Tensor) -> torch.Tensor:  # through the project's PNG-writing rule
        return torch.stack([torch.from_numpy(np.asarray(tensor_to_image(image))).permute(2, 0, 1) for image in images])

    assert torch.equal(psnr(pred, truth), psnr(saved(pred), saved(truth)))
    levels = quantize_to_8bit(torch.tensor([0.0, 0.4 / 255, 1.6 / 255, 1.0, 1.7]))
    assert levels.tolist() == [0, 0, 2, 255, 255] and levels.dtype == torch.uint8


def test_identical_images_get_the_cap_and_values_never_exceed_it() -> None:
    image = torch.rand(3, 3, 8, 8)
    assert psnr(image, image).tolist() == [PSNR_CAP_DB] * 3
    big = torch.zeros(1, 3, 400, 400, dtype=torch.uint8)
    almost = big.clone()
    almost[0, 0, 0, 0] = 1  # one level off at one value: finite, about 104.9 dB, capped too
    value = psnr(almost, big).item()
    assert value == PSNR_CAP_DB
    assert 10 * math.log10(255**2 * 3 * 400 * 400) > PSNR_CAP_DB


def test_known_value_and_shape_errors() -> None:
    truth = torch.zeros(1, 3, 4, 4, dtype=torch.uint8)
    pred = torch.full_like(truth, 255)
    assert psnr(pred, truth).item() == pytest.approx(0.0, abs=1e-12)  # MSE = 255^2
    with pytest.raises(ValueError):
        psnr(pred[:, :2], truth[:, :2])
    with pytest.raises(ValueError):
        psnr(pred, truth[..., :3])
    with pytest.raises(TypeError):
        quantize_to_8bit(torch.zeros(2, dtype=torch.int32))
