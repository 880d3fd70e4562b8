"""From an HTTP request to a decoded image and checked parameters, or an :class:`ApiError` with its status.

Every way a request can be bad maps to one status, so clients can tell their mistakes apart:

* 400: empty body, malformed multipart, a multipart form without an ``image`` file;
* 401: a missing or wrong API key (when the server has one);
* 413: a body over the limit (from ``Content-Length`` or while streaming), an image over the pixel limit
  (refused from its header: decompression bombs never decode);
* 415: a content type that is not an image or multipart, bytes that are no image, animated images;
* 422: unknown model or decoder, temperature <= 0 or not finite, max_side < 1, unknown format, truncated or
  damaged image data.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image

from colorization.io.images import ImageDecodeError, decode_image
from colorization.serving.settings import OUTPUT_FORMATS

IMAGE_FIELD = "image"  # the multipart field holding the file
RAW_CONTENT_TYPES = ("image/", "application/octet-stream")
MULTIPART = "multipart/form-data"
_BOUNDARY = re.compile(r'boundary=("?)([^";]+)\1', re.IGNORECASE)
_MAX_FIELD_BYTES = 64 * 1024  # a text field of a form (the file itself is bounded by the body limit)
_DECODE_STATUS = {  # ImageDecodeError.reason -> HTTP status
    "zero-byte": 400,
    "not-an-image": 415,
    "unsupported": 415,
    "decompression-bomb": 413,
    "truncated": 422,
    "unreadable": 422,
}


class ApiError(Exception):
    """A request the server refuses: ``status`` and a one-line ``message`` (sent as JSON)."""

    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def to_json(self) -> dict:
        return {"error": {"status": self.status, "code": self.code, "message": self.message}}


@dataclass(frozen=True)
class ColorizeParams:
    """Checked request parameters (None: the model's default)."""

    model: str | None = None
    decoder: str | None = None
    temperature: float | None = None
    format: str = "png"
    max_side: int | None = None


def _number(name: str, text: str, kind: type) -> float | int:
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise ApiError(422, "invalid_parameter", f"{name} must be a number; got {text!r}") from None


def parse_params(values: Mapping[str, str | None]) -> ColorizeParams:
    """Raw query or form values -> :class:`ColorizeParams`; ApiError(422) on a bad value."""

    def get(key: str) -> str | None:
        return values.get(key) or None  # empty form fields count as absent

    temperature = get("temperature")
    if temperature is not None:
        temperature = float(_number("temperature", temperature, float))
        if not (math.isfinite(temperature) and temperature > 0):
            raise ApiError(422, "invalid_parameter", f"temperature must be a finite number > 0; got {temperature}")
    max_side = get("max_side")
    if max_side is not None:
        max_side = int(_number("max_side", max_side, int))
        if max_side < 1:
            raise ApiError(422, "invalid_parameter", f"max_side must be a positive number of pixels; got {max_side}")
    output_format = (get("format") or "png").lower()
    if output_format == "jpg":
        output_format = "jpeg"
    if output_format not in OUTPUT_FORMATS:
        raise ApiError(422, "invalid_parameter", f"format must be one of {', '.join(OUTPUT_FORMATS)}; got {output_format!r}")
    return ColorizeParams(
        model=get("model"), decoder=get("decoder"), temperature=temperature, format=output_format, max_side=max_side
    )


async def read_body(content_length: str | None, stream: AsyncIterator[bytes], limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known (header) or seen (stream) to exceed ``limit``."""
    if content_length is not None:
        try:
            declared = int(content_length)
        except ValueError:
            raise ApiError(400, "bad_request", f"Content-Length is not a number: {content_length!r}") from None
        if declared > limit:
            raise ApiError(413, "body_too_large", f"the body has {declared} bytes; the limit is {limit}")
    received = bytearray()
    async for chunk in stream:
        received += chunk
        if len(received) > limit:
            raise ApiError(413, "body_too_large", f"the body exceeds the limit of {limit} bytes")
    return bytes(received)


async def parse_multipart(content_type: str, body: bytes) -> tuple[bytes, dict[str, str]]:
    """Multipart form -> (the ``image`` file's bytes, the other fields as strings); ApiError(400) if malformed."""
    from starlette.datastructures import Headers, UploadFile
    from starlette.formparsers import MultiPartException, MultiPartParser

    async def one_chunk() -> AsyncIterator[bytes]:
        yield body

    boundary = _BOUNDARY.search(content_type)
    if boundary is None:
        raise ApiError(400, "malformed_multipart", "malformed multipart body: the Content-Type names no boundary")
    if b"--" + boundary.group(2).encode("latin-1") + b"--" not in body:  # the parser forgives a missing end
        raise ApiError(400, "malformed_multipart", "malformed multipart body: it does not end with its boundary")
    parser = MultiPartParser(
        Headers({"content-type": content_type}), one_chunk(), max_files=1, max_fields=16, max_part_size=_MAX_FIELD_BYTES
    )
    try:
        form = await parser.parse()
    except (MultiPartException, ValueError, KeyError) as error:
        raise ApiError(400, "malformed_multipart", f"malformed multipart body: {error}") from None
    try:
        fields: dict[str, str] = {}
        image: bytes | None = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key == IMAGE_FIELD:
                    image = await value.read()
            else:
                fields[key] = value
        if image is None:
            raise ApiError(400, "missing_image", f"the multipart form has no file field named {IMAGE_FIELD!r}")
        return image, fields
    finally:
        await form.close()


def check_content_type(content_type: str | None) -> str:
    """'raw' or 'multipart'; ApiError(415) for anything else. A missing type counts as raw bytes."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if not media or media.startswith(RAW_CONTENT_TYPES):
        return "raw"
    if media == MULTIPART:
        return "multipart"
    raise ApiError(
        415, "unsupported_media_type", f"Content-Type {media!r}: send image/* bytes or {MULTIPART} with an 'image' file"
    )


@dataclass(frozen=True)
class Upload:
    """A decoded upload: 8-bit RGB (H, W, 3) and the alpha channel (H, W) when the file had one."""

    rgb: np.ndarray
    alpha: np.ndarray | None
    source_mode: str


def _frame_count(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(getattr(image, "n_frames", 1))
    except Exception:  # noqa: BLE001  (decode_image reports the real reason)
        return 1


def decode_upload(data: bytes, *, max_pixels: int, max_side: int | None) -> Upload:
    """Image bytes -> :class:`Upload` (EXIF orientation applied; any mode, 16-bit, CMYK), shrunk to ``max_side``."""
    try:
        decoded = decode_image(data, max_pixels=max_pixels)
    except ImageDecodeError as error:
        raise ApiError(_DECODE_STATUS.get(error.reason, 422), error.reason, f"image refused: {error}") from None
    if _frame_count(data) > 1:
        raise ApiError(415, "animated", "animated images are not supported: send one frame as PNG or JPEG")
    rgb, alpha = decoded.rgb, decoded.alpha
    if max_side is not None and max(rgb.size) > max_side:
        scale = max_side / max(rgb.size)
        size = (max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale)))
        rgb = rgb.resize(size, Image.Resampling.LANCZOS)
        alpha = alpha.resize(size, Image.Resampling.LANCZOS) if alpha is not None else None
    return Upload(
        rgb=np.asarray(rgb, dtype=np.uint8),
        alpha=None if alpha is None else np.asarray(alpha, dtype=np.uint8),
        source_mode=decoded.source_mode,
    )
