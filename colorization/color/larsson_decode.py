"""Point estimates from Larsson et al.'s predicted histograms (ECCV 2016, Sec. 3.3).

Histograms are probabilities with the bin axis at dim 1: (N, K, *S), where *S is (H, W) for dense
maps or (P,) for sampled pixels; ``centres`` (K,) are the bins' raw values (Lab units for a/b, [0, 1]
for hue/chroma). Decoders return (N, *S) raw values. The released decoder is
``calc_rgb_from_hue_chroma`` in gustavla/autocolorize ``autocolorize/extraction.py``; its default is
chroma by median and hue by circular expectation with chromatic fading.

Hue magnitude convention. The paper writes ``z = (1/K) sum_k p_k exp(i theta_k)``; the released code
computes the fading factor from ``abs(a.mean(-1))``, a mean over the K bins, i.e. with the same 1/K, and
clips it at 0.03 (``factor = cc.clip(0, 0.03) / 0.03``), unchanged through the repository's history. So
|z| lies in [0, 1/K] and with K = 32, eta = 0.03 keeps chroma intact only when the mean resultant length
``K |z|`` is at least 0.96 (e.g. mass spread evenly over at most 5 adjacent bins); below that, chroma is
scaled in proportion to the concentration. We keep that convention: eta = 0.03 is calibrated for it.
"""

from __future__ import annotations

import math

import torch

from colorization.color.constants import LARSSON_CHROMATIC_FADING_ETA
from colorization.color.larsson_bins import uniform_centres

__all__ = [
    "chromatic_fading",
    "decode_expectation",
    "decode_hue_chroma",
    "decode_hue_circular",
    "decode_joint_expectation",
    "decode_joint_mode",
    "decode_median",
    "decode_mode",
    "decode_sample",
]


def _check_histograms(probs: torch.Tensor, centres: torch.Tensor) -> None:
    if probs.ndim < 2:
        raise ValueError(f"probs must have shape (N, K, *S); got {tuple(probs.shape)}")
    if centres.ndim != 1 or centres.numel() != probs.shape[1]:
        raise ValueError(f"centres must have shape (K,) with K = probs.shape[1] = {probs.shape[1]}; "
                         f"got {tuple(centres.shape)}")


def _along_bins(vector: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(K,) -> (1, K, 1, ..., 1) broadcastable against ``like`` (N, K, *S), in its dtype and device."""
    return vector.to(dtype=like.dtype, device=like.device).reshape(1, -1, *([1] * (like.ndim - 2)))


def decode_expectation(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Expectation ``sum_k p_k c_k`` (Larsson Sec. 3.3, "Expectation"; best for Lab).

    Args:
        probs: (N, K, *S) histograms (rows summing to 1).
        centres: (K,) bin centres.

    Returns:
        (N, *S) expected values.
    """
    _check_histograms(probs, centres)
    return (probs * _along_bins(centres, probs)).sum(dim=1)


def decode_mode(probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Centre of the most probable bin, ``c_{argmax_k p_k}`` (Larsson Sec. 3.3, "Mode").

    Ties go to the lowest bin index (``torch.argmax`` returns the first maximum).

    Args:
        probs: (N, K, *S) histograms.
        centres: (K,) bin centres.

    Returns:
        (N, *S) values in ``probs``' dtype.
    """
    _check_histograms(probs, centres)
    return centres.to(dtype=probs.dtype, device=probs.device)[probs.argmax(dim=1)]


def _gather_bins(values: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``values`` (N, K, *S) at ``index`` (N, *S) along dim 1 -> (N, *S)."""
    return values.gather(1, index.unsqueeze(1)).squeeze(1)


def _interpolate_level(
    cdf: torch.Tensor, centres: torch.Tensor, level: torch.Tensor, left: torch.Tensor
) -> torch.Tensor:
    """Where the segment from ``(c_left, cdf_left)`` to ``(c_left+1, cdf_left+1)`` reaches ``level``.

    The fraction is clamped to [0, 1]; a flat segment gives its right end when ``level`` is above it
    and its left end otherwise.
    """
    cdf_left = _gather_bins(cdf, left)
    cdf_right = _gather_bins(cdf, left + 1)
    rise = cdf_right - cdf_left
    above = level - cdf_left
    flat = rise <= 0
    fraction = torch.where(flat, (above > 0).to(cdf.dtype), above / torch.where(flat, torch.ones_like(rise), rise))
    fraction = fraction.clamp(0.0, 1.0)
    centre_left = centres[left]
    return centre_left + fraction * (centres[left + 1] - centre_left)


def decode_median(probs: torch.Tensor, centres: torch.Tensor, *, interpolate: bool = True) -> torch.Tensor:
    """Median of the histogram (Larsson Sec. 3.3, "Median"; the released default for chroma).

    Interpolated rule (``interpolate=True``, the paper's "linear interpolation"): the CDF is anchored at
    the bin centres with half of each bin's mass below its centre, ``G_k = sum_{j<=k} p_j - p_k / 2``,
    and linearly interpolated between consecutive centres. The median is where this curve equals half
    the total mass; if it equals it along a flat stretch (equality up to the sums' rounding error, about
    K float eps of the total), the midpoint of that stretch is taken. With this anchoring a one-hot
    histogram decodes to its bin centre, a histogram symmetric about the middle of symmetric centres
    decodes to the centre of symmetry, and the result always lies in [c_0, c_{K-1}].

    Released-code rule (``interpolate=False``, autocolorize ``extraction.py``): the centre of the first
    bin whose cumulative sum reaches half the mass, ``c_k`` with ``k = #{j : sum_{i<=j} p_i < 1/2}``.

    Args:
        probs: (N, K, *S) histograms (need not be normalized; half the row total is used).
        centres: (K,) increasing bin centres.
        interpolate: the paper's interpolated median (True) or the released discrete one (False).

    Returns:
        (N, *S) medians in ``probs``' dtype.
    """
    _check_histograms(probs, centres)
    num_bins = probs.shape[1]
    centres = centres.to(dtype=probs.dtype, device=probs.device)
    cumulative = probs.cumsum(dim=1)
    level = 0.5 * cumulative[:, -1:]  # (N, 1, *S)
    if not interpolate:
        index = (cumulative < level).sum(dim=1).clamp_max(num_bins - 1)
        return centres[index]
    if num_bins == 1:
        return centres[0].expand(probs.shape[:1] + probs.shape[2:]).clone()
    half_mass_cdf = cumulative - 0.5 * probs  # G_k, nondecreasing
    # G_k within cumsum's rounding error of the level count as equal to it, so that a flat stretch at
    # the level (a histogram with a gap in the middle) is found whichever way the sums rounded
    tolerance = 4 * num_bins * torch.finfo(probs.dtype).eps * level
    # lowest crossing: segment ending at the first k with G_k >= level
    first_at_or_above = (half_mass_cdf < level - tolerance).sum(dim=1)
    lowest = _interpolate_level(half_mass_cdf, centres, level.squeeze(1),
                                (first_at_or_above - 1).clamp(0, num_bins - 2))
    # highest crossing: segment starting at the last k with G_k <= level
    last_at_or_below = (half_mass_cdf <= level + tolerance).sum(dim=1) - 1
    highest = _interpolate_level(half_mass_cdf, centres, level.squeeze(1),
                                 last_at_or_below.clamp(0, num_bins - 2))
    return 0.5 * (lowest + highest)


def decode_sample(
    probs: torch.Tensor, centres: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One independent draw per pixel from its histogram (Larsson Sec. 3.3, "Sample").

    Inverse-CDF sampling as autocolorize's ``pixelwise`` decoder: u ~ U[0, total) and the bin is
    ``#{k : sum_{j<=k} p_j <= u}``, so bins of zero mass are never drawn.

    Args:
        probs: (N, K, *S) histograms (need not be normalized).
        centres: (K,) bin centres.
        generator: source of randomness, on ``probs``' device; None uses torch's global generator.

    Returns:
        (N, *S) centres of the drawn bins.
    """
    _check_histograms(probs, centres)
    cumulative = probs.cumsum(dim=1)
    uniform = torch.rand(cumulative[:, -1:].shape, generator=generator, dtype=probs.dtype, device=probs.device)
    index = (cumulative <= uniform * cumulative[:, -1:]).sum(dim=1).clamp_max(probs.shape[1] - 1)
    return centres.to(dtype=probs.dtype, device=probs.device)[index]


def decode_hue_circular(hue_probs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Hue by the complex expectation over K uniform hue bins (Larsson Sec. 3.3).

    ``z = (1/K) sum_k p_k exp(i theta_k)`` with ``theta_k = 2 pi (k + 0.5) / K``; hue is ``arg(z) / (2 pi)``
    mod 1. The 1/K is kept as in the paper and autocolorize (module docstring), so |z| is in [0, 1/K].
    For a histogram with no preferred hue (z ~ 0) the hue is arbitrary and |z| ~ 0, so fading removes its chroma.

    Args:
        hue_probs: (N, K, *S) hue histograms over the uniform bins of [0, 1].

    Returns:
        hue: (N, *S) in [0, 1).
        magnitude: (N, *S) |z| in [0, 1/K], the input of :func:`chromatic_fading`.
    """
    if hue_probs.ndim < 2:
        raise ValueError(f"hue_probs must have shape (N, K, *S); got {tuple(hue_probs.shape)}")
    num_bins = hue_probs.shape[1]
    angles = 2.0 * math.pi * uniform_centres(num_bins, dtype=torch.float64)
    cosines = _along_bins(torch.cos(angles), hue_probs)
    sines = _along_bins(torch.sin(angles), hue_probs)
    z_real = (hue_probs * cosines).mean(dim=1)
    z_imag = (hue_probs * sines).mean(dim=1)
    hue = torch.remainder(torch.atan2(z_imag, z_real) / (2.0 * math.pi), 1.0)
    hue = torch.where(hue >= 1.0, torch.zeros_like(hue), hue)  # -tiny mod 1 rounds up to 1.0
    return hue, torch.hypot(z_real, z_imag)


def chromatic_fading(
    chroma: torch.Tensor, magnitude: torch.Tensor, eta: float = LARSSON_CHROMATIC_FADING_ETA
) -> torch.Tensor:
    """Fade chroma where the hue is uncertain: ``chroma * min(|z| / eta, 1)`` (Larsson Sec. 3.3).

    Args:
        chroma: (N, *S) decoded chroma in [0, 1].
        magnitude: (N, *S) |z| from :func:`decode_hue_circular` (with its 1/K convention).
        eta: the threshold; 0.03 in the paper and autocolorize, calibrated for K = 32.

    Returns:
        (N, *S) faded chroma.
    """
    if eta <= 0:
        raise ValueError(f"eta must be positive; got {eta}")
    return chroma * (magnitude / eta).clamp(max=1.0)


def decode_hue_chroma(
    hue_probs: torch.Tensor,
    chroma_probs: torch.Tensor,
    eta: float = LARSSON_CHROMATIC_FADING_ETA,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The released default decoder: circular-expectation hue, median chroma, chromatic fading.

    Args:
        hue_probs: (N, K_h, *S) hue histograms over uniform bins of [0, 1].
        chroma_probs: (N, K_c, *S) chroma histograms over uniform bins of [0, 1].
        eta: chromatic fading threshold.

    Returns:
        hue: (N, *S) in [0, 1).
        chroma: (N, *S) faded (interpolated) median chroma in [0, 1].
    """
    hue, magnitude = decode_hue_circular(hue_probs)
    centres = uniform_centres(chroma_probs.shape[1], dtype=chroma_probs.dtype, device=chroma_probs.device)
    chroma = decode_median(chroma_probs, centres)
    return hue, chromatic_fading(chroma, magnitude, eta)


def _split_joint(probs_joint: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """(N, K*K, *S) -> (N, K, K, *S) indexed [n, ka, kb], after checking K = len(centres)."""
    num_bins = centres.numel()
    if centres.ndim != 1 or probs_joint.ndim < 2 or probs_joint.shape[1] != num_bins * num_bins:
        raise ValueError(f"probs_joint must have shape (N, K*K, *S) with K = len(centres) = {num_bins}; "
                         f"got {tuple(probs_joint.shape)}")
    return probs_joint.reshape(probs_joint.shape[0], num_bins, num_bins, *probs_joint.shape[2:])


def decode_joint_expectation(probs_joint: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """Expected ab under a joint histogram on the K x K quantile grid, index ``ka * K + kb``.

    Args:
        probs_joint: (N, K*K, *S) joint histograms.
        centres: (K,) per-axis bin centres (Lab units).

    Returns:
        (N, 2, *S) raw ab.
    """
    grid = _split_joint(probs_joint, centres)
    a = decode_expectation(grid.sum(dim=2), centres)
    b = decode_expectation(grid.sum(dim=1), centres)
    return torch.stack([a, b], dim=1)


def decode_joint_mode(probs_joint: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
    """ab of the most probable joint bin (index ``ka * K + kb``).

    Args:
        probs_joint: (N, K*K, *S) joint histograms.
        centres: (K,) per-axis bin centres (Lab units).

    Returns:
        (N, 2, *S) raw ab.
    """
    _split_joint(probs_joint, centres)
    num_bins = centres.numel()
    index = probs_joint.argmax(dim=1)
    centres = centres.to(dtype=probs_joint.dtype, device=probs_joint.device)
    return torch.stack([centres[index // num_bins], centres[index % num_bins]], dim=1)
