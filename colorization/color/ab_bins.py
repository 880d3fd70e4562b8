"""Quantized ab bins and the encodings of ground truth onto them (Zhang et al. 2016, Sec. 2.1).

Zhang et al. classify each pixel's colour into Q bins: the centres of a grid of step 10 on the ab plane that are
in the sRGB gamut. The ground truth becomes a soft target over the k nearest bins, weighted by a Gaussian of the
distance -- the framework-free ``NNEncode`` class of richzhang/colorization ``resources/caffe_traininglayers.py``.

Conventions: ab is raw Lab ab, (N, 2, H, W) (not normalized); bins is a float (Q, 2) tensor of (a, b) centres,
where Q = ``len(bins)`` everywhere; the encodings have Q (or k) channels, (N, Q, H, W) / (N, k, H, W).
The hot functions check only shapes (no device sync); :func:`validate_ab_bins` does the full check once, where
bins enter the program.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from colorization.color.constants import AB_GRID_STEP, SOFT_ENCODE_NEIGHBOURS, SOFT_ENCODE_SIGMA
from colorization.color.lab import rgb_to_lab

__all__ = [
    "default_ab_bins",
    "validate_ab_bins",
    "nearest_ab_bins",
    "hard_encode_ab",
    "soft_encode_ab",
]

# The gamut sweep samples the sRGB cube at the 8-bit levels 0, 4, ..., 252, 255 (65^3 colours, ~0.1 s).
# For grid step 10 this finds exactly the cells of the full 8-bit cube (261; checked in tests/color/test_ab_bins.py);
# at other steps a few edge cells touched only by slivers thinner than 4 levels are missed (measured against the
# full cube: grid 20 gives 75 of 77 cells, grid 5 gives 965 of 969).
_GAMUT_LEVEL_STRIDE = 4
# Cap on the (pixels x Q) distance matrix held at once: 2^24 entries = 64 MiB in float32.
_MAX_DISTANCE_ELEMENTS = 1 << 24


def _gamut_rgb_samples() -> torch.Tensor:
    """The sampled sRGB colours, (3, 1, M) in [0, 1], float64."""
    levels = sorted(set(range(0, 256, _GAMUT_LEVEL_STRIDE)) | {255})
    values = torch.tensor(levels, dtype=torch.float64) / 255.0
    red, green, blue = torch.meshgrid(values, values, values, indexing="ij")
    return torch.stack((red.reshape(-1), green.reshape(-1), blue.reshape(-1)))[:, None, :]


@lru_cache(maxsize=8)
def _default_ab_bins_float64(grid_step: float) -> torch.Tensor:
    ab = rgb_to_lab(_gamut_rgb_samples())[1:, 0, :]  # (2, M) raw ab
    cells = torch.unique(torch.round(ab / grid_step).to(torch.int64).T, dim=0)  # (Q, 2), sorted by a then b
    return cells.to(torch.float64) * grid_step


def default_ab_bins(grid_step: float = AB_GRID_STEP, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The in-gamut ab bins, derived from the sRGB gamut (Zhang et al. Sec. 2.1: "keep the Q values in-gamut").

    Rule: a grid centre (a, b) = grid_step * (i, j) is a bin if some sRGB colour with 8-bit levels in
    {0, 4, 8, ..., 252, 255} has its ab nearest to it (rounding a / grid_step and b / grid_step; colours
    converted by :func:`colorization.color.lab.rgb_to_lab` in float64). For grid_step = 10 this is the same set as
    the full 8-bit cube gives: Q = 261. The paper's released set (313 bins, ``pts_in_hull.npy``) is a strict
    superset that no simple gamut rule reproduces; load it with ``colorization.io.ab_bins_file.load_ab_bins``.

    Args:
        grid_step: spacing of the ab grid, in raw ab units.
        dtype: floating dtype of the result.

    Returns:
        (Q, 2) raw (a, b) centres sorted by a then b, on the CPU (a fresh copy; the sweep itself is cached).
    """
    grid_step = float(grid_step)
    if not np.isfinite(grid_step) or grid_step <= 0:
        raise ValueError(f"grid_step must be a positive number; got {grid_step}")
    if not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point dtype; got {dtype}")
    return _default_ab_bins_float64(grid_step).to(dtype=dtype, copy=True)


def validate_ab_bins(bins: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Checks a bin set where it enters the program (a file, a config, a checkpoint).

    Args:
        bins: (Q, 2) (a, b) centres as a numpy array or tensor, integer or floating.

    Returns:
        (Q, 2) tensor, same order; floating inputs keep their dtype and device, integers become float32.

    Raises:
        ValueError: wrong shape, fewer than 2 bins, non-finite or duplicate centres.
    """
    if isinstance(bins, np.ndarray):
        if bins.dtype.kind not in "biuf":
            raise ValueError(f"bins must hold numbers; got numpy dtype {bins.dtype}")
        bins = torch.from_numpy(bins.astype(bins.dtype.newbyteorder("="), copy=True))  # torch needs native order
    elif not isinstance(bins, torch.Tensor):
        raise TypeError(f"bins must be a numpy array or a torch tensor; got {type(bins).__name__}")
    if bins.ndim != 2 or bins.shape[1] != 2:
        raise ValueError(f"bins must have shape (Q, 2), one (a, b) centre per row; got {tuple(bins.shape)}")
    if bins.shape[0] < 2:
        raise ValueError(f"bins needs at least 2 centres to classify over; got {bins.shape[0]}")
    if bins.dtype == torch.bool or bins.is_complex():
        raise ValueError(f"bins must be real numbers; got {bins.dtype}")
    if not bins.is_floating_point():
        bins = bins.to(torch.float32)
    if not bool(torch.isfinite(bins).all()):
        raise ValueError("bins must be finite; found NaN or inf")
    if torch.unique(bins, dim=0).shape[0] != bins.shape[0]:
        raise ValueError("bins contains duplicate centres; each class must be a distinct bin")
    return bins


def _check_ab(ab: torch.Tensor) -> None:
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must have shape (N, 2, H, W) of raw ab; got {tuple(ab.shape)}")
    if not ab.is_floating_point():
        raise TypeError(f"ab must be a floating-point tensor; got {ab.dtype}")


def _bins_like(bins: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if bins.ndim != 2 or bins.shape[1] != 2 or bins.shape[0] < 1:
        raise ValueError(f"bins must have shape (Q, 2); got {tuple(bins.shape)}")
    return bins.to(dtype=like.dtype, device=like.device)


def _nearest_rows(ab_rows: torch.Tensor, bins: torch.Tensor, neighbours: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, 2), (Q, 2) -> squared distances and indices (M, k), ascending, ties to the lower index."""
    # (a - a_q)^2 + (b - b_q)^2 rather than |x|^2 - 2 x.c + |c|^2: no cancellation, and equal distances stay equal.
    distances = (ab_rows[:, None, 0] - bins[None, :, 0]).square() + (ab_rows[:, None, 1] - bins[None, :, 1]).square()
    if neighbours == 1:
        indices = distances.argmin(dim=1, keepdim=True)  # first minimum = lowest index
        return distances.gather(1, indices), indices
    values, indices = torch.topk(distances, neighbours, dim=1, largest=False, sorted=True)
    # topk breaks ties arbitrarily. Put the kept bins in (distance, index) order ...
    indices, order = indices.sort(dim=1)
    values, order = values.gather(1, order).sort(dim=1, stable=True)
    indices = indices.gather(1, order)
    # ... and redo, with a stable sort, the rows where a tie straddles the k-th place (the kept set was a choice).
    kth = values[:, -1:]
    straddles = (distances == kth).sum(dim=1) > (values == kth).sum(dim=1)
    if bool(straddles.any()):
        rows = straddles.nonzero().squeeze(1)
        row_values, row_indices = distances[rows].sort(dim=1, stable=True)
        values[rows] = row_values[:, :neighbours]
        indices[rows] = row_indices[:, :neighbours]
    return values, indices


def nearest_ab_bins(ab: torch.Tensor, bins: torch.Tensor, neighbours: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k nearest bins of every pixel (the nearest-neighbour search of ``NNEncode``).

    Pixels are processed in chunks so that at most ``2**24`` pixel-bin distances are held at once.

    Args:
        ab: (N, 2, H, W) raw ab, float32 or float64, any device.
        bins: (Q, 2) raw (a, b) centres (cast to ab's dtype and device).
        neighbours: k, with 1 <= k <= Q.

    Returns:
        SQUARED Euclidean distances (N, k, H, W) in ab's dtype and bin indices (N, k, H, W) int64, ordered by
        increasing distance; equal distances are ordered (and, at the k-th place, chosen) by lower bin index.
    """
    _check_ab(ab)
    bins = _bins_like(bins, ab)
    num_bins = bins.shape[0]
    if isinstance(neighbours, bool) or not isinstance(neighbours, (int, np.integer)) or not 1 <= neighbours <= num_bins:
        raise ValueError(f"neighbours must be an integer in [1, Q={num_bins}]; got {neighbours!r}")
    neighbours = int(neighbours)
    batch, _, height, width = ab.shape
    ab_rows = ab.permute(0, 2, 3, 1).reshape(-1, 2)  # (M, 2), M = N*H*W
    chunk = max(1, _MAX_DISTANCE_ELEMENTS // num_bins)
    parts = [_nearest_rows(ab_rows[start : start + chunk], bins, neighbours) for start in range(0, len(ab_rows), chunk)]
    if parts:
        distances = torch.cat([part[0] for part in parts])
        indices = torch.cat([part[1] for part in parts])
    else:  # an empty batch
        distances = ab_rows.new_zeros((0, neighbours))
        indices = torch.zeros((0, neighbours), dtype=torch.int64, device=ab.device)

    def to_maps(rows: torch.Tensor) -> torch.Tensor:  # (M, k) -> (N, k, H, W)
        return rows.reshape(batch, height, width, neighbours).permute(0, 3, 1, 2).contiguous()

    return to_maps(distances), to_maps(indices)


def _nearest_index_exhaustive(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    return nearest_ab_bins(ab, bins, neighbours=1)[1][:, 0]


# Pixels within this fraction of a grid cell of a midpoint between grid centres go to the exhaustive search, so
# the grid shortcut of hard_encode_ab never has to break a (near-)tie: 1e-3 cells keeps the two squared distances
# 0.2 ab^2 apart for grid 10, far above float32 rounding.
_GRID_TIE_MARGIN = 1e-3


def hard_encode_ab(ab: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Index of each pixel's nearest bin (ties to the lower index): the class used for rebalancing, the prior and AuC.

    When every centre lies on the ab grid (multiples of ``AB_GRID_STEP``, as both the official 313 bins and
    ``default_ab_bins()`` do), the nearest grid point of a pixel is found by rounding; if it is a bin, it is the
    nearest bin. Pixels whose grid point is not a bin, or that lie within ``_GRID_TIE_MARGIN`` of a tie, and every
    pixel of an off-grid bin set, go through the exhaustive search (:func:`nearest_ab_bins`). About 100x faster than the exhaustive search
    on real photographs, whose ab almost always rounds to a bin.

    Args:
        ab: (N, 2, H, W) raw ab, finite.
        bins: (Q, 2) raw (a, b) centres, distinct.

    Returns:
        (N, H, W) int64 indices in [0, Q), equal to ``nearest_ab_bins(ab, bins, 1)[1][:, 0]``.
    """
    _check_ab(ab)
    bins = _bins_like(bins, ab)
    bin_cells = bins.double() / AB_GRID_STEP
    if not torch.equal(bin_cells, bin_cells.round()) or len(torch.unique(bin_cells, dim=0)) != len(bins):
        return _nearest_index_exhaustive(ab, bins)
    bin_cells = bin_cells.round().long()
    # Lookup table of grid cell -> bin index, with a border of -1 (no bin) on every side; every pixel is clamped
    # into the table, so pixels beyond the bins' grid land on the border and go to the exhaustive search.
    lowest = bin_cells.min(dim=0).values - 1
    rows, columns = (bin_cells.max(dim=0).values - lowest + 2).tolist()
    table = torch.full((rows * columns,), -1, dtype=torch.long, device=ab.device)
    cell_offsets = bin_cells - lowest
    table[cell_offsets[:, 0] * columns + cell_offsets[:, 1]] = torch.arange(len(bins), device=ab.device)

    dtype = torch.promote_types(ab.dtype, torch.float32)
    scaled = ab.to(dtype) / AB_GRID_STEP  # (N, 2, H, W) in grid cells
    nearest_cell = scaled.round()
    near_tie = (scaled - nearest_cell).abs().amax(dim=1) > 0.5 - _GRID_TIE_MARGIN  # (N, H, W)
    row = (nearest_cell[:, 0] - lowest[0]).clamp(0, rows - 1).long()
    column = (nearest_cell[:, 1] - lowest[1]).clamp(0, columns - 1).long()
    index = table[row * columns + column]  # (N, H, W)
    exhaustive = (index < 0) | near_tie
    if exhaustive.any():
        pixels = ab.permute(0, 2, 3, 1)[exhaustive]  # (M, 2)
        index[exhaustive] = _nearest_index_exhaustive(pixels.T[None, :, :, None], bins)[0, :, 0]
    return index


def soft_encode_ab(
    ab: torch.Tensor,
    bins: torch.Tensor,
    neighbours: int = SOFT_ENCODE_NEIGHBOURS,
    sigma: float = SOFT_ENCODE_SIGMA,
) -> torch.Tensor:
    """Soft target Z = H_gt^{-1}(Y): a Gaussian of the distance over the k nearest bins (Sec. 2.1, ``NNEncode``).

    Weight of neighbour j: exp(-d_j^2 / (2 sigma^2)) / sum_i exp(-d_i^2 / (2 sigma^2)) over the k nearest bins;
    every other bin gets 0. The paper says k = 5; the authors' Caffe code used k = 10 (issue #59), both with
    sigma = 5. Computed relative to the nearest bin, so pixels far outside the grid still get a valid target.

    Args:
        ab: (N, 2, H, W) raw ab.
        bins: (Q, 2) raw (a, b) centres.
        neighbours: k, bins sharing each pixel's mass.
        sigma: standard deviation of the Gaussian, in raw ab units.

    Returns:
        (N, Q, H, W) in ab's dtype; each pixel's Q values are >= 0 and sum to 1.
    """
    sigma = float(sigma)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number; got {sigma}")
    distances, indices = nearest_ab_bins(ab, bins, neighbours)  # (N, k, H, W) squared, ascending
    weights = torch.exp(-(distances - distances[:, :1]) / (2.0 * sigma**2))  # nearest has weight 1: no underflow
    weights = weights / weights.sum(dim=1, keepdim=True)
    batch, _, height, width = ab.shape
    target = ab.new_zeros((batch, bins.shape[0], height, width))
    return target.scatter_(1, indices, weights)
