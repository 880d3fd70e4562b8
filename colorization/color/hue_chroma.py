"""Larsson et al.'s hue/chroma colour space (ECCV 2016, Sec. 3.1 "Color spaces"), as pure torch functions.

Hue/chroma/lightness (HCL) is the colour bicone: chroma C takes the place of HSL's saturation, so hue
is only unstable where C -> 0, which the paper's loss handles by weighting the hue term by C.
Conversion to HSV is V = L + C/2, S = C/V (paper, Sec. 3.1). Here, per pixel:

    C = max(R, G, B) - min(R, G, B),   L = (max + min) / 2,   H = HSV hue in [0, 1),

so that L + C/2 = max = V and C / V = S recover HSV exactly. The network input is a different grey,
the mean (R + G + B) / 3 (``larsson_grey``); at inference the released code (gustavla/autocolorize,
``__main__.py: calc_rgb``) puts that grey in place of L and then shifts the result so that its channel
mean equals the grey again (``color.py: match_lightness``), which is ``match_grey`` here.

Images are channel-first (..., 3, H, W) with any leading dims; RGB is in [0, 1]; float32 or float64.
"""

from __future__ import annotations

import torch

_CHANNEL_DIM = -3
_HUE_SECTORS = 6.0  # the HSV hexagon: hue * 6 lands in one of six sectors


def _check_image(image: torch.Tensor, name: str) -> None:
    if image.ndim < 3 or image.shape[_CHANNEL_DIM] != 3:
        raise ValueError(f"{name} must have shape (..., 3, H, W); got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor; got {image.dtype}")


def larsson_grey(rgb: torch.Tensor) -> torch.Tensor:
    """The grey that Larsson et al.'s network sees: the plain channel mean (R + G + B) / 3.

    Args:
        rgb: (..., 3, H, W) RGB in [0, 1].

    Returns:
        (..., 1, H, W) grey in [0, 1], same dtype.
    """
    _check_image(rgb, "rgb")
    return rgb.mean(dim=_CHANNEL_DIM, keepdim=True)


def rgb_to_hcl(rgb: torch.Tensor) -> torch.Tensor:
    """RGB -> (hue, chroma, lightness) of the colour bicone.

    Hue is HSV's hue scaled to [0, 1) (0 = red, 1/3 = green, 2/3 = blue). Achromatic pixels (C = 0)
    have no hue; it is defined as 0 there, which the chroma-weighted hue loss ignores anyway.

    Args:
        rgb: (..., 3, H, W) RGB in [0, 1].

    Returns:
        (..., 3, H, W) channels (hue in [0, 1), chroma = max - min, lightness = (max + min) / 2), same dtype.
    """
    _check_image(rgb, "rgb")
    red, green, blue = rgb.unbind(_CHANNEL_DIM)
    maximum = torch.maximum(torch.maximum(red, green), blue)
    minimum = torch.minimum(torch.minimum(red, green), blue)
    chroma = maximum - minimum
    chromatic = chroma > 0
    safe_chroma = torch.where(chromatic, chroma, torch.ones_like(chroma))
    # Position within the hexagon, in sixths of a turn; ties resolve red, then green (as colorsys).
    sector = torch.where(
        red == maximum,
        torch.remainder((green - blue) / safe_chroma, _HUE_SECTORS),
        torch.where(green == maximum, (blue - red) / safe_chroma + 2.0, (red - green) / safe_chroma + 4.0),
    )
    hue = torch.where(chromatic, sector / _HUE_SECTORS, torch.zeros_like(sector))
    # remainder() of a tiny negative number can round up to exactly one full turn, which is hue 0.
    hue = torch.where(hue >= 1.0, hue - 1.0, hue)
    lightness = (maximum + minimum) / 2.0
    return torch.stack((hue, chroma, lightness), dim=_CHANNEL_DIM)


def hcl_to_rgb(hcl: torch.Tensor) -> torch.Tensor:
    """(hue, chroma, lightness) -> RGB through HSV: V = L + C/2, S = C/V (S = 0 where V = 0).

    Every triple from ``rgb_to_hcl`` comes back as its RGB. Other triples (what a network predicts)
    follow one rule, which never gives NaN for finite input: hue is taken modulo 1 (it is an angle),
    chroma and lightness are clamped to [0, 1], then S and V are clipped to [0, 1] as the released code
    does (autocolorize ``calc_rgb``: ``hsv.clip(0, 1)``), so the RGB is in [0, 1]. A chroma too large for
    its lightness therefore saturates rather than being rejected.

    Args:
        hcl: (..., 3, H, W) channels (hue, chroma, lightness).

    Returns:
        (..., 3, H, W) RGB in [0, 1], same dtype.
    """
    _check_image(hcl, "hcl")
    hue, chroma, lightness = hcl.unbind(_CHANNEL_DIM)
    chroma = chroma.clamp(0.0, 1.0)
    lightness = lightness.clamp(0.0, 1.0)
    value = lightness + chroma / 2.0
    positive = value > 0
    saturation = torch.where(positive, chroma / torch.where(positive, value, torch.ones_like(value)), 0.0)
    saturation = saturation.clamp(0.0, 1.0)
    value = value.clamp(0.0, 1.0)
    # Branch-free HSV -> RGB: channel n (5 = red, 3 = green, 1 = blue) is V - V S clip(min(k, 4 - k), 0, 1)
    # with k = (n + 6 hue) mod 6, the hexagon's piecewise-linear ramps written without selecting sectors.
    sixths = torch.remainder(hue, 1.0) * _HUE_SECTORS
    offsets = torch.tensor([5.0, 3.0, 1.0], dtype=hcl.dtype, device=hcl.device).view(3, 1, 1)
    k = torch.remainder(sixths.unsqueeze(_CHANNEL_DIM) + offsets, _HUE_SECTORS)
    ramp = torch.minimum(k, 4.0 - k).clamp(0.0, 1.0)
    value = value.unsqueeze(_CHANNEL_DIM)
    rgb = value - value * saturation.unsqueeze(_CHANNEL_DIM) * ramp
    return rgb.clamp(0.0, 1.0)


def match_grey(rgb: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
    """Shifts each pixel's RGB so that its channel mean equals ``grey``, then clips to [0, 1].

    The released code does this after decoding (autocolorize ``color.py: match_lightness``), so that
    the colourized image keeps the input's grey exactly wherever no channel clips.

    Args:
        rgb: (..., 3, H, W) RGB, e.g. from ``hcl_to_rgb``.
        grey: (..., 1, H, W) target grey, e.g. the network input ``larsson_grey(original)``.

    Returns:
        (..., 3, H, W) RGB in [0, 1], same dtype.
    """
    _check_image(rgb, "rgb")
    if grey.ndim < 3 or grey.shape[_CHANNEL_DIM] != 1:
        raise ValueError(f"grey must have shape (..., 1, H, W); got {tuple(grey.shape)}")
    return (rgb - rgb.mean(dim=_CHANNEL_DIM, keepdim=True) + grey).clamp(0.0, 1.0)
