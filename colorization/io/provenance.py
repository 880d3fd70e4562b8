"""Provenance of colorized images: every output says it was colorized, by which model, decoder and T.

Outputs are PNG. The record goes into PNG text chunks (``iTXt``/``tEXt``, before the image data so readers see it
without decoding the pixels): ``colorization`` holds a JSON object (model name, checkpoint sha256, decoder,
temperature, source file, its size and mtime) and ``Software``/``Description`` say it in words. The input's ICC
profile is kept when the input was RGB (a grey or CMYK profile would not describe the RGB output); EXIF
orientation was already applied when the input was decoded (``io.images``), so the output carries no
Orientation tag and viewers show it the same way up as the input.

The JSON record also makes batch colorization resumable: an existing output whose record matches the source
(size, mtime) and the decoding (model digest, options) is done and is skipped on a rerun.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from PIL import Image, PngImagePlugin

PROVENANCE_KEY = "colorization"
SOFTWARE = "colorization (Zhang et al. / Larsson et al. ECCV 2016 reimplementation)"
# zlib effort of every PNG this project writes for a user (batch outputs, HTTP responses). On colorized photos
# level 1 encodes 3.6x faster than Pillow's default 6 and the files come out no larger (500 x 375-class outputs:
# 18 vs 66 ms, 281 vs 295 KiB), because photographic pixels hardly compress at any level.
PNG_COMPRESS_LEVEL = 1
_RGB_PROFILE_MODES = ("RGB", "RGBA", "RGBX", "P")  # source modes whose ICC profile describes RGB


def source_icc_profile(path: str | Path) -> bytes | None:
    """The ICC profile of an RGB source file (header read only), else None."""
    try:
        with Image.open(path) as image:
            profile = image.info.get("icc_profile")
            return profile if profile and image.mode in _RGB_PROFILE_MODES else None
    except Exception:  # the pixels were decoded elsewhere; a profile we cannot read is simply not kept
        return None


def png_info(record: dict[str, Any]) -> PngImagePlugin.PngInfo:
    """PNG text chunks holding ``record`` (JSON) and a plain-words description."""
    info = PngImagePlugin.PngInfo()
    info.add_itxt(PROVENANCE_KEY, json.dumps(record, sort_keys=True))
    info.add_text("Software", SOFTWARE)
    words = f"Colorized by model {record.get('model')} ({record.get('decoder')}"
    if record.get("temperature") is not None:
        words += f", T={record['temperature']:g}"
    info.add_text("Description", words + ") from a greyscale rendition of the source; lightness kept.")
    return info


def save_png(image: Image.Image, path: str | Path, record: dict[str, Any], icc_profile: bytes | None = None) -> None:
    """Writes ``image`` as PNG at ``path`` with the provenance record (and the source's ICC profile)."""
    options: dict[str, Any] = {"pnginfo": png_info(record), "compress_level": PNG_COMPRESS_LEVEL}
    if icc_profile:
        options["icc_profile"] = icc_profile
    image.save(path, format="PNG", **options)


def read_provenance(path: str | Path) -> dict[str, Any] | None:
    """The record of an output written by :func:`save_png`, or None (not a PNG, no record, unreadable)."""
    try:
        with Image.open(path) as image:
            text = image.info.get(PROVENANCE_KEY)
        return json.loads(text) if isinstance(text, str) else None
    except Exception:  # a damaged or foreign file is simply not done
        return None
