"""Larsson et al.'s training losses (ECCV 2016, Sec. 3.2), pure PyTorch.

Histogram losses are ``KL(y || softmax(logits))`` per pixel, averaged over all pixels: N x prod(S)
pixels for logits (N, K, *S), with *S = (H, W) for dense maps or (P,) for sampled pixels. This is
autocolorize's ``SoftmaxKLDLoss`` layer with ``normalization: FULL`` (``train/train_vgg16.prototxt``).
Targets are one-hot (the paper's R = 1), so those KLs equal the cross-entropy of the pixel's bin;
:func:`histogram_kl` also takes soft targets (e.g. the released code's 7x7-window histograms).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from colorization.color.constants import (
    LARSSON_HUE_WEIGHT,
    LARSSON_JOINT_BINS,
    LARSSON_LAB_SIGMA,
    LARSSON_MARGINAL_BINS,
)
from colorization.color.larsson_bins import bin_index, gaussian_quantile_edges, joint_ab_bin_index, uniform_edges

__all__ = ["histogram_kl", "hue_chroma_loss", "lab_joint_loss", "lab_l2_loss", "lab_marginal_loss"]


def _check_ab(ab: torch.Tensor, logits: torch.Tensor, name: str) -> None:
    if ab.ndim < 2 or ab.shape[1] != 2:
        raise ValueError(f"ab must have shape (N, 2, *S); got {tuple(ab.shape)}")
    if logits.shape[:1] + logits.shape[2:] != ab.shape[:1] + ab.shape[2:]:
        raise ValueError(f"{name} {tuple(logits.shape)} and ab {tuple(ab.shape)} disagree outside dim 1")


def _check_width(logits: torch.Tensor, num_bins: int, name: str) -> None:
    if logits.ndim < 2 or logits.shape[1] != num_bins:
        raise ValueError(f"{name} must have shape (N, {num_bins}, *S); got {tuple(logits.shape)}")


def histogram_kl(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Per-pixel ``KL(y || softmax(logits)) = sum_k y_k (log y_k - log q_k)``, with 0 log 0 = 0.

    Terms with ``y_k = 0`` contribute 0 even where ``q_k = 0``.

    Args:
        target: (N, K, *S) target histograms y (rows summing to 1, zeros allowed).
        logits: (N, K, *S) unnormalized scores; the softmax is over dim 1.

    Returns:
        (N, *S) non-negative divergences.
    """
    if target.shape != logits.shape or target.ndim < 2:
        raise ValueError(f"target {tuple(target.shape)} and logits {tuple(logits.shape)} must both be (N, K, *S)")
    log_q = F.log_softmax(logits, dim=1)
    cross = torch.where(target > 0, target * log_q, torch.zeros_like(log_q))
    return (torch.xlogy(target, target) - cross).sum(dim=1)


def _one_hot_kl(logits: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """KL from a one-hot target at ``index`` (N, *S): its cross-entropy -log q_index, (N, *S)."""
    return F.cross_entropy(logits, index, reduction="none")


def lab_marginal_loss(
    logits_a: torch.Tensor,
    logits_b: torch.Tensor,
    ab: torch.Tensor,
    num_bins: int = LARSSON_MARGINAL_BINS,
    sigma: float = LARSSON_LAB_SIGMA,
) -> torch.Tensor:
    """``KL(y_a || f_a) + KL(y_b || f_b)`` averaged over pixels, on Gaussian-quantile bins (Sec. 3.2).

    Args:
        logits_a: (N, K, *S) scores over the a-axis bins.
        logits_b: (N, K, *S) scores over the b-axis bins.
        ab: (N, 2, *S) raw ground-truth ab in Lab units.
        num_bins: K per axis; must equal the logits' dim 1.
        sigma: standard deviation of the Gaussian whose quantiles bin each axis.

    Returns:
        Scalar loss.
    """
    _check_width(logits_a, num_bins, "logits_a")
    _check_width(logits_b, num_bins, "logits_b")
    _check_ab(ab, logits_a, "logits_a")
    _check_ab(ab, logits_b, "logits_b")
    edges = gaussian_quantile_edges(num_bins, sigma, dtype=ab.dtype, device=ab.device)
    kl_a = _one_hot_kl(logits_a, bin_index(ab[:, 0], edges))
    kl_b = _one_hot_kl(logits_b, bin_index(ab[:, 1], edges))
    return (kl_a + kl_b).mean()


def lab_joint_loss(
    logits_joint: torch.Tensor,
    ab: torch.Tensor,
    num_bins: int = LARSSON_JOINT_BINS,
    sigma: float = LARSSON_LAB_SIGMA,
) -> torch.Tensor:
    """``KL(y_ab || f_ab)`` over the K x K quantile grid (index ``ka * K + kb``), averaged over pixels.

    Args:
        logits_joint: (N, K*K, *S) scores over the joint ab bins.
        ab: (N, 2, *S) raw ground-truth ab in Lab units.
        num_bins: K per axis; the logits' dim 1 must be K * K.
        sigma: standard deviation of the Gaussian whose quantiles bin each axis.

    Returns:
        Scalar loss.
    """
    _check_width(logits_joint, num_bins * num_bins, "logits_joint")
    _check_ab(ab, logits_joint, "logits_joint")
    return _one_hot_kl(logits_joint, joint_ab_bin_index(ab, num_bins, sigma)).mean()


def hue_chroma_loss(
    logits_hue: torch.Tensor,
    logits_chroma: torch.Tensor,
    hue: torch.Tensor,
    chroma: torch.Tensor,
    hue_weight: float = LARSSON_HUE_WEIGHT,
) -> torch.Tensor:
    """``KL(y_C || f_C) + lambda_H * y_C * KL(y_H || f_H)`` averaged over pixels (Larsson Sec. 3.2).

    Hue and chroma are binned uniformly on [0, 1], K = the logits' dim 1 for each head. The pixel's
    chroma y_C weights its hue term (hue is unstable near grey) and is treated as a constant. This is
    the released net's hue loss (chroma as the mask, loss weight 5); its extra lightness weight on the
    chroma term is not in the paper and not applied here.

    Args:
        logits_hue: (N, K_h, *S) scores over the hue bins.
        logits_chroma: (N, K_c, *S) scores over the chroma bins.
        hue: (N, *S) ground-truth hue in [0, 1].
        chroma: (N, *S) ground-truth chroma in [0, 1].
        hue_weight: lambda_H.

    Returns:
        Scalar loss.
    """
    for name, logits in (("logits_hue", logits_hue), ("logits_chroma", logits_chroma)):
        if logits.ndim < 2 or logits.shape[:1] + logits.shape[2:] != hue.shape or hue.shape != chroma.shape:
            raise ValueError(f"{name} {tuple(logits.shape)} must be (N, K, *S) for hue {tuple(hue.shape)} "
                             f"and chroma {tuple(chroma.shape)} of shape (N, *S)")
    hue_edges = uniform_edges(logits_hue.shape[1], dtype=hue.dtype, device=hue.device)
    chroma_edges = uniform_edges(logits_chroma.shape[1], dtype=chroma.dtype, device=chroma.device)
    kl_chroma = _one_hot_kl(logits_chroma, bin_index(chroma, chroma_edges))
    kl_hue = _one_hot_kl(logits_hue, bin_index(hue, hue_edges))
    return (kl_chroma + hue_weight * chroma.detach() * kl_hue).mean()


def lab_l2_loss(pred_ab: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L2 regression in Lab, ``mean over pixels of ||f(x) - y||^2`` (Larsson Sec. 3.2, L_reg).

    Normalization: squared differences are summed over the two ab channels and averaged over the
    N x prod(S) pixels, in raw Lab units (no 1/2; this is twice ``F.mse_loss``, which also averages
    over the channel).

    Args:
        pred_ab: (N, 2, *S) predicted raw ab.
        ab: (N, 2, *S) ground-truth raw ab.

    Returns:
        Scalar loss.
    """
    if pred_ab.shape != ab.shape or ab.ndim < 2 or ab.shape[1] != 2:
        raise ValueError(f"pred_ab {tuple(pred_ab.shape)} and ab {tuple(ab.shape)} must both be (N, 2, *S)")
    return (pred_ab - ab).square().sum(dim=1).mean()
