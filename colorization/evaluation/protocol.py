"""The evaluation protocol as tensor functions: what the ground truth is and what the grey baseline predicts.

Protocol (the ``colorization metrics`` command's, stated in docs/evaluation.md so others can reproduce it):

* each image is resized so its shorter side is :data:`EVAL_SIZE` (antialiased bicubic) and centre-cropped to
  EVAL_SIZE x EVAL_SIZE (``io.images.resize_shorter_side_and_center_crop``); the crop, as 8-bit RGB, is the
  ground truth, and its lightness is all a model sees;
* from Lab shards the ground truth is the stored crop (L and ab dequantized, converted to RGB, 8 bits);
* ground truths without colour (max |ab| < 5) are excluded from every score and counted
  (``metrics.report.ColorizationScores``);
* the grey baseline predicts ab = 0 with the truth's own L.
"""

from __future__ import annotations

import numpy as np
import torch

from colorization.color.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab
from colorization.io.shards import dequantize_ab, dequantize_lightness
from colorization.metrics.psnr import quantize_to_8bit

EVAL_SIZE = 256  # shorter side and crop of the protocol (the metrics command's --size; Zhang et al. Sec. 3.1)


def grey_baseline(truth: torch.Tensor) -> torch.Tensor:
    """The grey baseline's prediction: the truth's L with ab = 0.

    Args:
        truth: (N, 3, H, W) uint8 or float RGB in [0, 1].

    Returns:
        (N, 3, H, W) float RGB in [0, 1].
    """
    rgb = truth.float() / 255.0 if truth.dtype == torch.uint8 else truth.float()
    lightness, ab = split_lab(rgb_to_lab(rgb))
    return lab_to_rgb(join_lab(lightness, torch.zeros_like(ab))).clamp(0.0, 1.0)


def truth_from_shard(l_quantized: np.ndarray | torch.Tensor, ab_quantized: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Stored shard crops -> 8-bit RGB ground truth.

    Args:
        l_quantized: (N, 1, S, S) uint8 as stored in a shard's ``L`` column.
        ab_quantized: (N, 2, S, S) int8 as stored in a shard's ``ab`` column.

    Returns:
        (N, 3, S, S) uint8 RGB.
    """
    lab = join_lab(dequantize_lightness(l_quantized), dequantize_ab(ab_quantized))
    return quantize_to_8bit(lab_to_rgb(lab))


def uint8_batch(arrays: list[np.ndarray]) -> torch.Tensor:
    """(H, W, 3) uint8 arrays of one size -> (N, 3, H, W) uint8 tensor."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
