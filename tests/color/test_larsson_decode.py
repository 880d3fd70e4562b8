"""Larsson decoders against numpy brute force, closed forms and sampling statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st
from scipy.stats import chi2

from colorization.color.constants import (
    LARSSON_CHROMATIC_FADING_ETA,
    LARSSON_HUE_CHROMA_BINS,
    LARSSON_JOINT_BINS,
    LARSSON_MARGINAL_BINS,
)
from colorization.color.larsson_bins import (
    bin_index,
    encode_joint_ab,
    gaussian_quantile_centres,
    gaussian_quantile_edges,
    uniform_centres,
)
from colorization.color.larsson_decode import (
    chromatic_fading,
    decode_expectation,
    decode_hue_chroma,
    decode_hue_circular,
    decode_joint_expectation,
    decode_joint_mode,
    decode_median,
    decode_mode,
    decode_sample,
)

CENTRE_SETS = {
    "lab": lambda k: gaussian_quantile_centres(k, dtype=torch.float64),
    "uniform": lambda k: uniform_centres(k, dtype=torch.float64),
}


def brute_force_median(p: np.ndarray, c: np.ndarray) -> float:
    """The documented interpolated rule, by scanning every segment of the centre-anchored CDF."""
    level = 0.5 * p.sum()
    g = np.cumsum(p) - 0.5 * p
    hits = [c[k] for k in range(len(p)) if abs(g[k] - level) <= 1e-12]
    for k in range(len(p) - 1):
        if (g[k] - level) * (g[k + 1] - level) < 0:
            hits.append(c[k] + (level - g[k]) / (g[k + 1] - g[k]) * (c[k + 1] - c[k]))
    return 0.5 * (min(hits) + max(hits))


def brute_force_discrete_median(p: np.ndarray, c: np.ndarray) -> float:
    running = 0.0
    for k in range(len(p)):
        running += p[k]
        if running >= 0.5 * p.sum():
            return float(c[k])
    return float(c[-1])


def random_histograms(shape: tuple[int, ...], seed: int, sparsity: float = 0.4) -> torch.Tensor:
    """Histograms (N, K, *S) in float64 with about ``sparsity`` of the bins empty."""
    rng = np.random.default_rng(seed)
    p = rng.random(shape) * (rng.random(shape) > sparsity)
    p[:, 0] += 1e-3  # no empty rows
    return torch.from_numpy(p / p.sum(axis=1, keepdims=True))


@pytest.mark.parametrize("kind", sorted(CENTRE_SETS))
@pytest.mark.parametrize("num_bins", [1, 2, 5, LARSSON_MARGINAL_BINS])
def test_one_hot_decodes_to_its_centre(kind: str, num_bins: int) -> None:
    centres = CENTRE_SETS[kind](num_bins)
    one_hot = torch.eye(num_bins, dtype=torch.float64)  # (N = K, K): row k is bin k
    dense = one_hot[:, :, None, None].expand(num_bins, num_bins, 2, 3)
    for probs in (one_hot, dense):
        expected = centres.reshape(-1, *([1] * (probs.ndim - 2))).expand(probs.shape[:1] + probs.shape[2:])
        for decoded in (
            decode_expectation(probs, centres),
            decode_mode(probs, centres),
            decode_median(probs, centres),
            decode_median(probs, centres, interpolate=False),
            decode_sample(probs, centres, torch.Generator().manual_seed(0)),
        ):
            torch.testing.assert_close(decoded, expected, rtol=0, atol=1e-12)


def test_expectation_and_mode_match_numpy() -> None:
    probs = random_histograms((3, LARSSON_MARGINAL_BINS, 4, 5), seed=0)
    centres = gaussian_quantile_centres(dtype=torch.float64)
    p, c = probs.numpy(), centres.numpy()
    expectation = np.zeros((3, 4, 5))
    mode = np.zeros((3, 4, 5))
    for n in range(3):
        for i in range(4):
            for j in range(5):
                expectation[n, i, j] = sum(p[n, k, i, j] * c[k] for k in range(len(c)))
                mode[n, i, j] = c[int(np.argmax(p[n, :, i, j]))]
    np.testing.assert_allclose(decode_expectation(probs, centres).numpy(), expectation, atol=1e-12)
    np.testing.assert_array_equal(decode_mode(probs, centres).numpy(), mode)


@pytest.mark.parametrize("kind", sorted(CENTRE_SETS))
@pytest.mark.parametrize("seed", range(4))
def test_median_matches_brute_force_rule(kind: str, seed: int) -> None:
    num_bins = 12
    probs = random_histograms((40, num_bins, 3), seed=seed, sparsity=0.3 + 0.15 * seed)
    centres = CENTRE_SETS[kind](num_bins)
    p, c = probs.numpy(), centres.numpy()
    interpolated = decode_median(probs, centres).numpy()
    discrete = decode_median(probs, centres, interpolate=False).numpy()
    for n in range(p.shape[0]):
        for s in range(p.shape[2]):
            assert interpolated[n, s] == pytest.approx(brute_force_median(p[n, :, s], c), abs=1e-9)
            assert discrete[n, s] == brute_force_discrete_median(p[n, :, s], c)
    assert np.all((interpolated >= c[0] - 1e-12) & (interpolated <= c[-1] + 1e-12))


@settings(max_examples=80, deadline=None)
@given(
    half=st.lists(st.sampled_from([0.0, 0.0, 0.1, 0.5, 1.0, 3.0]), min_size=1, max_size=8),
    odd=st.booleans(),
    kind=st.sampled_from(sorted(CENTRE_SETS)),
    dtype=st.sampled_from([torch.float64, torch.float32]),
)
@example(half=[0.1, 0.1, 0.1, 0.0], odd=False, kind="lab", dtype=torch.float64)  # gap where sums round below 1/2
def test_median_of_a_symmetric_histogram_is_its_centre_of_symmetry(
    half: list[float], odd: bool, kind: str, dtype: torch.dtype
) -> None:
    middle = [1.0] if odd else []
    p = np.array(half + middle + half[::-1])
    if p.sum() == 0:
        p[0] = p[-1] = 1.0
    centres = CENTRE_SETS[kind](len(p)).to(dtype)
    probs = torch.from_numpy(p / p.sum()).to(dtype)[None, :, None]
    symmetry_centre = 0.0 if kind == "lab" else 0.5
    tolerance = 1e-9 if dtype == torch.float64 else 1e-3
    assert decode_median(probs, centres).item() == pytest.approx(symmetry_centre, abs=tolerance)


def test_median_of_two_adjacent_halves_is_their_midpoint() -> None:
    centres = gaussian_quantile_centres(dtype=torch.float64)
    probs = torch.zeros(LARSSON_MARGINAL_BINS - 1, LARSSON_MARGINAL_BINS, dtype=torch.float64)
    k = torch.arange(LARSSON_MARGINAL_BINS - 1)
    probs[k, k] = probs[k, k + 1] = 0.5
    torch.testing.assert_close(decode_median(probs, centres), 0.5 * (centres[:-1] + centres[1:]))


def test_median_in_float32_on_softmax_outputs() -> None:
    logits = torch.randn(4, LARSSON_HUE_CHROMA_BINS, 8, 8, generator=torch.Generator().manual_seed(5))
    probs = logits.softmax(dim=1)
    centres = uniform_centres()
    median = decode_median(probs, centres)
    assert median.dtype == torch.float32 and median.shape == (4, 8, 8)
    reference = decode_median(probs.double(), centres.double())
    torch.testing.assert_close(median.double(), reference, rtol=0, atol=1e-5)


def test_sample_is_reproducible_with_a_fixed_generator() -> None:
    probs = random_histograms((2, LARSSON_MARGINAL_BINS, 16, 16), seed=1)
    centres = gaussian_quantile_centres(dtype=torch.float64)
    first = decode_sample(probs, centres, torch.Generator().manual_seed(7))
    again = decode_sample(probs, centres, torch.Generator().manual_seed(7))
    other = decode_sample(probs, centres, torch.Generator().manual_seed(8))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)
    assert first.shape == (2, 16, 16)
    assert torch.isin(first, centres).all()


def test_sample_frequencies_converge_to_the_histogram() -> None:
    num_bins, num_draws = 10, 200_000
    p = np.array([0.3, 0.0, 0.05, 0.15, 0.0, 0.2, 0.1, 0.0, 0.15, 0.05])
    probs = torch.from_numpy(p)[None, :, None].expand(1, num_bins, num_draws)
    centres = uniform_centres(num_bins, dtype=torch.float64)
    draws = decode_sample(probs, centres, torch.Generator().manual_seed(11))
    counts = np.bincount(bin_index(draws, torch.linspace(0, 1, num_bins + 1, dtype=torch.float64)).ravel().numpy(),
                         minlength=num_bins)
    assert counts[p == 0].sum() == 0  # empty bins are never drawn
    expected = num_draws * p[p > 0]
    statistic = ((counts[p > 0] - expected) ** 2 / expected).sum()
    assert statistic < chi2.ppf(1 - 1e-6, df=(p > 0).sum() - 1)


@pytest.mark.parametrize("num_bins", [4, LARSSON_HUE_CHROMA_BINS])
def test_hue_of_a_one_hot_is_its_bin_centre(num_bins: int) -> None:
    hue, magnitude = decode_hue_circular(torch.eye(num_bins, dtype=torch.float64))
    torch.testing.assert_close(hue, (torch.arange(num_bins, dtype=torch.float64) + 0.5) / num_bins)
    torch.testing.assert_close(magnitude, torch.full((num_bins,), 1.0 / num_bins, dtype=torch.float64))


def test_hue_split_between_first_and_last_bins_wraps_to_zero() -> None:
    num_bins = LARSSON_HUE_CHROMA_BINS
    probs = torch.zeros(1, num_bins, 1)
    probs[0, 0] = probs[0, -1] = 0.5
    hue, magnitude = decode_hue_circular(probs)
    assert min(hue.item(), 1.0 - hue.item()) < 1e-6  # not 0.5, the linear average
    assert magnitude.item() == pytest.approx(math.cos(math.pi / num_bins) / num_bins, rel=1e-6)


def test_hue_stays_below_one_when_the_angle_is_a_tiny_negative() -> None:
    num_bins = LARSSON_HUE_CHROMA_BINS
    probs = torch.zeros(1, num_bins)
    probs[0, 0] = 0.5
    probs[0, -1] = float(np.nextafter(np.float32(0.5), np.float32(1.0)))
    hue, _ = decode_hue_circular(probs)
    assert 0.0 <= hue.item() < 1.0 and min(hue.item(), 1.0 - hue.item()) < 1e-6


def test_uniform_hue_histogram_has_no_magnitude() -> None:
    for num_bins in (3, LARSSON_HUE_CHROMA_BINS):
        _, magnitude = decode_hue_circular(torch.full((2, num_bins, 3), 1.0 / num_bins))
        assert magnitude.abs().max() < 1e-7


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), num_bins=st.sampled_from([2, 3, 8, LARSSON_HUE_CHROMA_BINS]))
def test_circular_expectation_matches_numpy_complex_mean(seed: int, num_bins: int) -> None:
    probs = random_histograms((6, num_bins, 5), seed=seed)
    hue, magnitude = decode_hue_circular(probs)
    theta = 2 * np.pi * (np.arange(num_bins) + 0.5) / num_bins
    z = (probs.numpy() * np.exp(1j * theta)[None, :, None]).mean(axis=1)  # the paper's 1/K
    expected_hue = (np.angle(z) / (2 * np.pi)) % 1.0
    circular_error = np.abs((hue.numpy() - expected_hue + 0.5) % 1.0 - 0.5)
    assert circular_error.max() < 1e-9
    np.testing.assert_allclose(magnitude.numpy(), np.abs(z), atol=1e-12)
    assert ((hue >= 0) & (hue < 1)).all()


def test_chromatic_fading_formula() -> None:
    eta = LARSSON_CHROMATIC_FADING_ETA
    chroma = torch.tensor([0.4, 0.4, 0.4, 0.4, 0.0])
    magnitude = torch.tensor([0.0, eta / 4, eta, 2 * eta, eta / 2])
    expected = chroma.numpy() * np.minimum(magnitude.numpy() / eta, 1.0)
    np.testing.assert_allclose(chromatic_fading(chroma, magnitude).numpy(), expected, rtol=1e-6)
    np.testing.assert_allclose(chromatic_fading(chroma, magnitude, eta=0.5).numpy(),
                               chroma.numpy() * np.minimum(magnitude.numpy() / 0.5, 1.0), rtol=1e-6)
    with pytest.raises(ValueError):
        chromatic_fading(chroma, magnitude, eta=0.0)


def test_fading_convention_keeps_sharp_hues_and_removes_uniform_ones() -> None:
    """With |z| = |mean_k p_k e^{i theta_k}| (autocolorize) and K = 32, eta = 0.03 means R >= 0.96."""
    num_bins = LARSSON_HUE_CHROMA_BINS
    sharp = torch.zeros(1, num_bins)
    sharp[0, 5] = 1.0
    spread = torch.zeros(1, num_bins)
    spread[0, 4:11] = 1.0 / 7  # seven adjacent bins: mean resultant length sin(7 pi / K) / (7 sin(pi / K))
    uniform = torch.full((1, num_bins), 1.0 / num_bins)
    chroma = torch.ones(1)
    factors = [chromatic_fading(chroma, decode_hue_circular(p)[1]).item() for p in (sharp, spread, uniform)]
    resultant = math.sin(7 * math.pi / num_bins) / (7 * math.sin(math.pi / num_bins))
    assert factors[0] == pytest.approx(1.0)
    assert factors[1] == pytest.approx(resultant / (num_bins * LARSSON_CHROMATIC_FADING_ETA), rel=1e-5)
    assert factors[2] < 1e-5


def test_decode_hue_chroma_composes_the_released_default() -> None:
    generator = torch.Generator().manual_seed(4)
    hue_probs = (3 * torch.randn(2, LARSSON_HUE_CHROMA_BINS, 6, generator=generator)).softmax(dim=1)
    chroma_probs = torch.randn(2, LARSSON_HUE_CHROMA_BINS, 6, generator=generator).softmax(dim=1)
    hue, chroma = decode_hue_chroma(hue_probs, chroma_probs)
    expected_hue, magnitude = decode_hue_circular(hue_probs)
    expected_chroma = decode_median(chroma_probs, uniform_centres()) * torch.clamp(
        magnitude / LARSSON_CHROMATIC_FADING_ETA, max=1.0)
    torch.testing.assert_close(hue, expected_hue)
    torch.testing.assert_close(chroma, expected_chroma)


def test_joint_decoders_match_brute_force() -> None:
    num_bins = LARSSON_JOINT_BINS
    probs = random_histograms((2, num_bins * num_bins, 3, 2), seed=9)
    centres = gaussian_quantile_centres(num_bins, dtype=torch.float64)
    p, c = probs.numpy(), centres.numpy()
    expected_mean = np.zeros((2, 2, 3, 2))
    expected_mode = np.zeros((2, 2, 3, 2))
    for n in range(2):
        for i in range(3):
            for j in range(2):
                for ka in range(num_bins):
                    for kb in range(num_bins):
                        weight = p[n, ka * num_bins + kb, i, j]
                        expected_mean[n, :, i, j] += weight * np.array([c[ka], c[kb]])
                best = int(np.argmax(p[n, :, i, j]))
                expected_mode[n, :, i, j] = [c[best // num_bins], c[best % num_bins]]
    np.testing.assert_allclose(decode_joint_expectation(probs, centres).numpy(), expected_mean, atol=1e-12)
    np.testing.assert_array_equal(decode_joint_mode(probs, centres).numpy(), expected_mode)


def test_joint_one_hot_decodes_to_the_centres_of_its_marginal_bins() -> None:
    ab = 30.0 * torch.randn(3, 2, 7, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    centres = gaussian_quantile_centres(LARSSON_JOINT_BINS, dtype=torch.float64)
    edges = gaussian_quantile_edges(LARSSON_JOINT_BINS, dtype=torch.float64)
    expected = centres[bin_index(ab, edges)]
    joint = encode_joint_ab(ab)
    torch.testing.assert_close(decode_joint_expectation(joint, centres), expected)
    torch.testing.assert_close(decode_joint_mode(joint, centres), expected)


def test_bad_shapes_are_rejected() -> None:
    centres = gaussian_quantile_centres()
    with pytest.raises(ValueError):
        decode_expectation(torch.ones(2, 31, 3), centres)
    with pytest.raises(ValueError):
        decode_joint_expectation(torch.ones(2, LARSSON_MARGINAL_BINS, 3), centres)
    with pytest.raises(ValueError):
        decode_hue_circular(torch.ones(5))
