"""sRGB (D65) <-> CIE Lab as batched torch functions, agreeing with scikit-image's rgb2lab/lab2rgb.

Images are channel-first: rgb is (..., 3, H, W) in [0, 1]; lab is (..., 3, H, W) raw Lab
(L in [0, 100], a and b roughly in [-110, 110]). Any leading dims, float32 or float64, CPU or CUDA.

Out-of-gamut Lab (what a network predicts) maps to valid RGB by one rule: the linear RGB values are
clipped to [0, 1] before the sRGB transfer curve, so the result is always finite and in range.
"""

from __future__ import annotations

import torch

from colorization.color.constants import D65_WHITE_XYZ, XYZ_FROM_LINEAR_RGB

_CHANNEL_DIM = -3
_LAB_EPSILON = 0.008856  # (6/29)^3, the CIE linear/cube-root switch as scikit-image writes it
_LAB_KAPPA = 7.787  # slope of the linear segment, as scikit-image writes it
_LAB_OFFSET = 16.0 / 116.0
_LAB_F_INVERSE_SWITCH = 0.2068966  # 6/29: where the inverse switches branch (scikit-image)


def _check_channels(image: torch.Tensor, name: str) -> None:
    if image.ndim < 3 or image.shape[_CHANNEL_DIM] != 3:
        raise ValueError(f"{name} must have shape (..., 3, H, W); got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {image.dtype}")


def _matrix(rows: tuple, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def _apply_matrix(matrix: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """Mixes the channel dim (-3) of ``image`` by ``matrix`` (3x3)."""
    return torch.einsum("ij,...jhw->...ihw", matrix, image)


def srgb_to_linear(rgb: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve, inverted (IEC 61966-2-1)."""
    return torch.where(rgb > 0.04045, ((rgb + 0.055) / 1.055).pow(2.4), rgb / 12.92)


def linear_to_srgb(linear: torch.Tensor) -> torch.Tensor:
    """The sRGB transfer curve; input is clipped to [0, 1] first, so the output is always valid."""
    linear = linear.clamp(0.0, 1.0)
    return torch.where(linear > 0.0031308, 1.055 * linear.pow(1.0 / 2.4) - 0.055, linear * 12.92)


def rgb_to_lab(rgb: torch.Tensor) -> torch.Tensor:
    """sRGB in [0, 1], (..., 3, H, W) -> raw CIE Lab, (..., 3, H, W)."""
    _check_channels(rgb, "rgb")
    white = torch.tensor(D65_WHITE_XYZ, dtype=rgb.dtype, device=rgb.device)
    matrix = _matrix(XYZ_FROM_LINEAR_RGB, rgb) / white[:, None]
    xyz_over_white = _apply_matrix(matrix, srgb_to_linear(rgb))
    f = torch.where(
        xyz_over_white > _LAB_EPSILON,
        xyz_over_white.clamp_min(_LAB_EPSILON).pow(1.0 / 3.0),
        _LAB_KAPPA * xyz_over_white + _LAB_OFFSET,
    )
    fx, fy, fz = f.unbind(_CHANNEL_DIM)
    lightness = 116.0 * fy - 16.0
    a = 500.0 * (fx - fy)
    b = 200.0 * (fy - fz)
    return torch.stack((lightness, a, b), dim=_CHANNEL_DIM)


def lab_to_rgb(lab: torch.Tensor) -> torch.Tensor:
    """Raw CIE Lab, (..., 3, H, W) -> sRGB in [0, 1]; out-of-gamut colours are clipped in linear RGB."""
    _check_channels(lab, "lab")
    lightness, a, b = lab.unbind(_CHANNEL_DIM)
    fy = (lightness + 16.0) / 116.0
    fx = a / 500.0 + fy
    fz = (fy - b / 200.0).clamp_min(0.0)  # scikit-image clamps negative z too
    f = torch.stack((fx, fy, fz), dim=_CHANNEL_DIM)
    xyz_over_white = torch.where(f > _LAB_F_INVERSE_SWITCH, f.pow(3), (f - _LAB_OFFSET) / _LAB_KAPPA)
    white = torch.tensor(D65_WHITE_XYZ, dtype=lab.dtype, device=lab.device)
    xyz_from_rgb = _matrix(XYZ_FROM_LINEAR_RGB, lab)
    rgb_from_xyz_over_white = torch.linalg.inv(xyz_from_rgb) * white[None, :]
    return linear_to_srgb(_apply_matrix(rgb_from_xyz_over_white, xyz_over_white))


def split_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(..., 3, H, W) Lab -> L (..., 1, H, W) and ab (..., 2, H, W)."""
    return lab[..., :1, :, :], lab[..., 1:, :, :]


def join_lab(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """L (..., 1, H, W) and ab (..., 2, H, W) -> Lab (..., 3, H, W)."""
    return torch.cat((lightness, ab), dim=_CHANNEL_DIM)
