"""colorization.color.lab against scikit-image's rgb2lab/lab2rgb, the independent reference.

The real-photo tests read every photo of ../shared/data/imagenet-sample/dev in place (500 ImageNet JPEGs,
9 of them greyscale), each shrunk with PIL's thumbnail to at most 256 px a side to keep the run short;
the colour maths is per pixel, so the size changes nothing that is tested.
"""

from __future__ import annotations

import itertools
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image
from skimage.color import lab2rgb, lab2xyz, rgb2lab
from skimage.color.colorconv import rgb_from_xyz

import colorization.color.lab as lab_module
from colorization.color.lab import join_lab, lab_to_linear_rgb, lab_to_rgb, linear_to_srgb, rgb_to_lab, split_lab

DEV_PHOTO_COUNT = 500
MAX_SIDE = 256
SKIMAGE_TOLERANCE = 1e-3  # Lab units for rgb_to_lab, RGB units for lab_to_rgb
ROUND_TRIP_TOLERANCE = 0.5 / 255.0
FLOAT_DTYPES = [torch.float32, torch.float64]


def _to_channel_first(image_hwc: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(image_hwc)).to(dtype).permute(2, 0, 1).contiguous()


def _to_channel_last(image_chw: torch.Tensor) -> np.ndarray:
    return image_chw.permute(1, 2, 0).double().cpu().numpy()


def _skimage_lab2rgb(lab_hwc: np.ndarray) -> np.ndarray:
    with warnings.catch_warnings():  # it warns when it clamps a negative z, which out-of-gamut Lab does
        warnings.simplefilter("ignore")
        return lab2rgb(lab_hwc)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Runs this module on one intra-op thread: results do not depend on it, and on a shared 2-core
    machine the fast path's many short parallel regions stall when the other core is busy (7x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dev_photos(dev_image_paths: list[Path]) -> list[tuple[str, np.ndarray]]:
    """(file name, uint8 (H, W, 3) thumbnail) for every dev photo; greyscale ones converted to RGB."""
    assert len(dev_image_paths) >= DEV_PHOTO_COUNT, f"expected all {DEV_PHOTO_COUNT} dev photos"
    photos = []
    for path in dev_image_paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            rgb.thumbnail((MAX_SIDE, MAX_SIDE))
            photos.append((path.name, np.asarray(rgb)))
    return photos


def test_rgb_to_lab_matches_skimage_on_every_dev_photo(dev_photos: list[tuple[str, np.ndarray]]) -> None:
    errors = []
    for name, pixels in dev_photos:
        rgb = pixels / 255.0
        ours = _to_channel_last(rgb_to_lab(_to_channel_first(rgb)))
        errors.append((float(np.abs(ours - rgb2lab(rgb)).max()), name))
    assert len(errors) == len(dev_photos)
    assert max(errors)[0] <= SKIMAGE_TOLERANCE, max(errors)


def test_lab_to_rgb_matches_skimage_on_every_dev_photo(dev_photos: list[tuple[str, np.ndarray]]) -> None:
    errors = []
    for name, pixels in dev_photos:
        lab = rgb_to_lab(_to_channel_first(pixels / 255.0))  # the same input goes to both
        ours = _to_channel_last(lab_to_rgb(lab))
        errors.append((float(np.abs(ours - _skimage_lab2rgb(_to_channel_last(lab))).max()), name))
    assert max(errors)[0] <= SKIMAGE_TOLERANCE, max(errors)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_round_trip_on_every_dev_photo(dev_photos: list[tuple[str, np.ndarray]], dtype: torch.dtype) -> None:
    errors = []
    for name, pixels in dev_photos:
        rgb = _to_channel_first(pixels / 255.0, dtype)
        errors.append(((lab_to_rgb(rgb_to_lab(rgb)) - rgb).abs().max().item(), name))
    assert max(errors)[0] <= ROUND_TRIP_TOLERANCE, max(errors)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_dtype_and_shape_preserved(dtype: torch.dtype) -> None:
    rgb = torch.rand(2, 3, 5, 7, dtype=dtype)
    lab = rgb_to_lab(rgb)
    back = lab_to_rgb(lab)
    assert lab.dtype == dtype and back.dtype == dtype
    assert lab.shape == rgb.shape and back.shape == rgb.shape


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_float32_and_float64_agree_with_skimage(dtype: torch.dtype) -> None:
    rgb = np.random.default_rng(0).random((17, 19, 3))
    ours = _to_channel_last(rgb_to_lab(_to_channel_first(rgb, dtype)))
    assert np.abs(ours - rgb2lab(rgb)).max() <= SKIMAGE_TOLERANCE


def test_leading_dims_give_the_same_as_looping() -> None:
    rgb = torch.rand(2, 3, 3, 6, 5, dtype=torch.float64)
    lab = rgb_to_lab(rgb)
    back = lab_to_rgb(lab)
    for i, j in itertools.product(range(2), range(3)):
        torch.testing.assert_close(lab[i, j], rgb_to_lab(rgb[i, j]), rtol=0, atol=1e-12)
        torch.testing.assert_close(back[i, j], lab_to_rgb(lab[i, j]), rtol=0, atol=1e-12)


def test_non_contiguous_input_gives_the_same_as_contiguous() -> None:
    rgb_hwc = torch.rand(2, 6, 5, 3, dtype=torch.float64)
    rgb = rgb_hwc.permute(0, 3, 1, 2)  # channel-first view of channel-last memory
    assert not rgb.is_contiguous()
    torch.testing.assert_close(rgb_to_lab(rgb), rgb_to_lab(rgb.contiguous()), rtol=0, atol=0)
    lab = rgb_to_lab(rgb.contiguous()).permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    torch.testing.assert_close(lab_to_rgb(lab), lab_to_rgb(lab.contiguous()), rtol=0, atol=0)


def test_cache_sized_chunks_give_the_same_as_one_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CPU fast path works in chunks: images split across chunks and images grouped into one."""
    large = torch.rand(2, 3, 10, 11, dtype=torch.float64)  # 110 pixels: split into chunks of 50
    small = torch.rand(5, 3, 4, 5, dtype=torch.float64)  # 20 pixels: 2 images per chunk, 1 left over
    whole = [(rgb_to_lab(rgb), lab_to_rgb(rgb_to_lab(rgb))) for rgb in (large, small)]
    monkeypatch.setattr(lab_module, "_CPU_CHUNK_PIXELS", 50)
    for rgb, (lab, back) in zip((large, small), whole, strict=True):
        torch.testing.assert_close(rgb_to_lab(rgb), lab, rtol=0, atol=1e-12)
        torch.testing.assert_close(lab_to_rgb(lab), back, rtol=0, atol=1e-12)  # pow may differ by 1 ulp


def test_autograd_path_matches_fast_path_and_has_finite_gradients() -> None:
    rgb = torch.rand(2, 3, 8, 9, dtype=torch.float64)
    rgb[0, :, 0, 0] = 0.0  # black: both linear segments
    rgb[0, :, 0, 1] = 1.0  # white: the upper clamps
    differentiable = rgb.clone().requires_grad_()
    lab = rgb_to_lab(differentiable)
    back = lab_to_rgb(lab)
    torch.testing.assert_close(lab.detach(), rgb_to_lab(rgb), rtol=0, atol=1e-10)
    torch.testing.assert_close(back.detach(), lab_to_rgb(rgb_to_lab(rgb)), rtol=0, atol=1e-12)
    (lab.sum() + back.sum()).backward()
    assert differentiable.grad is not None and torch.isfinite(differentiable.grad).all()


def test_lab_to_rgb_gradients_are_finite_at_black_and_out_of_gamut() -> None:
    """Linear RGB of exactly 0 (Lab 0, 0, 0) or clipped: the unused pow branch must not leak inf * 0."""
    lab_rows = [[0.0, 0.0, 0.0], [-10.0, 200.0, -200.0], [110.0, -200.0, 200.0], [50.0, 0.0, 0.0], [100.0, 0.0, 0.0]]
    lab = torch.tensor(lab_rows, dtype=torch.float64).T.reshape(3, len(lab_rows), 1).requires_grad_()
    rgb = lab_to_rgb(lab)
    torch.testing.assert_close(rgb.detach(), lab_to_rgb(lab.detach()), rtol=0, atol=1e-12)
    rgb.sum().backward()
    assert lab.grad is not None and torch.isfinite(lab.grad).all()


@pytest.mark.parametrize("function", [rgb_to_lab, lab_to_rgb])
@pytest.mark.parametrize("shape", [(4, 5, 6), (2, 1, 5, 6), (3, 6), (2, 4, 5, 6)])
def test_wrong_channel_count_raises(function, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"\(\.\.\., 3, H, W\)"):
        function(torch.rand(shape))


@pytest.mark.parametrize("function", [rgb_to_lab, lab_to_rgb])
@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64, torch.bool])
def test_integer_dtype_raises(function, dtype: torch.dtype) -> None:
    with pytest.raises(TypeError, match="floating-point"):
        function(torch.zeros(3, 4, 4, dtype=dtype))


def test_split_and_join_lab_round_trip() -> None:
    lab = rgb_to_lab(torch.rand(2, 3, 4, 5))
    lightness, ab = split_lab(lab)
    assert lightness.shape == (2, 1, 4, 5) and ab.shape == (2, 2, 4, 5)
    torch.testing.assert_close(join_lab(lightness, ab), lab, rtol=0, atol=0)


# --- Out-of-gamut Lab: what a network predicts. ---

_lab_box = st.lists(
    st.tuples(st.floats(-10.0, 110.0), st.floats(-200.0, 200.0), st.floats(-200.0, 200.0)), min_size=1, max_size=64
).map(np.array)


def _as_lab_image(lab_rows: np.ndarray, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return _to_channel_first(lab_rows[:, None, :], dtype)  # (N, 3) -> (3, N, 1)


@settings(max_examples=150, deadline=None)
@given(lab_rows=_lab_box)
def test_out_of_gamut_lab_gives_valid_rgb_matching_skimage(lab_rows: np.ndarray) -> None:
    """L in [-10, 110], a and b in [-200, 200]: finite, in [0, 1], and skimage's answer (it clips too)."""
    for dtype in FLOAT_DTYPES:
        rgb = lab_to_rgb(_as_lab_image(lab_rows, dtype))
        assert torch.isfinite(rgb).all()
        assert rgb.min() >= 0.0 and rgb.max() <= 1.0
    expected = _skimage_lab2rgb(lab_rows[:, None, :])
    ours = _to_channel_last(lab_to_rgb(_as_lab_image(lab_rows)))
    assert np.abs(ours - expected).max() <= SKIMAGE_TOLERANCE


@settings(max_examples=100, deadline=None)
@given(lab_rows=_lab_box)
def test_lab_to_linear_rgb_is_skimage_before_clipping(lab_rows: np.ndarray) -> None:
    """Unclipped linear RGB (the gamut test) is skimage's lab2xyz times its rgb_from_xyz, and the sRGB curve
    of it is lab_to_rgb."""
    lab = _as_lab_image(lab_rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = lab2xyz(lab_rows[:, None, :]) @ rgb_from_xyz.T
    linear = lab_to_linear_rgb(lab)
    assert np.abs(_to_channel_last(linear) - expected).max() <= 1e-9
    torch.testing.assert_close(linear_to_srgb(linear), lab_to_rgb(lab), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_extreme_lab_gives_valid_rgb(dtype: torch.dtype) -> None:
    extremes = [-1e6, -200.0, 0.0, 200.0, 1e6]
    lab_rows = np.array(list(itertools.product(extremes, repeat=3)))
    for requires_grad in (False, True):  # the fast path and the autograd path
        lab = _as_lab_image(lab_rows, dtype).requires_grad_(requires_grad)
        rgb = lab_to_rgb(lab)
        assert not torch.isnan(rgb).any()
        assert rgb.min() >= 0.0 and rgb.max() <= 1.0


@settings(max_examples=100, deadline=None)
@given(lab_rows=hnp.arrays(np.float32, (40, 3), elements=st.floats(width=32, allow_nan=False, allow_infinity=False)))
def test_any_finite_float32_lab_gives_valid_rgb(lab_rows: np.ndarray) -> None:
    rgb = lab_to_rgb(_as_lab_image(lab_rows, torch.float32))
    assert torch.isfinite(rgb).all()
    assert rgb.min() >= 0.0 and rgb.max() <= 1.0


# --- Property tests on random RGB. ---

_rgb_images = hnp.arrays(
    np.float64,
    st.tuples(st.integers(1, 9), st.integers(1, 9), st.just(3)),
    elements=st.floats(0.0, 1.0) | st.sampled_from([0.0, 0.04045, 1.0 / 255.0, 1.0]),
)


@settings(max_examples=200, deadline=None)
@given(rgb=_rgb_images)
def test_random_rgb_agrees_with_skimage(rgb: np.ndarray) -> None:
    lab = rgb2lab(rgb)
    ours = _to_channel_last(rgb_to_lab(_to_channel_first(rgb)))
    assert np.abs(ours - lab).max() <= SKIMAGE_TOLERANCE
    back = _to_channel_last(lab_to_rgb(_to_channel_first(lab)))
    assert np.abs(back - _skimage_lab2rgb(lab)).max() <= SKIMAGE_TOLERANCE


@settings(max_examples=200, deadline=None)
@given(rgb=_rgb_images)
def test_random_rgb_round_trips(rgb: np.ndarray) -> None:
    for dtype in FLOAT_DTYPES:
        image = _to_channel_first(rgb, dtype)
        assert (lab_to_rgb(rgb_to_lab(image)) - image).abs().max().item() <= ROUND_TRIP_TOLERANCE


# --- CUDA: the same functions on a GPU. ---


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_cuda_matches_skimage_and_round_trips(dtype: torch.dtype) -> None:
    rgb = np.random.default_rng(1).random((4, 33, 35, 3))
    image = torch.from_numpy(rgb).to(dtype).permute(0, 3, 1, 2).cuda()
    lab = rgb_to_lab(image)
    back = lab_to_rgb(lab)
    assert lab.is_cuda and back.is_cuda and lab.dtype == dtype
    ours = lab.permute(0, 2, 3, 1).double().cpu().numpy()
    assert np.abs(ours - rgb2lab(rgb)).max() <= SKIMAGE_TOLERANCE
    assert (back - image).abs().max().item() <= ROUND_TRIP_TOLERANCE
    out_of_gamut = torch.tensor([[-10.0, 200.0, -200.0], [110.0, -200.0, 200.0], [1e6, -1e6, 1e6]], dtype=dtype)
    rgb_out = lab_to_rgb(out_of_gamut.T.reshape(3, 3, 1).cuda())
    assert torch.isfinite(rgb_out).all() and rgb_out.min() >= 0.0 and rgb_out.max() <= 1.0
