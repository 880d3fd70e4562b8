"""The FastAPI app without Ray: served by uvicorn in a thread over a fake backend, to check the API key and the
per-request timeout (cheap here, slow to provoke through real models)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import requests
import uvicorn
from PIL import Image

from colorization.serving.api import API_KEY_HEADER, build_api
from colorization.serving.settings import ModelInfo, ModelSpec, ServingSettings
from colorization.serving.worker import Rendered
from tests.io.crafted import colour_test_pattern, encode
from tests.serving.conftest import free_port

KEY = "s3cret-key"


class SlowBackend:
    """Answers with the uploaded pixels after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        self.infos = {"m": ModelInfo("m", "fake", ("d",), "d", 0.38, 64, 1)}

    async def colorize(self, model, job):
        await asyncio.sleep(self.delay_s)
        provenance = {"model": model, "family": "fake", "decoder": "d", "temperature": 0.38}
        return Rendered(job.rgb, job.alpha, None, provenance, 1)

    async def healthy(self):
        return {"m": True}


@pytest.fixture(scope="module")
def server_url():
    settings = ServingSettings(models=(ModelSpec("m", "/unused.safetensors"),), request_timeout_s=0.5)
    app = build_api(SlowBackend(delay_s=0.0), settings, api_key=KEY)
    slow = build_api(SlowBackend(delay_s=5.0), settings, api_key=None)
    servers = []
    for application in (app, slow):
        server = uvicorn.Server(uvicorn.Config(application, host="127.0.0.1", port=free_port(), log_level="warning"))
        threading.Thread(target=server.run, daemon=True).start()
        servers.append(server)
    deadline = time.monotonic() + 30
    while not all(server.started for server in servers):
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.05)
    yield [f"http://127.0.0.1:{server.config.port}/" for server in servers]
    for server in servers:
        server.should_exit = True


def test_api_key_is_required_on_v1_but_not_on_health_or_page(server_url):
    url = server_url[0]
    png = encode(Image.fromarray(colour_test_pattern(8, 6)), "PNG")
    refused = requests.post(url + "v1/colorize", data=png, headers={"Content-Type": "image/png"}, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    wrong = requests.get(url + "v1/models", headers={API_KEY_HEADER: "guess"}, timeout=10)
    assert wrong.status_code == 401
    ok = requests.post(url + "v1/colorize", data=png, timeout=10,
                       headers={"Content-Type": "image/png", API_KEY_HEADER: KEY})
    assert ok.status_code == 200
    bearer = requests.get(url + "v1/models", headers={"Authorization": f"Bearer {KEY}"}, timeout=10)
    assert bearer.status_code == 200 and bearer.json()["default_model"] == "m"
    assert requests.get(url + "healthz", timeout=10).status_code == 200
    assert requests.get(url, timeout=10).status_code == 200


def test_slow_model_gets_504_within_the_timeout(server_url):
    png = encode(Image.fromarray(colour_test_pattern(8, 6)), "PNG")
    start = time.perf_counter()
    response = requests.post(server_url[1] + "v1/colorize", data=png, headers={"Content-Type": "image/png"}, timeout=10)
    assert response.status_code == 504 and response.json()["error"]["code"] == "timeout"
    assert time.perf_counter() - start < 3.0
    unknown = requests.get(server_url[1] + "v2/nothing", timeout=10)
    assert unknown.status_code == 404 and unknown.json()["error"]["status"] == 404
