"""Colorized images as PNG, JPEG or WebP, with their provenance inside the file.

Provenance (model, family, decoder, temperature, software) travels as JSON in two places readers look: the EXIF
``ImageDescription`` tag (all three formats) and, for PNG, a ``colorization`` text chunk. Alpha from the upload is
kept by PNG and WebP; JPEG has no alpha channel, so it is dropped there (documented in docs/serving.md).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from colorization.io.provenance import PNG_COMPRESS_LEVEL, PROVENANCE_KEY, SOFTWARE

MEDIA_TYPES = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXIF_IMAGE_DESCRIPTION = 0x010E
EXIF_SOFTWARE = 0x0131
# Lossy quality: fast settings, since encoding sits on every request's critical path.
JPEG_QUALITY = 92
WEBP_QUALITY = 90


def encode_image(rgb: np.ndarray, alpha: np.ndarray | None, output_format: str, provenance: dict[str, Any]) -> bytes:
    """Encodes an 8-bit image with its provenance.

    Args:
        rgb: (H, W, 3) uint8.
        alpha: (H, W) uint8 or None.
        output_format: ``png``, ``jpeg`` or ``webp``.
        provenance: JSON-able facts about how the image was made.

    Returns:
        The file's bytes.
    """
    image = Image.fromarray(rgb, mode="RGB")
    if alpha is not None and output_format != "jpeg":
        image.putalpha(Image.fromarray(alpha, mode="L"))
    text = json.dumps(provenance, sort_keys=True)
    exif = Image.Exif()
    exif[EXIF_IMAGE_DESCRIPTION] = text
    exif[EXIF_SOFTWARE] = SOFTWARE
    buffer = io.BytesIO()
    if output_format == "png":
        info = PngInfo()
        info.add_text(PROVENANCE_KEY, text)
        image.save(buffer, format="PNG", pnginfo=info, exif=exif, compress_level=PNG_COMPRESS_LEVEL)
    elif output_format == "jpeg":
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, exif=exif)
    elif output_format == "webp":
        image.save(buffer, format="WEBP", quality=WEBP_QUALITY, exif=exif)
    else:
        raise ValueError(f"unknown output format {output_format!r}; choose from {sorted(MEDIA_TYPES)}")
    return buffer.getvalue()


def read_provenance(data: bytes) -> dict[str, Any]:
    """The provenance :func:`encode_image` wrote (EXIF ImageDescription); {} when there is none."""
    with Image.open(io.BytesIO(data)) as image:
        text = image.getexif().get(EXIF_IMAGE_DESCRIPTION)
    return json.loads(text) if text else {}
