"""colorization.color.hue_chroma against Python's colorsys (pixel by pixel) and scikit-image's rgb2hsv."""

from __future__ import annotations

import colorsys
import itertools
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from skimage.color import rgb2hsv

from colorization.color.hue_chroma import hcl_to_rgb, larsson_grey, match_grey, rgb_to_hcl

FLOAT_DTYPES = [torch.float32, torch.float64]
DEV_PHOTOS_FOR_HSV = 40
MAX_SIDE = 96

# Exact ties and extremes exercise the sector choice and the achromatic case. Subnormals are left out:
# (max + min) / 2 underflows there, so L + C/2 cannot give back V = 5e-324; images never hold such values.
_channel_values = st.floats(0.0, 1.0, allow_subnormal=False) | st.sampled_from([0.0, 1.0, 0.5, 1e-17, 1.0 - 1e-16])
_rgb_images = hnp.arrays(
    np.float64, st.tuples(st.just(3), st.integers(1, 6), st.integers(1, 6)), elements=_channel_values
)


def _circular_distance(hue_a: np.ndarray, hue_b: np.ndarray) -> np.ndarray:
    difference = np.abs(hue_a - hue_b) % 1.0
    return np.minimum(difference, 1.0 - difference)


def _pixels(image: np.ndarray) -> list[tuple[int, int]]:
    return list(itertools.product(range(image.shape[-2]), range(image.shape[-1])))


@settings(max_examples=200, deadline=None)
@given(rgb=_rgb_images)
def test_rgb_to_hcl_matches_colorsys_hsv(rgb: np.ndarray) -> None:
    """Hue is colorsys's hue; the bicone gives back V = L + C/2 and S = C / V."""
    hcl = rgb_to_hcl(torch.from_numpy(rgb)).numpy()
    for row, column in _pixels(rgb):
        hue, saturation, value = colorsys.rgb_to_hsv(*rgb[:, row, column])
        ours_hue, chroma, lightness = hcl[:, row, column]
        ours_value = lightness + chroma / 2.0
        assert ours_value == pytest.approx(value, abs=1e-12)
        assert (chroma / ours_value if ours_value > 0 else 0.0) == pytest.approx(saturation, abs=1e-9)
        if chroma > 1e-9:  # hue is undefined for greys
            assert _circular_distance(np.array(ours_hue), np.array(hue)) <= 1e-9
        else:
            assert chroma > 0 or ours_hue == 0.0  # the documented hue of achromatic pixels


def test_rgb_to_hcl_matches_skimage_rgb2hsv_on_dev_photos(dev_image_paths: list[Path]) -> None:
    paths = dev_image_paths[:: max(1, len(dev_image_paths) // DEV_PHOTOS_FOR_HSV)]
    assert len(paths) >= DEV_PHOTOS_FOR_HSV
    for path in paths:
        with Image.open(path) as image:
            photo = image.convert("RGB")
            photo.thumbnail((MAX_SIDE, MAX_SIDE))
            rgb = np.asarray(photo) / 255.0
        hsv = rgb2hsv(rgb)
        hue, chroma, lightness = rgb_to_hcl(torch.from_numpy(rgb).permute(2, 0, 1)).numpy()
        value = lightness + chroma / 2.0
        np.testing.assert_allclose(value, hsv[..., 2], atol=1e-12, err_msg=path.name)
        np.testing.assert_allclose(np.where(value > 0, chroma / np.maximum(value, 1e-300), 0.0), hsv[..., 1], atol=1e-9)
        chromatic = chroma > 0
        assert _circular_distance(hue[chromatic], hsv[..., 0][chromatic]).max(initial=0.0) <= 1e-9, path.name
        assert (hue[~chromatic] == 0.0).all()


@settings(max_examples=200, deadline=None)
@given(hsv=hnp.arrays(np.float64, (3, 4, 5), elements=st.floats(0.0, 1.0)))
def test_hcl_to_rgb_matches_colorsys_hsv_to_rgb(hsv: np.ndarray) -> None:
    hue, saturation, value = hsv
    chroma = saturation * value
    hcl = np.stack((hue % 1.0, chroma, value - chroma / 2.0))
    rgb = hcl_to_rgb(torch.from_numpy(hcl)).numpy()
    for row, column in _pixels(hsv):
        expected = colorsys.hsv_to_rgb(*hsv[:, row, column])
        np.testing.assert_allclose(rgb[:, row, column], expected, atol=1e-9)


@settings(max_examples=200, deadline=None)
@given(rgb=_rgb_images)
def test_round_trip(rgb: np.ndarray) -> None:
    for dtype, tolerance in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        image = torch.from_numpy(rgb).to(dtype)
        hcl = rgb_to_hcl(image)
        assert hcl.dtype == dtype
        torch.testing.assert_close(hcl_to_rgb(hcl), image, rtol=0, atol=tolerance)


@settings(max_examples=200, deadline=None)
@given(rgb=_rgb_images)
def test_hue_range_chroma_and_lightness(rgb: np.ndarray) -> None:
    for dtype in FLOAT_DTYPES:
        image = torch.from_numpy(rgb).to(dtype)
        hue, chroma, lightness = rgb_to_hcl(image).unbind(0)
        assert not torch.isnan(hue).any()
        assert (hue >= 0).all() and (hue < 1).all()
        torch.testing.assert_close(chroma, image.amax(0) - image.amin(0), rtol=0, atol=0)
        torch.testing.assert_close(lightness, (image.amax(0) + image.amin(0)) / 2, rtol=0, atol=0)


def test_hue_just_below_red_wraps_to_zero_not_one() -> None:
    """(G - B) / C a hair below 0 leaves remainder() at exactly 6, one full turn; that is hue 0."""
    rgb = torch.tensor([1.0, 0.0, 1e-17], dtype=torch.float64).view(3, 1, 1)
    hue = rgb_to_hcl(rgb)[0].item()
    assert 0.0 <= hue < 1.0


@settings(max_examples=200, deadline=None)
@given(rgb=_rgb_images)
def test_larsson_grey_is_the_channel_mean(rgb: np.ndarray) -> None:
    grey = larsson_grey(torch.from_numpy(rgb))
    assert grey.shape == (1, *rgb.shape[1:])
    np.testing.assert_allclose(grey.numpy()[0], (rgb[0] + rgb[1] + rgb[2]) / 3.0, atol=1e-15)


@settings(max_examples=300, deadline=None)
@given(hcl=hnp.arrays(np.float64, (3, 4, 4), elements=st.floats(-1e300, 1e300, allow_nan=False)))
def test_hcl_to_rgb_never_nan_and_in_range(hcl: np.ndarray) -> None:
    """Any finite triple, however invalid, gives RGB in [0, 1] (the documented clipping rule)."""
    for dtype in FLOAT_DTYPES:
        values = torch.from_numpy(hcl).to(dtype).nan_to_num(posinf=3e38, neginf=-3e38)  # float32: stay finite
        rgb = hcl_to_rgb(values)
        assert not torch.isnan(rgb).any()
        assert (rgb >= 0).all() and (rgb <= 1).all()


def test_hcl_to_rgb_clipping_rule() -> None:
    """Chroma and lightness clamp to [0, 1], S and V clip to [0, 1], hue wraps modulo 1."""
    hcl = torch.tensor(
        [
            [0.0, 1.0, 1.0],  # V = 1.5 -> 1, S = 2/3: pink (1, 1/3, 1/3)
            [1.25, 0.5, 0.25],  # hue 0.25 (chartreuse), V = 0.5, S = 1: (0.25, 0.5, 0)
            [0.0, 0.8, 0.1],  # V = 0.5, S = 1.6 -> 1: pure red of value 0.5
            [1 / 12, 0.8, 0.1],  # the same between red and yellow: S = 1, not 1.6, sets green to V (1 - S/2)
            [0.5, -0.3, -0.2],  # both clamp to 0: black
            [0.0, 0.0, 0.0],  # V = 0: S = 0, black, no 0/0
        ],
        dtype=torch.float64,
    ).T.reshape(3, 6, 1)
    expected = torch.tensor(
        [[1.0, 1 / 3, 1 / 3], [0.25, 0.5, 0.0], [0.5, 0.0, 0.0], [0.5, 0.25, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
        dtype=torch.float64,
    ).T.reshape(3, 6, 1)
    torch.testing.assert_close(hcl_to_rgb(hcl), expected, rtol=0, atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(rgb=_rgb_images, grey_value=st.floats(0.0, 1.0))
def test_match_grey_sets_the_mean_where_not_clipped(rgb: np.ndarray, grey_value: float) -> None:
    image = torch.from_numpy(rgb)
    grey = torch.full((1, *rgb.shape[1:]), grey_value, dtype=torch.float64)
    matched = match_grey(image, grey)
    assert (matched >= 0).all() and (matched <= 1).all()
    shifted = image - image.mean(0, keepdim=True) + grey
    unclipped = ((shifted >= 0) & (shifted <= 1)).all(0)
    torch.testing.assert_close(larsson_grey(matched)[0][unclipped], grey[0][unclipped], rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_leading_dims_and_dtype(dtype: torch.dtype) -> None:
    rgb = torch.rand(2, 3, 3, 4, 5, dtype=dtype)
    hcl = rgb_to_hcl(rgb)
    assert hcl.shape == rgb.shape and hcl.dtype == dtype
    assert larsson_grey(rgb).shape == (2, 3, 1, 4, 5)
    for i, j in itertools.product(range(2), range(3)):
        torch.testing.assert_close(hcl[i, j], rgb_to_hcl(rgb[i, j]), rtol=0, atol=0)
    torch.testing.assert_close(hcl_to_rgb(hcl), rgb, rtol=0, atol=1e-5 if dtype == torch.float32 else 1e-12)
    assert match_grey(rgb, larsson_grey(rgb)).shape == rgb.shape


@pytest.mark.parametrize("function", [rgb_to_hcl, hcl_to_rgb, larsson_grey])
def test_bad_input_raises(function) -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        function(torch.rand(2, 4, 4))
    with pytest.raises(TypeError, match="floating-point"):
        function(torch.zeros(3, 4, 4, dtype=torch.uint8))


def test_match_grey_rejects_a_grey_with_channels() -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 1, H, W\)"):
        match_grey(torch.rand(3, 4, 4), torch.rand(3, 4, 4))
