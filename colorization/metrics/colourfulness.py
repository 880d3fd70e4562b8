"""Colourfulness metric of Hasler & Suesstrunk, "Measuring colourfulness in natural images" (SPIE 2003), batched.

With R, G, B on the 8-bit scale [0, 255]: rg = R - G and yb = (R + G) / 2 - B (signed, per pixel), and

    M = sqrt(std_rg^2 + std_yb^2) + 0.3 * sqrt(mean_rg^2 + mean_yb^2)

with means and population standard deviations over the pixels of one image. A grey image scores 0; the paper
calls about 33 "moderately" and 59 "quite" colourful. Float inputs are quantized to 8 bits first, like a saved
image (the rule of :func:`colorization.metrics.psnr.quantize_to_8bit`), so a model output and its file agree.
"""

from __future__ import annotations

import torch

from colorization.metrics.psnr import quantize_to_8bit

COLOURFULNESS_MEAN_WEIGHT = 0.3  # Hasler & Suesstrunk 2003, Eq. 3: weight of the mean opponent-colour term


def colourfulness(rgb: torch.Tensor) -> torch.Tensor:
    """Hasler & Suesstrunk (2003) colourfulness M of each image.

    Args:
        rgb: (N, 3, H, W) float in [0, 1] (quantized to 8 bits first) or uint8.

    Returns:
        float64 tensor (N,), on the 8-bit scale (0 for grey images).
    """
    if rgb.ndim != 4 or rgb.shape[1] != 3:
        raise ValueError(f"rgb must be (N, 3, H, W); got {tuple(rgb.shape)}")
    red, green, blue = quantize_to_8bit(rgb).double().unbind(1)  # each (N, H, W), values 0..255
    red_green = (red - green).flatten(1)
    yellow_blue = (0.5 * (red + green) - blue).flatten(1)
    spread = torch.sqrt(red_green.var(dim=1, correction=0) + yellow_blue.var(dim=1, correction=0))
    offset = torch.sqrt(red_green.mean(dim=1).square() + yellow_blue.mean(dim=1).square())
    return spread + COLOURFULNESS_MEAN_WEIGHT * offset
