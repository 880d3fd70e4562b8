"""Robust image decoding shared by preprocessing, inference and metrics.

Every failure becomes an :class:`ImageDecodeError` with a short machine-readable ``reason``, so a batch job can
record it in a failures table and go on (Ray's ``read_images`` drops whole blocks on one bad file; see
``shared/reference/ray-mlflow-notes.md`` 1.1). Any PIL mode (grey, RGB, RGBA, palette, CMYK, 16-bit) comes out as
8-bit RGB with EXIF orientation applied.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# PIL's own bomb limit (89.5 Mpx); larger images are refused, not decoded.
DEFAULT_MAX_PIXELS = Image.MAX_IMAGE_PIXELS or 89_478_485
_SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")
_EXIF_ORIENTATION_TAG = 0x0112
_TRANSPOSING_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
# Substrings of PIL's OSError messages: damaged data ("image file is truncated", "broken data stream") vs a
# valid file in a variant PIL cannot decode ("Unsupported BMP pixel depth", "decoder jpeg2k not available").
_TRUNCATED_MARKERS = ("truncated", "broken data")
_UNSUPPORTED_MARKERS = ("unsupported", "not supported", "not available", "unknown")


class ImageDecodeError(ValueError):
    """An image that cannot be used, with a short ``reason``.

    Reasons: ``zero-byte``, ``not-an-image``, ``truncated``, ``decompression-bomb``, ``unsupported``, ``unreadable``,
    and ``bad-file-name`` (listed, but its name is not UTF-8).
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class DecodedImage:
    """An 8-bit RGB image plus what the source was."""

    rgb: Image.Image  # mode "RGB", EXIF orientation applied, possibly JPEG-draft-reduced
    alpha: Image.Image | None  # mode "L" when the source had transparency
    source_mode: str  # PIL mode of the file before conversion
    original_size: tuple[int, int]  # (width, height) of the file, after EXIF orientation


def _to_rgb(image: Image.Image) -> tuple[Image.Image, Image.Image | None]:
    """Converts any PIL mode to 8-bit RGB (plus alpha when present)."""
    if image.mode in _SIXTEEN_BIT_MODES:
        # PIL's convert("L") clips 16-bit values at 255; rescale the full range instead. Mode "I" (32-bit
        # integers, e.g. some TIFFs) holding only values <= 255 is taken as 8-bit data.
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode != "I" or values.max() > 255 else 255.0
        grey = np.clip(np.rint(values * (255.0 / top)), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB"), None
    if image.mode == "F":
        # Floating-point grey (TIFF): PIL's convert clips at 255, so [0, 1] data would come out black.
        values = np.nan_to_num(np.asarray(image, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)
        scale = 255.0 if values.size and values.max() <= 1.0 else 1.0
        grey = np.clip(np.rint(values * scale), 0, 255).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB"), None
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    alpha = image.getchannel("A") if image.mode in ("RGBA", "LA", "PA") else None
    return (image if image.mode == "RGB" else image.convert("RGB")), alpha


def _os_error_reason(error: OSError) -> str:
    """PIL reports both damaged data and formats it cannot handle as OSError; tell them apart by the message."""
    message = str(error).lower()
    if any(marker in message for marker in _TRUNCATED_MARKERS):
        return "truncated"
    if any(marker in message for marker in _UNSUPPORTED_MARKERS):
        return "unsupported"
    return "unreadable"


def decode_image(data: bytes, *, draft_size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decodes encoded image bytes.

    Args:
        data: the file's bytes.
        draft_size: when set, JPEGs are decoded at the smallest DCT scale whose shorter side is still
            >= draft_size (fast downscaling for preprocessing); other formats decode at full size.
        max_pixels: images with more pixels are refused as decompression bombs before decoding.

    Returns:
        The decoded image. Raises ImageDecodeError otherwise.
    """
    if len(data) == 0:
        raise ImageDecodeError("zero-byte", "the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    "decompression-bomb", f"{width}x{height} = {width * height} pixels exceeds {max_pixels}"
                )
            source_mode = image.mode
            if draft_size is not None and image.format == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            orientation = image.getexif().get(_EXIF_ORIENTATION_TAG)
            original_size = (height, width) if orientation in _TRANSPOSING_ORIENTATIONS else (width, height)
            if orientation not in (None, 1):  # exif_transpose would only copy the pixels otherwise
                image = ImageOps.exif_transpose(image)
            rgb, alpha = _to_rgb(image)
    except ImageDecodeError:
        raise
    except UnidentifiedImageError:  # PIL's message names the BytesIO object's address: keep the detail stable
        raise ImageDecodeError("not-an-image", "no image format recognised in the file's bytes") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise ImageDecodeError("decompression-bomb", str(error)) from None
    except OSError as error:
        raise ImageDecodeError(_os_error_reason(error), str(error)) from None
    except (ValueError, TypeError, KeyError, NotImplementedError, SyntaxError, EOFError) as error:
        raise ImageDecodeError("unsupported", f"{type(error).__name__}: {error}") from None
    return DecodedImage(rgb=rgb, alpha=alpha, source_mode=source_mode, original_size=original_size)


def read_image(path: str | Path, **decode_options) -> DecodedImage:
    """Reads and decodes one file; unreadable paths raise ImageDecodeError("unreadable")."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ImageDecodeError("unreadable", str(error)) from None
    return decode_image(data, **decode_options)


def resize_shorter_side_and_center_crop(image: Image.Image, size: int) -> Image.Image:
    """Resizes so the shorter side is ``size`` (antialiased bicubic), then centre-crops ``size x size``.

    Only the kept square is resampled (PIL's ``box``: the filter still reads source pixels just outside it), so
    the cost does not grow with the discarded part, and a 1 x 100000 strip cannot blow up to a huge intermediate.
    The sampling grid is that of resizing the whole image to (round(W s), round(H s)), s = size / min(W, H), and
    cropping the centre; the two forms differ only by PIL's 8-bit rounding and clipping between its horizontal
    and vertical passes (mean about 0.03 levels on ImageNet photos; a few levels at some hard edges).
    """
    if size < 1:
        raise ValueError(f"size must be a positive number of pixels; got {size}")
    width, height = image.size
    scale = size / min(width, height)
    new_width, new_height = max(size, round(width * scale)), max(size, round(height * scale))
    left, top = (new_width - size) // 2, (new_height - size) // 2
    x_step, y_step = width / new_width, height / new_height  # source pixels per output pixel, per axis
    box = (left * x_step, top * y_step, (left + size) * x_step, (top + size) * y_step)
    return image.resize((size, size), Image.Resampling.BICUBIC, box=box, reducing_gap=None)


def image_to_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> float32 tensor (3, H, W) in [0, 1]."""
    array = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def tensor_to_image(rgb: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [0, 1] -> 8-bit RGB PIL image (rounded, clipped)."""
    array = (rgb.detach().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, mode="RGB")


def list_image_files(root: str | Path) -> list[Path]:
    """All files under ``root`` (recursively) with an image extension, sorted; ``root`` may be one file."""
    root = Path(root)
    if root.is_file():
        return [root]
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
