"""Speed of colorization.color.lab against scikit-image on the 500 real dev photos (a script, not a test).

    .venv/bin/python tests/benchmarks/bench_lab.py [--repeats 3] [--batch-size 50] [--threads N]

Both sides get the same float32 pixels, already decoded and laid out as each expects (channel-first torch
tensors, channel-last numpy arrays), so only the colour conversion is timed. Torch runs with its default
intra-op threads (all cores) unless --threads says otherwise; scikit-image is single-threaded numpy.
Each figure is the best of --repeats runs, torch and scikit-image interleaved, because on a shared
machine the other users' load only ever adds time.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.color import lab2rgb, rgb2lab

from colorization.color.lab import lab_to_rgb, rgb_to_lab

DEV_IMAGES_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "imagenet-sample" / "dev"
RESIZED_SIDE = 256


def _load(paths: list[Path], side: int | None) -> list[np.ndarray]:
    """float32 (H, W, 3) in [0, 1]; resized to side x side when side is given, else at native size."""
    images = []
    for path in paths:
        with Image.open(path) as image:
            rgb = image.convert("RGB")
            if side is not None:
                rgb = rgb.resize((side, side), Image.Resampling.BILINEAR)
            images.append(np.asarray(rgb, dtype=np.float32) / 255.0)
    return images


def _seconds(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def _compare(
    name: str, megapixels: float, ours: Callable[[], object], theirs: Callable[[], object], repeats: int
) -> None:
    ours()  # warm-up: constant cache, allocator, thread pool
    ours_best, theirs_best = float("inf"), float("inf")
    for _ in range(repeats):  # interleaved, so both sides see the same moments of the machine's load
        ours_best = min(ours_best, _seconds(ours))
        theirs_best = min(theirs_best, _seconds(theirs))
    print(
        f"{name:<44} torch {ours_best * 1e3:8.1f} ms {megapixels / ours_best:7.1f} MP/s | "
        f"skimage {theirs_best * 1e3:8.1f} ms {megapixels / theirs_best:6.1f} MP/s | "
        f"speed-up {theirs_best / ours_best:5.1f}x"
    )


def _max_difference(ours: list[torch.Tensor], theirs: list[np.ndarray]) -> float:
    return max(float(np.abs(o.permute(1, 2, 0).numpy() - t).max()) for o, t in zip(ours, theirs, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=50, help="images per torch call in the resized run")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--max-images", type=int, default=None)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore")  # lab2rgb warns about clamped negative z; irrelevant to timing

    paths = sorted(DEV_IMAGES_DIR.glob("*.JPEG"))[: args.max_images]
    if not paths:
        raise SystemExit(f"no dev photos at {DEV_IMAGES_DIR}")
    print(
        f"{len(paths)} photos | torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{torch.backends.cpu.get_cpu_capability()} | {os.cpu_count()} CPUs, load average "
        f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}"
    )

    # Resized to 256 x 256 and batched: the training case.
    resized = _load(paths, RESIZED_SIDE)
    batches = [np.stack(resized[i : i + args.batch_size]) for i in range(0, len(resized), args.batch_size)]
    batches_chw = [torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous() for batch in batches]
    labs_chw = [rgb_to_lab(batch) for batch in batches_chw]
    labs_hwc = [lab.permute(0, 2, 3, 1).contiguous().numpy() for lab in labs_chw]
    megapixels = len(resized) * RESIZED_SIDE**2 / 1e6
    label = f"{len(resized)} x {RESIZED_SIDE}^2, batches of {args.batch_size}"
    _compare(f"rgb_to_lab  {label}", megapixels, lambda: [rgb_to_lab(b) for b in batches_chw],
             lambda: [rgb2lab(b) for b in batches], args.repeats)
    _compare(f"lab_to_rgb  {label}", megapixels, lambda: [lab_to_rgb(b) for b in labs_chw],
             lambda: [lab2rgb(b) for b in labs_hwc], args.repeats)

    # Native sizes, one photo per call: the inference case.
    native = _load(paths, None)
    native_chw = [torch.from_numpy(image).permute(2, 0, 1).contiguous() for image in native]
    native_labs_chw = [rgb_to_lab(image) for image in native_chw]
    native_labs_hwc = [lab.permute(1, 2, 0).contiguous().numpy() for lab in native_labs_chw]
    megapixels = sum(image.shape[0] * image.shape[1] for image in native) / 1e6
    label = f"{len(native)} native sizes, one by one"
    _compare(f"rgb_to_lab  {label}", megapixels, lambda: [rgb_to_lab(i) for i in native_chw],
             lambda: [rgb2lab(i) for i in native], args.repeats)
    _compare(f"lab_to_rgb  {label}", megapixels, lambda: [lab_to_rgb(i) for i in native_labs_chw],
             lambda: [lab2rgb(i) for i in native_labs_hwc], args.repeats)

    lab_error = _max_difference(native_labs_chw, [rgb2lab(i) for i in native])
    rgb_error = _max_difference([lab_to_rgb(lab) for lab in native_labs_chw], [lab2rgb(lab) for lab in native_labs_hwc])
    print(f"float32 agreement with skimage on the native photos: Lab {lab_error:.2e}, RGB {rgb_error:.2e}")


if __name__ == "__main__":
    main()
