"""colorization.io.images: every failure has its reason, every odd mode becomes 8-bit RGB, the crop is right."""

from __future__ import annotations

import struct
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.io.images import (
    IMAGE_EXTENSIONS,
    ImageDecodeError,
    decode_image,
    image_to_tensor,
    list_image_files,
    read_image,
    resize_shorter_side_and_center_crop,
    tensor_to_image,
)
from tests.io.crafted import colour_test_pattern, encode, huge_png_bytes, sixteen_bit_png_bytes


def _reason(data: bytes, **options) -> str:
    with pytest.raises(ImageDecodeError) as caught:
        decode_image(data, **options)
    return caught.value.reason


def _two_step_reference(image: Image.Image, size: int) -> Image.Image:
    """The textbook form: resize the whole image (shorter side -> size), then crop the centre."""
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    resized = image.resize((new_width, new_height), Image.Resampling.BICUBIC, reducing_gap=None)
    left, top = (new_width - size) // 2, (new_height - size) // 2
    return resized.crop((left, top, left + size, top + size))


# --- failures and their reasons ---------------------------------------------------------------------------------


def test_zero_byte_and_text_files_are_named(tmp_path: Path) -> None:
    assert _reason(b"") == "zero-byte"
    assert _reason(b"just some text, named .jpg by mistake\n") == "not-an-image"
    with pytest.raises(ImageDecodeError) as caught:
        read_image(tmp_path / "missing.jpg")
    assert caught.value.reason == "unreadable"


def test_not_an_image_detail_is_stable() -> None:
    """The failures table must not change between runs (PIL's message holds a memory address)."""
    details = set()
    for _ in range(2):
        with pytest.raises(ImageDecodeError) as caught:
            decode_image(b"not an image")
        details.add(caught.value.detail)
    assert len(details) == 1 and "0x" not in details.pop()


def test_truncated_jpeg_is_named(dev_image_paths: list[Path]) -> None:
    data = dev_image_paths[0].read_bytes()
    for cut in (len(data) // 3, len(data) - 2000):
        assert _reason(data[:cut]) == "truncated"
        assert _reason(data[:cut], draft_size=64) == "truncated"


def test_huge_header_is_refused_before_any_pixel_is_allocated() -> None:
    data = huge_png_bytes()
    tracemalloc.start()
    start = time.perf_counter()
    try:
        reason = _reason(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert reason == "decompression-bomb"
    assert peak < 5 * 2**20 and time.perf_counter() - start < 1.0  # 10^10 pixels were never decoded


def test_max_pixels_is_the_bomb_limit() -> None:
    data = encode(Image.fromarray(colour_test_pattern(40, 30)), "PNG")
    assert _reason(data, max_pixels=40 * 30 - 1) == "decompression-bomb"
    assert decode_image(data, max_pixels=40 * 30).rgb.size == (40, 30)


def test_unsupported_variant_is_named() -> None:
    """A BMP header with a pixel depth PIL does not implement (7 bits) is 'unsupported', not 'unreadable'."""
    header = b"BM" + struct.pack("<IHHI", 70, 0, 0, 54) + struct.pack("<IiiHHIIiiII", 40, 4, 4, 1, 7, 0, 16, 0, 0, 0, 0)
    assert _reason(header + b"\0" * 16) == "unsupported"


# --- every mode becomes 8-bit RGB ---------------------------------------------------------------------------------


def test_sixteen_bit_grey_png_uses_the_full_range() -> None:
    values = np.array([[0, 257, 32768, 65535]], dtype=np.uint16).repeat(3, axis=0)
    decoded = decode_image(sixteen_bit_png_bytes(values, colour_type=0))
    assert decoded.source_mode in ("I;16", "I")
    rgb = np.asarray(decoded.rgb)
    assert decoded.rgb.mode == "RGB" and decoded.alpha is None
    np.testing.assert_array_equal(rgb[0, :, 0], [0, 1, 128, 255])
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all()


def test_dark_sixteen_bit_png_stays_dark() -> None:
    """Values <= 255 in a 16-bit file are 16-bit values (near black), not 8-bit ones."""
    values = np.full((4, 4), 200, dtype=np.uint16)
    assert np.asarray(decode_image(sixteen_bit_png_bytes(values, colour_type=0)).rgb).max() <= 1


def test_sixteen_bit_rgb_png_keeps_its_colour() -> None:
    values = np.zeros((4, 4, 3), dtype=np.uint16)
    values[..., 0], values[..., 1] = 65535, 30000
    rgb = np.asarray(decode_image(sixteen_bit_png_bytes(values, colour_type=2)).rgb)
    np.testing.assert_array_equal(rgb[0, 0], [255, round(30000 / 257), 0])


def test_rgba_palette_cmyk_and_grey_sources() -> None:
    pattern = colour_test_pattern()
    rgba = np.dstack([pattern, np.full(pattern.shape[:2], 77, np.uint8)])
    decoded = decode_image(encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert decoded.source_mode == "RGBA" and decoded.alpha is not None and np.asarray(decoded.alpha).max() == 77
    np.testing.assert_array_equal(np.asarray(decoded.rgb), pattern)

    decoded = decode_image(encode(Image.fromarray(pattern).convert("P", palette=Image.Palette.ADAPTIVE), "GIF"))
    assert decoded.source_mode == "P" and decoded.rgb.mode == "RGB"
    assert np.abs(np.asarray(decoded.rgb, dtype=int) - pattern).mean() < 6  # 256-colour palette

    cmyk = encode(Image.fromarray(pattern).convert("CMYK"), "JPEG", quality=95)
    decoded = decode_image(cmyk)
    assert decoded.source_mode == "CMYK" and decoded.rgb.mode == "RGB"
    assert np.abs(np.asarray(decoded.rgb, dtype=int) - pattern).mean() < 6
    drafted = decode_image(cmyk, draft_size=32)  # draft mode works on CMYK too (DCT scaling 1/2 here)
    assert drafted.rgb.mode == "RGB" and drafted.rgb.size == (48, 36) and drafted.original_size == (96, 72)

    decoded = decode_image(encode(Image.fromarray(pattern).convert("L"), "JPEG"))
    rgb = np.asarray(decoded.rgb)
    assert decoded.source_mode == "L" and (rgb[..., 0] == rgb[..., 2]).all()


def test_float_and_int_tiffs() -> None:
    decoded = decode_image(encode(Image.fromarray(np.full((4, 4), 0.5, np.float32)), "TIFF"))
    assert decoded.source_mode == "F" and np.asarray(decoded.rgb)[0, 0, 0] == 128
    decoded = decode_image(encode(Image.fromarray(np.full((4, 4), 40000, np.int32)), "TIFF"))
    assert np.asarray(decoded.rgb)[0, 0, 0] == round(40000 * 255 / 65535)


def test_webp_and_bmp_decode() -> None:
    pattern = colour_test_pattern()
    for format in ("WEBP", "BMP", "TIFF"):
        decoded = decode_image(
            encode(Image.fromarray(pattern), format, **({"lossless": True} if format == "WEBP" else {}))
        )
        np.testing.assert_array_equal(np.asarray(decoded.rgb), pattern)


def test_exif_orientation_is_applied() -> None:
    pattern = colour_test_pattern(96, 48)  # landscape as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    decoded = decode_image(encode(Image.fromarray(pattern), "JPEG", exif=exif.tobytes(), quality=95))
    assert decoded.rgb.size == (48, 96) and decoded.original_size == (48, 96)


def test_draft_mode_keeps_the_shorter_side_at_least_the_target(dev_image_paths: list[Path]) -> None:
    big = max(dev_image_paths[:60], key=lambda path: path.stat().st_size)
    full = decode_image(big.read_bytes())
    drafted = decode_image(big.read_bytes(), draft_size=128)
    assert min(drafted.rgb.size) >= 128 and drafted.original_size == full.original_size
    assert drafted.rgb.size[0] <= full.rgb.size[0]


def test_real_dev_photos_decode(dev_image_paths: list[Path]) -> None:
    for path in dev_image_paths[:20]:
        decoded = read_image(path, draft_size=256)
        assert decoded.rgb.mode == "RGB" and min(decoded.original_size) >= min(decoded.rgb.size)


# --- resize and crop ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(500, 375), (375, 500), (257, 256), (256, 256), (100, 60), (1200, 31)])
def test_crop_is_square_and_matches_the_two_step_form(size: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(size))
    smooth = np.asarray(
        Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).resize(size, Image.Resampling.BICUBIC)
    )
    image = Image.fromarray(smooth)
    ours = np.asarray(resize_shorter_side_and_center_crop(image, 64), dtype=int)
    reference = np.asarray(_two_step_reference(image, 64), dtype=int)
    assert ours.shape == (64, 64, 3)
    assert np.abs(ours - reference).max() <= 2


def test_crop_matches_the_two_step_form_on_photos(dev_image_paths: list[Path]) -> None:
    differences = []
    for path in dev_image_paths[:10]:
        image = read_image(path, draft_size=256).rgb
        ours = np.asarray(resize_shorter_side_and_center_crop(image, 256), dtype=int)
        differences.append(np.abs(ours - np.asarray(_two_step_reference(image, 256), dtype=int)))
    assert np.mean([d.mean() for d in differences]) < 0.1  # only PIL's rounding between its passes differs
    assert np.mean([np.quantile(d, 0.999) for d in differences]) <= 2


def test_extreme_aspect_ratio_does_not_blow_up() -> None:
    strip = Image.fromarray(np.tile(colour_test_pattern(4, 3)[:1], (1, 5000, 1)))  # 1 x 20000 pixels
    tracemalloc.start()
    try:
        crop = resize_shorter_side_and_center_crop(strip, 256)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert crop.size == (256, 256) and peak < 50 * 2**20  # the full resize would be 256 x 5,120,000 pixels


def test_crop_rejects_non_positive_size() -> None:
    with pytest.raises(ValueError):
        resize_shorter_side_and_center_crop(Image.new("RGB", (4, 4)), 0)


# --- listing and tensors ---------------------------------------------------------------------------------------------


def test_list_image_files_recurses_and_filters(tmp_path: Path) -> None:
    for name in ("b/x.JPEG", "a/y.png", "a/deep/z.WebP", "c/t.tif", "notes.txt", "a/no_suffix"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    found = [path.relative_to(tmp_path).as_posix() for path in list_image_files(tmp_path)]
    assert found == ["a/deep/z.WebP", "a/y.png", "b/x.JPEG", "c/t.tif"]
    assert list_image_files(tmp_path / "a/y.png") == [tmp_path / "a/y.png"]
    assert {".jpeg", ".png", ".webp", ".bmp", ".tiff"} <= set(IMAGE_EXTENSIONS)


def test_tensor_round_trip() -> None:
    pattern = colour_test_pattern()
    tensor = image_to_tensor(Image.fromarray(pattern))
    assert tensor.shape == (3, 72, 96) and tensor.dtype == torch.float32 and 0 <= tensor.min() <= tensor.max() <= 1
    np.testing.assert_array_equal(np.asarray(tensor_to_image(tensor)), pattern)
