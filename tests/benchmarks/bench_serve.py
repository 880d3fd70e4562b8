"""Benchmark (not a test): Ray Serve against calling the Colorizer directly, on the same dev photos.

    python tests/benchmarks/bench_serve.py                 # CPU: full-width Zhang et al. at 256
    python tests/benchmarks/bench_serve.py --device cuda   # one GPU per model replica

Prints (1) the Serve overhead at concurrency 1: HTTP latency minus the direct in-process Colorizer call on the same
image (decode and PNG encode are counted on the Serve side only, so the overhead includes them), and (2) throughput
at concurrency 8 with batching (max_batch_size 8) and without (max_batch_size 1). Untrained weights: speed does
not depend on them. Both deployments share the machine; only one is busy at a time.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from colorization.inference import Colorizer  # noqa: E402
from colorization.io.images import decode_image, image_to_tensor  # noqa: E402
from colorization.models.checkpoint import save_checkpoint  # noqa: E402
from colorization.models.registry import create_model  # noqa: E402
from tests.conftest import DEV_IMAGES_DIR  # noqa: E402
from tests.serving.load_client import run_load  # noqa: E402

MAX_SIDE = 500  # dev photos are about 500 x 375 already


def photos(count: int) -> list[bytes]:
    paths = sorted(DEV_IMAGES_DIR.glob("*.JPEG"))[:count]
    if not paths:
        sys.exit(f"no dev photos at {DEV_IMAGES_DIR}")
    out = []
    for path in paths:
        image = Image.open(path).convert("RGB")
        image.thumbnail((MAX_SIDE, MAX_SIDE))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        out.append(buffer.getvalue())
    return out


def direct_ms(colorizer: Colorizer, tensor: torch.Tensor) -> float:
    """One image through the Colorizer's own call (already decoded: Serve adds everything else to this)."""
    start = time.perf_counter()
    colorizer.colorize_tensors([tensor])
    return (time.perf_counter() - start) * 1000


def serve_ms(url: str, body: bytes, model: str) -> float:
    one = run_load(url, body, concurrency=1, requests_total=1, params={"model": model})
    assert not one.errors, one.errors
    return float(one.latencies_s[0] * 1000)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=4, help="distinct dev photos (default %(default)s)")
    parser.add_argument("--repeats", type=int, default=2, help="passes over them at concurrency 1")
    parser.add_argument("--requests-c8", type=int, default=24, help="requests per concurrency-8 run")
    parser.add_argument("--rounds", type=int, default=2, help="alternating unbatched/batched runs at c=8")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    parser.add_argument("--width", type=float, default=1.0, help="Zhang width multiplier (1: the paper's network)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    torch.set_num_threads(args.threads)
    bodies = photos(args.images)

    torch.manual_seed(0)
    model = create_model("zhang_eccv16", width_multiplier=args.width)  # 256 x 256 working size
    colorizer = Colorizer(model, device=args.device, batch_size=1)
    tensors = [image_to_tensor(decode_image(body).rgb) for body in bodies]
    colorizer.colorize_tensors(tensors[:1])  # warm-up
    print(f"torch {torch.__version__}, {args.threads} threads, device {args.device}; {len(bodies)} dev photos "
          f"(<= {MAX_SIDE} px), Zhang ECCV16 (width x{args.width:g}) at 256; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores")

    from colorization.serving.settings import ModelSpec, ServingSettings
    from colorization.stages.serve import ServeConfig, run, shutdown
    from tests.serving.conftest import free_port

    with tempfile.TemporaryDirectory() as directory:
        checkpoint = str(save_checkpoint(model, Path(directory) / "zhang.safetensors"))
        settings = ServingSettings(
            models=(ModelSpec("batched", checkpoint), ModelSpec("unbatched", checkpoint, max_batch_size=1)),
            max_batch_size=8,
            batch_wait_timeout_s=0.01,
            model_num_cpus=0,
            torch_threads=args.threads,
            device=args.device,
        )
        start = time.perf_counter()
        result = run(ServeConfig(settings=settings, port=free_port(), num_cpus=os.cpu_count(), block=False))
        print(f"Serve up in {time.perf_counter() - start:.1f} s")
        try:
            url = result.url + "v1/colorize"
            for model_name in ("unbatched", "batched"):
                run_load(url, bodies[0], concurrency=1, requests_total=2, params={"model": model_name})  # warm-up
            # interleaved, so the direct call and Serve see the same machine load
            times: dict[str, list[float]] = {"direct": [], "unbatched": [], "batched": []}
            for _ in range(args.repeats):
                for body, tensor in zip(bodies, tensors):
                    times["direct"].append(direct_ms(colorizer, tensor))
                    for model_name in ("unbatched", "batched"):
                        times[model_name].append(serve_ms(url, body, model_name))
            direct_median = statistics.median(times["direct"])
            print(f"direct Colorizer call       median {direct_median:7.1f} ms/image")
            for model_name in ("unbatched", "batched"):
                median = statistics.median(times[model_name])
                print(f"Serve c=1 {model_name:<10}      median {median:7.1f} ms/request  overhead "
                      f"{median - direct_median:+7.1f} ms = {100 * (median - direct_median) / direct_median:+5.1f} % "
                      f"of the direct call")
            throughput: dict[str, list[float]] = {"unbatched": [], "batched": []}
            for _ in range(args.rounds):  # alternate, so both see the same machine load
                for model_name in ("unbatched", "batched"):
                    load = run_load(url, bodies[0], concurrency=8, requests_total=args.requests_c8,
                                    params={"model": model_name})
                    assert not load.errors, load.errors[:3]
                    throughput[model_name].append(load.throughput)
                    print(load.line(f"Serve c=8 {model_name}"))
            ratio = statistics.mean(throughput["batched"]) / statistics.mean(throughput["unbatched"])
            print(f"batched / unbatched throughput at c=8: {ratio:.2f}x")
        finally:
            shutdown(result.started_ray)


if __name__ == "__main__":
    main()
