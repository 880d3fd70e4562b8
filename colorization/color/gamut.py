"""Bringing predicted colours into the sRGB gamut without touching lightness.

A network's ab may be out of gamut for the pixel's L. Clipping in RGB (what ``lab_to_rgb`` does) always gives
valid RGB but shifts L; the colorizer must keep the input's lightness, so it first pulls each out-of-gamut ab
straight towards grey (a = b = 0 is in gamut for every L in [0, 100]) by the largest factor s in [0, 1] that
fits: hue angle and L are kept, only chroma shrinks.
"""

from __future__ import annotations

import torch

from colorization.color.lab import join_lab, lab_to_linear_rgb

GAMUT_BISECTION_STEPS = 12  # chroma factor found to within 2^-12 (~0.03 ab units at |ab| = 110)
_GAMUT_TOLERANCE = 1e-6  # linear RGB this far outside [0, 1] still counts as inside (float rounding)


def _in_gamut(lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(..., 1, H, W) bool: does Lab (L, ab) map into [0, 1]^3 in linear RGB?"""
    linear = lab_to_linear_rgb(join_lab(lightness, ab))
    inside = (linear >= -_GAMUT_TOLERANCE) & (linear <= 1.0 + _GAMUT_TOLERANCE)
    return inside.all(dim=-3, keepdim=True)


def fit_ab_to_gamut(lightness: torch.Tensor, ab: torch.Tensor, steps: int = GAMUT_BISECTION_STEPS) -> torch.Tensor:
    """Scales each pixel's ab towards 0 just enough that (L, ab) is inside the sRGB gamut.

    Args:
        lightness: (..., 1, H, W) raw L, clamped to [0, 100] for the test.
        ab: (..., 2, H, W) raw ab.
        steps: bisection steps on the per-pixel chroma factor.

    Returns:
        (..., 2, H, W) ab; pixels already in gamut are returned unchanged.
    """
    lightness = lightness.clamp(0.0, 100.0)
    inside = _in_gamut(lightness, ab)  # (..., 1, H, W)
    if bool(inside.all()):
        return ab
    # Search only the pixels that are out: gather them into a (1, C, M, 1) strip, bisect, scatter back.
    outside = ~inside.squeeze(-3)  # (..., H, W)
    ab_last = ab.movedim(-3, -1)  # (..., H, W, 2)
    ab_out = ab_last[outside].T[None, :, :, None]  # (1, 2, M, 1)
    lightness_out = lightness.movedim(-3, -1)[outside].T[None, :, :, None]  # (1, 1, M, 1)
    low = torch.zeros_like(lightness_out)  # a factor known to fit
    high = torch.ones_like(lightness_out)  # a factor known not to fit
    for _ in range(steps):
        middle = (low + high) / 2
        fits = _in_gamut(lightness_out, ab_out * middle)
        low = torch.where(fits, middle, low)
        high = torch.where(fits, high, middle)
    fitted = ab_last.clone()
    fitted[outside] = (ab_out * low)[0, :, :, 0].T
    return fitted.movedim(-1, -3)
