"""Benchmark: Ray Data preprocessing vs a plain single-process loop, on the 500 real dev photos; the prior's speed.

Run from the repository root (prints figures; asserts nothing)::

    RAY_USAGE_STATS_ENABLED=0 .venv/bin/python tests/benchmarks/bench_preprocess.py [--num-cpus 2] [--shard-mb 8]

* Naive loop (one process): PIL decode at full size -> resize (shorter side 256, bicubic) + centre crop ->
  scikit-image ``rgb2lab`` (float64) -> float32 Lab tensors -> one Parquet file (pyarrow, 64-row groups).
* Ray Data (``colorization.distributed.data.preprocess_to_shards``) on a local Ray with ``--num-cpus`` CPUs:
  draft-mode JPEG decode, resize of the kept square only, the core's float32 ``rgb_to_lab``, 8-bit L + ab,
  zstd Parquet. Timed cold (first pipeline after ``ray.init``: worker start-up included) and warm (again, into a
  fresh directory). ``ray.init`` itself is reported separately.
* The same per-shard code run in this one process, one shard after another (no Ray): separates the gain per
  image from the gain of running on several CPUs.
* Stage costs: seconds per image and stage (read, decode, resize, lab, write) from each path. The machine's other
  load shows up here: the rounds are interleaved and the best of each kind is kept.
* Quantization: the largest error of the stored L and ab against the float core, over every written photo.
* Prior: Ray Data counts over the training shards, pixels/s (lattice and per-pixel methods).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

DEV_DIR = REPO_ROOT.parent / "shared" / "data" / "imagenet-sample" / "dev"
SIZE = 256


def naive_loop(files: list[Path], output: Path) -> dict:
    """The plain single-process baseline; returns seconds per stage and the image count."""
    from skimage.color import rgb2lab

    seconds = dict.fromkeys(("decode", "resize", "lab", "write"), 0.0)
    writer = None
    pending_lab, pending_path = [], []
    written = 0

    def flush() -> None:
        nonlocal writer
        start = time.perf_counter()
        table = pa.table(
            {
                "path": pending_path,
                "lab": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(np.stack(pending_lab))),
            }
        )
        if writer is None:
            writer = pq.ParquetWriter(output, table.schema)
        writer.write_table(table, row_group_size=64)
        pending_lab.clear()
        pending_path.clear()
        seconds["write"] += time.perf_counter() - start

    for path in files:
        start = time.perf_counter()
        try:
            image = Image.open(path)
            image = image.convert("RGB")
        except OSError:
            continue
        seconds["decode"] += time.perf_counter() - start
        start = time.perf_counter()
        width, height = image.size
        scale = SIZE / min(width, height)
        new_width, new_height = max(SIZE, round(width * scale)), max(SIZE, round(height * scale))
        image = image.resize((new_width, new_height), Image.Resampling.BICUBIC)
        left, top = (new_width - SIZE) // 2, (new_height - SIZE) // 2
        crop = np.asarray(image.crop((left, top, left + SIZE, top + SIZE)))
        seconds["resize"] += time.perf_counter() - start
        start = time.perf_counter()
        lab = rgb2lab(crop).astype(np.float32)
        seconds["lab"] += time.perf_counter() - start
        pending_lab.append(lab)
        pending_path.append(str(path))
        written += 1
        if len(pending_lab) == 64:
            flush()
    if pending_lab:
        flush()
    start = time.perf_counter()
    writer.close()
    seconds["write"] += time.perf_counter() - start
    return {"images": written, "seconds": seconds, "bytes": output.stat().st_size}


def quantization_errors(input_root: Path, output: Path, manifest: dict) -> tuple[float, float]:
    """Max |stored - float core| for L and ab over every written image (decoded and cropped as the pipeline does)."""
    from colorization.color.lab import rgb_to_lab
    from colorization.io.images import decode_image, resize_shorter_side_and_center_crop
    from colorization.io.shards import dequantize_ab, dequantize_lightness, read_shard_arrays

    worst_l = worst_ab = 0.0
    for shard in manifest["shards"]:
        table = pq.read_table(output / shard["file"], columns=["path", "L", "ab"])
        arrays = read_shard_arrays(table, columns=("L", "ab"))
        for index, path in enumerate(table.column("path").to_pylist()):
            crop = resize_shorter_side_and_center_crop(
                decode_image((input_root / path).read_bytes(), draft_size=SIZE).rgb, SIZE
            )
            exact = rgb_to_lab(torch.from_numpy(np.array(crop)).permute(2, 0, 1).double() / 255)
            worst_l = max(worst_l, (dequantize_lightness(arrays["L"][index]).double() - exact[:1]).abs().max().item())
            worst_ab = max(worst_ab, (dequantize_ab(arrays["ab"][index]).double() - exact[1:]).abs().max().item())
    return worst_l, worst_ab


def _print_naive(naive: dict, elapsed: float) -> float:
    rate = naive["images"] / elapsed
    per_image = {stage: 1e3 * value / naive["images"] for stage, value in naive["seconds"].items()}
    print(
        f"naive loop (1 process): {naive['images']} images in {elapsed:.2f} s = {rate:.1f} images/s; ms/image: "
        + ", ".join(f"{stage} {value:.2f}" for stage, value in per_image.items())
        + f"; {naive['bytes'] / naive['images'] / 1024:.0f} KiB/image (float32 Lab)"
    )
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-cpus", type=int, default=2)
    parser.add_argument("--shard-mb", type=float, default=8.0, help="target shard size of the Ray runs (parallelism)")
    parser.add_argument(
        "--repeats", type=int, default=3, help="naive / 1-process / warm Ray rounds, interleaved (best kept)"
    )
    parser.add_argument("--skip-errors", action="store_true", help="skip the quantization-error pass")
    args = parser.parse_args()
    if not DEV_DIR.is_dir():
        print(f"skipped: dev photos not found at {DEV_DIR}")
        return 0
    files = sorted(DEV_DIR.glob("*.JPEG"))
    work = Path(tempfile.mkdtemp(prefix="bench-preprocess-"))
    print(
        f"{len(files)} dev photos -> {SIZE}x{SIZE}; {os.cpu_count()} CPUs on this machine; "
        f"load average {os.getloadavg()[0]:.1f}"
    )
    torch.set_num_threads(1)

    import ray

    from colorization.color.ab_bins import default_ab_bins
    from colorization.distributed.data import ab_prior_counts, preprocess_to_shards
    from colorization.io.manifest import PreprocessConfig, shard_files

    start = time.perf_counter()
    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False
    print(f"ray.init(num_cpus={args.num_cpus}): {time.perf_counter() - start:.1f} s")
    config = PreprocessConfig(input_root=str(DEV_DIR), size=SIZE, target_shard_mb=args.shard_mb)

    def ray_run(label: str) -> tuple[float, dict]:
        output = work / f"shards-{label}"
        start = time.perf_counter()
        manifest = preprocess_to_shards(config, output, progress=lambda line: None)
        elapsed = time.perf_counter() - start
        rate = manifest["counts"]["listed"] / elapsed
        print(
            f"Ray Data ({label}, {args.num_cpus} CPUs, {len(manifest['shards'])} shards of "
            f"<= {config.rows_per_shard} images): "
            f"{manifest['counts']['listed']} images in {elapsed:.2f} s = {rate:.1f} images/s"
        )
        return rate, manifest

    def serial_run(repeat: int) -> float:
        """The same per-shard code as the Ray tasks, one shard after another in this process (no Ray)."""
        from colorization.io.manifest import list_sources, plan_shards
        from colorization.io.shards import _quantized_lab_table, build_shard

        _quantized_lab_table()  # built once per process, as in each Ray worker
        output = work / f"serial-{repeat}"
        start = time.perf_counter()
        tasks = plan_shards(list_sources(config)[0], config)
        seconds = dict.fromkeys(("read", "decode", "resize", "lab", "write"), 0.0)
        for task in tasks:
            report = build_shard(task, input_root=DEV_DIR, output_dir=output, size=SIZE)
            for stage, value in report.seconds.items():
                seconds[stage] += value
        elapsed = time.perf_counter() - start
        print(
            f"same code, 1 process, no Ray: {len(files)} images in {elapsed:.2f} s = "
            f"{len(files) / elapsed:.1f} images/s; "
            "ms/image: " + ", ".join(f"{stage} {1e3 * value / len(files):.2f}" for stage, value in seconds.items())
        )
        return len(files) / elapsed

    cold_rate, _ = ray_run("cold: first pipeline, worker start-up included")
    naive_rates, serial_rates, ray_rates = [], [], []
    for repeat in range(args.repeats):
        start = time.perf_counter()
        naive = naive_loop(files, work / f"naive-{repeat}.parquet")
        naive_rates.append(_print_naive(naive, time.perf_counter() - start))
        serial_rates.append(serial_run(repeat))
        rate, manifest = ray_run(f"warm {repeat + 1}")
        ray_rates.append(rate)
    best_naive = max(naive_rates)
    print(
        f"=> best of {args.repeats}: Ray Data {max(ray_rates):.1f} images/s = "
        f"{max(ray_rates) / best_naive:.2f}x the naive loop "
        f"({best_naive:.1f} images/s); same code in 1 process {max(serial_rates):.1f} images/s = "
        f"{max(serial_rates) / best_naive:.2f}x; Ray cold {cold_rate / best_naive:.2f}x"
    )

    written = manifest["counts"]["written"]
    per_image = {stage: 1e3 * value / written for stage, value in manifest["stage_seconds"].items()}
    cpu_ms = sum(per_image.values())
    print(
        "Ray Data stage costs, ms per image (wall time inside the tasks): "
        + ", ".join(f"{stage} {value:.2f}" for stage, value in per_image.items())
        + f"; total {cpu_ms:.2f}"
    )
    bytes_per_image = manifest["counts"]["bytes"] / written
    print(
        f"  {bytes_per_image / 1024:.1f} KiB/image on disk "
        f"({bytes_per_image / (3 * SIZE * SIZE):.2f} of the 192 KiB payload); "
        f"{1e3 / cpu_ms:.0f} images/s per core of task work; {manifest['counts']['colourless']} colourless flagged"
    )
    full = 1_281_167
    print(
        f"  full ImageNet train ({full:,} images): {full * bytes_per_image / 1e9:.0f} GB of shards, "
        f"{full * cpu_ms / 1e3 / 3600:.1f} core-hours of task work"
    )

    output = work / f"shards-warm {args.repeats}"
    train = shard_files(output, "train", manifest)
    bins = default_ab_bins()
    for method, label in (("lattice", "cold"), ("lattice", "warm"), ("per-pixel", "warm")):
        totals = ab_prior_counts(train, bins, method=method)
        print(
            f"prior ({method}, {label}): {totals['images']} images, {totals['pixels']:,} pixels in "
            f"{totals['seconds']:.2f} s = {totals['pixels'] / totals['seconds'] / 1e6:.1f} Mpixels/s end to end; "
            f"counting work {totals['task_seconds']:.2f} task-s = "
            f"{totals['pixels'] / totals['task_seconds'] / 1e6:.0f} Mpixels/s per core "
            f"({totals['colourless']} colourless skipped, {totals['blocks']} blocks)"
        )
    ray.shutdown()

    if not args.skip_errors:
        worst_l, worst_ab = quantization_errors(DEV_DIR, output, manifest)
        print(
            f"quantization error vs the float core over {written} photos: "
            f"max |dL| = {worst_l:.4f}, max |dab| = {worst_ab:.4f}"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
