"""Benchmark (not a test): throughput of `evaluate` and batch `colorize` against plain single-process loops.

    python tests/benchmarks/bench_evaluate.py [--images 48] [--width 1.0] [--num-cpus 2]

Same real dev photos, same untrained Zhang network (full width by default, working size 256), measured in one
run so that the ratios share the machine's load:

* evaluate, one decoder: a plain loop (read, crop, ``colorize_tensors``, ``ColorizationScores.update``, one image
  at a time) vs the stage in one process vs the stage on a Ray actor pool (``--num-cpus`` actors);
* evaluate, Zhang's default sweep (7 rows): a plain loop running the network once per row vs the stage (once per
  image);
* batch colorize: a plain loop (read, ``colorize_images``, save PNG with Pillow's defaults) vs the stage in one
  process (reads and writes on I/O threads, PNG at ``PNG_COMPRESS_LEVEL``) and with Ray.

Ray figures include starting the actor pool (not Ray itself: a local Ray is started first and reused).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from colorization.color.ab_bins import default_ab_bins  # noqa: E402
from colorization.evaluation.sweep import default_sweep  # noqa: E402
from colorization.families import adapter_for  # noqa: E402
from colorization.inference import Colorizer  # noqa: E402
from colorization.io.images import read_image, resize_shorter_side_and_center_crop  # noqa: E402
from colorization.metrics.report import ColorizationScores  # noqa: E402
from colorization.models.checkpoint import save_checkpoint  # noqa: E402
from colorization.models.registry import create_model  # noqa: E402
from colorization.stages import colorize as colorize_stage  # noqa: E402
from colorization.stages import evaluate as evaluate_stage  # noqa: E402

DEV = Path(__file__).resolve().parents[3] / "shared" / "data" / "imagenet-sample" / "dev"


def plain_evaluate(checkpoint: Path, paths: list[Path], entries) -> None:
    from colorization.inference import load_model

    colorizer = Colorizer(load_model(checkpoint), batch_size=1)
    scores = {entry.label: ColorizationScores.empty(default_ab_bins()) for entry in entries}
    for path in paths:
        crop = resize_shorter_side_and_center_crop(read_image(path).rgb, 256)
        truth = torch.from_numpy(np.asarray(crop)).permute(2, 0, 1)[None]
        for entry in entries:
            predicted = colorizer.colorize_tensors([truth[0].float() / 255], entry.options)[0]
            scores[entry.label].update(predicted[None], truth)


def plain_colorize(checkpoint: Path, paths: list[Path], out: Path) -> None:
    from colorization.inference import load_model

    colorizer = Colorizer(load_model(checkpoint), batch_size=1)
    out.mkdir(parents=True)
    for path in paths:
        colorizer.colorize_images([read_image(path).rgb])[0].save(out / f"{path.stem}.png")


def timed(label: str, count: int, work, baseline: float | None = None) -> float:
    start = time.perf_counter()
    work()
    seconds = time.perf_counter() - start
    ratio = f"  {baseline / seconds:4.2f}x the plain loop" if baseline else ""
    print(f"{label:48s} {count / seconds:6.2f} images/s ({seconds:6.1f} s){ratio}", flush=True)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--width", type=float, default=1.0, help="Zhang width multiplier")
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    paths = sorted(DEV.glob("*.JPEG"))[: args.images]
    folder = Path(tempfile.mkdtemp(prefix="bench-evaluate-"))
    images = folder / "images"
    images.mkdir()
    for path in paths:
        os.symlink(path, images / path.name)
    torch.manual_seed(0)
    model = create_model("zhang_eccv16", width_multiplier=args.width)
    checkpoint = save_checkpoint(model, folder / "zhang.safetensors")
    entries = default_sweep(adapter_for(model), model)
    count = len(paths)
    print(f"{count} dev photos, Zhang width {args.width:g} at 256, torch threads {torch.get_num_threads()}, "
          f"load average {os.getloadavg()[0]:.1f}", flush=True)

    import ray

    ray.init(num_cpus=args.num_cpus, include_dashboard=False, log_to_driver=False)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def stage(use_ray: bool, decoders, name: str):
        config = evaluate_stage.EvaluateConfig(
            models=(str(checkpoint),), out=folder / name, images=images, use_ray=use_ray, mlflow=False, samples=0,
            decoders=decoders, temperatures=None if decoders is None else (0.38,), actors=args.num_cpus,
        )
        return lambda: evaluate_stage.run(config)

    one = [entries[0]]
    base = timed("evaluate, 1 decoder: plain loop", count, lambda: plain_evaluate(checkpoint, paths, one))
    timed("evaluate, 1 decoder: stage, one process", count, stage(False, ("annealed_mean",), "e1"), base)
    timed("evaluate, 1 decoder: stage, Ray actor pool", count, stage(True, ("annealed_mean",), "e2"), base)
    sweep_base = timed(f"evaluate, {len(entries)} rows: plain loop", count,
                       lambda: plain_evaluate(checkpoint, paths, entries))
    timed(f"evaluate, {len(entries)} rows: stage, one process", count, stage(False, None, "e3"), sweep_base)
    timed(f"evaluate, {len(entries)} rows: stage, Ray actor pool", count, stage(True, None, "e4"), sweep_base)

    def colorize(use_ray: bool, name: str):
        config = colorize_stage.ColorizeConfig(inputs=(images,), out=folder / name, model=str(checkpoint),
                                               use_ray=use_ray, actors=args.num_cpus, batch_size=4)
        return lambda: colorize_stage.run(config)

    colour_base = timed("colorize: plain loop", count, lambda: plain_colorize(checkpoint, paths, folder / "c0"))
    timed("colorize: stage, one process", count, colorize(False, "c1"), colour_base)
    timed("colorize: stage, Ray actor pool", count, colorize(True, "c2"), colour_base)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
