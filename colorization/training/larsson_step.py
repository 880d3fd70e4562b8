"""One training step of Larsson et al.'s hypercolumn colorizer (ECCV 2016, Sec. 3.2 and 3.4), pure PyTorch.

Per batch of raw Lab images: convert to sRGB, take the grey input ``mean(R, G, B)``, sample
``config.sampled_pixels`` pixels per image, read the hypercolumns there, and score each configured head
against the targets at the same pixels; the loss is the sum over heads. The released Caffe net
(gustavla/autocolorize ``train/train_vgg16.prototxt``, ``solver_vgg16.prototxt``) did the same, with the
differences listed in shared/reference/paper-facts.md (7x7-window targets, BatchNorm, a lightness weight on
the chroma loss); here the targets are the paper's (R = 1: the sampled pixel's own bin).

Colourless images (no pixel with ab chroma >= 5, Zhang's "non-grey mask", ``color/ab_prior.py``) are left
out of the loss, as for Zhang et al.'s network, so both models learn from the same images.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from colorization.color.ab_prior import colourful_images
from colorization.color.constants import (
    COLOURLESS_AB_THRESHOLD,
    LARSSON_BIAS_LR_MULT,
    LARSSON_HUE_WEIGHT,
    LARSSON_SGD_LR,
    LARSSON_SGD_MOMENTUM,
    LARSSON_WEIGHT_DECAY,
)
from colorization.color.hue_chroma import larsson_grey, rgb_to_hcl
from colorization.color.lab import lab_to_rgb, split_lab
from colorization.losses.larsson_loss import hue_chroma_loss, lab_joint_loss, lab_l2_loss, lab_marginal_loss
from colorization.models.larsson_hypercolumn import LarssonHypercolumn, gather_pixels, sample_pixel_locations
from colorization.training.unwrap import unwrap_model

__all__ = [
    "LarssonLossTerms",
    "default_larsson_optimizer",
    "larsson_loss",
    "larsson_loss_terms",
    "larsson_train_step",
]


@dataclass(frozen=True)
class LarssonLossTerms:
    """The losses of one batch.

    Attributes:
        loss: scalar, the sum of the heads' losses; backpropagate this.
        head_losses: {head: scalar loss}, in ``config.heads`` order.
        colourful_images: how many images of the batch entered the loss (the others are colourless).
    """

    loss: torch.Tensor
    head_losses: dict[str, torch.Tensor]
    colourful_images: int


def _head_loss(
    core: LarssonHypercolumn,
    head: str,
    output: torch.Tensor,
    ab: torch.Tensor,
    hcl: torch.Tensor | None,
    hue_weight: float,
) -> torch.Tensor:
    """Loss of one head on sampled pixels: output (N, K, P), ab (N, 2, P) raw, hcl (N, 3, P) in [0, 1]."""
    config = core.config
    parts = core.split_head(head, output)
    if head == "lab_marginal":
        return lab_marginal_loss(parts["a"], parts["b"], ab, num_bins=config.marginal_bins, sigma=config.lab_sigma)
    if head == "lab_joint":
        return lab_joint_loss(parts["ab"], ab, num_bins=config.joint_bins, sigma=config.lab_sigma)
    if head == "hue_chroma" and hcl is not None:
        return hue_chroma_loss(parts["hue"], parts["chroma"], hcl[:, 0], hcl[:, 1], hue_weight=hue_weight)
    if head == "l2":
        return lab_l2_loss(parts["ab"], ab)
    raise ValueError(f"no loss for head {head!r}")


def larsson_loss_terms(
    model: nn.Module,
    lab: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    hue_weight: float = LARSSON_HUE_WEIGHT,
) -> LarssonLossTerms:
    """Forward pass and losses of one batch at ``config.sampled_pixels`` random pixels per image (no backward).

    Args:
        model: a :class:`LarssonHypercolumn`, possibly wrapped (DDP, MixedPrecision); its config names the heads
            and bins.
        lab: (N, 3, H, W) raw Lab (L in [0, 100]); H and W multiples of 8.
        generator: draws the sampled pixels (on the CPU); None uses the global generator.
        hue_weight: lambda_H of the hue/chroma loss.

    Returns:
        The total and per-head losses and the number of colourful images.
    """
    if lab.ndim != 4 or lab.shape[1] != 3:
        raise ValueError(f"lab must have shape (N, 3, H, W); got {tuple(lab.shape)}")
    core = unwrap_model(model, LarssonHypercolumn)  # through DDP / MixedPrecision wrappers
    batch, _, height, width = lab.shape
    with torch.no_grad():  # inputs and targets are data, not functions of the parameters
        rgb = lab_to_rgb(lab)  # (N, 3, H, W) in [0, 1]
        grey = larsson_grey(rgb)  # (N, 1, H, W) in [0, 1]
        _, ab = split_lab(lab)  # (N, 2, H, W) raw
        keep = colourful_images(ab, threshold=COLOURLESS_AB_THRESHOLD)  # (N,) bool
        locations = sample_pixel_locations(
            batch, height, width, core.config.sampled_pixels, generator, device=lab.device
        )  # (N, P, 2) integer (x, y)
        ab_at = gather_pixels(ab, locations)  # (N, 2, P) raw
        hcl_at = gather_pixels(rgb_to_hcl(rgb), locations) if "hue_chroma" in core.config.heads else None
    outputs = model(grey, locations)  # {head: (N, K, P)}
    colourful = int(keep.sum())
    head_losses: dict[str, torch.Tensor] = {}
    for head in core.config.heads:
        output = outputs[head]
        if colourful == 0:
            head_losses[head] = output.sum() * 0.0  # keeps the graph, so backward and DDP still run
            continue
        head_losses[head] = _head_loss(
            core,
            head,
            output[keep],
            ab_at[keep],
            None if hcl_at is None else hcl_at[keep],
            hue_weight,
        )
    loss = torch.stack(list(head_losses.values())).sum()
    return LarssonLossTerms(loss=loss, head_losses=head_losses, colourful_images=colourful)


def larsson_loss(
    model: nn.Module,
    lab: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    hue_weight: float = LARSSON_HUE_WEIGHT,
) -> torch.Tensor:
    """The scalar loss to backpropagate (sum over heads); see :func:`larsson_loss_terms`."""
    return larsson_loss_terms(model, lab, generator=generator, hue_weight=hue_weight).loss


def larsson_train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lab: torch.Tensor,
    *,
    generator: torch.Generator | None = None,
    hue_weight: float = LARSSON_HUE_WEIGHT,
) -> dict[str, float]:
    """One optimizer step on a batch: forward, loss, backward, ``optimizer.step()``, ``optimizer.zero_grad()``.

    The caller sets the mode (``model.train()`` turns dropout on) and the lr schedule. A batch without
    colourful images has loss 0 and zero gradients; the optimizer still steps (weight decay, momentum).

    Args:
        model: a :class:`LarssonHypercolumn`, possibly wrapped (DDP, MixedPrecision).
        optimizer: over ``model``'s parameters (e.g. :func:`default_larsson_optimizer`).
        lab: (N, 3, H, W) raw Lab, H and W multiples of 8.
        generator: draws the sampled pixels; None uses the global generator.
        hue_weight: lambda_H of the hue/chroma loss.

    Returns:
        ``{"loss": total, "loss_<head>": each head's loss, "colourful_images": count}`` as Python numbers.
    """
    terms = larsson_loss_terms(model, lab, generator=generator, hue_weight=hue_weight)
    terms.loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    result: dict[str, float] = {"loss": float(terms.loss.detach())}
    result.update({f"loss_{head}": float(value.detach()) for head, value in terms.head_losses.items()})
    result["colourful_images"] = terms.colourful_images
    return result


def default_larsson_optimizer(model: nn.Module) -> torch.optim.SGD:
    """SGD as in the released solver: lr 1e-3, momentum 0.9, weight decay 5e-4 on weights.

    Biases (every 1-D parameter) get twice the lr and no weight decay, the ``lr_mult: 2, decay_mult: 0``
    of every layer in ``train_vgg16.prototxt``. The x0.1 steps at 1.0M, 1.5M, 1.75M iterations belong to the
    trainer's schedule.
    """
    weights = [parameter for parameter in model.parameters() if parameter.ndim > 1]
    biases = [parameter for parameter in model.parameters() if parameter.ndim <= 1]
    return torch.optim.SGD(
        [
            {"params": weights},
            {"params": biases, "lr": LARSSON_SGD_LR * LARSSON_BIAS_LR_MULT, "weight_decay": 0.0},
        ],
        lr=LARSSON_SGD_LR,
        momentum=LARSSON_SGD_MOMENTUM,
        weight_decay=LARSSON_WEIGHT_DECAY,
    )
