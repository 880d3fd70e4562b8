"""Zhang et al.'s colorization network: lightness -> logits over the quantized ab bins.

Reproduces the CNN of Zhang, Isola and Efros, "Colorful Image Colorization" (ECCV 2016), Sec. 3 and Fig. 2,
with the module layout of the authors' PyTorch port (richzhang/colorization, ``colorizers/eccv16.py``,
``ECCVGenerator``): eight ``nn.Sequential`` blocks named ``model1`` .. ``model8`` whose indices match the
released state dict, so the official weights load key for key (see ``models/zhang_official.py``).

* Blocks 1-7: 3x3 convolutions, each followed by ReLU; a BatchNorm2d closes every block. Blocks 1-3 end with
  a stride-2 convolution (H -> H/8), blocks 5-6 use dilation 2 (padding 2) to widen the receptive field at 1/8.
* Block 8: a 4x4 stride-2 transposed convolution back to 1/4 resolution, two 3x3 convolutions and a 1x1
  convolution to Q logits, one per ab bin (no ReLU on the logits).

Unlike the port, the network stops at the logits. The data contract (L normalization, the bin centres, the
annealed-mean temperature) lives in :class:`ZhangConfig`, and decoding logits to ab is the pure function
``colorization.color.zhang_decode.annealed_mean_ab`` -- the port's bias-free ``model_out`` 1x1 convolution
held the bin centres inside a checkpoint tensor (STYLE anti-pattern 3).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from colorization.color.ab_bins import default_ab_bins, validate_ab_bins
from colorization.color.constants import AB_GRID_STEP, ANNEALED_MEAN_TEMPERATURE, LAB_NORMALIZATION
from colorization.models.registry import register_family, register_model

__all__ = ["ZhangConfig", "ZhangECCV16", "zhang_eccv16", "zhang_eccv16_w8"]

# Output channels of blocks 1..8 at width 1 (Fig. 2; ``eccv16.py``). Scaled by ``width_multiplier``.
_BLOCK_CHANNELS = (64, 128, 256, 512, 512, 512, 512, 256)
# Convolutions per block 1..7 (Fig. 2: conv1-2 have two, conv3-7 three).
_BLOCK_CONVS = (2, 2, 3, 3, 3, 3, 3)
_STRIDED_BLOCKS = (1, 2, 3)  # the last conv of these halves the resolution: H -> H/8 after block 3
_DILATED_BLOCKS = (5, 6)  # a trous convolutions at 1/8 resolution (Sec. 3, Fig. 2)
_DILATION = 2
_INPUT_MULTIPLE = 8  # three stride-2 halvings must divide exactly, or the 1/4 grid loses alignment


@lru_cache(maxsize=1)
def _default_bins_tuple() -> tuple[tuple[float, float], ...]:
    # Cached: every default config needs the same immutable tuple; convert the (Q, 2) tensor once.
    bins = default_ab_bins(grid_step=AB_GRID_STEP, dtype=torch.float64)
    return tuple((float(a), float(b)) for a, b in bins.tolist())


@dataclass(frozen=True)
class ZhangConfig:
    """Architecture and data contract of a :class:`ZhangECCV16`; checkpoints store it whole.

    ``ab_bins`` fixes both the number of logits (Q = ``len(ab_bins)``) and their meaning: logit q scores the
    bin centred at ``ab_bins[q]``, in raw Lab units. The officially released weights need the 313 bins of
    ``pts_in_hull.npy`` in file order; a model trained here uses the bins derived in ``color/ab_bins.py``.
    """

    # (a, b) centre of each output bin, raw Lab; the default is the derived in-gamut grid (Sec. 2.1).
    ab_bins: tuple[tuple[float, float], ...] = field(default_factory=_default_bins_tuple)
    # Channels of every layer scaled by this (at least 1 each); 1.0 is the paper's network, 1/8 fits a CPU test.
    width_multiplier: float = 1.0
    # Side of the square working resolution of inference (the authors resize to 256x256; paper-facts.md).
    input_size: int = 256
    # Default annealed-mean temperature T for decoding (Sec. 2.3: T = 0.38).
    temperature: float = ANNEALED_MEAN_TEMPERATURE
    # Input L enters as (L - l_center) / l_scale; decoded ab leave in raw units (``colorizers/base_color.py``).
    l_center: float = LAB_NORMALIZATION.l_center
    l_scale: float = LAB_NORMALIZATION.l_scale
    # ab_scale: ab units per unit of the release's ``model_out`` (checked when importing official weights).
    ab_scale: float = LAB_NORMALIZATION.ab_scale

    def __post_init__(self) -> None:
        # Normalize to tuples of floats: configs rebuilt from JSON carry lists, and equality must not care.
        try:
            bins = tuple((float(a), float(b)) for a, b in self.ab_bins)
        except (TypeError, ValueError):
            raise ValueError("ab_bins must be a sequence of (a, b) pairs of numbers") from None
        object.__setattr__(self, "ab_bins", bins)
        validate_ab_bins(torch.tensor(bins, dtype=torch.float64).reshape(-1, 2))  # count, finiteness, duplicates
        if not (math.isfinite(self.width_multiplier) and self.width_multiplier > 0):
            raise ValueError(f"width_multiplier must be a positive number; got {self.width_multiplier}")
        if isinstance(self.input_size, bool) or not isinstance(self.input_size, int):
            raise TypeError(f"input_size must be an int; got {self.input_size!r}")
        if self.input_size <= 0 or self.input_size % _INPUT_MULTIPLE:
            raise ValueError(f"input_size must be a positive multiple of {_INPUT_MULTIPLE}; got {self.input_size}")
        if not (math.isfinite(self.temperature) and self.temperature > 0):
            raise ValueError(f"temperature must be a positive number; got {self.temperature}")
        if not math.isfinite(self.l_center):
            raise ValueError(f"l_center must be finite; got {self.l_center}")
        for name in ("l_scale", "ab_scale"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number; got {value}")

    @property
    def num_bins(self) -> int:
        """Q, the number of ab bins and of output logits."""
        return len(self.ab_bins)

    def channels(self, base: int) -> int:
        """Width of a layer that has ``base`` channels in the paper's network."""
        return max(1, round(base * self.width_multiplier))


def _conv_block(in_channels: int, out_channels: int, *, num_convs: int, stride: int, dilation: int) -> nn.Sequential:
    """Conv-ReLU pairs closed by BatchNorm2d; only the last conv carries ``stride`` (as in ``eccv16.py``).

    Indices: conv at 0, 2, ..., ReLU at 1, 3, ..., BatchNorm at 2 * num_convs (the release's key layout).
    """
    layers: list[nn.Module] = []
    for index in range(num_convs):
        last = index == num_convs - 1
        layers.append(
            nn.Conv2d(
                in_channels if index == 0 else out_channels,
                out_channels,
                kernel_size=3,
                stride=stride if last else 1,
                padding=dilation,  # keeps the size for a 3x3 kernel at any dilation
                dilation=dilation,
                bias=True,
            )
        )
        layers.append(nn.ReLU(inplace=True))
    layers.append(nn.BatchNorm2d(out_channels))
    return nn.Sequential(*layers)


class ZhangECCV16(nn.Module):
    """Normalized lightness (N, 1, H, W) -> bin logits (N, Q, H/4, W/4); H and W multiples of 8."""

    family = "zhang_eccv16"
    input_multiple = _INPUT_MULTIPLE  # H and W of the input must be multiples of this
    output_stride = 4  # logits are at 1/4 of the input resolution (Fig. 2, conv8)

    def __init__(self, config: ZhangConfig) -> None:
        """Builds the network of Fig. 2 at ``config.width_multiplier``, with Q = ``config.num_bins`` logits.

        Args:
            config: architecture and data contract; kept as ``self.config`` for checkpoints and decoding.
        """
        super().__init__()
        self.config = config
        widths = [config.channels(base) for base in _BLOCK_CHANNELS]
        in_channels = 1  # the L channel only
        for block, num_convs in enumerate(_BLOCK_CONVS, start=1):
            out_channels = widths[block - 1]
            sequential = _conv_block(
                in_channels,
                out_channels,
                num_convs=num_convs,
                stride=2 if block in _STRIDED_BLOCKS else 1,
                dilation=_DILATION if block in _DILATED_BLOCKS else 1,
            )
            self.add_module(f"model{block}", sequential)
            in_channels = out_channels
        head_channels = widths[7]
        self.model8 = nn.Sequential(
            nn.ConvTranspose2d(in_channels, head_channels, kernel_size=4, stride=2, padding=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_channels, head_channels, kernel_size=3, padding=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_channels, head_channels, kernel_size=3, padding=1, bias=True),
            nn.ReLU(inplace=True),
            nn.Conv2d(head_channels, config.num_bins, kernel_size=1, bias=True),  # logits: no ReLU
        )

    def normalize_lightness(self, l_raw: torch.Tensor) -> torch.Tensor:
        """Raw L in [0, 100], (N, 1, H, W) -> the network's input, (L - l_center) / l_scale."""
        return (l_raw - self.config.l_center) / self.config.l_scale

    def ab_bins_tensor(
        self, *, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
    ) -> torch.Tensor:
        """The bin centres of ``config.ab_bins`` as a (Q, 2) tensor of raw ab, in logit order."""
        return torch.tensor(self.config.ab_bins, dtype=dtype, device=device)

    def forward_features(self, l_normalized: torch.Tensor) -> torch.Tensor:
        """(N, 1, H, W) normalized L -> conv7 features (N, C7, H/8, W/8)."""
        if l_normalized.ndim != 4 or l_normalized.shape[1] != 1:
            raise ValueError(f"expected normalized L of shape (N, 1, H, W); got {tuple(l_normalized.shape)}")
        height, width = l_normalized.shape[-2:]
        if height % _INPUT_MULTIPLE or width % _INPUT_MULTIPLE:
            raise ValueError(
                f"input height and width must be multiples of {_INPUT_MULTIPLE} (three stride-2 convolutions); "
                f"got {height}x{width}: resize or pad first"
            )
        features = l_normalized
        for block in (self.model1, self.model2, self.model3, self.model4, self.model5, self.model6, self.model7):
            features = block(features)
        return features

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """conv7 features (N, C7, H/8, W/8) -> bin logits (N, Q, H/4, W/4)."""
        return self.model8(features)

    def forward(self, l_normalized: torch.Tensor) -> torch.Tensor:
        """Normalized L (N, 1, H, W) -> unnormalized bin logits (N, Q, H/4, W/4).

        Args:
            l_normalized: (L - l_center) / l_scale (see :meth:`normalize_lightness`); H, W multiples of 8.

        Returns:
            Logits whose softmax over dim 1 is the predicted distribution over ``config.ab_bins``.
        """
        return self.forward_head(self.forward_features(l_normalized))


register_family(ZhangECCV16.family, ZhangConfig, ZhangECCV16)


@register_model
def zhang_eccv16(**overrides: Any) -> ZhangECCV16:
    """The paper's network at full width (32.2M parameters with the 313 released bins)."""
    return ZhangECCV16(ZhangConfig(**overrides))


@register_model
def zhang_eccv16_w8(**overrides: Any) -> ZhangECCV16:
    """The same network at 1/8 width: for CPU tests and smoke runs."""
    return ZhangECCV16(ZhangConfig(**{"width_multiplier": 1 / 8, **overrides}))
