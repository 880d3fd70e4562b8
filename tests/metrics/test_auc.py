"""Zhang et al.'s AuC (Sec. 3.1) against an independent brute-force numpy implementation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colorization.color.ab_bins import default_ab_bins, hard_encode_ab
from colorization.metrics.auc import (
    AUC_THRESHOLDS,
    NUM_ERROR_BUCKETS,
    AbErrorHistogram,
    ab_error_buckets,
)


def brute_force_curves(
    pred_ab: np.ndarray, true_ab: np.ndarray, bin_index: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Pooled and rebalanced curves by looping over the thresholds 0..150, straight from the errors."""
    delta = pred_ab - true_ab  # (N, 2, H, W)
    errors = np.sqrt(delta[:, 0] * delta[:, 0] + delta[:, 1] * delta[:, 1]).ravel()
    labels = bin_index.ravel()
    pooled, per_bin = [], {q: [] for q in np.unique(labels)}
    for threshold in range(151):
        pooled.append(np.count_nonzero(errors <= threshold) / errors.size)
        for q in per_bin:
            in_bin = errors[labels == q]
            per_bin[q].append(np.count_nonzero(in_bin <= threshold) / in_bin.size)
    rebalanced = np.mean([per_bin[q] for q in per_bin], axis=0)
    return np.array(pooled), rebalanced


def brute_force_auc(curve: np.ndarray) -> float:
    return float(sum(curve) / 151 * 100)


@st.composite
def ab_batches(draw) -> tuple[np.ndarray, np.ndarray]:
    """Raw ab pairs (N, 2, H, W) float64 whose errors hit integers exactly, fall between them and exceed 150."""
    batch, height, width = draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    true_ab = rng.uniform(-110, 110, size=(batch, 2, height, width))
    kind = rng.integers(0, 4, size=(batch, 1, height, width))
    pythagorean = np.array([(0, 0), (3, 4), (6, 8), (0, 7), (90, 120), (0, 150), (0, 151)], dtype=np.float64)
    exact_offsets = pythagorean[rng.integers(0, len(pythagorean), size=(batch, height, width))].transpose(0, 3, 1, 2)
    true_rounded = np.round(true_ab)  # integer truth + integer offset: the error is exactly an integer
    pred_ab = np.where(kind == 0, true_ab + rng.normal(0, draw(st.sampled_from([1.0, 20.0, 80.0])), true_ab.shape), 0)
    pred_ab = np.where(kind == 1, true_rounded + exact_offsets, pred_ab)
    pred_ab = np.where(kind == 2, rng.uniform(-300, 300, true_ab.shape), pred_ab)
    pred_ab = np.where(kind == 3, true_ab, pred_ab)
    true_ab = np.where(kind == 1, true_rounded, true_ab)
    return pred_ab, true_ab


@settings(max_examples=60, deadline=None)
@given(ab_batches(), st.integers(1, 6))
def test_auc_matches_brute_force(batch: tuple[np.ndarray, np.ndarray], num_bins: int) -> None:
    pred_ab, true_ab = batch
    bin_index = np.random.default_rng(num_bins).integers(0, num_bins, size=(pred_ab.shape[0], *pred_ab.shape[2:]))
    histogram = AbErrorHistogram.zeros(num_bins).update(
        torch.from_numpy(pred_ab), torch.from_numpy(true_ab), true_bin_index=torch.from_numpy(bin_index)
    )
    pooled, rebalanced = brute_force_curves(pred_ab, true_ab, bin_index)
    np.testing.assert_array_equal(histogram.curve(), pooled)
    np.testing.assert_allclose(histogram.rebalanced_curve(), rebalanced, rtol=0, atol=1e-12)
    assert histogram.auc() == pytest.approx(brute_force_auc(pooled), abs=1e-9)
    assert histogram.rebalanced_auc() == pytest.approx(brute_force_auc(rebalanced), abs=1e-9)
    assert histogram.num_pixels == pred_ab.size // 2


@settings(max_examples=25, deadline=None)
@given(ab_batches())
def test_rebalanced_auc_with_bins_matches_brute_force_per_bin(batch: tuple[np.ndarray, np.ndarray]) -> None:
    pred_ab, true_ab = batch
    bins = default_ab_bins(dtype=torch.float64)
    histogram = AbErrorHistogram.zeros(len(bins)).update(
        torch.from_numpy(pred_ab), torch.from_numpy(true_ab), bins=bins
    )
    bin_index = hard_encode_ab(torch.from_numpy(true_ab), bins).numpy()
    pooled, rebalanced = brute_force_curves(pred_ab, true_ab, bin_index)
    np.testing.assert_array_equal(histogram.curve(), pooled)
    assert histogram.rebalanced_auc() == pytest.approx(brute_force_auc(rebalanced), abs=1e-9)


@settings(max_examples=40, deadline=None)
@given(ab_batches(), st.integers(1, 4))
def test_merge_of_parts_equals_whole_exactly(batch: tuple[np.ndarray, np.ndarray], parts: int) -> None:
    pred_ab, true_ab = (torch.from_numpy(array) for array in batch)
    bin_index = (true_ab[:, 0] > 0).long() + 2 * (true_ab[:, 1] > 0).long()  # 4 quadrant "bins"
    whole = AbErrorHistogram.zeros(4).update(pred_ab, true_ab, true_bin_index=bin_index)
    pieces = [
        AbErrorHistogram.zeros(4).update(pred, true, true_bin_index=index)
        for pred, true, index in zip(
            pred_ab.chunk(parts, dim=2), true_ab.chunk(parts, dim=2), bin_index.chunk(parts, dim=1), strict=True
        )
    ]
    merged = sum(reversed(pieces))
    np.testing.assert_array_equal(merged.counts, whole.counts)
    assert merged.auc() == whole.auc()
    assert merged.rebalanced_auc() == whole.rebalanced_auc()
    assert pieces[0].merge(AbErrorHistogram.zeros(4)).counts.dtype == np.int64


def test_perfect_prediction_scores_100() -> None:
    true_ab = torch.rand(2, 2, 8, 8, dtype=torch.float64) * 200 - 100
    bins = default_ab_bins(dtype=torch.float64)
    histogram = AbErrorHistogram.zeros(len(bins)).update(true_ab, true_ab, bins=bins)
    assert histogram.auc() == 100.0
    assert histogram.rebalanced_auc() == 100.0


def test_all_errors_exactly_ten_give_the_closed_form() -> None:
    true_ab = torch.randint(-100, 100, (3, 2, 5, 7)).double()
    pred_ab = true_ab + torch.tensor([6.0, 8.0], dtype=torch.float64)[None, :, None, None]  # |(6, 8)| = 10
    one_bin = torch.zeros(3, 5, 7, dtype=torch.long)
    histogram = AbErrorHistogram.zeros(1).update(pred_ab, true_ab, true_bin_index=one_bin)
    expected_curve = np.where(np.arange(151) >= 10, 1.0, 0.0)  # error <= t from t = 10 on
    np.testing.assert_array_equal(histogram.curve(), expected_curve)
    assert histogram.auc() == pytest.approx((151 - 10) / 151 * 100, abs=1e-12)


@pytest.mark.parametrize(("error", "expected_auc"), [(150.0, 1 / 151 * 100), (150.5, 0.0), (1e6, 0.0), (0.0, 100.0)])
def test_errors_at_the_ends_of_the_threshold_range(error: float, expected_auc: float) -> None:
    true_ab = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    pred_ab = true_ab.clone()
    pred_ab[:, 0] = error
    one_bin = torch.zeros(1, 2, 2, dtype=torch.long)
    histogram = AbErrorHistogram.zeros(1).update(pred_ab, true_ab, true_bin_index=one_bin)
    assert histogram.auc() == pytest.approx(expected_auc, abs=1e-12)
    assert histogram.counts.sum() == 4


def test_auc_is_the_mean_per_pixel_share_of_thresholds_passed() -> None:
    rng = np.random.default_rng(3)
    true_ab = rng.uniform(-100, 100, size=(2, 2, 20, 20))
    pred_ab = true_ab + rng.normal(0, 60, size=true_ab.shape)
    errors = np.linalg.norm(pred_ab - true_ab, axis=1)
    per_pixel = np.clip((151 - np.ceil(errors)) / 151, 0, 1)  # thresholds t in 0..150 with error <= t, over 151
    labels = torch.zeros(2, 20, 20, dtype=torch.long)
    histogram = AbErrorHistogram.zeros(1)
    histogram.update(torch.from_numpy(pred_ab), torch.from_numpy(true_ab), true_bin_index=labels)
    assert histogram.auc() == pytest.approx(per_pixel.mean() * 100, abs=1e-9)


def test_rebalanced_equals_inverse_frequency_weighting_of_pixels() -> None:
    rng = np.random.default_rng(0)
    true_ab = rng.uniform(-80, 80, size=(4, 2, 16, 16))
    pred_ab = true_ab + rng.normal(0, 30, size=true_ab.shape)
    bins = default_ab_bins(dtype=torch.float64)
    histogram = AbErrorHistogram.zeros(len(bins))
    histogram.update(torch.from_numpy(pred_ab), torch.from_numpy(true_ab), bins=bins)
    labels = hard_encode_ab(torch.from_numpy(true_ab), bins).numpy().ravel()
    errors = np.linalg.norm(pred_ab - true_ab, axis=1).ravel()
    weights = 1.0 / np.bincount(labels)[labels]  # each pixel weighted by the inverse frequency of its true bin
    weighted_curve = np.array([weights[errors <= t].sum() / weights.sum() for t in AUC_THRESHOLDS])
    np.testing.assert_allclose(histogram.rebalanced_curve(), weighted_curve, atol=1e-12)
    assert len(np.unique(labels)) > 10  # the weighting really differs from the pooled curve
    assert not np.allclose(histogram.curve(), weighted_curve)


def test_buckets_count_error_at_most_each_integer_threshold() -> None:
    values = [0.0, 1e-9, 0.5, 1.0, 1.0000001, 9.99, 10.0, 149.9, 150.0, 150.01, 400.0]
    errors = torch.tensor(values, dtype=torch.float64)
    pred_ab = torch.stack((errors, torch.zeros_like(errors)))[None, :, None, :]
    buckets = ab_error_buckets(pred_ab, torch.zeros_like(pred_ab))[0, 0]
    assert buckets.tolist() == [0, 1, 1, 1, 2, 10, 10, 150, 150, 151, 151]
    assert NUM_ERROR_BUCKETS == 152
    assert AUC_THRESHOLDS.tolist() == list(range(151))


def test_empty_histogram_is_nan_and_bad_inputs_raise() -> None:
    histogram = AbErrorHistogram.zeros(3)
    assert np.isnan(histogram.auc()) and np.isnan(histogram.rebalanced_auc())
    ab = torch.zeros(1, 2, 2, 2)
    with pytest.raises(ValueError, match="exactly one"):
        histogram.update(ab, ab)
    with pytest.raises(ValueError, match="lie in"):
        histogram.update(ab, ab, true_bin_index=torch.full((1, 2, 2), 3))
    with pytest.raises(ValueError, match="not finite"):
        histogram.update(ab * float("nan"), ab, true_bin_index=torch.zeros(1, 2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="merge"):
        histogram.merge(AbErrorHistogram.zeros(4))
    with pytest.raises(ValueError, match="bins"):
        histogram.update(ab, ab, bins=default_ab_bins())
