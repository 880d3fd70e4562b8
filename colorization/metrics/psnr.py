"""Peak signal-to-noise ratio in 8-bit RGB, per image, as colorization papers report it.

Inputs are quantized to 8 bits first, exactly as a saved PNG would be (``round(clip(x, 0, 1) * 255)``, the rule
of ``colorization.io.images.tensor_to_image``), so a float model output and its saved file score the same.

Identical images have zero error and an infinite PSNR. Every value is therefore capped at :data:`PSNR_CAP_DB`
(100 dB): a perfect image scores 100 dB and still counts in the mean, instead of making the mean infinite or
being dropped (which would lower the mean of a method for being perfect). The smallest non-zero 8-bit error of a
256x256 image already gives about 101 dB, so the cap only ever replaces "perfect or within one grey level".
"""

from __future__ import annotations

import torch

PSNR_PEAK = 255.0  # 8-bit range: PSNR is computed on values in [0, 255]
PSNR_CAP_DB = 100.0  # value given to identical images (and the ceiling of every value); see the module docstring


def quantize_to_8bit(rgb: torch.Tensor) -> torch.Tensor:
    """Float RGB in [0, 1] -> uint8 values as a saved image holds them; uint8 input is returned unchanged.

    Args:
        rgb: (N, 3, H, W) float in [0, 1] (clipped), or uint8.

    Returns:
        uint8 tensor of the same shape.
    """
    if rgb.dtype == torch.uint8:
        return rgb
    if not rgb.is_floating_point():
        raise TypeError(f"rgb must be float in [0, 1] or uint8; got {rgb.dtype}")
    return (rgb.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)


def psnr(pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> torch.Tensor:
    """Per-image PSNR in dB over all pixels and the three RGB channels, peak 255, capped at 100 dB.

    Args:
        pred_rgb: (N, 3, H, W) float in [0, 1] or uint8.
        true_rgb: (N, 3, H, W) float in [0, 1] or uint8, same shape.

    Returns:
        float64 tensor (N,): 10 log10(255^2 / MSE), with MSE on 8-bit values; 100 dB for identical images.
    """
    if pred_rgb.shape != true_rgb.shape or pred_rgb.ndim != 4 or pred_rgb.shape[1] != 3:
        raise ValueError(
            f"pred_rgb and true_rgb must both be (N, 3, H, W); got {tuple(pred_rgb.shape)} and {tuple(true_rgb.shape)}"
        )
    # 8-bit differences squared fit in int32 and their sums in int64: the squared error is exact.
    difference = quantize_to_8bit(pred_rgb).to(torch.int32) - quantize_to_8bit(true_rgb).to(torch.int32)
    values_per_image = difference.shape[1] * difference.shape[2] * difference.shape[3]
    mse = difference.square().sum(dim=(1, 2, 3), dtype=torch.int64).double() / values_per_image
    value = 10.0 * torch.log10(PSNR_PEAK**2 / mse)  # +inf where mse == 0
    return value.clamp(max=PSNR_CAP_DB)
