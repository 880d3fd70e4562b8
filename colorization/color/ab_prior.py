"""The empirical ab prior and the class-rebalancing weights (Zhang et al. 2016, Sec. 2.2).

Natural images are dominated by desaturated ab, so each pixel's loss is weighted by the rarity of its bin:
w proportional to 1 / ((1 - lambda) p + lambda / Q'), normalized so that E_p[w] = 1, where p is the Gaussian-
smoothed empirical distribution of bins. This follows the framework-free ``PriorFactor`` class (and the
"non-grey mask" layer) of richzhang/colorization ``resources/caffe_traininglayers.py``.

Counting is split from smoothing so a prior can be built in parallel: :func:`ab_bin_counts` of parts add up to
the counts of the whole (``workflows/prior.py`` sums them), then :func:`smooth_ab_prior` and
:func:`rebalance_weights` run once. Shapes: ab (N, 2, H, W) raw; bins (Q, 2); counts, prior, weights (Q,).
"""

from __future__ import annotations

import math

import torch

from colorization.color.ab_bins import hard_encode_ab
from colorization.color.constants import COLOURLESS_AB_THRESHOLD, PRIOR_UNIFORM_MIX, SOFT_ENCODE_SIGMA

__all__ = [
    "ab_bin_counts",
    "colourful_images",
    "smooth_ab_prior",
    "rebalance_weights",
    "pixel_rebalance_weights",
]


def ab_bin_counts(ab: torch.Tensor, bins: torch.Tensor, pixel_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Exact histogram of the pixels' nearest bins: the raw material of the prior.

    Integer counts, so partial counts of any split of the data sum exactly to the counts of the whole.

    Args:
        ab: (N, 2, H, W) raw ab.
        bins: (Q, 2) raw (a, b) centres.
        pixel_mask: bool, broadcastable to (N, H, W) -- e.g. (N, 1, 1) from :func:`colourful_images` -- True
            for the pixels to count; None counts all.

    Returns:
        (Q,) int64 on ab's device, summing to the number of counted pixels.
    """
    indices = hard_encode_ab(ab, bins)  # (N, H, W)
    if pixel_mask is not None:
        if pixel_mask.dtype != torch.bool:
            raise TypeError(f"pixel_mask must be a bool tensor; got {pixel_mask.dtype}")
        try:
            pixel_mask = torch.broadcast_to(pixel_mask.to(indices.device), indices.shape)
        except RuntimeError:
            shapes = f"{tuple(pixel_mask.shape)} does not broadcast to (N, H, W) = {tuple(indices.shape)}"
            raise ValueError(f"pixel_mask of shape {shapes}") from None
        indices = indices[pixel_mask]
    return torch.bincount(indices.reshape(-1), minlength=bins.shape[0])


def colourful_images(ab: torch.Tensor, threshold: float = COLOURLESS_AB_THRESHOLD) -> torch.Tensor:
    """Which images carry colour: max over pixels of |ab| = sqrt(a^2 + b^2) >= threshold.

    Grey photographs would teach the network to predict grey and are left out of the loss (the released code's
    "non-grey mask" layer). That layer tests the channels separately (|a| > 5 or |b| > 5 at some pixel); here the
    Euclidean chroma is used, which differs only for images whose most colourful pixel has max(|a|, |b|) <= 5
    while sqrt(a^2 + b^2) >= 5.

    Args:
        ab: (N, 2, H, W) raw ab.
        threshold: in raw ab units.

    Returns:
        (N,) bool; False for images with no pixels.
    """
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"ab must have shape (N, 2, H, W) of raw ab; got {tuple(ab.shape)}")
    if ab.shape[-1] * ab.shape[-2] == 0:
        return torch.zeros(ab.shape[0], dtype=torch.bool, device=ab.device)
    # Compare squared chroma: linalg.vector_norm over dim 1 is ~25x slower on CPU and the sqrt adds nothing.
    squared_chroma = ab[:, 0].square() + ab[:, 1].square()  # (N, H, W)
    return squared_chroma.flatten(1).amax(dim=1) >= threshold * threshold


def smooth_ab_prior(counts: torch.Tensor, bins: torch.Tensor, sigma: float = SOFT_ENCODE_SIGMA) -> torch.Tensor:
    """The smoothed empirical distribution p of Sec. 2.2 (the same Gaussian as the soft targets: issue #47).

    Rule: p = normalize(K @ (counts / sum(counts))), K[q, r] = exp(-|c_q - c_r|^2 / (2 sigma^2)) between bin
    centres c. On a regular grid this is the 2-D Gaussian filter of the empirical histogram (zero outside the
    grid), read back at the bins and renormalized: mass spread onto grid cells that are not bins is dropped. It
    equals ``scipy.ndimage.gaussian_filter`` with mode="constant" up to that filter's truncation at 4 sigma (for
    grid 10 and sigma 5 the cut kernel values are <= exp(-18) ~ 1.5e-8; see tests/color/test_ab_prior.py).

    Args:
        counts: (Q,) non-negative counts (or any unnormalized masses) with a positive sum.
        bins: (Q, 2) raw (a, b) centres.
        sigma: kernel standard deviation in raw ab units (paper: 5).

    Returns:
        (Q,) float64 on counts' device, >= 0, summing to 1.
    """
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number; got {sigma}")
    if bins.ndim != 2 or bins.shape[1] != 2:
        raise ValueError(f"bins must have shape (Q, 2); got {tuple(bins.shape)}")
    distribution = _distribution(counts, bins.shape[0], "counts")
    centres = bins.to(dtype=torch.float64, device=distribution.device)
    squared = (centres[:, None, :] - centres[None, :, :]).square().sum(dim=-1)  # (Q, Q)
    smoothed = torch.exp(-squared / (2.0 * sigma**2)) @ distribution
    return smoothed / smoothed.sum()


def _distribution(masses: torch.Tensor, num_bins: int | None, name: str) -> torch.Tensor:
    """Checks a (Q,) non-negative mass vector; returns it as a float64 distribution."""
    if masses.ndim != 1 or (num_bins is not None and masses.shape[0] != num_bins):
        expected = "(Q,)" if num_bins is None else f"({num_bins},), one per bin"
        raise ValueError(f"{name} must have shape {expected}; got {tuple(masses.shape)}")
    masses = masses.to(torch.float64)
    if not bool(torch.isfinite(masses).all()) or bool((masses < 0).any()):
        raise ValueError(f"{name} must be finite and non-negative")
    total = masses.sum()
    if not total > 0:
        raise ValueError(f"{name} must have a positive sum; got {float(total)}")
    return masses / total


def rebalance_weights(prior: torch.Tensor, uniform_mix: float = PRIOR_UNIFORM_MIX) -> torch.Tensor:
    """Per-bin class-rebalancing weights w (Sec. 2.2, ``PriorFactor``).

    w_q proportional to 1 / ((1 - lambda) p_q + lambda / Q') for bins with p_q > 0, then scaled so that
    sum_q p_q w_q = 1. As in the released code, the uniform part is spread over the Q' bins with non-zero prior
    (the paper writes lambda / Q). The released code gives zero-prior bins an infinite weight; here they get the
    largest weight of the non-zero bins, which keeps "rarer bins weigh more" and every weight finite. Such bins
    never occur in the data the prior was counted on. lambda = 1 gives all-ones; lambda = 0 gives w = 1 / (Q' p).

    Args:
        prior: (Q,) non-negative masses with a positive sum (normalized here), e.g. from :func:`smooth_ab_prior`.
        uniform_mix: lambda in [0, 1] (paper: 0.5).

    Returns:
        (Q,) positive weights, computed in float64, returned in prior's dtype when floating (else float64).
    """
    uniform_mix = float(uniform_mix)
    if not 0.0 <= uniform_mix <= 1.0:
        raise ValueError(f"uniform_mix must be in [0, 1]; got {uniform_mix}")
    distribution = _distribution(prior, None, "prior")
    seen = distribution > 0
    num_seen = seen.sum().to(torch.float64)  # Q' (an int tensor would divide in float32)
    mixed = (1.0 - uniform_mix) * distribution + uniform_mix / num_seen
    weights = torch.where(seen, 1.0 / torch.where(seen, mixed, 1.0), 0.0)
    weights = torch.where(seen, weights, weights.max())
    weights = weights / (distribution * weights).sum()
    return weights.to(prior.dtype if prior.is_floating_point() else torch.float64)


def pixel_rebalance_weights(soft_target: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """v(Z_hw) = w at argmax_q Z_hw,q: each pixel weighed by its most likely bin (Sec. 2.2, eq. 3).

    For a soft target from ``soft_encode_ab`` the argmax is the nearest bin (ties to the lower index).

    Args:
        soft_target: (N, Q, H, W) target distributions.
        weights: (Q,) per-bin weights from :func:`rebalance_weights`.

    Returns:
        (N, H, W) in weights' dtype, on soft_target's device.
    """
    if soft_target.ndim != 4:
        raise ValueError(f"soft_target must have shape (N, Q, H, W); got {tuple(soft_target.shape)}")
    if weights.ndim != 1 or weights.shape[0] != soft_target.shape[1]:
        raise ValueError(f"weights must have shape ({soft_target.shape[1]},), one per bin; got {tuple(weights.shape)}")
    return weights.to(soft_target.device)[soft_target.argmax(dim=1)]
