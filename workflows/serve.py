"""Ray job: serve the colorization models (HTTP API and web page) with Ray Serve.

The same arguments as ``colorization serve`` (docs/serving.md). Locally::

    python workflows/serve.py --model zhang=ckpt/zhang.safetensors --model larsson=ckpt/larsson.safetensors

On a running cluster (joins it through RAY_ADDRESS; Serve's proxy binds --host on every node)::

    ray job submit --address http://HEAD:8265 --working-dir . --runtime-env cluster/runtime_env.yaml -- \\
        python workflows/serve.py --host 0.0.0.0 --model zhang=/data/checkpoints/zhang-eccv16.safetensors

(for a long-lived deployment prefer ``serve deploy cluster/serve.yaml`` or the RayService manifest).

Smoke test (a tiny random Zhang network, one request through HTTP, then shutdown; < 1 minute on a CPU)::

    python workflows/serve.py --smoke-test
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import socket
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/serve.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.cli.serve import add_arguments as add_serve_arguments  # noqa: E402
from colorization.cli.serve import settings_from_args  # noqa: E402
from workflows.common import WorkflowError, run_main  # noqa: E402

SMOKE_SIZE = 64  # working size of the smoke test's network


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The serve arguments plus ``--smoke-test``."""
    add_serve_arguments(parser)
    parser.add_argument("--smoke-test", action="store_true", help="serve a tiny network, send one request, stop")


def _smoke_checkpoint(directory: Path) -> Path:
    import torch

    from colorization.models.checkpoint import save_checkpoint
    from colorization.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("zhang_eccv16", width_multiplier=0.125, input_size=SMOKE_SIZE)
    return save_checkpoint(model, directory / "smoke-zhang.safetensors")


def _smoke_request(url: str) -> dict:
    """POSTs a generated PNG; returns the response's provenance headers."""
    import numpy as np
    from PIL import Image

    gradient = np.linspace(0, 255, 48 * 32, dtype=np.float32).reshape(32, 48).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(gradient, mode="L").save(buffer, format="PNG")
    request = urllib.request.Request(url + "v1/colorize", data=buffer.getvalue(), headers={"Content-Type": "image/png"})
    with urllib.request.urlopen(request, timeout=60) as response:
        result = Image.open(io.BytesIO(response.read()))
        if result.size != (48, 32):
            raise WorkflowError(f"smoke test: expected a 48x32 image back, got {result.size}")
        return {key: value for key, value in response.headers.items() if key.lower().startswith("x-colorization")}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_smoke_test(args: argparse.Namespace) -> int:
    from colorization.serving.settings import ModelSpec
    from colorization.stages.serve import ServeConfig, shutdown
    from colorization.stages.serve import run as serve

    temporary = Path(tempfile.mkdtemp(prefix="colorization-serve-smoke-"))
    start = time.perf_counter()
    try:
        args.model = [f"smoke={_smoke_checkpoint(temporary)}"]
        settings = settings_from_args(args)
        settings = settings.with_models(ModelSpec("smoke", settings.models[0].source))
        port = args.port if args.port != 8000 else _free_port()
        config = ServeConfig(settings=settings, host="127.0.0.1", port=port, address=args.address,
                             num_cpus=args.num_cpus or 2, block=False)
        result = serve(config)
        try:
            headers = _smoke_request(result.url)
        finally:
            shutdown(result.started_ray)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    print(f"serve smoke test: 1 request answered at {result.url} in {time.perf_counter() - start:.1f} s in all")
    print("  " + json.dumps(headers))
    return 0


def run(args: argparse.Namespace) -> int:
    """Serves until interrupted (or runs the smoke test); raises WorkflowError for user-facing problems."""
    if args.smoke_test:
        return run_smoke_test(args)
    from colorization.stages.serve import ServeConfig
    from colorization.stages.serve import run as serve

    serve(ServeConfig(settings=settings_from_args(args), host=args.host, port=args.port, address=args.address,
                      num_cpus=args.num_cpus))
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("serve", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
