"""Larsson bins and one-hot targets against scipy's normal quantiles and brute-force loops."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from colorization.color.constants import (
    LARSSON_HUE_CHROMA_BINS,
    LARSSON_JOINT_BINS,
    LARSSON_LAB_SIGMA,
    LARSSON_MARGINAL_BINS,
)
from colorization.color.larsson_bins import (
    bin_index,
    encode_joint_ab,
    encode_marginal,
    gaussian_quantile_centres,
    gaussian_quantile_edges,
    joint_ab_bin_index,
    uniform_centres,
    uniform_edges,
)

BIN_COUNTS = [1, 2, 7, LARSSON_JOINT_BINS, LARSSON_MARGINAL_BINS, 33]


def brute_force_bin(value: float, edges: np.ndarray) -> int:
    """The last bin k whose lower edge is <= value (bin 0 catches everything below)."""
    k = 0
    for j in range(1, len(edges) - 1):
        if value >= edges[j]:
            k = j
    return k


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
@pytest.mark.parametrize("sigma", [LARSSON_LAB_SIGMA, 7.5])
def test_centres_and_edges_are_scipy_quantiles(num_bins: int, sigma: float) -> None:
    centres = gaussian_quantile_centres(num_bins, sigma, dtype=torch.float64).numpy()
    edges = gaussian_quantile_edges(num_bins, sigma, dtype=torch.float64).numpy()
    k = np.arange(num_bins)
    np.testing.assert_allclose(centres, norm.ppf((k + 0.5) / num_bins, scale=sigma), rtol=1e-12, atol=1e-10)
    assert edges.shape == (num_bins + 1,)
    assert edges[0] == -np.inf and edges[-1] == np.inf
    np.testing.assert_allclose(edges[1:-1], norm.ppf(k[1:] / num_bins, scale=sigma), rtol=1e-12, atol=1e-10)


def test_default_centres_are_float32_marginal_bins() -> None:
    centres = gaussian_quantile_centres()
    assert centres.dtype == torch.float32 and centres.shape == (LARSSON_MARGINAL_BINS,)
    expected = norm.ppf((np.arange(LARSSON_MARGINAL_BINS) + 0.5) / LARSSON_MARGINAL_BINS, scale=LARSSON_LAB_SIGMA)
    np.testing.assert_allclose(centres.numpy(), expected, rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
def test_centres_are_increasing_and_symmetric(num_bins: int) -> None:
    centres = gaussian_quantile_centres(num_bins, dtype=torch.float64)
    assert torch.all(centres[1:] > centres[:-1])
    torch.testing.assert_close(centres, -centres.flip(0), rtol=0, atol=1e-10)
    edges = gaussian_quantile_edges(num_bins, dtype=torch.float64)
    torch.testing.assert_close(edges, -edges.flip(0), rtol=0, atol=1e-10)


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
def test_each_bin_holds_equal_gaussian_mass(num_bins: int) -> None:
    edges = gaussian_quantile_edges(num_bins, dtype=torch.float64).numpy()
    masses = np.diff(norm.cdf(edges, scale=LARSSON_LAB_SIGMA))
    np.testing.assert_allclose(masses, np.full(num_bins, 1.0 / num_bins), rtol=0, atol=1e-12)


def test_monte_carlo_gaussian_samples_fill_bins_equally() -> None:
    num_samples = 200_000
    samples = np.random.default_rng(0).normal(0.0, LARSSON_LAB_SIGMA, size=num_samples)
    index = bin_index(torch.from_numpy(samples), gaussian_quantile_edges(dtype=torch.float64))
    counts = np.bincount(index.numpy(), minlength=LARSSON_MARGINAL_BINS)
    p = 1.0 / LARSSON_MARGINAL_BINS
    # each count is Binomial(n, 1/K): 6 standard deviations leaves no room for flakiness
    assert np.abs(counts / num_samples - p).max() < 6.0 * np.sqrt(p * (1 - p) / num_samples)


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
def test_each_centre_lies_in_its_own_bin(num_bins: int) -> None:
    for dtype in (torch.float32, torch.float64):
        centres = gaussian_quantile_centres(num_bins, dtype=dtype)
        assert torch.equal(bin_index(centres, gaussian_quantile_edges(num_bins, dtype=dtype)), torch.arange(num_bins))
        centres = uniform_centres(num_bins, dtype=dtype)
        assert torch.equal(bin_index(centres, uniform_edges(num_bins, dtype=dtype)), torch.arange(num_bins))


@pytest.mark.parametrize("num_bins", BIN_COUNTS)
def test_uniform_centres_and_edges(num_bins: int) -> None:
    k = np.arange(num_bins)
    np.testing.assert_allclose(uniform_centres(num_bins, dtype=torch.float64).numpy(), (k + 0.5) / num_bins, atol=1e-15)
    edges = uniform_edges(num_bins, dtype=torch.float64).numpy()
    np.testing.assert_allclose(edges, np.arange(num_bins + 1) / num_bins, atol=1e-15)
    assert uniform_centres().shape == (LARSSON_HUE_CHROMA_BINS,)


def test_uniform_bin_index_at_the_ends_of_the_unit_interval() -> None:
    num_bins = LARSSON_HUE_CHROMA_BINS
    values = torch.tensor([-0.2, 0.0, 1.0 / num_bins, 0.5, np.nextafter(1.0, 0.0), 1.0, 1.3], dtype=torch.float64)
    assert bin_index(values, uniform_edges(num_bins, dtype=torch.float64)).tolist() == [
        0, 0, 1, num_bins // 2, num_bins - 1, num_bins - 1, num_bins - 1,
    ]
    assert bin_index(torch.ones(3), uniform_edges(num_bins)).tolist() == [num_bins - 1] * 3


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(-150.0, 150.0, allow_nan=False), min_size=1, max_size=40),
    num_bins=st.sampled_from(BIN_COUNTS),
    gaussian=st.booleans(),
)
def test_bin_index_matches_brute_force(values: list[float], num_bins: int, gaussian: bool) -> None:
    if gaussian:
        edges = gaussian_quantile_edges(num_bins, dtype=torch.float64)
    else:
        edges = uniform_edges(num_bins, dtype=torch.float64)
        values = [v / 100.0 for v in values]  # around [0, 1], with some outside
    edges_np = edges.numpy()
    got = bin_index(torch.tensor(values, dtype=torch.float64), edges)
    assert got.dtype == torch.int64
    assert got.tolist() == [brute_force_bin(v, edges_np) for v in values]


def test_quantile_bins_match_autocolorize_cdf_rule() -> None:
    """autocolorize bins the Gaussian CDF value uniformly: floor(K * Phi(v / sigma)), clamped."""
    values = np.random.default_rng(1).normal(0.0, 40.0, size=5000)
    num_bins = LARSSON_MARGINAL_BINS
    expected = np.minimum(np.floor(num_bins * norm.cdf(values, scale=LARSSON_LAB_SIGMA)), num_bins - 1)
    edges = gaussian_quantile_edges(num_bins, dtype=torch.float64)
    got = bin_index(torch.from_numpy(values), edges).numpy()
    near_edge = np.abs(values[:, None] - edges.numpy()[None, 1:-1]).min(axis=1) < 1e-9
    assert not near_edge.all()
    np.testing.assert_array_equal(got[~near_edge], expected[~near_edge])


@pytest.mark.parametrize("trailing", [(5, 4), (9,), ()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_encode_marginal_is_one_hot_at_the_brute_force_bin(trailing: tuple[int, ...], dtype: torch.dtype) -> None:
    generator = torch.Generator().manual_seed(2)
    values = (60.0 * torch.randn((3, *trailing), generator=generator)).to(dtype)
    edges = gaussian_quantile_edges(dtype=dtype)
    histogram = encode_marginal(values, edges)
    assert histogram.shape == (3, LARSSON_MARGINAL_BINS, *trailing) and histogram.dtype == dtype
    assert set(histogram.unique().tolist()) <= {0.0, 1.0}
    torch.testing.assert_close(histogram.sum(dim=1), torch.ones_like(values))
    edges_np = edges.double().numpy()
    expected = np.vectorize(lambda v: brute_force_bin(float(v), edges_np))(values.numpy())
    np.testing.assert_array_equal(histogram.argmax(dim=1).numpy(), expected)


def test_encode_marginal_uniform_bins_for_hue() -> None:
    hue = torch.tensor([[0.0, 0.26, 0.999, 1.0]])
    histogram = encode_marginal(hue, uniform_edges(4))
    expected = torch.tensor([[[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1]]]).transpose(1, 2)
    assert torch.equal(histogram, expected)


@pytest.mark.parametrize("trailing", [(6, 5), (11,)])
def test_joint_index_is_consistent_with_the_marginals(trailing: tuple[int, ...]) -> None:
    generator = torch.Generator().manual_seed(3)
    ab = 35.0 * torch.randn((2, 2, *trailing), generator=generator, dtype=torch.float64)
    num_bins = LARSSON_JOINT_BINS
    joint = encode_joint_ab(ab)
    assert joint.shape == (2, num_bins * num_bins, *trailing) and joint.dtype == torch.float64
    assert set(joint.unique().tolist()) == {0.0, 1.0}
    torch.testing.assert_close(joint.sum(dim=1), torch.ones_like(ab[:, 0]))

    edges = gaussian_quantile_edges(num_bins, dtype=torch.float64)
    edges_np = edges.numpy()
    ka = np.vectorize(lambda v: brute_force_bin(float(v), edges_np))(ab[:, 0].numpy())
    kb = np.vectorize(lambda v: brute_force_bin(float(v), edges_np))(ab[:, 1].numpy())
    np.testing.assert_array_equal(joint.argmax(dim=1).numpy(), ka * num_bins + kb)
    assert torch.equal(joint_ab_bin_index(ab), joint.argmax(dim=1))

    grid = joint.reshape(2, num_bins, num_bins, *trailing)
    torch.testing.assert_close(grid.sum(dim=2), encode_marginal(ab[:, 0], edges))
    torch.testing.assert_close(grid.sum(dim=1), encode_marginal(ab[:, 1], edges))


def test_bad_shapes_are_rejected() -> None:
    with pytest.raises(ValueError):
        encode_joint_ab(torch.zeros(2, 3, 4))
    with pytest.raises(ValueError):
        bin_index(torch.zeros(3), torch.zeros(1))
    with pytest.raises(ValueError):
        gaussian_quantile_centres(0)
