"""Zhang et al. Sec. 2.2 prior and rebalancing, against numpy brute force, scipy's Gaussian filter and PriorFactor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from scipy.ndimage import gaussian_filter

from colorization.color.ab_bins import default_ab_bins, hard_encode_ab, soft_encode_ab
from colorization.color.ab_prior import (
    ab_bin_counts,
    colourful_images,
    pixel_rebalance_weights,
    rebalance_weights,
    smooth_ab_prior,
)
from colorization.color.constants import AB_GRID_STEP, COLOURLESS_AB_THRESHOLD, SOFT_ENCODE_SIGMA
from colorization.color.lab import rgb_to_lab, split_lab
from colorization.io.ab_bins_file import load_ab_bins


@pytest.fixture(scope="module")
def bins() -> torch.Tensor:
    return default_ab_bins(dtype=torch.float64)


def _brute_force_counts(ab: np.ndarray, bins: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    counts = np.zeros(len(bins), dtype=np.int64)
    for i, y, x in np.ndindex(ab.shape[0], ab.shape[2], ab.shape[3]):
        if mask is None or mask[i, y, x]:
            counts[np.argmin(((bins - ab[i, :, y, x]) ** 2).sum(axis=1))] += 1
    return counts


def _photo_ab(path, size=(64, 48)) -> torch.Tensor:
    """(1, 2, H, W) raw ab of a dev photo, resized."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB").resize(size), dtype=np.float32) / 255.0
    return split_lab(rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None]))[1]


# --- ab_bin_counts ---------------------------------------------------------------------------------------------

_AB_BATCHES = arrays(
    np.float64,
    st.tuples(st.integers(1, 5), st.just(2), st.integers(1, 4), st.integers(1, 4)),
    elements=st.floats(-120.0, 120.0, width=64),
)


@settings(max_examples=30, deadline=None)
@given(ab=_AB_BATCHES, data=st.data())
def test_counts_match_brute_force_and_merge(ab: np.ndarray, data: st.DataObject) -> None:
    bins = default_ab_bins(dtype=torch.float64)
    whole = ab_bin_counts(torch.from_numpy(ab), bins)
    assert whole.dtype == torch.int64 and whole.shape == (len(bins),)
    assert np.array_equal(whole.numpy(), _brute_force_counts(ab, bins.numpy()))
    assert int(whole.sum()) == ab.shape[0] * ab.shape[2] * ab.shape[3]
    split = data.draw(st.integers(0, ab.shape[0]), label="split")  # parts may be empty
    parts = ab_bin_counts(torch.from_numpy(ab[:split]), bins) + ab_bin_counts(torch.from_numpy(ab[split:]), bins)
    assert torch.equal(parts, whole)
    mask = torch.from_numpy(data.draw(arrays(np.bool_, (ab.shape[0], ab.shape[2], ab.shape[3])), label="mask"))
    masked = ab_bin_counts(torch.from_numpy(ab), bins, pixel_mask=mask)
    assert np.array_equal(masked.numpy(), _brute_force_counts(ab, bins.numpy(), mask.numpy()))
    assert int(masked.sum()) == int(mask.sum())
    assert torch.equal(masked + ab_bin_counts(torch.from_numpy(ab), bins, pixel_mask=~mask), whole)


def test_counts_with_an_image_mask_broadcast(bins: torch.Tensor) -> None:
    ab = torch.from_numpy(np.random.default_rng(0).normal(0, 30, size=(4, 2, 6, 6)))
    image_mask = torch.tensor([True, False, True, False])
    counts = ab_bin_counts(ab, bins, pixel_mask=image_mask[:, None, None])
    assert torch.equal(counts, ab_bin_counts(ab[image_mask], bins))
    assert int(counts.sum()) == 2 * 36
    with pytest.raises(TypeError, match="bool"):
        ab_bin_counts(ab, bins, pixel_mask=image_mask.float()[:, None, None])
    with pytest.raises(ValueError, match="broadcast"):
        ab_bin_counts(ab, bins, pixel_mask=image_mask[:3, None, None])


# --- colourful_images ------------------------------------------------------------------------------------------


def test_colourful_images_brute_force_and_boundary() -> None:
    ab = np.zeros((5, 2, 3, 3))
    ab[1, :, 2, 1] = (3.0, 4.0)  # |ab| = 5 exactly: colourful (>=)
    ab[2, :, 0, 0] = (2.9, 4.0)  # |ab| < 5
    ab[3, :, 1, 1] = (4.0, -4.0)  # |ab| = 5.66 >= 5, though |a|, |b| <= 5 (the Caffe layer tests channels)
    ab[4] = np.random.default_rng(1).normal(0, 20, size=(2, 3, 3))
    expected = [np.sqrt((ab[i] ** 2).sum(axis=0)).max() >= COLOURLESS_AB_THRESHOLD for i in range(len(ab))]
    result = colourful_images(torch.from_numpy(ab))
    assert result.dtype == torch.bool and result.tolist() == expected == [False, True, False, True, True]
    assert colourful_images(torch.from_numpy(ab), threshold=6.0).tolist() == [False, False, False, False, True]
    assert colourful_images(torch.zeros(2, 2, 0, 4)).tolist() == [False, False]


def test_black_and_white_dev_photos_are_colourless(dev_image_paths) -> None:
    grey, colour = [], []
    for path in dev_image_paths:
        with Image.open(path) as image:
            (grey if image.mode == "L" else colour).append(path)
        if len(grey) >= 3 and len(colour) >= 3:
            break
    assert len(grey) >= 3, "the dev set has 9 single-channel photographs"
    assert not colourful_images(torch.cat([_photo_ab(path) for path in grey])).any()
    assert colourful_images(torch.cat([_photo_ab(path) for path in colour[:3]])).all()


# --- smooth_ab_prior -------------------------------------------------------------------------------------------


def _scipy_smoothed(counts: np.ndarray, bins: np.ndarray, sigma: float) -> np.ndarray:
    """The authors' route: histogram on the dense ab grid, 2-D Gaussian filter (zero outside), read at the bins."""
    cells = np.rint(bins / AB_GRID_STEP).astype(np.int64)
    pad = 4  # beyond the filter's radius of 2 cells, so nothing is cut at the border
    offset = cells.min(axis=0) - pad
    grid = np.zeros(tuple(cells.max(axis=0) - offset + pad + 1))
    grid[cells[:, 0] - offset[0], cells[:, 1] - offset[1]] = counts / counts.sum()
    smoothed = gaussian_filter(grid, sigma=sigma / AB_GRID_STEP, mode="constant", cval=0.0, truncate=4.0)
    at_bins = smoothed[cells[:, 0] - offset[0], cells[:, 1] - offset[1]]
    return at_bins / at_bins.sum()


# The filter cuts kernel values below exp(-18) (distances >= 3 cells at sigma = 0.5 cell); the entries then differ
# by at most exp(-18) + (the kernel's tail mass beyond the cut) ~ 1.5e-8 + 8e-8 (derivation in the report).
_SCIPY_TRUNCATION_BOUND = 1e-7


@settings(max_examples=15, deadline=None)
@given(counts=arrays(np.int64, st.just(261), elements=st.integers(0, 1000)))
def test_smoothing_equals_scipy_gaussian_filter(counts: np.ndarray) -> None:
    bins = default_ab_bins(dtype=torch.float64)
    assert len(bins) == len(counts)
    counts[0] += 1  # a positive total
    ours = smooth_ab_prior(torch.from_numpy(counts), bins, sigma=SOFT_ENCODE_SIGMA)
    assert ours.dtype == torch.float64 and float(ours.sum()) == pytest.approx(1.0, abs=1e-12)
    reference = _scipy_smoothed(counts, bins.numpy(), SOFT_ENCODE_SIGMA)
    np.testing.assert_allclose(ours.numpy(), reference, rtol=0, atol=_SCIPY_TRUNCATION_BOUND)


def test_smoothing_real_photo_counts_with_official_bins(dev_image_paths, zhang_bins_file) -> None:
    official = load_ab_bins(zhang_bins_file).double()
    ab = torch.cat([_photo_ab(path) for path in dev_image_paths[10:16]])
    counts = ab_bin_counts(ab, official)
    ours = smooth_ab_prior(counts, official).numpy()
    reference = _scipy_smoothed(counts.numpy(), official.numpy(), SOFT_ENCODE_SIGMA)
    assert np.abs(ours - reference).max() <= _SCIPY_TRUNCATION_BOUND
    # Smoothing spreads mass: bins that no pixel hit but whose neighbours were hit get some.
    assert (ours[counts.numpy() == 0] > 1e-4).any()
    assert np.count_nonzero(ours) > np.count_nonzero(counts.numpy())


def test_smoothing_small_sigma_is_identity_and_errors(bins: torch.Tensor) -> None:
    counts = torch.zeros(len(bins), dtype=torch.int64)
    counts[[3, 50, 100]] = torch.tensor([1, 2, 5])
    tiny = smooth_ab_prior(counts, bins, sigma=0.5)  # neighbours at 10 get exp(-200) relative
    assert torch.allclose(tiny, counts.double() / counts.sum(), atol=1e-80)
    with pytest.raises(ValueError, match="positive sum"):
        smooth_ab_prior(torch.zeros(len(bins)), bins)
    with pytest.raises(ValueError, match="non-negative"):
        smooth_ab_prior(-counts, bins)
    with pytest.raises(ValueError, match="one per bin"):
        smooth_ab_prior(counts[:-1], bins)
    with pytest.raises(ValueError, match="sigma"):
        smooth_ab_prior(counts, bins, sigma=-1.0)


# --- rebalance_weights -----------------------------------------------------------------------------------------


def _prior_factor(prior: np.ndarray, uniform_mix: float) -> np.ndarray:
    """PriorFactor of caffe_traininglayers.py (alpha = 1, gamma = lambda), plus this project's zero-prior rule."""
    prior = prior / prior.sum()
    uniform = (prior != 0).astype(np.float64)
    uniform /= uniform.sum()
    mixed = (1 - uniform_mix) * prior + uniform_mix * uniform
    weights = np.full_like(prior, np.nan)
    weights[prior != 0] = 1.0 / mixed[prior != 0]
    weights[prior == 0] = weights[prior != 0].max()
    return weights / np.sum(prior * weights)


_PRIORS = arrays(
    np.float64,
    st.integers(2, 40),
    elements=st.one_of(st.just(0.0), st.floats(1e-6, 1.0)),
).filter(lambda p: p.sum() > 0)


@settings(max_examples=60, deadline=None)
@given(prior=_PRIORS, uniform_mix=st.floats(0.0, 1.0))
def test_weights_have_unit_expectation_and_match_prior_factor(prior: np.ndarray, uniform_mix: float) -> None:
    weights = rebalance_weights(torch.from_numpy(prior), uniform_mix=uniform_mix)
    normalized = prior / prior.sum()
    assert weights.dtype == torch.float64 and torch.isfinite(weights).all() and (weights > 0).all()
    assert float((torch.from_numpy(normalized) * weights).sum()) == pytest.approx(1.0, rel=1e-12)
    np.testing.assert_allclose(weights.numpy(), _prior_factor(prior, uniform_mix), rtol=1e-10)
    # Rarer bins weigh more (zero-prior bins weigh as much as the rarest seen bin).
    order = np.argsort(normalized, kind="stable")
    assert np.all(np.diff(weights.numpy()[order]) <= 1e-12 * weights.numpy().max())


def test_weights_limits_of_the_uniform_mix() -> None:
    prior = torch.tensor([0.5, 0.3, 0.0, 0.15, 0.05], dtype=torch.float64)
    assert torch.allclose(rebalance_weights(prior, uniform_mix=1.0), torch.ones(5, dtype=torch.float64))
    inverse = rebalance_weights(prior, uniform_mix=0.0)
    seen = prior > 0
    assert torch.allclose(inverse[seen], 1.0 / (int(seen.sum()) * prior[seen]))  # w = 1 / (Q' p)
    assert float(inverse[~seen]) == float(inverse[seen].max())
    paper = rebalance_weights(prior)  # lambda = 0.5: strictly between the two
    assert (paper[seen] < inverse[seen]).sum() + (paper[seen] > inverse[seen]).sum() == int(seen.sum())
    assert torch.argsort(paper[seen]).tolist() == torch.argsort(inverse[seen]).tolist()
    assert rebalance_weights(prior.float()).dtype == torch.float32
    assert rebalance_weights(torch.tensor([3, 1])).dtype == torch.float64  # counts are fine too


def test_weights_errors() -> None:
    with pytest.raises(ValueError, match="uniform_mix"):
        rebalance_weights(torch.ones(3), uniform_mix=1.5)
    with pytest.raises(ValueError, match="positive sum"):
        rebalance_weights(torch.zeros(3))
    with pytest.raises(ValueError, match="non-negative"):
        rebalance_weights(torch.tensor([0.5, -0.1, 0.6]))
    with pytest.raises(ValueError, match="shape"):
        rebalance_weights(torch.ones(2, 2))


# --- pixel_rebalance_weights -----------------------------------------------------------------------------------


def test_pixel_weights_are_the_weight_of_the_argmax_bin(bins: torch.Tensor) -> None:
    generator = np.random.default_rng(2)
    ab = torch.from_numpy(generator.normal(0, 35, size=(3, 2, 5, 6)))
    weights = torch.from_numpy(generator.uniform(0.1, 10.0, size=len(bins)))
    soft_target = soft_encode_ab(ab, bins, neighbours=10)
    pixel_weights = pixel_rebalance_weights(soft_target, weights)
    assert pixel_weights.shape == (3, 5, 6) and pixel_weights.dtype == torch.float64
    expected = np.zeros((3, 5, 6))
    for i, y, x in np.ndindex(3, 5, 6):
        expected[i, y, x] = weights[int(np.argmax(soft_target[i, :, y, x].numpy()))]
    assert np.array_equal(pixel_weights.numpy(), expected)
    assert torch.equal(pixel_weights, weights[hard_encode_ab(ab, bins)])  # the argmax is the nearest bin
    with pytest.raises(ValueError, match="one per bin"):
        pixel_rebalance_weights(soft_target, weights[:-1])


def test_rebalancing_pipeline_on_real_photos(dev_image_paths, bins: torch.Tensor) -> None:
    ab = torch.cat([_photo_ab(path) for path in dev_image_paths[20:26]])
    mask = colourful_images(ab)
    counts = ab_bin_counts(ab, bins, pixel_mask=mask[:, None, None])
    weights = rebalance_weights(smooth_ab_prior(counts, bins))
    pixel_weights = pixel_rebalance_weights(soft_encode_ab(ab, bins), weights)
    assert torch.isfinite(pixel_weights).all() and (pixel_weights > 0).all()
    # Desaturated pixels dominate photos, so they get the smallest weights.
    grey_bin = int(bins.norm(dim=1).argmin())
    assert float(weights[grey_bin]) < float(weights.median())
