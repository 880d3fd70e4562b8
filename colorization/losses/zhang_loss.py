"""Zhang et al.'s class-rebalanced multinomial cross-entropy (ECCV 2016, Sec. 2.2, eq. 2), pure PyTorch.

L = -sum_{h,w} v(Z_hw) sum_q Z_hwq log softmax(logits)_hwq, averaged here over the pixels of the colourful
images. In the released Caffe code the rebalancing is a layer *after* the loss that scales only the gradient
(``ClassRebalanceMultLayer``, issue #18): the reported loss is the unweighted one, while the gradient is
v * (softmax - Z). Backpropagating :func:`rebalanced_cross_entropy` with pixel weights gives that same gradient;
to report what the released code reports, log :func:`cross_entropy_unweighted` (under ``torch.no_grad()``).

Shapes: logits (N, Q, h, w) (before any softmax); soft_target (N, Q, h, w), each pixel summing to 1
(``color/ab_bins.py:soft_encode_ab``); pixel_weights (N, h, w) (``color/ab_prior.py:pixel_rebalance_weights``);
image_mask (N,) bool (``color/ab_prior.py:colourful_images``).
"""

from __future__ import annotations

import torch

__all__ = ["rebalanced_cross_entropy", "cross_entropy_unweighted"]


def rebalanced_cross_entropy(
    logits: torch.Tensor,
    soft_target: torch.Tensor,
    pixel_weights: torch.Tensor | None = None,
    image_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Mean over valid pixels of v * (-sum_q Z_q log softmax(logits)_q).

    The mean is over all pixels of the images with image_mask True (N_valid * h * w), so for targets summing
    to 1 the gradient w.r.t. the logits is v * (softmax(logits) - Z) / (N_valid * h * w) on valid images and 0
    elsewhere. With no valid image the result is 0 and still part of the graph (zero gradients), so a training
    step on an all-grey batch needs no special case.

    Args:
        logits: (N, Q, h, w) unnormalized bin scores.
        soft_target: (N, Q, h, w) target distributions Z (no gradient flows into them).
        pixel_weights: (N, h, w) rebalancing weight v per pixel; None for the unweighted loss (v = 1).
        image_mask: (N,) bool, True for the images that count (the colourful ones); None counts all.

    Returns:
        Scalar tensor in logits' dtype.
    """
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (N, Q, h, w); got {tuple(logits.shape)}")
    if soft_target.shape != logits.shape:
        raise ValueError(f"soft_target {tuple(soft_target.shape)} must match logits {tuple(logits.shape)}")
    batch, _, height, width = logits.shape
    per_pixel = -(soft_target.to(logits.dtype) * torch.log_softmax(logits, dim=1)).sum(dim=1)  # (N, h, w)
    if pixel_weights is not None:
        if pixel_weights.shape != per_pixel.shape:
            expected = tuple(per_pixel.shape)
            raise ValueError(f"pixel_weights must have shape {expected}; got {tuple(pixel_weights.shape)}")
        per_pixel = per_pixel * pixel_weights.to(logits.dtype)
    if image_mask is None:
        num_pixels = batch * height * width
        return per_pixel.sum() / num_pixels if num_pixels else logits.sum() * 0
    if image_mask.shape != (batch,) or image_mask.dtype != torch.bool:
        raise ValueError(
            f"image_mask must be a bool tensor of shape ({batch},); got {image_mask.dtype} {tuple(image_mask.shape)}"
        )
    image_mask = image_mask.to(logits.device)
    num_pixels = image_mask.sum() * (height * width)  # a tensor: no device sync
    # where(), not a product with the mask: a masked-out image's NaN or inf would survive 0 * x. With no valid
    # image the sum is exactly +0 and the clamped count 1: the result is 0 with zero gradients, never 0 / 0.
    masked_sum = torch.where(image_mask[:, None, None], per_pixel, 0.0).sum()
    return masked_sum / num_pixels.clamp_min(1)


def cross_entropy_unweighted(
    logits: torch.Tensor,
    soft_target: torch.Tensor,
    image_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The loss value the released code reports: :func:`rebalanced_cross_entropy` with v = 1.

    Args:
        logits: (N, Q, h, w) unnormalized bin scores.
        soft_target: (N, Q, h, w) target distributions.
        image_mask: (N,) bool, True for the images that count; None counts all.

    Returns:
        Scalar tensor in logits' dtype.
    """
    return rebalanced_cross_entropy(logits, soft_target, pixel_weights=None, image_mask=image_mask)
