"""Ray-free parts of serving: settings, the byte-bounded cache, encoding with provenance, parameter and upload
checks, and the model worker (predict, render, re-render) on a tiny network."""

from __future__ import annotations

import asyncio
import io

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.errors import UserError
from colorization.serving.encoding import encode_image, read_provenance
from colorization.serving.result_cache import ByteBoundedLRU
from colorization.serving.settings import ModelSpec, ServingSettings, parse_model_arg
from colorization.serving.uploads import ApiError, check_content_type, decode_upload, parse_params, read_body
from colorization.serving.worker import ColorizeJob, ModelWorker, Refusal, Rendered
from tests.io.crafted import colour_test_pattern, encode, huge_png_bytes


def test_settings_parse_validate_and_round_trip():
    spec = parse_model_arg("zhang=models:/colorizer@champion")
    assert spec.name == "zhang" and spec.is_registry_uri
    settings = ServingSettings(models=(spec, ModelSpec("b", "/x.safetensors", max_batch_size=1)))
    assert ServingSettings.from_dict(settings.to_dict()) == settings
    assert settings.batch_size_of(settings.models[1]) == 1 and settings.batch_size_of(spec) == settings.max_batch_size
    assert ServingSettings.from_dict({"models": {"a": "/a.safetensors"}}).models == (ModelSpec("a", "/a.safetensors"),)
    for bad in (
        lambda: parse_model_arg("no-equals-sign"),
        lambda: ModelSpec("bad name", "/x"),
        lambda: ServingSettings(models=()),
        lambda: ServingSettings(models=(spec, spec)),
        lambda: ServingSettings(models=(spec,), max_body_bytes=0),
        lambda: ServingSettings.from_dict({"models": {"a": "/a"}, "colour": 1}),
    ):
        with pytest.raises(UserError):
            bad()


def test_cache_evicts_least_recently_used_by_bytes():
    cache: ByteBoundedLRU[str] = ByteBoundedLRU(100)
    assert cache.put("a", "A", 40) and cache.put("b", "B", 40)
    assert cache.get("a") == "A"  # now b is the least recently used
    assert cache.put("c", "C", 40)
    assert cache.get("b") is None and cache.get("a") == "A" and cache.get("c") == "C"
    assert cache.size_bytes == 80 and len(cache) == 2
    assert not cache.put("huge", "H", 101) and cache.get("huge") is None
    assert cache.put("a", "A2", 10) and cache.size_bytes == 50 and cache.get("a") == "A2"


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_encoding_carries_provenance_and_alpha(output_format):
    rgb = colour_test_pattern(20, 10)
    alpha = np.full((10, 20), 77, np.uint8)
    provenance = {"model": "m", "decoder": "annealed_mean", "temperature": 0.38}
    data = encode_image(rgb, alpha, output_format, provenance)
    image = Image.open(io.BytesIO(data))
    assert image.size == (20, 10) and image.format.lower() == output_format
    assert read_provenance(data) == provenance
    assert image.mode == ("RGB" if output_format == "jpeg" else "RGBA")  # JPEG cannot carry alpha


def test_params_are_checked():
    assert parse_params({"format": "JPG", "temperature": "0.5", "max_side": "7"}).format == "jpeg"
    assert parse_params({"model": "", "decoder": None}).model is None  # empty form fields count as absent
    for values in ({"temperature": "0"}, {"temperature": "inf"}, {"temperature": "nan"}, {"max_side": "0"},
                   {"max_side": "1.5"}, {"format": "gif"}):
        with pytest.raises(ApiError) as caught:
            parse_params(values)
        assert caught.value.status == 422
    assert check_content_type(None) == "raw" and check_content_type("image/png") == "raw"
    assert check_content_type("multipart/form-data; boundary=x") == "multipart"
    with pytest.raises(ApiError) as caught:
        check_content_type("text/plain")
    assert caught.value.status == 415


def test_body_limit_from_header_and_stream():
    async def stream(*chunks):
        for chunk in chunks:
            yield chunk

    assert asyncio.run(read_body("6", stream(b"abc", b"def"), 6)) == b"abcdef"
    for length, chunks in (("7", (b"abcdefg",)), (None, (b"abcd", b"efg"))):
        with pytest.raises(ApiError) as caught:
            asyncio.run(read_body(length, stream(*chunks), 6))
        assert caught.value.status == 413


def test_uploads_decode_shrink_and_refuse():
    upload = decode_upload(encode(Image.fromarray(colour_test_pattern(80, 40)), "PNG"), max_pixels=10**6, max_side=20)
    assert upload.rgb.shape == (10, 20, 3) and upload.alpha is None
    with pytest.raises(ApiError) as caught:
        decode_upload(huge_png_bytes(), max_pixels=10**6, max_side=None)
    assert caught.value.status == 413
    with pytest.raises(ApiError) as caught:
        decode_upload(encode(Image.new("RGB", (100, 100)), "PNG"), max_pixels=9999, max_side=None)
    assert caught.value.status == 413


@pytest.fixture(scope="module")
def zhang_worker() -> ModelWorker:
    from colorization.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("zhang_eccv16", width_multiplier=0.125, input_size=32)
    return ModelWorker(ModelSpec("z", "/ckpt/z.safetensors"), model, max_batch_size=4, cache_bytes=50 * 2**20)


def test_worker_batches_renders_refuses_and_rerenders(zhang_worker):
    from colorization.inference import Colorizer

    rgb = colour_test_pattern(30, 20)
    replies = zhang_worker.run_batch(
        [ColorizeJob(rgb), ColorizeJob(rgb, decoder="mode"), ColorizeJob(rgb, decoder="median"), ColorizeJob(rgb)]
    )
    assert isinstance(replies[2], Refusal) and replies[2].status == 422
    first, mode = replies[0], replies[1]
    assert isinstance(first, Rendered) and first.batch_size == 3 and first.rgb.shape == (20, 30, 3)
    assert first.provenance == {"model": "z", "family": "zhang_eccv16", "decoder": "annealed_mean",
                                "temperature": 0.38, "source": "z.safetensors"}
    # the same image through the Colorizer directly gives the same pixels (serving cannot drift)
    direct = Colorizer(zhang_worker.colorizer.model).colorize_tensors([torch.from_numpy(rgb).permute(2, 0, 1) / 255.0])
    np.testing.assert_array_equal(first.rgb, (direct[0].clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy())
    again = zhang_worker.rerender(mode.result_id, "mode", None)
    np.testing.assert_array_equal(again.rgb, mode.rgb)
    assert isinstance(zhang_worker.rerender("z.gone", None, None), Refusal)
    assert zhang_worker.info.default_temperature == pytest.approx(0.38) and zhang_worker.info.working_size == 32
