"""One real Serve app for all serving tests: tiny Zhang and Larsson checkpoints, served on a free loopback port.

Starting Serve costs seconds (ray-mlflow-notes section 0), so the app is started once on the shared ``ray_session``
(when the first test asks for it) and shut down as soon as the last test of tests/serving has run, so it never
holds resources while other packages' Ray tests run; its deployments reserve no CPUs. Models: ``zhang``
(batched), ``larsson`` and ``zhang_unbatched`` (the same checkpoint with max_batch_size 1, for the load suite).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

WORKING_SIZE = 64
BATCH_SIZE = 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def make_checkpoints(directory: Path) -> dict[str, Path]:
    """Tiny random networks; Zhang's last layer is scaled up so its distributions are peaked and T matters."""
    from colorization.models.checkpoint import save_checkpoint
    from colorization.models.registry import create_model

    torch.manual_seed(0)
    zhang = create_model("zhang_eccv16", width_multiplier=0.125, input_size=WORKING_SIZE)
    last = [module for module in zhang.modules() if isinstance(module, torch.nn.Conv2d)][-1]
    with torch.no_grad():
        last.weight.mul_(40.0)
    larsson = create_model("larsson_hypercolumn", width_multiplier=0.125, input_size=WORKING_SIZE)
    return {
        "zhang": save_checkpoint(zhang, directory / "zhang.safetensors"),
        "larsson": save_checkpoint(larsson, directory / "larsson.safetensors"),
    }


@dataclass(frozen=True)
class Served:
    url: str  # ends with "/"
    checkpoints: dict[str, Path]

    def api(self, path: str) -> str:
        return self.url + path.lstrip("/")


@pytest.fixture(scope="session")
def served(ray_session, tmp_path_factory) -> Served:
    """The app, up for the whole session (shut down after the last test that used it)."""
    from colorization.serving.settings import ModelSpec, ServingSettings
    from colorization.stages.serve import ServeConfig, run, shutdown

    checkpoints = make_checkpoints(tmp_path_factory.mktemp("serving-checkpoints"))
    settings = ServingSettings(
        models=(
            ModelSpec("zhang", str(checkpoints["zhang"])),
            ModelSpec("larsson", str(checkpoints["larsson"])),
            ModelSpec("zhang_unbatched", str(checkpoints["zhang"]), max_batch_size=1),
        ),
        max_batch_size=BATCH_SIZE,
        batch_wait_timeout_s=0.02,
        model_num_cpus=0,
        ingress_num_cpus=0,
        torch_threads=1,
        request_timeout_s=60,
    )
    result = run(ServeConfig(settings=settings, port=free_port(), block=False))
    _RUNNING.append(True)
    yield Served(url=result.url, checkpoints=checkpoints)
    _stop_app()


_RUNNING: list[bool] = []
_HERE = Path(__file__).resolve().parent


def _stop_app() -> None:
    if _RUNNING:
        from colorization.stages.serve import shutdown

        _RUNNING.clear()
        shutdown(stop_ray=False)


def pytest_runtest_teardown(item, nextitem):
    """After the last serving test (the next one lives elsewhere, or none is left), stop the app at once."""
    if nextitem is None or _HERE not in Path(str(nextitem.path)).resolve().parents:
        _stop_app()
