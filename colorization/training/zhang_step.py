"""One training step of Zhang et al.'s colorization network (ECCV 2016, Sec. 2.1-2.2), pure PyTorch.

Per batch of raw Lab images: normalize L, predict bin logits at 1/4 resolution, soft-encode the ground-truth ab
on the same grid, weight each pixel by the rebalancing weight of its nearest bin, leave out colourless images,
and minimize the multinomial cross-entropy (Eq. 2). The Caffe training net of richzhang/colorization
(``models/colorization_train_val_v2.prototxt`` with ``resources/caffe_traininglayers.py``) did the same; how it
differs from the paper is in shared/reference/paper-facts.md:

* Ground truth at the logits' resolution: the Caffe net subsampled ab by taking every 4th pixel (its fixed
  stride-4 1x1 convolution ``data_ab_ss``), not by averaging; :func:`subsample_ab_to_logits` keeps that rule, so pixel
  (i, j) of the logits is scored against input pixel (4i, 4j).
* Rebalancing weighted only the gradient; the loss it reported was unweighted. We return both values and
  backpropagate the weighted one, which gives the same gradient.
* Images whose |ab| never exceeds 5 (the "non-grey mask") carry no colour to learn and are excluded.

Ray's worker loop and local scripts call :func:`zhang_train_step`; evaluation reuses :func:`zhang_loss_terms`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from colorization.color.ab_bins import soft_encode_ab
from colorization.color.ab_prior import colourful_images, pixel_rebalance_weights
from colorization.color.constants import COLOURLESS_AB_THRESHOLD, SOFT_ENCODE_NEIGHBOURS, SOFT_ENCODE_SIGMA
from colorization.color.lab import split_lab
from colorization.losses.zhang_loss import cross_entropy_unweighted, rebalanced_cross_entropy
from colorization.models.zhang_eccv16 import ZhangECCV16
from colorization.training.unwrap import unwrap_model

__all__ = [
    "ADAM_BETAS",
    "ADAM_LEARNING_RATE",
    "ADAM_WEIGHT_DECAY",
    "ZhangLossTerms",
    "default_zhang_optimizer",
    "subsample_ab_to_logits",
    "zhang_loss",
    "zhang_loss_terms",
    "zhang_train_step",
]

# Solver of the authors' Caffe training (richzhang/colorization issue #45; paper-facts.md). The paper names Adam
# but not these values. The lr drops x0.1 at 225k of ~450k iterations: that schedule belongs to the trainer.
ADAM_LEARNING_RATE = 3e-5
ADAM_BETAS = (0.9, 0.99)
ADAM_WEIGHT_DECAY = 1e-3


@dataclass(frozen=True)
class ZhangLossTerms:
    """The losses of one batch.

    Attributes:
        loss: scalar, class-rebalanced cross-entropy (Eq. 2 with v = rebalancing weights); backpropagate this.
        loss_unweighted: scalar, detached, the same without rebalancing (what the authors reported).
        colourful_images: how many images of the batch entered the loss (the others are colourless).
    """

    loss: torch.Tensor
    loss_unweighted: torch.Tensor
    colourful_images: int


def subsample_ab_to_logits(ab: torch.Tensor, logits_size: tuple[int, int]) -> torch.Tensor:
    """Ground-truth ab on the logits' grid by taking every s-th pixel, s = H / h (4 for this network).

    Args:
        ab: (N, 2, H, W) raw ab.
        logits_size: (h, w) of the logits; H = s * h and W = s * w for one integer s.

    Returns:
        (N, 2, h, w) raw ab, pixel (i, j) = ab[..., s * i, s * j] (the Caffe net's subsampling).
    """
    height, width = ab.shape[-2:]
    logits_height, logits_width = logits_size
    stride = height // logits_height
    if stride < 1 or height != stride * logits_height or width != stride * logits_width:
        raise ValueError(
            f"ab of size {height}x{width} is not an integer multiple of the logits' {logits_height}x{logits_width}"
        )
    return ab[..., ::stride, ::stride]


def zhang_loss_terms(
    model: nn.Module,
    lab: torch.Tensor,
    *,
    class_weights: torch.Tensor | None,
    neighbours: int = SOFT_ENCODE_NEIGHBOURS,
    sigma: float = SOFT_ENCODE_SIGMA,
) -> ZhangLossTerms:
    """Forward pass and losses of one batch (no backward).

    Args:
        model: a :class:`ZhangECCV16`, possibly DDP-wrapped; its config supplies the bins and L normalization.
        lab: (N, 3, H, W) raw Lab (L in [0, 100]); H and W multiples of 8.
        class_weights: (Q,) rebalancing weight per bin (``color/ab_prior.py``), or None for the unweighted loss.
        neighbours: bins that share each pixel's soft target (paper: 5; the authors' code: 10).
        sigma: Gaussian kernel of the soft targets, in ab units.

    Returns:
        The weighted and unweighted losses and the number of colourful images.
    """
    if lab.ndim != 4 or lab.shape[1] != 3:
        raise ValueError(f"lab must have shape (N, 3, H, W); got {tuple(lab.shape)}")
    core = unwrap_model(model, ZhangECCV16)
    if class_weights is not None and class_weights.shape != (core.config.num_bins,):
        raise ValueError(
            f"class_weights must have shape ({core.config.num_bins},), one per bin; got {tuple(class_weights.shape)}"
        )
    l_raw, ab = split_lab(lab)  # (N, 1, H, W), (N, 2, H, W) raw
    logits = model(core.normalize_lightness(l_raw))  # (N, Q, H/4, W/4)
    with torch.no_grad():  # targets and weights are data, not functions of the parameters
        ab_target = subsample_ab_to_logits(ab, (logits.shape[-2], logits.shape[-1]))  # (N, 2, h, w) raw
        bins = core.ab_bins_tensor(dtype=ab.dtype, device=ab.device)  # (Q, 2)
        soft_target = soft_encode_ab(ab_target, bins, neighbours=neighbours, sigma=sigma)  # (N, Q, h, w)
        # On the grid the loss sees: an image is colourful for the loss only if its scored pixels are.
        image_mask = colourful_images(ab_target, threshold=COLOURLESS_AB_THRESHOLD)  # (N,) bool
        pixel_weights = (
            None
            if class_weights is None
            else pixel_rebalance_weights(soft_target, class_weights.to(device=ab.device, dtype=ab.dtype))
        )  # (N, h, w)
    soft_target = soft_target.to(logits.dtype)
    loss = rebalanced_cross_entropy(logits, soft_target, pixel_weights=pixel_weights, image_mask=image_mask)
    if pixel_weights is None:
        loss_unweighted = loss.detach()
    else:
        with torch.no_grad():
            loss_unweighted = cross_entropy_unweighted(logits, soft_target, image_mask=image_mask)
    return ZhangLossTerms(loss=loss, loss_unweighted=loss_unweighted, colourful_images=int(image_mask.sum()))


def zhang_loss(
    model: nn.Module,
    lab: torch.Tensor,
    *,
    class_weights: torch.Tensor | None,
    neighbours: int = SOFT_ENCODE_NEIGHBOURS,
    sigma: float = SOFT_ENCODE_SIGMA,
) -> torch.Tensor:
    """The scalar loss to backpropagate (rebalanced when ``class_weights`` is given); see :func:`zhang_loss_terms`."""
    return zhang_loss_terms(model, lab, class_weights=class_weights, neighbours=neighbours, sigma=sigma).loss


def zhang_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lab: torch.Tensor,
    *,
    class_weights: torch.Tensor | None,
    neighbours: int = SOFT_ENCODE_NEIGHBOURS,
    sigma: float = SOFT_ENCODE_SIGMA,
) -> dict[str, float]:
    """One optimizer step on a batch: forward, loss, backward, ``optimizer.step()``, ``optimizer.zero_grad()``.

    The caller sets the mode (``model.train()``; BatchNorm updates its running statistics) and the lr schedule.
    A batch without colourful images has loss 0 and zero gradients; the optimizer still steps, so weight decay
    and momentum still move the parameters.

    Args:
        model: a :class:`ZhangECCV16`, possibly DDP-wrapped.
        optimizer: over ``model``'s parameters (e.g. :func:`default_zhang_optimizer`).
        lab: (N, 3, H, W) raw Lab, H and W multiples of 8.
        class_weights: (Q,) rebalancing weights per bin, or None for no rebalancing.
        neighbours: bins per soft target.
        sigma: soft-encoding kernel width, ab units.

    Returns:
        ``{"loss": weighted loss, "loss_unweighted": ..., "colourful_images": count}`` as Python numbers.
    """
    terms = zhang_loss_terms(model, lab, class_weights=class_weights, neighbours=neighbours, sigma=sigma)
    terms.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {
        "loss": float(terms.loss.detach()),
        "loss_unweighted": float(terms.loss_unweighted),
        "colourful_images": terms.colourful_images,
    }


def default_zhang_optimizer(model: nn.Module) -> torch.optim.Adam:
    """Adam as in the authors' solver: lr 3e-5, betas (0.9, 0.99), weight decay 1e-3 (L2, as Caffe's)."""
    return torch.optim.Adam(
        model.parameters(), lr=ADAM_LEARNING_RATE, betas=ADAM_BETAS, weight_decay=ADAM_WEIGHT_DECAY
    )
