"""Bad uploads through HTTP: each gets its JSON 4xx, and the server still answers a good request correctly after."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from tests.io.crafted import colour_test_pattern, encode, huge_png_bytes

pytestmark = [pytest.mark.ray, pytest.mark.slow]

FIFTY_MB = 50 * 1024 * 1024


def animated_gif() -> bytes:
    frames = [Image.fromarray(colour_test_pattern(32, 24)).convert("P"), Image.new("P", (32, 24), 3)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    return buffer.getvalue()


def good_png() -> bytes:
    return encode(Image.fromarray(colour_test_pattern(48, 36)), "PNG")


def cases(photo: bytes) -> dict[str, tuple[dict, int, str | None]]:
    """name -> (requests.post keyword arguments, expected status, expected error code or None)."""
    raw = {"Content-Type": "image/jpeg"}
    return {
        "empty body": ({"data": b"", "headers": raw}, 400, "empty_body"),
        "text named .jpg": ({"files": {"image": ("photo.jpg", b"just some text\n" * 20, "image/jpeg")}}, 415, "not-an-image"),
        "truncated jpeg": ({"data": photo[: len(photo) // 3], "headers": raw}, 422, "truncated"),
        "bomb header": ({"data": huge_png_bytes(), "headers": {"Content-Type": "image/png"}}, 413, "decompression-bomb"),
        "animated gif": ({"data": animated_gif(), "headers": {"Content-Type": "image/gif"}}, 415, "animated"),
        "wrong content type": ({"data": good_png(), "headers": {"Content-Type": "application/json"}}, 415,
                               "unsupported_media_type"),
        "unknown model": ({"data": good_png(), "headers": raw, "params": {"model": "nope"}}, 422, "unknown_model"),
        "unknown decoder": ({"data": good_png(), "headers": raw, "params": {"decoder": "median"}}, 422,
                            "unknown_decoder"),
        "zero temperature": ({"data": good_png(), "headers": raw, "params": {"temperature": "0"}}, 422,
                             "invalid_parameter"),
        "negative temperature": ({"data": good_png(), "headers": raw, "params": {"temperature": "-1"}}, 422,
                                 "invalid_parameter"),
        "NaN temperature": ({"data": good_png(), "headers": raw, "params": {"temperature": "nan"}}, 422,
                            "invalid_parameter"),
        "text temperature": ({"data": good_png(), "headers": raw, "params": {"temperature": "hot"}}, 422,
                             "invalid_parameter"),
        "negative max_side": ({"data": good_png(), "headers": raw, "params": {"max_side": "-5"}}, 422,
                              "invalid_parameter"),
        "unknown format": ({"data": good_png(), "headers": raw, "params": {"format": "bmp"}}, 422, "invalid_parameter"),
        "malformed multipart": (
            {"data": b"--xyz\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n\x89PNG",
             "headers": {"Content-Type": "multipart/form-data; boundary=xyz"}},
            400,
            "malformed_multipart",
        ),
        "multipart without boundary": ({"data": b"abc", "headers": {"Content-Type": "multipart/form-data"}}, 400,
                                       "malformed_multipart"),
        "multipart without image": ({"files": {"picture": ("a.png", good_png(), "image/png")}}, 400, "missing_image"),
    }


def check_still_serving(served) -> None:
    response = requests.post(served.api("v1/colorize"), data=good_png(), headers={"Content-Type": "image/png"},
                             timeout=60)
    assert response.status_code == 200, response.text
    result = Image.open(io.BytesIO(response.content))
    assert result.size == (48, 36)
    assert np.asarray(result).std() > 0


def test_every_bad_upload_gets_its_json_4xx_and_the_server_keeps_serving(served, dev_image_paths):
    photo = dev_image_paths[0].read_bytes()
    failures = []
    for name, (kwargs, status, code) in cases(photo).items():
        response = requests.post(served.api("v1/colorize"), timeout=60, **kwargs)
        body = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
        error = body.get("error", {})
        if response.status_code != status or error.get("status") != status or (code and error.get("code") != code):
            failures.append(f"{name}: {response.status_code} {response.text[:200]}")
        elif not error.get("message"):
            failures.append(f"{name}: no message")
    assert not failures, "\n".join(failures)
    check_still_serving(served)


def test_fifty_megabyte_body_is_refused_with_413(served):
    """Refused from Content-Length (before reading) and, without it (chunked), while streaming."""
    body = b"\0" * FIFTY_MB
    declared = requests.post(served.api("v1/colorize"), data=body, headers={"Content-Type": "image/png"}, timeout=60)
    assert declared.status_code == 413 and declared.json()["error"]["code"] == "body_too_large"

    def chunks():
        for start in range(0, FIFTY_MB, 1 << 20):
            yield body[start : start + (1 << 20)]

    try:
        streamed = requests.post(served.api("v1/colorize"), data=chunks(), headers={"Content-Type": "image/png"},
                                 timeout=60)
        assert streamed.status_code == 413
    except requests.ConnectionError:
        pass  # the server may close the connection once it has answered 413 mid-upload
    check_still_serving(served)


def test_the_suite_covers_every_documented_refusal_status():
    assert {status for _, status, _ in cases(b"\xff\xd8" + b"\0" * 100).values()} == {400, 413, 415, 422}
