"""All evaluation scores of a colorization run as one mergeable accumulator (pure; no file I/O).

:class:`ColorizationScores` gathers Zhang et al.'s AuC and rebalanced AuC (Sec. 3.1, via
:class:`~colorization.metrics.auc.AbErrorHistogram`), PSNR and Hasler & Suesstrunk (2003) colourfulness of the
predictions and of the ground truth. Workers of an evaluation job each fill one over their share of the images;
``sum(parts)`` (or ``a + b``) gives the scores of the whole set.

Ground-truth images without colour (max |ab| below ``COLOURLESS_AB_THRESHOLD``, Zhang's "non-grey mask") are left
out of every score and counted in ``excluded_colourless``: a real black-and-white photograph is not a colour
ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from colorization.color.ab_prior import colourful_images
from colorization.color.constants import COLOURLESS_AB_THRESHOLD
from colorization.color.lab import rgb_to_lab, split_lab
from colorization.metrics.auc import AbErrorHistogram
from colorization.metrics.colourfulness import colourfulness
from colorization.metrics.psnr import psnr, quantize_to_8bit


@dataclass(eq=False)
class ColorizationScores:
    """Sums over the scored images; exact for the AuC counts, float64 sums for the per-image means."""

    bins: np.ndarray  # float64 (Q, 2): the ab bin centres the rebalanced AuC is defined by
    histogram: AbErrorHistogram
    images: int = 0  # images scored
    excluded_colourless: int = 0  # ground-truth images without colour, left out of every score
    psnr_sum: float = 0.0  # dB, over the scored images
    colourfulness_pred_sum: float = 0.0
    colourfulness_truth_sum: float = 0.0

    @classmethod
    def empty(cls, bins: torch.Tensor | np.ndarray) -> ColorizationScores:
        """No images yet, for the bin set ``bins`` (Q, 2) in raw ab units."""
        bins_array = np.asarray(bins.cpu() if isinstance(bins, torch.Tensor) else bins, dtype=np.float64)
        if bins_array.ndim != 2 or bins_array.shape[1] != 2:
            raise ValueError(f"bins must be (Q, 2); got {bins_array.shape}")
        return cls(bins=bins_array, histogram=AbErrorHistogram.zeros(len(bins_array)))

    def update(self, pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> ColorizationScores:
        """Scores a batch, in place (returns self).

        Both images are quantized to 8 bits first (as saved files are), then converted to Lab for the AuC.

        Args:
            pred_rgb: colorized images, (N, 3, H, W) float in [0, 1] or uint8.
            true_rgb: ground truth, same shape and type rules.

        Returns:
            self, updated.
        """
        if pred_rgb.shape != true_rgb.shape or pred_rgb.ndim != 4 or pred_rgb.shape[1] != 3:
            raise ValueError(
                f"pred_rgb and true_rgb must both be (N, 3, H, W); got {tuple(pred_rgb.shape)} "
                f"and {tuple(true_rgb.shape)}"
            )
        pred_8bit, true_8bit = quantize_to_8bit(pred_rgb), quantize_to_8bit(true_rgb)
        _, pred_ab = split_lab(rgb_to_lab(pred_8bit.float() / 255.0))  # (N, 2, H, W) raw ab
        _, true_ab = split_lab(rgb_to_lab(true_8bit.float() / 255.0))
        colourful = colourful_images(true_ab, threshold=COLOURLESS_AB_THRESHOLD)  # (N,) bool
        self.excluded_colourless += int((~colourful).sum())
        if not colourful.any():
            return self
        pred_8bit, true_8bit = pred_8bit[colourful], true_8bit[colourful]
        pred_ab, true_ab = pred_ab[colourful], true_ab[colourful]
        bins = torch.as_tensor(self.bins, dtype=true_ab.dtype, device=true_ab.device)
        self.histogram.update(pred_ab, true_ab, bins=bins)
        self.images += int(colourful.sum())
        self.psnr_sum += float(psnr(pred_8bit, true_8bit).sum())
        self.colourfulness_pred_sum += float(colourfulness(pred_8bit).sum())
        self.colourfulness_truth_sum += float(colourfulness(true_8bit).sum())
        return self

    def merge(self, other: ColorizationScores) -> ColorizationScores:
        """A new accumulator holding the images of both; both must use the same bin set."""
        if self.bins.shape != other.bins.shape or not np.array_equal(self.bins, other.bins):
            raise ValueError("cannot merge scores computed with different ab bin sets")
        return ColorizationScores(
            bins=self.bins,
            histogram=self.histogram + other.histogram,
            images=self.images + other.images,
            excluded_colourless=self.excluded_colourless + other.excluded_colourless,
            psnr_sum=self.psnr_sum + other.psnr_sum,
            colourfulness_pred_sum=self.colourfulness_pred_sum + other.colourfulness_pred_sum,
            colourfulness_truth_sum=self.colourfulness_truth_sum + other.colourfulness_truth_sum,
        )

    def __add__(self, other: ColorizationScores) -> ColorizationScores:
        return self.merge(other)

    def __radd__(self, other: int) -> ColorizationScores:
        """``0 + scores``, so that the built-in ``sum(parts)`` works."""
        if isinstance(other, int) and other == 0:
            return self.merge(ColorizationScores.empty(self.bins))
        return NotImplemented

    def summary(self) -> dict[str, float | int]:
        """The reported figures: AuC and rebalanced AuC in percent, mean PSNR (dB), mean colourfulness.

        Means are NaN when no image was scored.
        """
        count = self.images if self.images else float("nan")
        return {
            "auc": self.histogram.auc(),
            "rebalanced_auc": self.histogram.rebalanced_auc(),
            "psnr": self.psnr_sum / count,
            "colourfulness_pred": self.colourfulness_pred_sum / count,
            "colourfulness_truth": self.colourfulness_truth_sum / count,
            "images": self.images,
            "excluded_colourless": self.excluded_colourless,
        }
