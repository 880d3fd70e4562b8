"""Benchmark (not a test): forward and train-step time per image for both networks, with FLOPs counted.

CPU (issue 3):  python tests/benchmarks/bench_models.py --device cpu
GPU:            python tests/benchmarks/bench_models.py --device cuda --precisions fp32 bf16

Torch only (no Ray), so it runs on a GPU machine where Ray is absent. Inputs are smooth random colour images
(random low-resolution RGB upsampled bicubically), converted to Lab with the project's own code, so the soft
encoding and losses do their real work. FLOPs are counted with torch.utils.flop_counter (matmul/conv FLOPs).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from colorization.color.hue_chroma import larsson_grey
from colorization.color.lab import lab_to_rgb, rgb_to_lab
from colorization.models.registry import create_model
from colorization.training.larsson_step import default_larsson_optimizer, larsson_train_step
from colorization.training.precision import MixedPrecision
from colorization.training.zhang_step import default_zhang_optimizer, zhang_train_step

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16}


def smooth_lab_batch(batch: int, size: int, device: torch.device, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(batch, 3, max(2, size // 16), max(2, size // 16), generator=generator)
    rgb = F.interpolate(low, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)
    return rgb_to_lab(rgb).to(device)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds per call."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def count_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def bench(name: str, size: int, batch: int, device: torch.device, precision: str, channels_last: bool,
          warmup: int, repeats: int) -> None:
    model = create_model(name).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    wrapped = MixedPrecision(model, PRECISIONS[precision])
    lab = smooth_lab_batch(batch, size, device)
    if channels_last:
        lab = lab.contiguous(memory_format=torch.channels_last)
    is_zhang = name.startswith("zhang")
    optimizer = default_zhang_optimizer(model) if is_zhang else default_larsson_optimizer(model)
    class_weights = torch.ones(model.config.num_bins, device=device) if is_zhang else None
    generator = torch.Generator().manual_seed(0)

    def train_step() -> None:
        if is_zhang:
            zhang_train_step(wrapped, optimizer, lab, class_weights=class_weights)
        else:
            larsson_train_step(wrapped, optimizer, lab, generator=generator)

    # Each network's own input: Zhang's normalized L, Larsson's grey = mean(R, G, B).
    network_input = model.normalize_lightness(lab[:, :1]) if is_zhang else larsson_grey(lab_to_rgb(lab))

    @torch.no_grad()
    def forward() -> None:
        wrapped(network_input)

    model.train()
    step_flops = count_flops(train_step)
    step_seconds = timed(train_step, device, warmup, repeats)
    model.eval()
    forward_flops = count_flops(forward)
    forward_seconds = timed(forward, device, warmup, repeats)
    layout = "channels_last" if channels_last else "contiguous"
    print(
        f"{name:22s} {size:4d}px batch {batch:3d} {precision:4s} {layout:13s} | "
        f"forward {1e3 * forward_seconds / batch:8.2f} ms/img {batch / forward_seconds:8.1f} img/s "
        f"{forward_flops / batch / 1e9:7.1f} GFLOP/img {forward_flops / forward_seconds / 1e9:8.1f} GFLOP/s | "
        f"train step {1e3 * step_seconds / batch:8.2f} ms/img {batch / step_seconds:8.1f} img/s "
        f"{step_flops / batch / 1e9:7.1f} GFLOP/img {step_flops / step_seconds / 1e9:8.1f} GFLOP/s",
        flush=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--models", nargs="+", default=["zhang_eccv16", "larsson_hypercolumn"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[176, 256])
    parser.add_argument("--batch", type=int, default=None, help="default: 2 on CPU, 32 on CUDA")
    parser.add_argument("--precisions", nargs="+", default=["fp32"], choices=sorted(PRECISIONS))
    parser.add_argument("--channels-last", action="store_true", help="also run channels_last for bf16")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    on_gpu = device.type == "cuda"
    batch = args.batch or (32 if on_gpu else 2)
    warmup = args.warmup if args.warmup is not None else (3 if on_gpu else 1)
    repeats = args.repeats if args.repeats is not None else (10 if on_gpu else 3)
    name = torch.cuda.get_device_name(device) if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}", flush=True)
    if on_gpu:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    for model_name in args.models:
        for size in args.sizes:
            for precision in args.precisions:
                layouts = [False, True] if (args.channels_last and precision != "fp32") else [False]
                for channels_last in layouts:
                    bench(model_name, size, batch, device, precision, channels_last, warmup, repeats)


if __name__ == "__main__":
    main()
