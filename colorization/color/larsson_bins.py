"""Larsson et al.'s colour bins and one-hot histogram targets (ECCV 2016, Sec. 3.1-3.2).

Two kinds of bins:

* Lab axes (a and b): K bins at evenly spaced quantiles of N(0, sigma^2), sigma = 25. Bin k is
  ``[e_k, e_{k+1})`` with edges ``e_k = sigma * Phi^-1(k / K)``, so ``e_0 = -inf`` and ``e_K = +inf``
  and every bin holds mass 1/K under N(0, sigma^2); its centre is the quantile ``sigma * Phi^-1((k + 0.5) / K)``.
  This is exactly gustavla/autocolorize's ``UniformToHistogram`` layer applied to the Gaussian CDF
  value: bin = floor(K * Phi(v / sigma)), clamped to K - 1.
* Hue and chroma: K uniform bins on [0, 1], edges ``k / K``, centres ``(k + 0.5) / K``; values below 0
  go to the first bin and values >= 1 (1.0 included) to the last, as in ``UniformToHistogram``.

The paper sets R = 1: a pixel's target histogram is the one-hot of its own bin (the released
training net used 7x7 windows instead; see paper-facts.md). Histograms put the bin axis at dim 1:
values (N, *S) -> histograms (N, K, *S), where *S is (H, W) for dense maps or (P,) for sampled pixels.
Values are raw: ab in Lab units, hue and chroma in [0, 1].
"""

from __future__ import annotations

import torch

from colorization.color.constants import (
    LARSSON_HUE_CHROMA_BINS,
    LARSSON_JOINT_BINS,
    LARSSON_LAB_SIGMA,
    LARSSON_MARGINAL_BINS,
)

__all__ = [
    "bin_index",
    "encode_joint_ab",
    "encode_marginal",
    "gaussian_quantile_centres",
    "gaussian_quantile_edges",
    "joint_ab_bin_index",
    "uniform_centres",
    "uniform_edges",
]


def _check_num_bins(num_bins: int) -> None:
    if num_bins < 1:
        raise ValueError(f"num_bins must be >= 1; got {num_bins}")


def gaussian_quantile_edges(
    num_bins: int = LARSSON_MARGINAL_BINS,
    sigma: float = LARSSON_LAB_SIGMA,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Edges of the Gaussian-quantile bins of one Lab axis (Larsson Sec. 3.2).

    Args:
        num_bins: K, the number of bins.
        sigma: standard deviation of the zero-mean Gaussian, in Lab units.
        dtype: floating dtype of the result (computed in float64, then cast).
        device: device of the result.

    Returns:
        (K + 1,) edges ``sigma * Phi^-1(k / K)`` for k = 0..K: ``-inf`` first, ``+inf`` last.
    """
    _check_num_bins(num_bins)
    levels = torch.arange(num_bins + 1, dtype=torch.float64) / num_bins
    return (sigma * torch.special.ndtri(levels)).to(dtype=dtype, device=device)


def gaussian_quantile_centres(
    num_bins: int = LARSSON_MARGINAL_BINS,
    sigma: float = LARSSON_LAB_SIGMA,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Centres of the Gaussian-quantile bins of one Lab axis (Larsson Sec. 3.2).

    Args:
        num_bins: K, the number of bins.
        sigma: standard deviation of the zero-mean Gaussian, in Lab units.
        dtype: floating dtype of the result (computed in float64, then cast).
        device: device of the result.

    Returns:
        (K,) centres ``sigma * Phi^-1((k + 0.5) / K)``, increasing and symmetric about 0; centre k lies
        inside bin k of :func:`gaussian_quantile_edges`.
    """
    _check_num_bins(num_bins)
    levels = (torch.arange(num_bins, dtype=torch.float64) + 0.5) / num_bins
    return (sigma * torch.special.ndtri(levels)).to(dtype=dtype, device=device)


def uniform_edges(
    num_bins: int = LARSSON_HUE_CHROMA_BINS,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Edges ``k / K`` (k = 0..K) of the uniform hue or chroma bins on [0, 1] (Larsson Sec. 3.2).

    Args:
        num_bins: K, the number of bins.
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        (K + 1,) edges from 0 to 1.
    """
    _check_num_bins(num_bins)
    return (torch.arange(num_bins + 1, dtype=torch.float64) / num_bins).to(dtype=dtype, device=device)


def uniform_centres(
    num_bins: int = LARSSON_HUE_CHROMA_BINS,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Centres ``(k + 0.5) / K`` of the uniform hue or chroma bins (autocolorize ``spaced``).

    Args:
        num_bins: K, the number of bins.
        dtype: floating dtype of the result.
        device: device of the result.

    Returns:
        (K,) centres in (0, 1).
    """
    _check_num_bins(num_bins)
    return ((torch.arange(num_bins, dtype=torch.float64) + 0.5) / num_bins).to(dtype=dtype, device=device)


def bin_index(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """Bin of each value: k such that ``edges[k] <= value < edges[k + 1]``, clamped to [0, K - 1].

    Works for both bin kinds: pass :func:`gaussian_quantile_edges` or :func:`uniform_edges`. Only the
    K - 1 inner edges are compared, so values below ``edges[0]`` go to bin 0 and values at or above
    ``edges[K]`` (e.g. hue or chroma exactly 1.0) go to bin K - 1. A value exactly on an inner edge
    belongs to the bin above it. Comparisons are made in ``values``' dtype.

    Args:
        values: raw values, any shape (e.g. (N, *S)).
        edges: (K + 1,) increasing bin edges.

    Returns:
        int64 tensor of ``values``' shape, in [0, K - 1].
    """
    if edges.ndim != 1 or edges.numel() < 2:
        raise ValueError(f"edges must have shape (K + 1,) with K >= 1; got {tuple(edges.shape)}")
    inner_edges = edges[1:-1].to(dtype=values.dtype, device=values.device).contiguous()
    return torch.bucketize(values.contiguous(), inner_edges, right=True)


def _one_hot_at_dim1(index: torch.Tensor, num_classes: int, dtype: torch.dtype) -> torch.Tensor:
    """(N, *S) int64 -> (N, num_classes, *S) one-hot of ``dtype``."""
    one_hot = torch.zeros((index.shape[0], num_classes, *index.shape[1:]), dtype=dtype, device=index.device)
    return one_hot.scatter_(1, index.unsqueeze(1), 1.0)


def encode_marginal(values: torch.Tensor, edges: torch.Tensor) -> torch.Tensor:
    """One-hot target histogram of each pixel's own bin (Larsson Sec. 3.2 with R = 1).

    Args:
        values: (N, *S) raw values of one channel (a or b in Lab units; hue or chroma in [0, 1]).
        edges: (K + 1,) bin edges, e.g. :func:`gaussian_quantile_edges` or :func:`uniform_edges`.

    Returns:
        (N, K, *S) one-hot histograms in ``values``' dtype (floating ``values`` expected).
    """
    if values.ndim < 1:
        raise ValueError("values must have shape (N, *S)")
    index = bin_index(values, edges)
    return _one_hot_at_dim1(index, edges.numel() - 1, values.dtype)


def joint_ab_bin_index(
    ab: torch.Tensor,
    num_bins: int = LARSSON_JOINT_BINS,
    sigma: float = LARSSON_LAB_SIGMA,
) -> torch.Tensor:
    """Joint ab bin ``ka * K + kb`` on the K x K grid of Gaussian-quantile bins (Larsson Sec. 3.2).

    The a-major order is that of autocolorize's ``UniformToJointHistogram`` layer.

    Args:
        ab: (N, 2, *S) raw ab in Lab units.
        num_bins: K, the number of quantile bins per axis.
        sigma: standard deviation of the Gaussian whose quantiles bin each axis.

    Returns:
        (N, *S) int64 in [0, K * K - 1].
    """
    if ab.ndim < 2 or ab.shape[1] != 2:
        raise ValueError(f"ab must have shape (N, 2, *S); got {tuple(ab.shape)}")
    edges = gaussian_quantile_edges(num_bins, sigma, dtype=ab.dtype, device=ab.device)
    return bin_index(ab[:, 0], edges) * num_bins + bin_index(ab[:, 1], edges)


def encode_joint_ab(
    ab: torch.Tensor,
    num_bins: int = LARSSON_JOINT_BINS,
    sigma: float = LARSSON_LAB_SIGMA,
) -> torch.Tensor:
    """One-hot joint ab histogram on the K x K quantile grid, index ``ka * K + kb`` (Larsson Sec. 3.2).

    Args:
        ab: (N, 2, *S) raw ab in Lab units (floating).
        num_bins: K, the number of quantile bins per axis.
        sigma: standard deviation of the Gaussian whose quantiles bin each axis.

    Returns:
        (N, K * K, *S) one-hot histograms in ``ab``'s dtype.
    """
    index = joint_ab_bin_index(ab, num_bins, sigma)
    return _one_hot_at_dim1(index, num_bins * num_bins, ab.dtype)
