"""Benchmark (not a test): Colorizer throughput, end to end (resize, network, decoder, upsampling, gamut, Lab->RGB).

    python tests/benchmarks/bench_colorizer.py                    # CPU
    python tests/benchmarks/bench_colorizer.py --device cuda      # also checks CUDA output against the CPU's

Untrained full-width networks (speed does not depend on the weights); images are random smooth photos of
500 x 375 (the dev set's median size) colorized at each model's 256 x 256 working size. Per model it prints the
end-to-end time, the network forward alone on the same working batches (``Colorizer.predict``) and their ratio
(issue 8's target on CPU: end to end <= 1.2x the forward), and the same images through a per-image
post-processing loop (resize, Lab join, gamut fit one image at a time: the Colorizer before batching).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from colorization.inference import Colorizer, DecodeOptions
from colorization.models.registry import create_model

CASES = (
    ("zhang_eccv16", DecodeOptions()),  # annealed mean, T = 0.38
    ("larsson_hypercolumn", DecodeOptions()),  # hue/chroma: median chroma, circular hue, chromatic fading
)


def smooth_images(count: int, height: int, width: int) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    low = torch.rand(count, 3, height // 25, width // 25, generator=generator)
    return list(F.interpolate(low, size=(height, width), mode="bicubic", align_corners=False).clamp(0, 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--images", type=int, default=None, help="default: 4 on CPU, 64 on CUDA")
    parser.add_argument("--batch-size", type=int, default=None, help="default: 4 on CPU, 32 on CUDA")
    args = parser.parse_args()
    on_gpu = args.device.startswith("cuda")
    count = args.images or (64 if on_gpu else 4)
    batch_size = args.batch_size or (32 if on_gpu else 4)
    images = smooth_images(count, 375, 500)
    name = torch.cuda.get_device_name() if on_gpu else f"CPU, {torch.get_num_threads()} threads"
    print(f"torch {torch.__version__} on {name}; {count} images of 500x375", flush=True)
    for model_name, options in CASES:
        torch.manual_seed(0)
        model = create_model(model_name)
        colorizer = Colorizer(model, options, device=args.device, batch_size=batch_size)
        colorizer.colorize_tensors(images[:batch_size])  # warm-up (cuDNN autotune, allocator)
        seconds = timed(lambda: colorizer.colorize_tensors(images), on_gpu)
        outputs = colorizer.colorize_tensors(images[:2])
        working = [colorizer.working_batch(images[i : i + batch_size]) for i in range(0, count, batch_size)]
        forward = timed(lambda: [colorizer.predict(batch) for batch in working], on_gpu)
        per_image = timed(lambda: per_image_loop(colorizer, images, batch_size), on_gpu)
        line = (f"{model_name:20s} end to end {count / seconds:7.1f} images/s ({1e3 * seconds / count:6.1f} ms/image);"
                f" forward alone {1e3 * forward / count:6.1f} ms/image; ratio {seconds / forward:4.2f};"
                f" per-image post-processing {1e3 * per_image / count:6.1f} ms/image")
        if on_gpu:
            reference = Colorizer(model.cpu(), options, device="cpu").colorize_tensors(images[:2])
            difference = max(float((a - b).abs().max()) for a, b in zip(outputs[:2], reference))
            line += f"; max |CUDA - CPU| on 2 images = {difference:.2e} (RGB in [0, 1])"
        print(line, flush=True)


def timed(work, on_gpu: bool) -> float:
    if on_gpu:
        torch.cuda.synchronize()
    start = time.perf_counter()
    work()
    if on_gpu:
        torch.cuda.synchronize()
    return time.perf_counter() - start


@torch.no_grad()
def per_image_loop(colorizer: Colorizer, images: list[torch.Tensor], batch_size: int) -> list[torch.Tensor]:
    """The Colorizer's post-processing before batching: resize, join and gamut-fit one image at a time."""
    from colorization.color.gamut import fit_ab_to_gamut
    from colorization.color.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab

    size = (colorizer.working_size, colorizer.working_size)
    results = []
    for start in range(0, len(images), batch_size):
        chunk = images[start : start + batch_size]
        working = torch.cat([F.interpolate(image[None].to(colorizer.device), size=size, mode="bicubic",
                                           align_corners=False, antialias=True) for image in chunk]).clamp(0, 1)
        for image, ab in zip(chunk, colorizer.decode_ab(colorizer.predict(working))):
            image = image.to(colorizer.device)
            lightness, _ = split_lab(rgb_to_lab(image[None]))
            ab_full = F.interpolate(ab[None], size=tuple(image.shape[-2:]), mode="bilinear", align_corners=False)
            results.append(lab_to_rgb(join_lab(lightness, fit_ab_to_gamut(lightness, ab_full)))[0].cpu())
    return results


if __name__ == "__main__":
    main()
