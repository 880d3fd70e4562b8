"""Zhang et al. Sec. 2.1 bins and encodings, each checked against an independent numpy / scikit-image reference."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from skimage.color import rgb2lab

import colorization.color.ab_bins as ab_bins_module
from colorization.color.ab_bins import (
    default_ab_bins,
    hard_encode_ab,
    nearest_ab_bins,
    soft_encode_ab,
    validate_ab_bins,
)
from colorization.color.constants import AB_GRID_STEP, SOFT_ENCODE_NEIGHBOURS, SOFT_ENCODE_SIGMA
from colorization.color.lab import rgb_to_lab, split_lab
from colorization.io.ab_bins_file import load_ab_bins

DEFAULT_BINS_Q = 261  # what the gamut rule of default_ab_bins gives at grid 10 (the full 8-bit cube agrees)


def _cells_of_rgb(rgb_uint8: np.ndarray, step: float = AB_GRID_STEP) -> set[tuple[int, int]]:
    """Grid cells (integer multiples of step) nearest to the ab of 8-bit colours, via scikit-image."""
    ab = rgb2lab(rgb_uint8.reshape(-1, 1, 3).astype(np.float64) / 255.0)[:, 0, 1:]
    cells = np.rint(ab / step).astype(np.int64)  # (M, 2)
    low = cells.min(axis=0)
    occupied = np.zeros(cells.max(axis=0) - low + 1, dtype=bool)
    occupied[cells[:, 0] - low[0], cells[:, 1] - low[1]] = True  # far faster than a set of M tuples
    return set(map(tuple, (np.argwhere(occupied) + low).tolist()))


def _cells_of_bins(bins: torch.Tensor | np.ndarray, step: float = AB_GRID_STEP) -> set[tuple[int, int]]:
    return set(map(tuple, np.rint(np.asarray(bins, dtype=np.float64) / step).astype(np.int64).tolist()))


def _brute_force_nearest(ab: np.ndarray, bins: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel loop: squared distances sorted by (distance, index); returns (N, k, H, W) each."""
    n, _, h, w = ab.shape
    distances = np.zeros((n, k, h, w))
    indices = np.zeros((n, k, h, w), dtype=np.int64)
    for i in range(n):
        for y in range(h):
            for x in range(w):
                d2 = (ab[i, 0, y, x] - bins[:, 0]) ** 2 + (ab[i, 1, y, x] - bins[:, 1]) ** 2
                order = np.lexsort((np.arange(len(bins)), d2))[:k]
                distances[i, :, y, x] = d2[order]
                indices[i, :, y, x] = order
    return distances, indices


@pytest.fixture(scope="module")
def bins64() -> torch.Tensor:
    return default_ab_bins(dtype=torch.float64)


# --- default_ab_bins -------------------------------------------------------------------------------------------


def test_default_bins_on_grid_sorted_unique(bins64: torch.Tensor) -> None:
    bins = bins64.numpy()
    assert bins.shape == (DEFAULT_BINS_Q, 2)
    assert np.array_equal(bins, np.rint(bins / AB_GRID_STEP) * AB_GRID_STEP)  # every centre on the grid
    assert np.array_equal(np.lexsort((bins[:, 1], bins[:, 0])), np.arange(len(bins)))  # sorted by a, then b
    assert len(np.unique(bins, axis=0)) == len(bins)
    assert default_ab_bins().dtype == torch.float32
    assert torch.equal(default_ab_bins(), bins64.float())


def test_default_bins_follow_the_documented_lattice_rule(bins64: torch.Tensor) -> None:
    # The rule: cells nearest to the ab of the 8-bit colours with levels {0, 4, ..., 252, 255}.
    levels = np.array(sorted(set(range(0, 256, 4)) | {255}), dtype=np.uint8)
    lattice = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1)
    assert _cells_of_rgb(lattice) == _cells_of_bins(bins64)  # each bin is hit, and nothing else is


def test_default_bins_equal_the_cells_of_the_full_8bit_cube(bins64: torch.Tensor) -> None:
    all_levels = np.arange(256, dtype=np.uint8)
    cells: set[tuple[int, int]] = set()
    for red in range(0, 256, 32):  # 32 x 256 x 256 colours at a time
        reds = np.arange(red, red + 32, dtype=np.uint8)
        block = np.stack(np.meshgrid(reds, all_levels, all_levels, indexing="ij"), axis=-1)
        cells |= _cells_of_rgb(block)
    assert cells == _cells_of_bins(bins64)


def test_random_8bit_colours_encode_to_their_own_grid_cell(bins64: torch.Tensor) -> None:
    # Through this package's own float32 pipeline: the nearest bin is the colour's nearest grid point.
    rgb = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(3, 1, 200_000))).float() / 255.0
    ab = split_lab(rgb_to_lab(rgb)[None])[1]  # (1, 2, 1, M) raw
    nearest = default_ab_bins()[hard_encode_ab(ab, default_ab_bins())[0, 0]]  # (M, 2)
    grid_point = torch.round(ab[0, :, 0].T / AB_GRID_STEP) * AB_GRID_STEP
    assert torch.equal(nearest, grid_point)


def test_default_bins_other_grid_step_and_cache_returns_copies() -> None:
    coarse = default_ab_bins(grid_step=20.0, dtype=torch.float64)
    assert torch.equal(coarse, torch.round(coarse / 20.0) * 20.0)
    assert len(coarse) < DEFAULT_BINS_Q
    first = default_ab_bins()
    first.zero_()
    assert default_ab_bins().abs().sum() > 0
    with pytest.raises(ValueError, match="grid_step"):
        default_ab_bins(grid_step=0.0)


def test_official_bins_are_a_strict_superset_of_the_default(zhang_bins_file, bins64: torch.Tensor) -> None:
    official = load_ab_bins(zhang_bins_file)
    official_cells, default_cells = _cells_of_bins(official), _cells_of_bins(bins64)
    assert default_cells < official_cells
    assert len(official_cells - default_cells) == len(official) - DEFAULT_BINS_Q  # all 261 shared


# --- load_ab_bins / validate_ab_bins ---------------------------------------------------------------------------


def test_load_official_bins_keeps_file_order(zhang_bins_file) -> None:
    raw = np.load(zhang_bins_file)
    bins = load_ab_bins(zhang_bins_file)
    assert bins.dtype == torch.float32 and bins.shape == raw.shape and raw.shape[1] == 2
    assert np.array_equal(bins.numpy(), raw.astype(np.float32))
    assert np.array_equal(raw % AB_GRID_STEP, np.zeros_like(raw))  # on the grid of 10
    assert np.array_equal(np.lexsort((raw[:, 1], raw[:, 0])), np.arange(len(raw)))  # the file's a-then-b order


def test_load_ab_bins_errors(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="not found"):
        load_ab_bins(tmp_path / "missing.npy")
    np.save(tmp_path / "three_columns.npy", np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"shape \(Q, 2\)"):
        load_ab_bins(tmp_path / "three_columns.npy")
    np.save(tmp_path / "duplicates.npy", np.array([[0, 0], [10, 0], [0, 0]]))
    with pytest.raises(ValueError, match="duplicate"):
        load_ab_bins(tmp_path / "duplicates.npy")
    np.save(tmp_path / "objects.npy", np.array([[0, 0], [10, "x"]], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="npy"):
        load_ab_bins(tmp_path / "objects.npy")
    (tmp_path / "text.npy").write_text("not an array")
    with pytest.raises(ValueError):
        load_ab_bins(tmp_path / "text.npy")


def test_validate_ab_bins() -> None:
    ints = validate_ab_bins(np.array([[0, 0], [10, -10]]))
    assert ints.dtype == torch.float32 and ints.tolist() == [[0.0, 0.0], [10.0, -10.0]]
    assert validate_ab_bins(torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)).dtype == torch.float64
    for bad, message in [
        (np.zeros((3,)), r"shape \(Q, 2\)"),
        (np.zeros((3, 2, 1)), r"shape \(Q, 2\)"),
        (np.zeros((1, 2)), "at least 2"),
        (np.array([[0.0, np.nan], [1.0, 1.0]]), "finite"),
        (np.array([[0.0, np.inf], [1.0, 1.0]]), "finite"),
        (torch.tensor([[1.0, 2.0], [1.0, 2.0]]), "duplicate"),
    ]:
        with pytest.raises(ValueError, match=message):
            validate_ab_bins(bad)
    with pytest.raises(TypeError):
        validate_ab_bins([[0, 0], [1, 1]])


# --- nearest_ab_bins / hard_encode_ab --------------------------------------------------------------------------

_AB_VALUES = st.floats(-130.0, 130.0, allow_nan=False, width=64)


def _ab_shapes(max_width: int) -> st.SearchStrategy[tuple[int, int, int, int]]:
    """Small (N, 2, H, W) shapes."""
    return st.tuples(st.integers(1, 2), st.just(2), st.integers(1, 3), st.integers(1, max_width))


@settings(max_examples=40, deadline=None)
@given(
    ab=arrays(np.float64, _ab_shapes(max_width=4), elements=_AB_VALUES),
    k=st.integers(1, 12),
)
def test_nearest_matches_brute_force(ab: np.ndarray, k: int) -> None:
    bins = default_ab_bins(dtype=torch.float64)
    distances, indices = nearest_ab_bins(torch.from_numpy(ab), bins, k)
    expected_distances, expected_indices = _brute_force_nearest(ab, bins.numpy(), k)
    assert indices.dtype == torch.int64 and indices.shape == expected_indices.shape
    assert np.array_equal(indices.numpy(), expected_indices)
    assert np.array_equal(distances.numpy(), expected_distances)  # same IEEE operations: bit-equal


def test_nearest_ties_go_to_the_lower_index(bins64: torch.Tensor) -> None:
    # On grid points and cell midpoints many bins are equidistant, also across the k-th place.
    grid_values = torch.tensor([-20.0, -5.0, 0.0, 5.0, 15.0, 40.0], dtype=torch.float64)
    a, b = torch.meshgrid(grid_values, grid_values, indexing="ij")
    ab = torch.stack((a, b))[None]  # (1, 2, 6, 6)
    for k in (1, 2, 5, 10, 13):
        distances, indices = nearest_ab_bins(ab, bins64, k)
        expected_distances, expected_indices = _brute_force_nearest(ab.numpy(), bins64.numpy(), k)
        assert np.array_equal(indices.numpy(), expected_indices), k
        assert np.array_equal(distances.numpy(), expected_distances), k


def test_nearest_in_chunks_equals_unchunked(monkeypatch, bins64: torch.Tensor) -> None:
    ab = torch.from_numpy(np.random.default_rng(1).normal(0, 40, size=(3, 2, 5, 7)))
    whole = nearest_ab_bins(ab, bins64, 7)
    monkeypatch.setattr(ab_bins_module, "_MAX_DISTANCE_ELEMENTS", 2 * len(bins64) + 1)  # 2 pixels per chunk
    chunked = nearest_ab_bins(ab, bins64, 7)
    assert torch.equal(whole[0], chunked[0]) and torch.equal(whole[1], chunked[1])


def test_hard_encode_matches_brute_force_float32() -> None:
    bins = default_ab_bins()
    ab = np.random.default_rng(2).uniform(-110, 110, size=(2, 2, 6, 5)).astype(np.float32)
    index = hard_encode_ab(torch.from_numpy(ab), bins)
    d2 = ((ab[:, :, None] - bins.numpy().T[None, :, :, None, None]) ** 2).sum(axis=1)  # (N, Q, H, W)
    assert index.shape == (2, 6, 5) and index.dtype == torch.int64
    assert np.array_equal(index.numpy(), d2.argmin(axis=1))


def test_nearest_argument_errors(bins64: torch.Tensor) -> None:
    ab = torch.zeros(1, 2, 2, 2, dtype=torch.float64)
    for bad_k in (0, len(bins64) + 1, 2.0, True):
        with pytest.raises(ValueError, match="neighbours"):
            nearest_ab_bins(ab, bins64, bad_k)
    with pytest.raises(ValueError, match=r"\(N, 2, H, W\)"):
        nearest_ab_bins(torch.zeros(1, 3, 2, 2), bins64, 1)
    with pytest.raises(TypeError):
        hard_encode_ab(torch.zeros(1, 2, 2, 2, dtype=torch.int64), bins64)
    with pytest.raises(ValueError, match=r"\(Q, 2\)"):
        hard_encode_ab(ab, bins64[:, :1])
    assert nearest_ab_bins(ab, bins64, len(bins64))[1].shape == (1, len(bins64), 2, 2)  # k = Q is allowed


def test_nearest_empty_batch(bins64: torch.Tensor) -> None:
    distances, indices = nearest_ab_bins(torch.zeros(0, 2, 3, 3, dtype=torch.float64), bins64, 5)
    assert distances.shape == indices.shape == (0, 5, 3, 3)


# --- soft_encode_ab --------------------------------------------------------------------------------------------


@settings(max_examples=30, deadline=None)
@given(
    ab=arrays(np.float64, _ab_shapes(max_width=3), elements=_AB_VALUES),
    k=st.integers(1, 10),
    sigma=st.floats(2.0, 20.0),
)
def test_soft_encode_matches_closed_form_gaussian(ab: np.ndarray, k: int, sigma: float) -> None:
    bins = default_ab_bins(dtype=torch.float64)
    target = soft_encode_ab(torch.from_numpy(ab), bins, neighbours=k, sigma=sigma).numpy()  # (N, Q, H, W)
    distances, indices = _brute_force_nearest(ab, bins.numpy(), k)
    expected = np.zeros_like(target)
    for i, y, x in np.ndindex(ab.shape[0], ab.shape[2], ab.shape[3]):
        weights = np.exp(-distances[i, :, y, x] / (2 * sigma**2))
        if weights.sum() == 0:  # far outside the grid the textbook form underflows; compare the relative form
            weights = np.exp(-(distances[i, :, y, x] - distances[i, 0, y, x]) / (2 * sigma**2))
        expected[i, indices[i, :, y, x], y, x] = weights / weights.sum()
    np.testing.assert_allclose(target, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(target.sum(axis=1), 1.0, rtol=1e-12)


def test_soft_encode_defaults_rows_and_nonzeros(bins64: torch.Tensor) -> None:
    ab = torch.from_numpy(np.random.default_rng(3).uniform(-80, 80, size=(4, 2, 8, 8)))
    target = soft_encode_ab(ab, bins64)
    same = soft_encode_ab(ab, bins64, neighbours=SOFT_ENCODE_NEIGHBOURS, sigma=SOFT_ENCODE_SIGMA)
    assert torch.equal(target, same) and target.shape == (4, len(bins64), 8, 8)
    assert torch.allclose(target.sum(dim=1), torch.ones(4, 8, 8, dtype=torch.float64))
    assert ((target > 0).sum(dim=1) == SOFT_ENCODE_NEIGHBOURS).all()
    authors = soft_encode_ab(ab, bins64, neighbours=10)
    assert ((authors > 0).sum(dim=1) == 10).all()
    assert torch.equal(target.argmax(dim=1), hard_encode_ab(ab, bins64))


def test_soft_encode_one_neighbour_is_one_hot_of_hard_encode(bins64: torch.Tensor) -> None:
    ab = torch.from_numpy(np.random.default_rng(4).uniform(-100, 100, size=(2, 2, 5, 5))).float()
    target = soft_encode_ab(ab, bins64, neighbours=1)
    one_hot = torch.nn.functional.one_hot(hard_encode_ab(ab, bins64), len(bins64)).permute(0, 3, 1, 2)
    assert target.dtype == torch.float32 and torch.equal(target, one_hot.float())


def test_soft_encode_far_outside_the_grid_is_still_a_distribution(bins64: torch.Tensor) -> None:
    ab = torch.tensor([1000.0, -1000.0], dtype=torch.float64).reshape(1, 2, 1, 1)
    target = soft_encode_ab(ab, bins64, neighbours=5)
    assert torch.isfinite(target).all() and float(target.sum()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="sigma"):
        soft_encode_ab(ab, bins64, sigma=0.0)


def test_soft_encode_real_photos(dev_image_paths, zhang_bins_file) -> None:
    official = load_ab_bins(zhang_bins_file)
    for path in dev_image_paths[:4]:
        with Image.open(path) as image:
            rgb = np.asarray(image.convert("RGB").resize((48, 40)), dtype=np.float32) / 255.0
        ab = split_lab(rgb_to_lab(torch.from_numpy(rgb).permute(2, 0, 1)[None]))[1]  # (1, 2, 40, 48) raw
        for bins in (default_ab_bins(), official):
            target = soft_encode_ab(ab, bins, neighbours=10)
            assert target.shape == (1, len(bins), 40, 48)
            assert torch.allclose(target.sum(dim=1), torch.ones(1, 40, 48))
            assert ((target > 0).sum(dim=1) == 10).all()
            assert torch.equal(target.argmax(dim=1), hard_encode_ab(ab, bins))
            # The nearest bin of a real colour lies within half a grid diagonal (both bin sets cover the gamut).
            nearest = bins[hard_encode_ab(ab, bins)].permute(0, 3, 1, 2)
            assert float((nearest - ab).norm(dim=1).max()) <= AB_GRID_STEP / np.sqrt(2) + 1e-3


# The grid shortcut of hard_encode_ab (rounding to the grid of 10) must pick exactly the bin the exhaustive
# search picks, ties and near-ties included.
def _tie_heavy_ab(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    """ab on grid midpoints, a hair either side of them, on grid points, at random, and far outside the gamut."""
    rng = np.random.default_rng(seed)
    cells = rng.integers(-14, 14, size=shape) * 10.0
    offsets = rng.choice([5.0, -5.0, 5.0 + 1e-4, 5.0 - 1e-4, -5.0 + 1e-3, 0.0, 4.99], size=shape)
    random_values = rng.uniform(-200, 200, size=shape)
    values = np.where(rng.random(shape) < 0.7, cells + offsets, random_values)
    return torch.from_numpy(values)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**32 - 1), st.sampled_from([torch.float32, torch.float64]))
def test_hard_encode_grid_shortcut_equals_exhaustive_search(seed: int, dtype: torch.dtype) -> None:
    true_ab = _tie_heavy_ab(seed, (2, 2, 9, 11)).to(dtype)
    rng = np.random.default_rng(seed)
    bin_sets = [
        default_ab_bins(dtype=dtype),
        default_ab_bins(grid_step=5.0, dtype=dtype),  # on the grid of 10 only partly: exhaustive search
        torch.from_numpy(rng.uniform(-100, 100, size=(20, 2))).to(dtype),  # off-grid
        default_ab_bins(dtype=dtype)[rng.permutation(len(default_ab_bins()))[:50]],  # grid bins with holes, in shuffled order
    ]
    for bins in bin_sets:
        assert torch.equal(hard_encode_ab(true_ab, bins), nearest_ab_bins(true_ab, bins, neighbours=1)[1][:, 0])


def test_hard_encode_grid_shortcut_equals_exhaustive_search_for_the_official_bins(zhang_bins_file) -> None:
    bins = load_ab_bins(zhang_bins_file)
    for seed in range(5):
        true_ab = _tie_heavy_ab(seed, (2, 2, 16, 16)).to(bins.dtype)
        assert torch.equal(hard_encode_ab(true_ab, bins), nearest_ab_bins(true_ab, bins, neighbours=1)[1][:, 0])
