"""The HTTP API against a real Serve app: models listing, colorize (raw and multipart, every format and the odd
input modes), provenance, alpha, re-rendering from the cache, health and OpenAPI."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image

from colorization.color.lab import rgb_to_lab
from colorization.io.images import image_to_tensor
from colorization.serving.encoding import read_provenance
from tests.io.crafted import colour_test_pattern, encode, sixteen_bit_png_bytes

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def lightness(image: Image.Image) -> np.ndarray:
    return rgb_to_lab(image_to_tensor(image.convert("RGB"))[None])[0, 0].numpy()


@pytest.fixture(scope="module")
def photo(dev_image_paths) -> bytes:
    return dev_image_paths[0].read_bytes()


def test_models_lists_both_families_with_their_decoders(served):
    listing = requests.get(served.api("v1/models"), timeout=30).json()
    by_name = {model["name"]: model for model in listing["models"]}
    assert listing["default_model"] == "zhang"
    assert by_name["zhang"]["family"] == "zhang_eccv16" and by_name["larsson"]["family"] == "larsson_hypercolumn"
    assert by_name["zhang"]["decoders"] == ["annealed_mean", "mean", "mode"]
    assert by_name["zhang"]["default_temperature"] == pytest.approx(0.38)
    assert by_name["larsson"]["default_temperature"] is None and "median" in by_name["larsson"]["decoders"]
    assert by_name["zhang"]["working_size"] == 64 and by_name["zhang_unbatched"]["max_batch_size"] == 1
    assert listing["limits"]["max_body_bytes"] > 0


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_colorize_raw_body_keeps_size_and_lightness_with_provenance(served, photo, output_format):
    original = Image.open(io.BytesIO(photo))
    response = requests.post(
        served.api("v1/colorize"),
        params={"format": output_format, "temperature": "0.5", "decoder": "annealed_mean"},
        data=photo,
        headers={"Content-Type": "image/jpeg"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == f"image/{output_format}"
    assert response.headers["X-Colorization-Model"] == "zhang"
    assert response.headers["X-Colorization-Decoder"] == "annealed_mean"
    assert response.headers["X-Colorization-Temperature"] == "0.5"
    result = Image.open(io.BytesIO(response.content))
    assert result.format.lower() == output_format and result.size == original.size
    provenance = read_provenance(response.content)
    assert provenance["model"] == "zhang" and provenance["temperature"] == 0.5
    assert provenance["decoder"] == "annealed_mean" and provenance["family"] == "zhang_eccv16"
    if output_format == "png":  # lossless: the output keeps the photo's own lightness
        assert np.abs(lightness(result) - lightness(original)).mean() < 0.5
        assert "annealed_mean" in result.info["colorization"]


def test_colorize_multipart_with_form_fields_and_max_side(served, photo):
    response = requests.post(
        served.api("v1/colorize"),
        files={"image": ("old.jpg", photo, "image/jpeg")},
        data={"model": "larsson", "decoder": "expectation", "max_side": "100"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    assert response.headers["X-Colorization-Model"] == "larsson"
    assert response.headers["X-Colorization-Decoder"] == "expectation"
    assert response.headers["X-Colorization-Temperature"] == "none"
    assert max(Image.open(io.BytesIO(response.content)).size) == 100


def _post(served, data: bytes, **params) -> requests.Response:
    return requests.post(served.api("v1/colorize"), params=params, data=data, timeout=60,
                         headers={"Content-Type": "application/octet-stream"})


def test_odd_modes_work_and_alpha_is_kept(served):
    pattern = colour_test_pattern(40, 30)
    alpha = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (30, 1))
    rgba = encode(Image.fromarray(np.dstack([pattern, alpha]), "RGBA"), "PNG")
    inputs = {
        "grey": encode(Image.fromarray(pattern).convert("L"), "PNG"),
        "palette": encode(Image.fromarray(pattern).convert("P", palette=Image.Palette.ADAPTIVE), "PNG"),
        "cmyk": encode(Image.fromarray(pattern).convert("CMYK"), "JPEG", quality=95),
        "grey16": sixteen_bit_png_bytes(np.linspace(0, 65535, 30 * 40).reshape(30, 40), 0),
        "rgba": rgba,
        "one_pixel": encode(Image.new("RGB", (1, 1), (90, 120, 30)), "PNG"),
    }
    for name, data in inputs.items():
        response = _post(served, data)
        assert response.status_code == 200, (name, response.text)
        result = Image.open(io.BytesIO(response.content))
        assert result.size == ((1, 1) if name == "one_pixel" else (40, 30)), name
        if name == "rgba":
            assert result.mode == "RGBA"
            np.testing.assert_array_equal(np.asarray(result)[..., 3], alpha)
    webp = _post(served, rgba, format="webp")
    assert Image.open(io.BytesIO(webp.content)).mode == "RGBA"


def test_rerender_uses_the_cache_and_changes_with_temperature(served, photo):
    first = _post(served, photo, temperature="0.9")
    assert first.status_code == 200
    result_id = first.headers["X-Colorization-Result-Id"]
    again = requests.get(served.api(f"v1/results/{result_id}"), params={"temperature": "0.9"}, timeout=60)
    vivid = requests.get(served.api(f"v1/results/{result_id}"), params={"temperature": "0.05"}, timeout=60)
    assert again.status_code == vivid.status_code == 200
    assert vivid.headers["X-Colorization-Temperature"] == "0.05"
    same = np.asarray(Image.open(io.BytesIO(again.content)), dtype=np.int16)
    np.testing.assert_array_equal(same, np.asarray(Image.open(io.BytesIO(first.content)), dtype=np.int16))
    changed = np.asarray(Image.open(io.BytesIO(vivid.content)), dtype=np.int16)
    assert np.abs(changed - same).mean() > 1.0
    missing = requests.get(served.api("v1/results/zhang.0123456789abcdef"), timeout=30)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "result_expired"


def test_health_page_and_openapi(served):
    health = requests.get(served.api("healthz"), timeout=30)
    assert health.status_code == 200 and health.json()["models"] == {"zhang": True, "larsson": True, "zhang_unbatched": True}
    page = requests.get(served.url, timeout=30)
    assert page.status_code == 200 and "vibrancy" in page.text.lower()
    assert requests.get(served.api("static/page.js"), timeout=30).status_code == 200
    schema = requests.get(served.api("openapi.json"), timeout=30).json()
    assert {"/v1/colorize", "/v1/models", "/v1/results/{result_id}", "/healthz"} <= set(schema["paths"])
    body = schema["paths"]["/v1/colorize"]["post"]["requestBody"]["content"]
    assert {"image/*", "multipart/form-data"} <= set(body)
