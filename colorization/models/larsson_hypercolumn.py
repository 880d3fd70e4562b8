"""Larsson et al.'s hypercolumn colorizer: grey image -> per-pixel colour histograms (or ab regression).

Reproduces Larsson, Maire and Shakhnarovich, "Learning Representations for Automatic Colorization"
(ECCV 2016), Sec. 3.4 and Fig. 2, after the released Caffe net (gustavla/autocolorize,
``train/train_vgg16.prototxt`` and the ``SparseHypercolumnExtractor`` layer):

* A fully convolutional VGG-16 on ONE grey channel: 13 3x3 convolutions conv1_1 .. conv5_3 with ReLU and
  2x2 max-pools, fc6 as a 7x7 convolution (padding 3) and fc7 as a 1x1 convolution, fc8 dropped. Dropout
  follows fc6 and fc7 (in place in Caffe, so the hypercolumn reads the dropped activations).
* The hypercolumn of a pixel concatenates 16 tapped layers read at that pixel: the input ``data``
  (grey - grey_offset, 1 channel), the 13 convolutions and fc6, fc7 (after ReLU): 12,417 channels at full
  width. Each tapped layer is multiplied by a balancing scale (:attr:`LarssonHypercolumn.hypercolumn_scales`,
  one scalar per layer) chosen so that it has unit second moment (Sec. 3.4; see
  :meth:`LarssonHypercolumn.estimate_hypercolumn_scales`). The released net used BatchNorm instead.
* A fully connected layer of 1024 units (ReLU, dropout) on the hypercolumn, then one linear output layer
  per head (channel layout: :meth:`LarssonConfig.head_parts`).

Training reads hypercolumns at a few sampled pixels (:meth:`LarssonHypercolumn.forward_sampled`); dense
inference (:meth:`LarssonHypercolumn.forward_dense`) never builds the 12,417-channel hypercolumn, see there.

Location convention (used by both paths, so they agree exactly). Locations are pixel coordinates
``(x, y)`` of the input image, as floats; integer values are pixel centres: (0, 0) is the centre of the
top-left pixel, the image spans [-0.5, W - 0.5] x [-0.5, H - 0.5]. A layer at stride s (s = 1 for
data/conv1, 2 for conv2, ..., 32 for fc6/fc7) has cell i centred on pixel ``s * i + (s - 1) / 2``, which is
where 'same'-padded 3x3 convolutions and 2x2 pools put the centre of its receptive field. A location x thus
reads that layer at cell coordinate ``(x + 0.5) / s - 0.5``, bilinearly between the four nearest cells and
clamped at the border: ``F.grid_sample(..., align_corners=False, padding_mode="border")`` on coordinates
normalized as ``(2 x + 1) / W - 1``. The backward pass sends each location's gradient to those four cells
(Sec. 3.4). Caffe's extractor instead maps x to cell ``x / s`` (top-left aligned), up to (s - 1) / 2 pixels
away from the receptive-field centre; we keep the centred rule because it is the one dense bilinear
upsampling (``F.interpolate(..., align_corners=False)``) also follows.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from colorization.color.constants import (
    LARSSON_DENSE_STRIDE,
    LARSSON_DROPOUT,
    LARSSON_GREY_OFFSET,
    LARSSON_HUE_CHROMA_BINS,
    LARSSON_HYPERCOLUMN_UNITS,
    LARSSON_JOINT_BINS,
    LARSSON_LAB_SIGMA,
    LARSSON_MARGINAL_BINS,
    LARSSON_SAMPLED_PIXELS,
)
from colorization.models.registry import register_family, register_model

__all__ = [
    "HEAD_NAMES",
    "TAPPED_LAYERS",
    "LarssonConfig",
    "LarssonHypercolumn",
    "dense_grid_locations",
    "gather_pixels",
    "larsson_hypercolumn",
    "larsson_hypercolumn_w16",
    "larsson_l2",
    "larsson_lab_joint",
    "larsson_lab_marginal",
    "locations_to_grid",
    "sample_pixel_locations",
]

# VGG-16's convolutions per block (Simonyan & Zisserman, configuration D) and their widths at width 1.
_VGG_BLOCKS: tuple[tuple[tuple[str, int], ...], ...] = (
    (("conv1_1", 64), ("conv1_2", 64)),
    (("conv2_1", 128), ("conv2_2", 128)),
    (("conv3_1", 256), ("conv3_2", 256), ("conv3_3", 256)),
    (("conv4_1", 512), ("conv4_2", 512), ("conv4_3", 512)),
    (("conv5_1", 512), ("conv5_2", 512), ("conv5_3", 512)),
)
_FC_CHANNELS = 4096  # fc6 and fc7 at width 1
_FC6_KERNEL = 7  # fc6 reads a 7x7 window of pool5 (VGG's 7x7x512 -> 4096 layer, made convolutional)
_POOLED_MULTIPLE = 32  # five 2x2 pools: the VGG runs on inputs padded to a multiple of this, so layer grids align
_INPUT_MULTIPLE = 8  # what callers must give (as for Zhang's network); the padding to 32 happens inside
_HYPERCOLUMN_FC_INIT_STD = 1e-4  # gaussian std of the hypercolumn layer (train_vgg16.prototxt, colorize_fc1)

# Every tapped layer, in hypercolumn order, with its stride relative to the input.
TAPPED_LAYERS: tuple[str, ...] = (
    "data",
    *(name for block in _VGG_BLOCKS for name, _ in block),
    "fc6",
    "fc7",
)
_TAP_STRIDES: tuple[int, ...] = (
    1,
    *(2**index for index, block in enumerate(_VGG_BLOCKS) for _ in block),
    2 ** len(_VGG_BLOCKS),
    2 ** len(_VGG_BLOCKS),
)

HEAD_NAMES: tuple[str, ...] = ("lab_marginal", "lab_joint", "hue_chroma", "l2")
DECODERS: tuple[str, ...] = ("expectation", "median", "mode", "sample")  # Sec. 3.3
AUTO_DECODER = "auto"  # the paper's choice for the decoded head: median for hue/chroma, else expectation


@dataclass(frozen=True)
class LarssonConfig:
    """Architecture and data contract of a :class:`LarssonHypercolumn`; checkpoints store it whole.

    Heads and their outputs (channel layout along dim 1, see :meth:`head_parts`):

    * ``"lab_marginal"``: 2 x ``marginal_bins`` logits, a-axis bins then b-axis bins (Gaussian quantiles).
    * ``"lab_joint"``: ``joint_bins`` ** 2 logits over the joint ab grid, index ``ka * K + kb``.
    * ``"hue_chroma"``: 2 x ``hue_chroma_bins`` logits, hue bins then chroma bins (uniform on [0, 1]).
    * ``"l2"``: 2 values, the regressed a and b in raw Lab units.
    """

    # Channels of every VGG layer (fc6/fc7 included) scaled by this, at least 1 each; 1.0 is the paper's net.
    width_multiplier: float = 1.0
    # Units of the fully connected layer on the hypercolumn (Sec. 3.4).
    hypercolumn_units: int = LARSSON_HYPERCOLUMN_UNITS
    # Output predictors, any non-empty subset of HEAD_NAMES; the released model predicts hue/chroma.
    heads: tuple[str, ...] = ("hue_chroma",)
    # Hypercolumns sampled per training image (Sec. 3.4).
    sampled_pixels: int = LARSSON_SAMPLED_PIXELS
    # Side of the square working resolution of inference; a multiple of 8 (padded to 32 inside the network).
    input_size: int = 256
    # Dense inference builds hypercolumns on the 1/dense_stride grid (1/4 in the release; paper-facts.md).
    dense_stride: int = LARSSON_DENSE_STRIDE
    # The network sees grey in [0, 1] minus this (train_vgg16.prototxt).
    grey_offset: float = LARSSON_GREY_OFFSET
    # Dropout after fc6, fc7 and the hypercolumn layer (train_vgg16.prototxt).
    dropout: float = LARSSON_DROPOUT
    # Batch normalization after every convolution (fc6, fc7 included), before the ReLU, as the released training
    # net does instead of the paper's balancing (paper-facts.md); it trains from scratch far faster. With it the
    # balancing scales stay 1.
    batch_norm: bool = False
    # Decoder used when the caller names none (like Zhang's stored temperature): one of DECODERS, or "auto" for the
    # paper's choice per head. A recipe sets it to the decoder its held-out evaluation favours.
    default_decoder: str = AUTO_DECODER
    # Bins of the histogram heads (Sec. 3.2).
    marginal_bins: int = LARSSON_MARGINAL_BINS
    joint_bins: int = LARSSON_JOINT_BINS
    hue_chroma_bins: int = LARSSON_HUE_CHROMA_BINS
    # Lab bins sit at quantiles of N(0, lab_sigma^2) (Sec. 3.2); kept here because it gives the logits meaning.
    lab_sigma: float = LARSSON_LAB_SIGMA

    def __post_init__(self) -> None:
        heads = (self.heads,) if isinstance(self.heads, str) else tuple(self.heads)
        object.__setattr__(self, "heads", heads)
        if not heads:
            raise ValueError("heads must name at least one output predictor")
        unknown = [head for head in heads if head not in HEAD_NAMES]
        if unknown:
            raise ValueError(f"unknown heads {unknown}; choose from {HEAD_NAMES}")
        if len(set(heads)) != len(heads):
            raise ValueError(f"heads must not repeat; got {heads}")
        if not (isinstance(self.width_multiplier, (int, float)) and math.isfinite(self.width_multiplier)
                and self.width_multiplier > 0):
            raise ValueError(f"width_multiplier must be a positive number; got {self.width_multiplier!r}")
        for name in ("hypercolumn_units", "sampled_pixels", "input_size", "dense_stride", "marginal_bins",
                     "joint_bins", "hue_chroma_bins"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int; got {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1; got {value}")
        if _POOLED_MULTIPLE % self.dense_stride:
            raise ValueError(f"dense_stride must divide {_POOLED_MULTIPLE} (1, 2, 4, ...); got {self.dense_stride}")
        if self.input_size % self.size_multiple:
            raise ValueError(f"input_size must be a multiple of {self.size_multiple}; got {self.input_size}")
        if not math.isfinite(self.grey_offset):
            raise ValueError(f"grey_offset must be finite; got {self.grey_offset}")
        decoder_choices = (AUTO_DECODER, *DECODERS)
        if self.default_decoder not in decoder_choices:
            raise ValueError(f"default_decoder must be one of {decoder_choices}; got {self.default_decoder!r}")
        if not isinstance(self.batch_norm, bool):
            raise TypeError(f"batch_norm must be true or false; got {self.batch_norm!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout}")
        if not (math.isfinite(self.lab_sigma) and self.lab_sigma > 0):
            raise ValueError(f"lab_sigma must be a positive number; got {self.lab_sigma}")

    @property
    def size_multiple(self) -> int:
        """Inputs' H and W must be multiples of this: 8, or the dense stride when that is coarser."""
        return max(_INPUT_MULTIPLE, self.dense_stride)

    def channels(self, base: int) -> int:
        """Width of a layer that has ``base`` channels in the paper's network."""
        return max(1, round(base * self.width_multiplier))

    def head_parts(self, head: str) -> tuple[tuple[str, int], ...]:
        """(name, size) of the consecutive channel groups of a head's output, along dim 1."""
        parts = {
            "lab_marginal": (("a", self.marginal_bins), ("b", self.marginal_bins)),
            "lab_joint": (("ab", self.joint_bins * self.joint_bins),),
            "hue_chroma": (("hue", self.hue_chroma_bins), ("chroma", self.hue_chroma_bins)),
            "l2": (("ab", 2),),
        }
        if head not in parts:
            raise ValueError(f"unknown head {head!r}; choose from {HEAD_NAMES}")
        return parts[head]

    def head_outputs(self, head: str) -> int:
        """K, the number of output channels of ``head``."""
        return sum(size for _, size in self.head_parts(head))


def _channels_last(maps: torch.Tensor) -> torch.Tensor:
    """Bilinear resampling of many-channel maps is ~9x faster on CPU in channels_last than in NCHW layout."""
    return maps.contiguous(memory_format=torch.channels_last)


def locations_to_grid(locations: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Pixel coordinates -> the normalized grid of ``F.grid_sample(..., align_corners=False)``.

    Args:
        locations: (N, P, 2) pixel coordinates (x, y), pixel centres at integers (module docstring).
        height: H of the image the locations refer to.
        width: W of that image.

    Returns:
        (N, P, 1, 2) grid in [-1, 1] for locations inside the image.
    """
    if locations.ndim != 3 or locations.shape[-1] != 2:
        raise ValueError(f"locations must have shape (N, P, 2) of (x, y); got {tuple(locations.shape)}")
    size = torch.tensor((width, height), dtype=locations.dtype, device=locations.device)
    return ((2.0 * locations + 1.0) / size - 1.0).unsqueeze(2)


def sample_pixel_locations(
    batch: int,
    height: int,
    width: int,
    count: int,
    generator: torch.Generator | None = None,
    *,
    margin: int = 0,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Uniformly random pixel centres, ``count`` per image, for :meth:`LarssonHypercolumn.forward_sampled`.

    The released training drew integer pixels in [96, 256)^2 of a 352 crop (``margin=96``).

    Args:
        batch: N.
        height: H of the images.
        width: W of the images.
        count: P, the locations per image.
        generator: source of randomness (drawn on the CPU); None uses the global generator.
        margin: pixels left out at every side.
        device: device of the result.

    Returns:
        (N, P, 2) float32 integer-valued pixel coordinates (x, y), x in [margin, W - margin).
    """
    if height <= 2 * margin or width <= 2 * margin:
        raise ValueError(f"margin {margin} leaves no pixels in a {height}x{width} image")
    x = torch.randint(margin, width - margin, (batch, count), generator=generator)
    y = torch.randint(margin, height - margin, (batch, count), generator=generator)
    return torch.stack((x, y), dim=-1).to(device=device, dtype=torch.float32)


def gather_pixels(image: torch.Tensor, locations: torch.Tensor) -> torch.Tensor:
    """Values of ``image`` at the pixels nearest to ``locations`` (targets for sampled hypercolumns).

    Args:
        image: (N, C, H, W) any values.
        locations: (N, P, 2) pixel coordinates (x, y); rounded to the nearest pixel and clamped.

    Returns:
        (N, C, P).
    """
    batch, channels, height, width = image.shape
    if locations.shape[0] != batch or locations.ndim != 3 or locations.shape[-1] != 2:
        raise ValueError(f"locations must have shape ({batch}, P, 2); got {tuple(locations.shape)}")
    pixel = locations.round().long()
    x = pixel[..., 0].clamp(0, width - 1)
    y = pixel[..., 1].clamp(0, height - 1)
    flat_index = (y * width + x).to(image.device)  # (N, P)
    return image.flatten(2).gather(2, flat_index.unsqueeze(1).expand(-1, channels, -1))


def dense_grid_locations(height: int, width: int, stride: int) -> torch.Tensor:
    """Pixel coordinates of the cells of the 1/stride output grid of :meth:`LarssonHypercolumn.forward`.

    Cell (i, j) covers pixels [stride * i, stride * (i + 1)) and is centred on ``stride * i + (stride - 1) / 2``;
    ``forward_sampled`` at these locations equals the dense output (same interpolation).

    Returns:
        (H / stride, W / stride, 2) float32 (x, y).
    """
    if height % stride or width % stride:
        raise ValueError(f"{height}x{width} is not divisible by stride {stride}")
    offset = (stride - 1) / 2
    ys = torch.arange(height // stride, dtype=torch.float32) * stride + offset
    xs = torch.arange(width // stride, dtype=torch.float32) * stride + offset
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y), dim=-1)


class LarssonHypercolumn(nn.Module):
    """Grey (N, 1, H, W) in [0, 1] -> per-head outputs, sampled (N, K, P) or dense (N, K, H/s, W/s).

    Parameter names follow the VGG-16 layer names (``conv1_1`` .. ``conv5_3``, ``fc6``, ``fc7``) so the
    torchvision mapping in ``models/larsson_vgg_init.py`` is a plain table; then ``hypercolumn_fc``
    (Linear, hypercolumn -> units; its input columns follow :data:`TAPPED_LAYERS` order) and
    ``heads[name]`` (Linear, units -> K). H and W must be multiples of 8: the VGG sees the input replicate-padded
    on the right and bottom to a multiple of 32 (five 2x2 pools keep every layer grid aligned with the pixels),
    and the outputs are read on the original image only.
    """

    family = "larsson_hypercolumn"
    input_multiple = _INPUT_MULTIPLE

    def __init__(self, config: LarssonConfig) -> None:
        """Builds the network at ``config.width_multiplier`` with the heads of ``config.heads``.

        Args:
            config: architecture and data contract; kept as ``self.config`` for checkpoints and decoding.
        """
        super().__init__()
        self.config = config
        tap_channels = [1]  # the data layer
        in_channels = 1
        for block in _VGG_BLOCKS:
            for name, base in block:
                out_channels = config.channels(base)
                self.add_module(name, nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1))
                tap_channels.append(out_channels)
                in_channels = out_channels
        fc_channels = config.channels(_FC_CHANNELS)
        self.fc6 = nn.Conv2d(in_channels, fc_channels, kernel_size=_FC6_KERNEL, padding=_FC6_KERNEL // 2)
        self.fc6_dropout = nn.Dropout(config.dropout)
        self.fc7 = nn.Conv2d(fc_channels, fc_channels, kernel_size=1)
        self.fc7_dropout = nn.Dropout(config.dropout)
        tap_channels += [fc_channels, fc_channels]
        self.tap_channels: tuple[int, ...] = tuple(tap_channels)
        # One BatchNorm per convolution, by the convolution's name; empty (no parameters) without batch_norm.
        self.norms = nn.ModuleDict(
            {name: nn.BatchNorm2d(channels) for name, channels in zip(TAPPED_LAYERS[1:], tap_channels[1:])}
            if config.batch_norm
            else {}
        )
        self.tap_strides: tuple[int, ...] = _TAP_STRIDES

        # Balancing: tapped layer l enters the hypercolumn as hypercolumn_scales[l] * activation (Sec. 3.4).
        self.register_buffer("hypercolumn_scales", torch.ones(len(TAPPED_LAYERS)))
        self.hypercolumn_fc = nn.Linear(self.hypercolumn_channels, config.hypercolumn_units)
        self.hypercolumn_dropout = nn.Dropout(config.dropout)
        self.heads = nn.ModuleDict(
            {head: nn.Linear(config.hypercolumn_units, config.head_outputs(head)) for head in config.heads}
        )
        self._initialize()

    def _initialize(self) -> None:
        # Convolutions as torchvision's VGG (pretrained weights normally replace them); the hypercolumn layer
        # as the release (gaussian, std 1e-4); heads xavier, as the release's prediction layers.
        for name in TAPPED_LAYERS[1:]:
            conv = getattr(self, name)
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.hypercolumn_fc.weight, std=_HYPERCOLUMN_FC_INIT_STD)
        nn.init.zeros_(self.hypercolumn_fc.bias)
        for head in self.heads.values():
            nn.init.xavier_uniform_(head.weight)
            nn.init.zeros_(head.bias)

    @property
    def output_stride(self) -> int:
        """Dense outputs are on the 1/output_stride grid of the input (``config.dense_stride``)."""
        return self.config.dense_stride

    @property
    def hypercolumn_channels(self) -> int:
        """Channels of one hypercolumn: 12,417 at full width."""
        return sum(self.tap_channels)

    def _tap_slices(self) -> list[slice]:
        """Column range of each tapped layer within the hypercolumn (and ``hypercolumn_fc.weight``)."""
        ends = itertools.accumulate(self.tap_channels)
        return [slice(end - channels, end) for end, channels in zip(ends, self.tap_channels)]

    def _check_grey(self, grey: torch.Tensor) -> None:
        if grey.ndim != 4 or grey.shape[1] != 1:
            raise ValueError(f"expected grey of shape (N, 1, H, W); got {tuple(grey.shape)}")
        height, width = grey.shape[-2:]
        multiple = self.config.size_multiple
        if height % multiple or width % multiple:
            raise ValueError(f"grey height and width must be multiples of {multiple}; got {height}x{width}: resize first")

    @staticmethod
    def _pad_for_pools(grey: torch.Tensor) -> torch.Tensor:
        """Replicate-pads (N, 1, H, W) on the right and bottom to multiples of 32; pixel (x, y) stays put."""
        height, width = grey.shape[-2:]
        pad_bottom, pad_right = -height % _POOLED_MULTIPLE, -width % _POOLED_MULTIPLE
        if not (pad_bottom or pad_right):
            return grey
        return F.pad(grey, (0, pad_right, 0, pad_bottom), mode="replicate")

    def forward_features(self, grey: torch.Tensor) -> list[torch.Tensor]:
        """Grey (N, 1, H, W) in [0, 1] -> the 16 tapped layers, unscaled, in :data:`TAPPED_LAYERS` order.

        Returns:
            Layer l of shape (N, tap_channels[l], H' / tap_strides[l], W' / tap_strides[l]) where H', W' are H, W
            padded up to multiples of 32; ``data`` is grey - grey_offset, the others are after ReLU (and dropout
            for fc6, fc7).
        """
        self._check_grey(grey)
        features = self._pad_for_pools(grey) - self.config.grey_offset
        taps = [features]
        for block_index, block in enumerate(_VGG_BLOCKS):
            if block_index:
                features = F.max_pool2d(features, kernel_size=2, stride=2)
            for name, _ in block:
                features = F.relu(self._convolve(name, features))
                taps.append(features)
        features = F.max_pool2d(features, kernel_size=2, stride=2)  # pool5: 1/32
        features = self.fc6_dropout(F.relu(self._convolve("fc6", features)))
        taps.append(features)
        features = self.fc7_dropout(F.relu(self._convolve("fc7", features)))
        taps.append(features)
        return taps

    def _convolve(self, name: str, features: torch.Tensor) -> torch.Tensor:
        """The convolution ``name``, followed by its BatchNorm when the config has batch_norm."""
        output = getattr(self, name)(features)
        return self.norms[name](output) if name in self.norms else output

    def _forward_heads(self, hidden: torch.Tensor) -> dict[str, torch.Tensor]:
        """(N, P, units) -> {head: (N, K, P)}."""
        return {name: head(hidden).transpose(1, 2) for name, head in self.heads.items()}

    def forward_sampled(self, grey: torch.Tensor, locations: torch.Tensor) -> dict[str, torch.Tensor]:
        """Hypercolumns at P locations per image -> per-head outputs (the training path, Sec. 3.4).

        Args:
            grey: (N, 1, H, W) grey in [0, 1] (``larsson_grey``); H, W multiples of ``config.size_multiple`` (8).
            locations: (N, P, 2) pixel coordinates (x, y) with pixel centres at integers (module docstring).

        Returns:
            {head: (N, K, P)}; logits for the histogram heads, raw ab for ``"l2"``.
        """
        taps = self.forward_features(grey)
        locations = locations.to(device=grey.device, dtype=grey.dtype)
        grid = locations_to_grid(locations, *taps[0].shape[-2:])  # (N, P, 1, 2) on the padded image
        columns = [
            F.grid_sample(tap, grid, mode="bilinear", padding_mode="border", align_corners=False).squeeze(-1)
            * self.hypercolumn_scales[index]
            for index, tap in enumerate(taps)
        ]  # each (N, C_l, P)
        hypercolumns = torch.cat(columns, dim=1).transpose(1, 2)  # (N, P, hypercolumn_channels)
        hidden = self.hypercolumn_dropout(F.relu(self.hypercolumn_fc(hypercolumns)))  # (N, P, units)
        return self._forward_heads(hidden)

    def forward_dense(self, grey: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-head outputs on the 1/dense_stride grid, without building any hypercolumn.

        The hypercolumn layer is linear, so ``W h = sum_l W_l (s_l f_l)`` where W_l are the columns of
        ``hypercolumn_fc.weight`` reading tapped layer l. Each term is computed on the smaller of the layer's
        own grid and the output grid -- as a 1x1 convolution, then bilinear resampling (or the other way
        round for layers finer than the output grid; both are linear per channel, so they commute) -- and
        the 1024-unit maps are summed. Resampling uses the same centred bilinear rule as
        :meth:`forward_sampled`, so the output at cell (i, j) equals ``forward_sampled`` at
        :func:`dense_grid_locations` (i, j) up to float rounding.

        Args:
            grey: (N, 1, H, W) grey in [0, 1]; H, W multiples of ``config.size_multiple`` (8).

        Returns:
            {head: (N, K, H / dense_stride, W / dense_stride)}.
        """
        taps = self.forward_features(grey)
        stride = self.config.dense_stride
        out_size = (taps[0].shape[-2] // stride, taps[0].shape[-1] // stride)  # the padded image's grid
        crop_height, crop_width = grey.shape[-2] // stride, grey.shape[-1] // stride
        weight = self.hypercolumn_fc.weight  # (units, hypercolumn_channels)
        pre_activation = self.hypercolumn_fc.bias.view(1, -1, 1, 1)
        # Terms of layers on one coarse grid are summed there and upsampled once: upsampling 1024-unit maps is the
        # dominant cost on a CPU, and it is linear, so upsample(a) + upsample(b) = upsample(a + b).
        coarse_sums: dict[int, torch.Tensor] = {}
        for index, (tap, columns) in enumerate(zip(taps, self._tap_slices())):
            layer_weight = (weight[:, columns] * self.hypercolumn_scales[index]).unsqueeze(-1).unsqueeze(-1)
            tap_stride = self.tap_strides[index]
            if tap_stride < stride:  # finer than the output grid: resample C_l channels first
                tap = F.interpolate(_channels_last(tap), size=out_size, mode="bilinear", align_corners=False)
                pre_activation = pre_activation + F.conv2d(tap, layer_weight)
            elif tap_stride == stride:
                pre_activation = pre_activation + F.conv2d(tap, layer_weight)
            else:  # coarser: 1x1 convolution on the layer's own grid, summed with its grid-mates
                term = F.conv2d(tap, layer_weight)
                coarse_sums[tap_stride] = term if tap_stride not in coarse_sums else coarse_sums[tap_stride] + term
        for term in coarse_sums.values():
            upsampled = F.interpolate(_channels_last(term), size=out_size, mode="bilinear", align_corners=False)
            pre_activation = pre_activation + upsampled
        pre_activation = pre_activation[..., :crop_height, :crop_width]  # drop the padding's cells
        hidden = self.hypercolumn_dropout(F.relu(pre_activation))  # (N, units, h, w)
        return {
            name: F.conv2d(hidden, head.weight.unsqueeze(-1).unsqueeze(-1), head.bias)
            for name, head in self.heads.items()
        }

    def forward(self, grey: torch.Tensor, locations: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Dense outputs (inference), or sampled outputs when ``locations`` are given (training).

        Training calls ``model(grey, locations)`` rather than ``forward_sampled`` so that wrappers such
        as DDP see the call.

        Args:
            grey: (N, 1, H, W) grey in [0, 1]; H, W multiples of ``config.size_multiple`` (8).
            locations: None, or (N, P, 2) pixel coordinates (x, y) for :meth:`forward_sampled`.

        Returns:
            {head: (N, K, H / dense_stride, W / dense_stride)} or {head: (N, K, P)}.
        """
        if locations is None:
            return self.forward_dense(grey)
        return self.forward_sampled(grey, locations)

    def split_head(self, head: str, output: torch.Tensor) -> dict[str, torch.Tensor]:
        """A head's output (N, K, *S) -> its named channel groups, e.g. ``{"hue": ..., "chroma": ...}``."""
        parts = self.config.head_parts(head)
        pieces = torch.split(output, [size for _, size in parts], dim=1)
        return {name: piece for (name, _), piece in zip(parts, pieces)}

    @torch.no_grad()
    def estimate_hypercolumn_scales(self, grey: torch.Tensor) -> torch.Tensor:
        """Sets each tapped layer's balancing scale to ``1 / sqrt(E[X^2])`` over ``grey`` (Sec. 3.4).

        The second moment is taken over all elements (images, channels, positions) of the layer's
        activations in eval mode (no dropout), so afterwards every layer of the hypercolumn has unit second
        moment on this batch. A layer that is all zero keeps scale 1. With ``config.batch_norm`` the normalization
        layers balance the hypercolumn instead (the release's way) and every scale stays 1.

        Args:
            grey: (N, 1, H, W) grey in [0, 1] of real photos; one batch, as large as memory allows.

        Returns:
            The new scales, (16,), also stored in the ``hypercolumn_scales`` buffer.
        """
        if self.config.batch_norm:
            self.hypercolumn_scales.fill_(1.0)
            return self.hypercolumn_scales.clone()
        was_training = self.training
        self.eval()
        try:
            taps = self.forward_features(grey)
        finally:
            self.train(was_training)
        second_moments = torch.stack([tap.double().square().mean() for tap in taps])
        scales = torch.where(second_moments > 0, second_moments.clamp_min(1e-300).rsqrt(), 1.0)
        self.hypercolumn_scales.copy_(scales.to(self.hypercolumn_scales.dtype))
        return self.hypercolumn_scales.clone()


register_family(LarssonHypercolumn.family, LarssonConfig, LarssonHypercolumn)


def _build(defaults: dict[str, Any], overrides: dict[str, Any]) -> LarssonHypercolumn:
    return LarssonHypercolumn(LarssonConfig(**{**defaults, **overrides}))


@register_model
def larsson_hypercolumn(**overrides: Any) -> LarssonHypercolumn:
    """The released configuration: full-width VGG-16 hypercolumns, hue/chroma histograms."""
    return _build({"heads": ("hue_chroma",)}, overrides)


@register_model
def larsson_hypercolumn_w16(**overrides: Any) -> LarssonHypercolumn:
    """1/16 width with a 64-unit hypercolumn layer and all four heads: for CPU tests and smoke runs."""
    return _build({"width_multiplier": 1 / 16, "hypercolumn_units": 64, "heads": HEAD_NAMES}, overrides)


@register_model
def larsson_lab_marginal(**overrides: Any) -> LarssonHypercolumn:
    """Full width, marginal a and b histograms on Gaussian-quantile bins (Sec. 3.2)."""
    return _build({"heads": ("lab_marginal",)}, overrides)


@register_model
def larsson_lab_joint(**overrides: Any) -> LarssonHypercolumn:
    """Full width, joint 16 x 16 ab histogram (Sec. 3.2)."""
    return _build({"heads": ("lab_joint",)}, overrides)


@register_model
def larsson_l2(**overrides: Any) -> LarssonHypercolumn:
    """Full width, L2 regression of ab (Sec. 3.2, the paper's baseline loss)."""
    return _build({"heads": ("l2",)}, overrides)
