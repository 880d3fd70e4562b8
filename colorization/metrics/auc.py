"""Zhang et al.'s AuC of the cumulative ab-error curve (ECCV 2016, Sec. 3.1, Table 1), as an exact accumulator.

Zhang et al. Sec. 3.1: "we compute the percentage of predicted pixel colors within a thresholded L2 distance of the
ground truth in ab color space. We then sweep across thresholds from 0 to 150 to produce a cumulative mass function,
integrate the area under the curve (AuC), and normalize." No evaluation script was released (richzhang/colorization
PR #123); the definition here is the one in ``shared/reference/paper-facts.md`` that reproduces the paper's grey
baseline (89.1 / 58.0):

- per-pixel error ``||pred_ab - true_ab||`` in raw Lab units;
- curve ``c(t) = #(error <= t) / #pixels`` for the integer thresholds t = 0, 1, ..., 150 (:data:`AUC_THRESHOLDS`),
  pooled over every pixel of the evaluation set (not averaged per image);
- AuC = the mean of the curve over the 151 thresholds, times 100. Equivalently, each pixel scores the fraction
  of the 151 thresholds it passes, (151 - ceil(error)) / 151 clipped to [0, 1], and AuC is the mean pixel score;
  a perfect prediction gives exactly 100. The trapezoid rule over [0, 150] would differ by
  (mean - (c(0) + c(150)) / 2) / 150, a quarter of a point here: on the 500 dev photos at 256x256 the grey
  baseline gives 88.98 / 59.17 with this rule and 89.23 / 59.23 with the trapezoid (paper: 89.1 / 58.0 on a
  different 10k set), so the data cannot choose; the mean is kept for its per-pixel reading, and
  :func:`area_under_curve` is the only integration used anywhere in the project;
- rebalanced AuC: the same curve computed separately for the pixels of each ground-truth ab bin (nearest bin centre
  of the TRUE ab), then averaged with equal weight over the bins that occur. Equivalently, every pixel is weighted
  by the inverse frequency of its ground-truth bin.

:class:`AbErrorHistogram` stores integer counts per (ground-truth bin, error bucket), so partial results from
batches, processes or Ray workers merge exactly by addition, in any order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from colorization.color.ab_bins import hard_encode_ab


AUC_MAX_THRESHOLD = 150  # Zhang et al. Sec. 3.1: thresholds swept from 0 to 150 (raw ab units)
AUC_THRESHOLDS = np.arange(AUC_MAX_THRESHOLD + 1, dtype=np.int64)  # 0, 1, ..., 150: the points of the curve
# Bucket j <= 150 holds errors in (j - 1, j] (bucket 0: error exactly 0), so cumsum(buckets)[t] = #(error <= t);
# the last bucket holds errors above 150, which no threshold reaches but every fraction's denominator counts.
NUM_ERROR_BUCKETS = len(AUC_THRESHOLDS) + 1


def ab_error_buckets(pred_ab: torch.Tensor, true_ab: torch.Tensor) -> torch.Tensor:
    """Per-pixel ab error, bucketed so that a cumulative sum over buckets counts ``error <= t`` for integer t.

    Args:
        pred_ab: predicted ab, raw Lab units, (N, 2, H, W).
        true_ab: ground-truth ab, raw Lab units, (N, 2, H, W).

    Returns:
        LongTensor (N, H, W): ceil(error), with every error above 150 in bucket 151. For an integer t,
        ceil(e) <= t exactly when e <= t, so no rounding is involved.
    """
    if pred_ab.shape != true_ab.shape or pred_ab.ndim != 4 or pred_ab.shape[1] != 2:
        raise ValueError(
            f"pred_ab and true_ab must both be (N, 2, H, W); got {tuple(pred_ab.shape)} and {tuple(true_ab.shape)}"
        )
    dtype = torch.promote_types(torch.promote_types(pred_ab.dtype, true_ab.dtype), torch.float32)
    difference = pred_ab.to(dtype) - true_ab.to(dtype)
    delta_a, delta_b = difference.unbind(1)
    error = torch.sqrt(delta_a * delta_a + delta_b * delta_b)  # (N, H, W)
    if not torch.isfinite(error).all():
        raise ValueError("ab error is not finite (NaN or infinite ab values)")
    overflow = NUM_ERROR_BUCKETS - 1
    return torch.ceil(error.clamp(max=float(overflow))).long()


def _normalized_cumulative(counts: np.ndarray) -> np.ndarray:
    """(..., NUM_ERROR_BUCKETS) counts -> (..., 151) fraction with error <= t, for rows with at least one pixel."""
    totals = counts.sum(axis=-1, keepdims=True)
    return np.cumsum(counts, axis=-1)[..., : len(AUC_THRESHOLDS)] / totals


def area_under_curve(curve: np.ndarray) -> float:
    """The project's one integration rule: mean of the curve over the 151 thresholds, in percent (0-100).

    Args:
        curve: (151,) fractions in [0, 1] at thresholds 0..150.

    Returns:
        AuC in percent; NaN when the curve is undefined (no pixels).
    """
    return float(np.mean(curve) * 100.0)


@dataclass(eq=False)
class AbErrorHistogram:
    """Mergeable counts of per-pixel ab errors per ground-truth ab bin (Zhang et al. Sec. 3.1, AuC).

    ``counts[q, j]`` is the number of pixels whose true ab is nearest to bin q and whose error falls in bucket j
    (see :func:`ab_error_buckets`). Counts are int64, so ``a + b`` (or ``a.merge(b)``) is exact and associative.
    """

    counts: np.ndarray  # int64 (Q, NUM_ERROR_BUCKETS)

    def __post_init__(self) -> None:
        counts = np.asarray(self.counts)
        if counts.ndim != 2 or counts.shape[1] != NUM_ERROR_BUCKETS:
            raise ValueError(f"counts must be (Q, {NUM_ERROR_BUCKETS}); got {counts.shape}")
        if counts.dtype != np.int64:
            if not np.issubdtype(counts.dtype, np.integer):
                raise TypeError(f"counts must be integers; got {counts.dtype}")
            counts = counts.astype(np.int64)
        self.counts = counts

    @classmethod
    def zeros(cls, num_bins: int) -> AbErrorHistogram:
        """An empty histogram for a bin set of ``num_bins`` bins (pass ``len(bins)``)."""
        return cls(np.zeros((num_bins, NUM_ERROR_BUCKETS), dtype=np.int64))

    @property
    def num_bins(self) -> int:
        return self.counts.shape[0]

    @property
    def num_pixels(self) -> int:
        return int(self.counts.sum())

    def update(
        self,
        pred_ab: torch.Tensor,
        true_ab: torch.Tensor,
        *,
        true_bin_index: torch.Tensor | None = None,
        bins: torch.Tensor | None = None,
    ) -> AbErrorHistogram:
        """Adds the pixels of a batch, in place (returns self).

        Args:
            pred_ab: predicted ab, raw Lab units, (N, 2, H, W).
            true_ab: ground-truth ab, raw Lab units, (N, 2, H, W).
            true_bin_index: (N, H, W) index of the ground-truth bin of each pixel (e.g. from ``hard_encode_ab``).
            bins: (Q, 2) ab bin centres; the ground-truth bins are then found by :func:`hard_encode_ab`.
                Give exactly one of ``true_bin_index`` and ``bins``.

        Returns:
            self, updated.
        """
        if (true_bin_index is None) == (bins is None):
            raise ValueError("give exactly one of true_bin_index and bins")
        buckets = ab_error_buckets(pred_ab, true_ab)  # checks shapes and finiteness first
        if bins is not None:
            if len(bins) != self.num_bins:
                raise ValueError(f"histogram has {self.num_bins} bins; the bin set has {len(bins)}")
            true_bin_index = hard_encode_ab(true_ab, bins)
        if true_bin_index.shape != buckets.shape:
            raise ValueError(f"true_bin_index must be {tuple(buckets.shape)}; got {tuple(true_bin_index.shape)}")
        true_bin_index = true_bin_index.long().to(buckets.device)
        if true_bin_index.numel() and (true_bin_index.min() < 0 or true_bin_index.max() >= self.num_bins):
            raise ValueError(f"true_bin_index must lie in [0, {self.num_bins})")
        flat = (true_bin_index * NUM_ERROR_BUCKETS + buckets).reshape(-1)
        batch_counts = torch.bincount(flat, minlength=self.num_bins * NUM_ERROR_BUCKETS)
        self.counts += batch_counts.reshape(self.num_bins, NUM_ERROR_BUCKETS).cpu().numpy().astype(np.int64)
        return self

    def merge(self, other: AbErrorHistogram) -> AbErrorHistogram:
        """A new histogram holding the pixels of both (exact)."""
        if self.counts.shape != other.counts.shape:
            raise ValueError(f"cannot merge histograms of shapes {self.counts.shape} and {other.counts.shape}")
        return AbErrorHistogram(self.counts + other.counts)

    def __add__(self, other: AbErrorHistogram) -> AbErrorHistogram:
        return self.merge(other)

    def __radd__(self, other: int) -> AbErrorHistogram:
        """``0 + histogram``, so that the built-in ``sum(histograms)`` works."""
        if isinstance(other, int) and other == 0:
            return AbErrorHistogram(self.counts.copy())
        return NotImplemented

    def curve(self) -> np.ndarray:
        """Fraction of all pixels with error <= t, t = 0..150: (151,) float64; NaN when empty."""
        pooled = self.counts.sum(axis=0)
        if pooled.sum() == 0:
            return np.full(len(AUC_THRESHOLDS), np.nan)
        return _normalized_cumulative(pooled)

    def rebalanced_curve(self) -> np.ndarray:
        """Mean over the ground-truth bins present of each bin's curve: (151,) float64; NaN when empty."""
        present = self.counts.sum(axis=1) > 0
        if not present.any():
            return np.full(len(AUC_THRESHOLDS), np.nan)
        return _normalized_cumulative(self.counts[present]).mean(axis=0)

    def auc(self) -> float:
        """AuC in percent (Zhang et al. Sec. 3.1, Table 1 "AuC non-rebal"); NaN when empty."""
        return area_under_curve(self.curve())

    def rebalanced_auc(self) -> float:
        """Class-rebalanced AuC in percent (Zhang et al. Sec. 3.1, Table 1 "AuC rebal"); NaN when empty."""
        return area_under_curve(self.rebalanced_curve())
