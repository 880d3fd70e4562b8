"""Initializing a :class:`LarssonHypercolumn` from torchvision's ImageNet VGG-16 (Larsson et al. Sec. 3.4).

"We initialize with a version of VGG-16 pretrained on ImageNet, adapting it to grayscale by averaging over
color channels in the first layer and rescaling appropriately." torchvision's ``vgg16`` keeps the 13
convolutions in ``features`` and the three fully connected layers in ``classifier``; the table
:data:`TORCHVISION_VGG16_KEYS` says where each of our layers comes from. fc8 (``classifier.6``) is dropped.

* ``classifier.0`` (fc6, 4096 x 25088, reading the flattened 512 x 7 x 7 pool5) becomes the 7x7 convolution
  ``fc6`` by reshaping to 4096 x 512 x 7 x 7 (torch's flatten order is channel, row, column). With padding 3,
  its output at the centre of a 7x7 pool5 map is exactly the linear layer's output.
* ``classifier.3`` (fc7, 4096 x 4096) becomes the 1x1 convolution ``fc7``.
* conv1_1: the RGB network saw ``x_c = (r_c - mean_c) / std_c`` (:data:`TORCHVISION_IMAGENET_MEAN`,
  :data:`TORCHVISION_IMAGENET_STD`, r in [0, 1]); ours sees ``d = g - grey_offset``. For a grey image,
  r_c = g for every channel, and the old convolution equals the new one exactly when

      W_grey[o, 0, i, j] = sum_c W[o, c, i, j] / std_c
      b_grey[o] = b[o] + sum_{c, i, j} W[o, c, i, j] * (grey_offset - mean_c) / std_c

  This holds at every output position whose 3x3 window lies inside the image. On the one-pixel border the
  two differ, because zero padding means r_c = mean_c to the old network but g = grey_offset to the new one
  (an image-independent term ``sum_c W[o, c, i, j] * (grey_offset - mean_c) / std_c`` per padded tap).
  The paper's "averaging over colour channels and rescaling" is this rule: the sum over c is 3 times the
  average of W_c / std_c.

The balancing scales are not touched: call ``model.estimate_hypercolumn_scales`` on real photos afterwards.
"""

from __future__ import annotations

import torch

from colorization.color.constants import TORCHVISION_IMAGENET_MEAN, TORCHVISION_IMAGENET_STD
from colorization.models.larsson_hypercolumn import LarssonHypercolumn

__all__ = [
    "TORCHVISION_VGG16_KEYS",
    "grey_conv1_1",
    "load_torchvision_vgg16_weights",
    "torchvision_vgg16_state_dict",
    "torchvision_vgg16_to_larsson",
]

# Our layer -> torchvision vgg16 module (``features`` indices skip the ReLUs and pools between convolutions).
TORCHVISION_VGG16_KEYS: dict[str, str] = {
    "conv1_1": "features.0",
    "conv1_2": "features.2",
    "conv2_1": "features.5",
    "conv2_2": "features.7",
    "conv3_1": "features.10",
    "conv3_2": "features.12",
    "conv3_3": "features.14",
    "conv4_1": "features.17",
    "conv4_2": "features.19",
    "conv4_3": "features.21",
    "conv5_1": "features.24",
    "conv5_2": "features.26",
    "conv5_3": "features.28",
    "fc6": "classifier.0",
    "fc7": "classifier.3",
}
_FC6_INPUT_SHAPE = (512, 7, 7)  # pool5 as torchvision's classifier flattens it


def grey_conv1_1(
    weight: torch.Tensor,
    bias: torch.Tensor,
    grey_offset: float,
    mean: tuple[float, float, float] = TORCHVISION_IMAGENET_MEAN,
    std: tuple[float, float, float] = TORCHVISION_IMAGENET_STD,
) -> tuple[torch.Tensor, torch.Tensor]:
    """An RGB conv1_1 on normalized RGB -> the equivalent conv on ``grey - grey_offset`` (module docstring).

    Args:
        weight: (O, 3, kh, kw) weights of the RGB network's first convolution.
        bias: (O,) its bias.
        grey_offset: what the grey network subtracts from grey in [0, 1].
        mean: per-channel mean the RGB network subtracted from RGB in [0, 1].
        std: per-channel std it divided by.

    Returns:
        (weight (O, 1, kh, kw), bias (O,)), computed in float64 and returned in ``weight``'s dtype.
    """
    if weight.ndim != 4 or weight.shape[1] != 3:
        raise ValueError(f"conv1_1 weight must be (O, 3, kh, kw); got {tuple(weight.shape)}")
    w64 = weight.double()
    mean64 = torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)
    std64 = torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    grey_weight = (w64 / std64).sum(dim=1, keepdim=True)
    grey_bias = bias.double() + (w64 * (grey_offset - mean64) / std64).sum(dim=(1, 2, 3))
    return grey_weight.to(weight.dtype), grey_bias.to(bias.dtype)


def torchvision_vgg16_to_larsson(
    state_dict: dict[str, torch.Tensor],
    *,
    grey_offset: float,
    mean: tuple[float, float, float] = TORCHVISION_IMAGENET_MEAN,
    std: tuple[float, float, float] = TORCHVISION_IMAGENET_STD,
) -> dict[str, torch.Tensor]:
    """torchvision vgg16 state dict -> our VGG tensors (``conv1_1.weight`` ... ``fc7.bias``), full width.

    Args:
        state_dict: ``torchvision.models.vgg16().state_dict()`` (``features.*``, ``classifier.*``).
        grey_offset: the grey network's input offset (``LarssonConfig.grey_offset``).
        mean: the RGB network's input mean.
        std: the RGB network's input std.

    Returns:
        A partial state dict of :class:`LarssonHypercolumn` (the VGG layers only).
    """
    missing = [f"{source}.{kind}" for source in TORCHVISION_VGG16_KEYS.values() for kind in ("weight", "bias")
               if f"{source}.{kind}" not in state_dict]
    if missing:
        raise KeyError(f"not a torchvision vgg16 state dict: missing {missing}")
    mapped: dict[str, torch.Tensor] = {}
    for ours, source in TORCHVISION_VGG16_KEYS.items():
        weight, bias = state_dict[f"{source}.weight"], state_dict[f"{source}.bias"]
        if ours == "conv1_1":
            weight, bias = grey_conv1_1(weight, bias, grey_offset, mean, std)
        elif ours == "fc6":
            weight = weight.reshape(weight.shape[0], *_FC6_INPUT_SHAPE)
        elif ours == "fc7":
            weight = weight.reshape(*weight.shape, 1, 1)
        mapped[f"{ours}.weight"], mapped[f"{ours}.bias"] = weight, bias
    return mapped


def load_torchvision_vgg16_weights(model: LarssonHypercolumn, state_dict: dict[str, torch.Tensor]) -> None:
    """Copies torchvision's VGG-16 weights into ``model``'s VGG layers (in place; see the module docstring).

    The hypercolumn layer, the heads and the balancing scales keep their values.

    Args:
        model: a full-width (``width_multiplier == 1``) Larsson network.
        state_dict: ``torchvision.models.vgg16(...).state_dict()``, e.g. :func:`torchvision_vgg16_state_dict`.
    """
    if model.config.width_multiplier != 1:
        raise ValueError(
            f"torchvision's VGG-16 weights fit only width_multiplier 1; this model has "
            f"{model.config.width_multiplier}"
        )
    mapped = torchvision_vgg16_to_larsson(state_dict, grey_offset=model.config.grey_offset)
    own = model.state_dict()
    for key, tensor in mapped.items():
        if own[key].shape != tensor.shape:
            raise ValueError(f"{key}: torchvision gives {tuple(tensor.shape)}, model has {tuple(own[key].shape)}")
    with torch.no_grad():
        for key, tensor in mapped.items():
            own[key].copy_(tensor)


def torchvision_vgg16_state_dict() -> dict[str, torch.Tensor]:
    """torchvision's ImageNet VGG-16 (``VGG16_Weights.IMAGENET1K_V1``); downloads on first use (~528 MB)."""
    from torchvision.models import VGG16_Weights, vgg16

    return vgg16(weights=VGG16_Weights.IMAGENET1K_V1).state_dict()
