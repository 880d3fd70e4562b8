"""Scores of an evaluation sweep as one mergeable accumulator, and the scoring of one batch.

:class:`SweepScores` holds one :class:`~colorization.metrics.report.ColorizationScores` per row (model, label),
the images that could not be read (path, reason) and how many images each model's network saw. Workers (Ray
actors or a plain loop) each fill one; ``sum(parts)`` is exact for every integer (the AuC histograms, counts)
and equal up to float rounding order for the PSNR and colourfulness sums.

:func:`score_batch` runs each model's network ONCE on a batch and decodes its outputs with every entry of the
model's sweep (``Colorizer.predict`` once, then ``decode_ab`` and ``join_ab`` per entry), so a sweep of 8 decoders
costs one forward pass and 8 decodes; the truth's Lab, bins and colourfulness are computed once per batch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import torch

from colorization.color.ab_bins import hard_encode_ab
from colorization.color.ab_prior import colourful_images
from colorization.color.constants import COLOURLESS_AB_THRESHOLD
from colorization.color.lab import rgb_to_lab, split_lab
from colorization.evaluation.protocol import grey_baseline
from colorization.evaluation.sweep import SweepEntry
from colorization.metrics.colourfulness import colourfulness
from colorization.metrics.psnr import psnr, quantize_to_8bit
from colorization.metrics.report import ColorizationScores

GREY_MODEL = "grey baseline"
GREY_LABEL = "ab = 0"


@dataclass(eq=False)
class SweepScores:
    """Mergeable scores of a sweep.

    Attributes:
        bins: (Q, 2) float64 raw ab bin centres of the rebalanced AuC.
        rows: (model, label) -> scores; the grey baseline is ``(GREY_MODEL, GREY_LABEL)``.
        failures: (source, reason) of inputs that could not be scored (unreadable images, bad shard rows).
        network_images: model -> images passed through its network (one pass per image, whatever the sweep).
        images_read: inputs read successfully (colourless ones included).
    """

    bins: np.ndarray
    rows: dict[tuple[str, str], ColorizationScores] = field(default_factory=dict)
    failures: list[tuple[str, str]] = field(default_factory=list)
    network_images: dict[str, int] = field(default_factory=dict)
    images_read: int = 0

    def row(self, model: str, label: str) -> ColorizationScores:
        """The accumulator of a row, created empty on first use."""
        key = (model, label)
        if key not in self.rows:
            self.rows[key] = ColorizationScores.empty(self.bins)
        return self.rows[key]

    def merge(self, other: SweepScores) -> SweepScores:
        """A new accumulator with the images of both (same bin set)."""
        if self.bins.shape != other.bins.shape or not np.array_equal(self.bins, other.bins):
            raise ValueError("cannot merge sweep scores computed with different ab bin sets")
        merged = SweepScores(self.bins)
        for part in (self, other):
            for key, scores in part.rows.items():
                merged.rows[key] = merged.rows[key] + scores if key in merged.rows else 0 + scores
            for model, count in part.network_images.items():
                merged.network_images[model] = merged.network_images.get(model, 0) + count
        merged.failures = sorted(self.failures + other.failures)
        merged.images_read = self.images_read + other.images_read
        return merged

    def __add__(self, other: SweepScores) -> SweepScores:
        return self.merge(other)

    def __radd__(self, other: int) -> SweepScores:
        """``0 + scores``, so that the built-in ``sum(parts)`` works."""
        if isinstance(other, int) and other == 0:
            return self.merge(SweepScores(self.bins))
        return NotImplemented


@dataclass(frozen=True)
class TruthBatch:
    """A batch of ground truth with everything every row reuses: computed once, not once per decoder.

    ``add_prediction`` with it gives exactly what ``ColorizationScores.update(pred, truth)`` gives (a test holds
    them equal); it only skips recomputing the truth's Lab, bins and colourfulness for each row.
    """

    rgb8: torch.Tensor  # (N, 3, S, S) uint8, all images
    lightness: torch.Tensor  # (N, 1, S, S) raw L of the 8-bit truth
    colourful: torch.Tensor  # (N,) bool
    true_ab: torch.Tensor  # (M, 2, S, S) raw ab of the colourful images
    true_bins: torch.Tensor  # (M, S, S) nearest-bin index of each colourful pixel
    colourfulness_sum: float  # over the colourful images

    @classmethod
    def of(cls, truth: torch.Tensor, bins: np.ndarray) -> TruthBatch:
        lab = rgb_to_lab(truth.float() / 255.0)
        lightness, ab = split_lab(lab)
        colourful = colourful_images(ab, threshold=COLOURLESS_AB_THRESHOLD)
        true_ab = ab[colourful]
        bins_tensor = torch.as_tensor(bins, dtype=true_ab.dtype)
        return cls(
            rgb8=truth,
            lightness=lightness,
            colourful=colourful,
            true_ab=true_ab,
            true_bins=hard_encode_ab(true_ab, bins_tensor),
            colourfulness_sum=float(colourfulness(truth[colourful]).sum()) if bool(colourful.any()) else 0.0,
        )


def add_prediction(scores: ColorizationScores, truth: TruthBatch, pred_rgb: torch.Tensor) -> None:
    """``scores.update(pred_rgb, truth.rgb8)``, reusing the truth's cached parts (in place)."""
    scores.excluded_colourless += int((~truth.colourful).sum())
    if not bool(truth.colourful.any()):
        return
    pred_8bit = quantize_to_8bit(pred_rgb.cpu())[truth.colourful]
    _, pred_ab = split_lab(rgb_to_lab(pred_8bit.float() / 255.0))
    scores.histogram.update(pred_ab, truth.true_ab, true_bin_index=truth.true_bins)
    scores.images += int(truth.colourful.sum())
    scores.psnr_sum += float(psnr(pred_8bit, truth.rgb8[truth.colourful]).sum())
    scores.colourfulness_pred_sum += float(colourfulness(pred_8bit).sum())
    scores.colourfulness_truth_sum += truth.colourfulness_sum


def score_batch(
    truth: torch.Tensor,
    colorizers: Mapping[str, tuple[object, list[SweepEntry]]],
    scores: SweepScores,
) -> SweepScores:
    """Scores the grey baseline and every (model, entry) on one batch of ground-truth crops, in place.

    Args:
        truth: (N, 3, S, S) uint8 RGB ground truth (the protocol's crops).
        colorizers: model name -> (``Colorizer``, its sweep entries).
        scores: the accumulator to add to.

    Returns:
        ``scores``, updated.
    """
    if truth.ndim != 4 or truth.shape[1] != 3 or truth.dtype != torch.uint8:
        raise ValueError(f"truth must be (N, 3, S, S) uint8; got {truth.dtype} {tuple(truth.shape)}")
    if len(truth) == 0:
        return scores
    scores.images_read += len(truth)
    cached = TruthBatch.of(truth, scores.bins)
    add_prediction(scores.row(GREY_MODEL, GREY_LABEL), cached, grey_baseline(truth))
    images = list(truth)  # (3, S, S) uint8 each; the Colorizer converts
    for name, (colorizer, entries) in colorizers.items():
        outputs = colorizer.predict(colorizer.working_batch(images))  # the one network pass of this batch
        scores.network_images[name] = scores.network_images.get(name, 0) + len(images)
        for entry in entries:
            ab = colorizer.decode_ab(outputs, entry.options)
            add_prediction(scores.row(name, entry.label), cached, colorizer.join_ab(cached.lightness, ab))
    return scores
