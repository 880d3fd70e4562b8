"""The HTTP API (versioned under ``/v1``) and the web page, as a FastAPI app over a model backend.

Routes (FastAPI documents them at ``/docs`` and ``/openapi.json``):

* ``POST /v1/colorize``: the image as the raw body (``Content-Type: image/*``) or as the ``image`` file of a
  multipart form; parameters ``model``, ``decoder``, ``temperature``, ``format`` (png | jpeg | webp),
  ``max_side`` in the query or the form. Returns the image; provenance in ``X-Colorization-*`` headers and in the
  file's metadata; ``X-Colorization-Result-Id`` names the cached network outputs for re-rendering.
* ``GET /v1/results/{result_id}``: re-renders a recent upload with a new ``decoder`` / ``temperature`` /
  ``format`` without running the network (404 once it has left the cache: upload again).
* ``GET /v1/models``: names, families, decoders, default decoder and temperature, working size, limits.
* ``GET /healthz``: 200 when every model deployment answers; ``GET /``: the page.

Every refusal is JSON ``{"error": {"status", "code", "message"}}`` with its status (``uploads.py`` lists them).
The backend (``deployments.HandleBackend`` in Serve) is anything with ``infos``, ``colorize``, ``rerender`` and
``healthy``, so the routes do not depend on Ray.
"""

from __future__ import annotations

import asyncio
import hmac
from importlib import resources
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from colorization.serving.encoding import MEDIA_TYPES, encode_image
from colorization.serving.settings import ServingSettings
from colorization.serving.uploads import (
    ApiError,
    ColorizeParams,
    check_content_type,
    decode_upload,
    parse_multipart,
    parse_params,
    read_body,
)
from colorization.serving.worker import ColorizeJob, Refusal, Rendered

API_KEY_HEADER = "X-API-Key"
_PAGE_ASSETS = {"page.js": "text/javascript", "page.css": "text/css"}
_PARAM_DOCS = {
    "model": "served model name (GET /v1/models); default: the first",
    "decoder": "a decoder of the model's family; default: the paper's",
    "temperature": "annealed-mean T > 0 (Zhang); lower is more vibrant; default: the checkpoint's",
    "format": "png (default), jpeg or webp",
    "max_side": "shrink the image so its longer side is at most this many pixels",
}
_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        **{name: {"type": "string", "description": text} for name, text in _PARAM_DOCS.items()},
                    },
                }
            },
        },
    },
    "responses": {"200": {"content": {media: {} for media in MEDIA_TYPES.values()}, "description": "the image"}},
}


def _page_asset(name: str) -> str:
    return resources.files("colorization.serving").joinpath("static", name).read_text(encoding="utf-8")


def _error(error: ApiError) -> JSONResponse:
    return JSONResponse(error.to_json(), status_code=error.status)


def build_api(backend: Any, settings: ServingSettings, *, api_key: str | None = None) -> FastAPI:
    """The FastAPI app.

    Args:
        backend: the models (see the module docstring).
        settings: limits and defaults.
        api_key: when set, ``/v1/*`` needs it in ``X-API-Key`` (or ``Authorization: Bearer``).

    Returns:
        The app (Serve's ingress returns it from ``__serve_build_asgi_app__``).
    """
    app = FastAPI(
        title="colorization",
        version="1",
        description="Automatic image colorization (Zhang et al. and Larsson et al., ECCV 2016) on Ray Serve.",
    )
    default_model = settings.models[0].name
    pages = {name: (_page_asset(name), media) for name, media in _PAGE_ASSETS.items()}
    index = _page_asset("index.html")

    @app.exception_handler(ApiError)
    async def api_error(_: Request, error: ApiError) -> JSONResponse:
        return _error(error)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return _error(ApiError(422, "invalid_parameter", f"{where}: {first.get('msg', 'invalid')}"))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(ApiError(error.status_code, "http_error", str(error.detail)))

    def authorize(request: Request) -> None:
        if api_key is None:
            return
        given = request.headers.get(API_KEY_HEADER) or ""
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer "):
            given = given or bearer[7:].strip()
        if not hmac.compare_digest(given.encode(), api_key.encode()):
            raise ApiError(401, "unauthorized", f"this server needs its API key in the {API_KEY_HEADER} header")

    def model_of(name: str | None) -> str:
        name = name or default_model
        if name not in backend.infos:
            raise ApiError(422, "unknown_model", f"unknown model {name!r}; served: {', '.join(backend.infos)}")
        return name

    def check_decoder(model: str, decoder: str | None) -> None:
        decoders = backend.infos[model].decoders
        if decoder is not None and decoder not in decoders:
            raise ApiError(422, "unknown_decoder", f"model {model!r} decodes with {', '.join(decoders)}; not {decoder!r}")

    async def answer(reply_call, output_format: str) -> Response:
        try:
            reply = await asyncio.wait_for(reply_call, timeout=settings.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"no result within {settings.request_timeout_s:g} s; try again") from None
        if isinstance(reply, Refusal):
            raise ApiError(reply.status, reply.code, reply.message)
        return await asyncio.to_thread(_image_response, reply, output_format)

    @app.get("/", include_in_schema=False)
    async def page() -> Response:
        return Response(index, media_type="text/html; charset=utf-8")

    @app.get("/static/{name}", include_in_schema=False)
    async def page_asset(name: str) -> Response:
        if name not in pages:
            raise ApiError(404, "not_found", f"no page asset {name!r}")
        text, media = pages[name]
        return Response(text, media_type=f"{media}; charset=utf-8")

    @app.get("/healthz", summary="200 when every model deployment answers")
    async def healthz() -> JSONResponse:
        models = await backend.healthy()
        ok = all(models.values())
        return JSONResponse({"status": "ok" if ok else "degraded", "models": models}, status_code=200 if ok else 503)

    @app.get("/v1/models", summary="the served models and the server's limits")
    async def models(request: Request) -> dict:
        authorize(request)
        return {
            "default_model": default_model,
            "models": [info.to_json() for info in backend.infos.values()],
            "formats": list(MEDIA_TYPES),
            "limits": {
                "max_body_bytes": settings.max_body_bytes,
                "max_pixels": settings.max_pixels,
                "request_timeout_s": settings.request_timeout_s,
            },
        }

    @app.post("/v1/colorize", summary="colorize one image", openapi_extra=_IMAGE_BODY)
    async def colorize(
        request: Request,
        model: str | None = Query(None, description=_PARAM_DOCS["model"]),
        decoder: str | None = Query(None, description=_PARAM_DOCS["decoder"]),
        temperature: str | None = Query(None, description=_PARAM_DOCS["temperature"]),
        format: str | None = Query(None, description=_PARAM_DOCS["format"]),  # noqa: A002  (the API's name)
        max_side: str | None = Query(None, description=_PARAM_DOCS["max_side"]),
    ) -> Response:
        authorize(request)
        kind = check_content_type(request.headers.get("content-type"))
        body = await read_body(request.headers.get("content-length"), request.stream(), settings.max_body_bytes)
        values = {"model": model, "decoder": decoder, "temperature": temperature, "format": format, "max_side": max_side}
        if kind == "multipart":
            body, fields = await parse_multipart(request.headers["content-type"], body)
            values.update({key: value for key, value in fields.items() if key in values and value})
        if not body:
            raise ApiError(400, "empty_body", "the request has no image: send its bytes as the body or a form file")
        params: ColorizeParams = parse_params(values)
        name = model_of(params.model)
        check_decoder(name, params.decoder)
        upload = await asyncio.to_thread(
            decode_upload, body, max_pixels=settings.max_pixels, max_side=params.max_side
        )
        job = ColorizeJob(rgb=upload.rgb, alpha=upload.alpha, decoder=params.decoder, temperature=params.temperature)
        return await answer(backend.colorize(name, job), params.format)

    @app.get("/v1/results/{result_id}", summary="re-render a recent upload with new decoder options")
    async def rerender(
        request: Request,
        result_id: str,
        decoder: str | None = Query(None, description=_PARAM_DOCS["decoder"]),
        temperature: str | None = Query(None, description=_PARAM_DOCS["temperature"]),
        format: str | None = Query(None, description=_PARAM_DOCS["format"]),  # noqa: A002
    ) -> Response:
        authorize(request)
        params = parse_params({"decoder": decoder, "temperature": temperature, "format": format})
        name = result_id.split(".", 1)[0]
        if name not in backend.infos:
            raise ApiError(404, "result_expired", f"no result {result_id!r}: upload the image again")
        check_decoder(name, params.decoder)
        return await answer(backend.rerender(name, result_id, params.decoder, params.temperature), params.format)

    return app


def _image_response(reply: Rendered, output_format: str) -> Response:
    """Encodes a rendered image with its provenance in headers and in the file."""
    data = encode_image(reply.rgb, reply.alpha, output_format, reply.provenance)
    provenance = reply.provenance
    headers = {
        "X-Colorization-Model": str(provenance["model"]),
        "X-Colorization-Family": str(provenance["family"]),
        "X-Colorization-Decoder": str(provenance["decoder"]),
        "X-Colorization-Temperature": "none" if provenance["temperature"] is None else f"{provenance['temperature']:g}",
        "X-Colorization-Batch-Size": str(reply.batch_size),
        "Content-Disposition": f'inline; filename="colorized.{output_format}"',
        "Cache-Control": "no-store",
    }
    if reply.result_id:
        headers["X-Colorization-Result-Id"] = reply.result_id
    return Response(data, media_type=MEDIA_TYPES[output_format], headers=headers)
