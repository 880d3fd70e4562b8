"""sRGB (D65) <-> CIE Lab as batched torch functions, agreeing with scikit-image's rgb2lab/lab2rgb.

Images are channel-first: rgb is (..., 3, H, W) in [0, 1]; lab is (..., 3, H, W) raw Lab
(L in [0, 100], a and b roughly in [-110, 110]). Any leading dims, float32 or float64, CPU or CUDA.
The formulas and constants are scikit-image's (skimage/color/colorconv.py: rgb2xyz, xyz2lab, _lab2xyz,
xyz2rgb), so the two agree to rounding.

Out-of-gamut Lab (what a network predicts) maps to valid RGB by one rule: the linear RGB values are
clipped to [0, 1] before the sRGB transfer curve, so the result is always finite and in range.

Speed. Every training image and every prediction passes through here, so without autograd a fast path
runs; it computes the same formulas, but:

- it works chunk by chunk on the CPU (``_CPU_CHUNK_PIXELS``), in a few reused work buffers, so that each
  elementwise pass reads cache rather than memory, and no large buffer is allocated per pass;
- both branches of each piecewise curve are computed and blended by ``torch.lerp`` with a 0/1 float
  weight (exactly one branch or the other), because on the CPU ``torch.where`` over a boolean mask costs
  about 20 times as much as that blend;
- constant scales are folded into cached matrices and scalars, so each curve is one ``pow``.

What is left is mostly ``pow`` itself (two per value for rgb_to_lab, one for lab_to_rgb). When the input
requires grad, the plain out-of-place formulas run instead, so that gradients flow.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator

import torch

from colorization.color.constants import D65_WHITE_XYZ, XYZ_FROM_LINEAR_RGB

_CHANNEL_DIM = -3

# sRGB transfer curve (IEC 61966-2-1), with the constants scikit-image uses.
_SRGB_DECODE_SWITCH = 0.04045
_SRGB_ENCODE_SWITCH = 0.0031308
_SRGB_OFFSET = 0.055
_SRGB_SCALE = 1.055
_SRGB_GAMMA = 2.4
_SRGB_LINEAR_SLOPE = 12.92

# CIE Lab f(t), written as scikit-image writes it (skimage/color/colorconv.py: xyz2lab, _lab2xyz).
_LAB_EPSILON = 0.008856  # (6/29)^3, the linear/cube-root switch
_LAB_KAPPA = 7.787  # slope of the linear segment
_LAB_OFFSET = 16.0 / 116.0
_LAB_F_INVERSE_SWITCH = 0.2068966  # 6/29: where the inverse switches branch
# Not scikit-image's: |f| is capped here before cubing so that f^3 and the RGB matrix product stay finite
# in float32 for any finite Lab (|L| up to ~1e6 passes through). Only absurd Lab values are affected.
_LAB_F_LIMIT = 1.0e4

# The fast path folds constant scales away. Decode: (s (rgb + 0.055))^2.4 with this s equals
# 12.92 ((rgb + 0.055) / 1.055)^2.4, so the linear segment is rgb itself and 1 / 12.92 joins the matrix.
# Encode: linear RGB is produced times 1.055^2.4, so that 1.055 linear^(1/2.4) is a single pow.
_DECODE_BASE_SCALE = _SRGB_LINEAR_SLOPE ** (1.0 / _SRGB_GAMMA) / _SRGB_SCALE
_ENCODE_PRESCALE = _SRGB_SCALE**_SRGB_GAMMA

# Pixels per chunk and per intra-op thread of the CPU fast path: ~0.8 MB per float32 buffer and thread, so the
# live buffers stay in each core's cache while per-op dispatch stays small next to the arithmetic
# (the best of 2^14 ... 2^17 and unchunked, timed on a 2-core AVX-512 machine).
_CPU_CHUNK_PIXELS = 1 << 16


def _check_channels(image: torch.Tensor, name: str) -> None:
    if image.ndim < 3 or image.shape[_CHANNEL_DIM] != 3:
        raise ValueError(f"{name} must have shape (..., 3, H, W); got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {image.dtype}")


@functools.lru_cache(maxsize=32)
def _constants(dtype: torch.dtype, device: torch.device) -> dict[str, torch.Tensor]:
    """Every matrix and 0-dim constant the conversions need, built once in float64, per (dtype, device)."""
    white = torch.tensor(D65_WHITE_XYZ, dtype=torch.float64)
    xyz_from_rgb = torch.tensor(XYZ_FROM_LINEAR_RGB, dtype=torch.float64)
    xyz_over_white_from_rgb = xyz_from_rgb / white[:, None]
    rgb_from_xyz_over_white = torch.linalg.inv(xyz_from_rgb) * white[None, :]
    tensors = {
        "xyz_over_white_from_rgb": xyz_over_white_from_rgb,
        "rgb_from_xyz_over_white": rgb_from_xyz_over_white,
        "xyz_over_white_from_decoded": xyz_over_white_from_rgb / _SRGB_LINEAR_SLOPE,
        "prescaled_rgb_from_xyz_over_white": rgb_from_xyz_over_white * _ENCODE_PRESCALE,
        # 0-dim offsets, so that torch.add(offset, x, alpha=scale) is a single pass: offset + scale * x.
        "decode_base_offset": torch.tensor(_DECODE_BASE_SCALE * _SRGB_OFFSET, dtype=torch.float64),
        "lab_offset": torch.tensor(_LAB_OFFSET, dtype=torch.float64),
        "inverse_linear_offset": torch.tensor(-_LAB_OFFSET / _LAB_KAPPA, dtype=torch.float64),
        "minus_16": torch.tensor(-16.0, dtype=torch.float64),
    }
    return {name: value.to(dtype=dtype, device=device) for name, value in tensors.items()}


def _as_pixels(image: torch.Tensor) -> torch.Tensor:
    """(..., 3, H, W) -> (B, 3, H*W), a view when the input is contiguous (B = 1 without leading dims)."""
    return image.reshape(math.prod(image.shape[:-3]), 3, image.shape[-2] * image.shape[-1])


def _needs_autograd(image: torch.Tensor) -> bool:
    return image.requires_grad and torch.is_grad_enabled()


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve, inverted (IEC 61966-2-1).

    Args:
        rgb: sRGB values, any shape, nominally in [0, 1].

    Returns:
        Linear-light RGB, same shape and dtype.
    """
    # Each branch is evaluated on its own domain only, so the branch not taken has a finite gradient
    # (torch.where passes it zeros, and 0 * inf would be NaN).
    power = ((rgb.clamp_min(_SRGB_DECODE_SWITCH) + _SRGB_OFFSET) / _SRGB_SCALE).pow(_SRGB_GAMMA)
    return torch.where(rgb > _SRGB_DECODE_SWITCH, power, rgb / _SRGB_LINEAR_SLOPE)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve; input is clipped to [0, 1] first, so the output is always valid.

    Args:
        linear: linear-light RGB values, any shape.

    Returns:
        sRGB values in [0, 1], same shape and dtype.
    """
    linear = linear.clamp(0.0, 1.0)
    # pow on its own branch's domain only: its gradient at 0 is inf, and the branch not taken gets 0 * inf.
    power = _SRGB_SCALE * linear.clamp_min(_SRGB_ENCODE_SWITCH).pow(1.0 / _SRGB_GAMMA) - _SRGB_OFFSET
    # The power branch can round to 1 + 1 ulp at white; the clamp keeps the promise of [0, 1].
    return torch.where(linear > _SRGB_ENCODE_SWITCH, power, linear * _SRGB_LINEAR_SLOPE).clamp_max(1.0)


def _mix_channels(matrix: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """(3, 3) x (B, 3, P) -> (B, 3, P)."""
    return torch.matmul(matrix, pixels)


def _rgb_to_lab_differentiable(rgb: torch.Tensor) -> torch.Tensor:
    constants = _constants(rgb.dtype, rgb.device)
    xyz_over_white = _mix_channels(constants["xyz_over_white_from_rgb"], srgb_to_linear(_as_pixels(rgb)))
    cube_root = xyz_over_white.clamp_min(_LAB_EPSILON).pow(1.0 / 3.0)
    f = torch.where(xyz_over_white > _LAB_EPSILON, cube_root, _LAB_KAPPA * xyz_over_white + _LAB_OFFSET)
    fx, fy, fz = f.unbind(1)
    lab = torch.stack((116.0 * fy - 16.0, 500.0 * (fx - fy), 200.0 * (fy - fz)), dim=1)
    return lab.reshape(rgb.shape)


def lab_to_linear_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Raw CIE Lab to linear-light RGB, not clipped: the test of whether a Lab colour is in the sRGB gamut.

    ``lab_to_rgb(lab)`` equals ``linear_to_srgb(lab_to_linear_rgb(lab))``; this is the plain (autograd-friendly)
    form, without the fast path.

    Args:
        lab: (..., 3, H, W) floating-point raw Lab; any leading dims.

    Returns:
        (..., 3, H, W) linear RGB of the same dtype; in gamut exactly where all three are in [0, 1].

    Raises:
        ValueError: if dim -3 is not 3 channels.
        TypeError: if the tensor is not floating point.
    """
    _check_channels(lab, "lab")
    constants = _constants(lab.dtype, lab.device)
    lightness, a, b = _as_pixels(lab).unbind(1)
    fy = (lightness + 16.0) / 116.0
    fx = fy + a / 500.0
    fz = (fy - b / 200.0).clamp_min(0.0)  # scikit-image clamps negative z too
    f = torch.stack((fx, fy, fz), dim=1).clamp(-_LAB_F_LIMIT, _LAB_F_LIMIT)
    xyz_over_white = torch.where(f > _LAB_F_INVERSE_SWITCH, f.pow(3), (f - _LAB_OFFSET) / _LAB_KAPPA)
    return _mix_channels(constants["rgb_from_xyz_over_white"], xyz_over_white).reshape(lab.shape)


def _chunks(batch: int, pixels: int, device: torch.device) -> Iterator[tuple[slice, slice]]:
    """(image slice, pixel slice) pairs covering (batch, 3, pixels) in cache-sized pieces.

    Each op of a chunk is split across the intra-op threads, so a chunk holds ``_CPU_CHUNK_PIXELS`` per
    thread. Off the CPU the whole tensor is one chunk: a GPU wants big kernels, not many small ones.
    """
    chunk_pixels = _CPU_CHUNK_PIXELS * torch.get_num_threads()
    if device.type != "cpu" or batch * pixels <= chunk_pixels:
        yield slice(0, batch), slice(0, pixels)
    elif pixels >= chunk_pixels:
        for image in range(batch):
            for start in range(0, pixels, chunk_pixels):
                yield slice(image, image + 1), slice(start, min(start + chunk_pixels, pixels))
    else:
        images_per_chunk = chunk_pixels // pixels
        for first in range(0, batch, images_per_chunk):
            yield slice(first, min(first + images_per_chunk, batch)), slice(0, pixels)


def _chunked(image: torch.Tensor, convert_chunk: Callable[..., None], buffer_count: int) -> torch.Tensor:
    """Runs ``convert_chunk(source, destination, *buffers)`` over every chunk of ``image`` (..., 3, H, W)."""
    source = _as_pixels(image)
    batch, _, pixels = source.shape
    destination = torch.empty_like(source, memory_format=torch.contiguous_format)
    scratch: torch.Tensor | None = None
    for images, span in _chunks(batch, pixels, image.device):
        source_chunk = source[images, :, span]
        if scratch is None:  # the first chunk is the largest
            scratch = torch.empty((buffer_count, source_chunk.numel()), dtype=image.dtype, device=image.device)
        buffers = [flat[: source_chunk.numel()].view(source_chunk.shape) for flat in scratch]
        convert_chunk(source_chunk, destination[images, :, span], *buffers)
    return destination.view(image.shape)


def _rgb_to_lab_chunk(
    rgb: torch.Tensor, lab: torch.Tensor, work: torch.Tensor, other: torch.Tensor, weight: torch.Tensor
) -> None:
    """(B, 3, n) sRGB -> (B, 3, n) Lab into ``lab``, using three (B, 3, n) work buffers."""
    constants = _constants(rgb.dtype, rgb.device)
    # Decode: work = 12.92 x linear RGB: the power branch, or rgb itself on the linear segment.
    torch.add(constants["decode_base_offset"], rgb, alpha=_DECODE_BASE_SCALE, out=work)
    work.clamp_min_(0.0).pow_(_SRGB_GAMMA)
    torch.gt(rgb, _SRGB_DECODE_SWITCH, out=weight)
    torch.lerp(rgb, work, weight, out=work)
    xyz_over_white = torch.matmul(constants["xyz_over_white_from_decoded"], work, out=other)
    # f(t) = t^(1/3) above epsilon, else the linear segment; the clamp keeps the unused branch finite.
    torch.gt(xyz_over_white, _LAB_EPSILON, out=weight)
    linear_segment = torch.add(constants["lab_offset"], xyz_over_white, alpha=_LAB_KAPPA, out=work)
    cube_root = xyz_over_white.clamp_min_(_LAB_EPSILON).pow_(1.0 / 3.0)
    fx, fy, fz = torch.lerp(linear_segment, cube_root, weight, out=cube_root).unbind(1)
    torch.add(constants["minus_16"], fy, alpha=116.0, out=lab[:, 0])
    torch.sub(fx, fy, out=lab[:, 1]).mul_(500.0)
    torch.sub(fy, fz, out=lab[:, 2]).mul_(200.0)


def _lab_to_rgb_chunk(
    lab: torch.Tensor, rgb: torch.Tensor, work: torch.Tensor, other: torch.Tensor, weight: torch.Tensor
) -> None:
    """(B, 3, n) Lab -> (B, 3, n) sRGB into ``rgb``, using three (B, 3, n) work buffers."""
    constants = _constants(lab.dtype, lab.device)
    lightness, a, b = lab.unbind(1)
    fx, fy, fz = work.unbind(1)
    torch.add(constants["lab_offset"], lightness, alpha=1.0 / 116.0, out=fy)
    torch.add(fy, a, alpha=1.0 / 500.0, out=fx)
    torch.add(fy, b, alpha=-1.0 / 200.0, out=fz).clamp_min_(0.0)  # scikit-image clamps negative z too
    f = work.clamp_(-_LAB_F_LIMIT, _LAB_F_LIMIT)  # keeps f^3 finite for absurd Lab
    torch.gt(f, _LAB_F_INVERSE_SWITCH, out=weight)
    linear_segment = torch.add(constants["inverse_linear_offset"], f, alpha=1.0 / _LAB_KAPPA, out=other)
    xyz_over_white = torch.lerp(linear_segment, f.pow_(3), weight, out=work)
    linear = torch.matmul(constants["prescaled_rgb_from_xyz_over_white"], xyz_over_white, out=other)
    linear.clamp_(0.0, _ENCODE_PRESCALE)  # the clip to [0, 1], prescaled
    torch.gt(linear, _SRGB_ENCODE_SWITCH * _ENCODE_PRESCALE, out=weight)
    linear_segment = torch.mul(linear, _SRGB_LINEAR_SLOPE / _ENCODE_PRESCALE, out=work)
    power = linear.pow_(1.0 / _SRGB_GAMMA).sub_(_SRGB_OFFSET)
    torch.lerp(linear_segment, power, weight, out=rgb).clamp_max_(1.0)  # power can round to 1 + 1 ulp


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB to raw CIE Lab (D65, 2-degree observer), as scikit-image's ``rgb2lab``.

    Args:
        rgb: (..., 3, H, W) floating-point sRGB in [0, 1]; any leading dims.

    Returns:
        (..., 3, H, W) raw Lab of the same dtype and device: L in [0, 100], a and b roughly in [-110, 110].

    Raises:
        ValueError: if dim -3 is not 3 channels.
        TypeError: if the tensor is not floating point.
    """
    _check_channels(rgb, "rgb")
    if _needs_autograd(rgb):
        return _rgb_to_lab_differentiable(rgb)
    return _chunked(rgb, _rgb_to_lab_chunk, buffer_count=3)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Raw CIE Lab to sRGB, as scikit-image's ``lab2rgb``; any finite Lab gives valid RGB.

    Out-of-gamut colours are clipped to [0, 1] in linear RGB (scikit-image clips after the transfer
    curve, which is the same because the curve is monotonic) and a negative z is clamped to 0 first,
    as scikit-image does; the result is finite and in [0, 1] for every finite input.

    Args:
        lab: (..., 3, H, W) floating-point raw Lab; any leading dims.

    Returns:
        (..., 3, H, W) sRGB in [0, 1] of the same dtype and device.

    Raises:
        ValueError: if dim -3 is not 3 channels.
        TypeError: if the tensor is not floating point.
    """
    _check_channels(lab, "lab")
    if _needs_autograd(lab):
        return linear_to_srgb(lab_to_linear_rgb(lab))
    return _chunked(lab, _lab_to_rgb_chunk, buffer_count=3)


def split_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3, H, W) Lab -> L (..., 1, H, W) and ab (..., 2, H, W)."""
    return lab[..., :1, :, :], lab[..., 1:, :, :]


def join_lab(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (..., 1, H, W) and ab (..., 2, H, W) -> Lab (..., 3, H, W)."""
    return torch.cat((lightness, ab), dim=_CHANNEL_DIM)
