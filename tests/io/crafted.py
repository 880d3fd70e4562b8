"""Crafted image files for the decoding and preprocessing tests (built in tmp dirs; never committed).

Each helper writes one file and returns its path. :func:`write_crafted_files` writes the whole zoo and returns
``{relative path: expected failure reason or None}`` (None: the file must decode and be written).
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

HUGE_SIDE = 100_000  # the IHDR of the bomb PNG claims HUGE_SIDE x HUGE_SIDE pixels


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def huge_png_bytes(width: int = HUGE_SIDE, height: int = HUGE_SIDE) -> bytes:
    """A valid-looking PNG whose header claims width x height RGB pixels, with a tiny IDAT (a decompression bomb)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + png_chunk(b"IEND", b"")
    )


def sixteen_bit_png_bytes(values: np.ndarray, colour_type: int) -> bytes:
    """A 16-bit PNG written by hand (PIL cannot save 16-bit RGB): colour_type 0 grey, 2 RGB, 4 grey + alpha."""
    values = np.asarray(values, dtype=np.uint16)
    height, width = values.shape[:2]
    raw = b"".join(b"\0" + values[row].astype(">u2").tobytes() for row in range(height))
    header = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(raw))
        + png_chunk(b"IEND", b"")
    )


def colour_test_pattern(width: int = 96, height: int = 72) -> np.ndarray:
    """An 8-bit RGB gradient with saturated colours (H, W, 3)."""
    y, x = np.mgrid[0:height, 0:width]
    return np.stack([x * 255 // (width - 1), y * 255 // (height - 1), 255 - x * 255 // (width - 1)], axis=-1).astype(
        np.uint8
    )


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def write_crafted_files(directory: Path, real_jpeg: Path) -> dict[str, str | None]:
    """The zoo of the issue: every broken kind and every odd-but-valid mode. Returns {name: expected reason}."""
    directory.mkdir(parents=True, exist_ok=True)
    pattern = colour_test_pattern()
    real = real_jpeg.read_bytes()
    grey16 = (np.linspace(0, 65535, 64 * 80).reshape(64, 80)).astype(np.uint16)
    rgba = np.dstack([pattern, np.full(pattern.shape[:2], 128, np.uint8)])
    files: dict[str, tuple[bytes, str | None]] = {
        "zero_byte.jpg": (b"", "zero-byte"),
        "text_named.jpg": (b"this is not an image, just text with a .jpg name\n" * 4, "not-an-image"),
        "truncated.jpg": (real[: len(real) // 3], "truncated"),
        "huge_header.png": (huge_png_bytes(), "decompression-bomb"),
        "cmyk.jpg": (encode(Image.fromarray(pattern).convert("CMYK"), "JPEG", quality=95), None),
        "grey16.png": (sixteen_bit_png_bytes(grey16, 0), None),
        "rgba.png": (encode(Image.fromarray(rgba, "RGBA"), "PNG"), None),
        "palette.gif": (encode(Image.fromarray(pattern).convert("P", palette=Image.Palette.ADAPTIVE), "GIF"), None),
    }
    for name, (data, _) in files.items():
        (directory / name).write_bytes(data)
    return {name: reason for name, (_, reason) in files.items()}
