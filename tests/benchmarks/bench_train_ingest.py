"""Benchmark (not a test): Ray Data training ingest, Lab shards -> random crops + flips -> torch batches.

Prints images/s from the shards to uint8/int8 torch batches in the consumer (the driver stands in for a training
worker), per epoch and per CPU core. Issue 7's target: >= 1,000 images/s per core, so a few cores feed one GPU.

    python tests/benchmarks/bench_train_ingest.py SHARDS_DIR [--crop 176] [--num-cpus 1] [--epochs 4]
    python tests/benchmarks/bench_train_ingest.py SHARDS_DIR --trainer   # through TorchTrainer (1 CPU worker)

SHARDS_DIR is a ``colorization preprocess`` output (e.g. of the 500 dev photos at 256), read ``--repeat`` times per
epoch so that the per-epoch start-up (listing, task launch: a few seconds) is amortized. "per core" divides by
the Ray CPUs given to the ingest plus one for the consumer, unless ``--cores`` says otherwise.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def _cpu_seconds() -> float:
    """CPU time of this process and all its descendants (a local Ray's GCS, raylet and workers), user + system."""
    import psutil

    total = 0.0
    processes = [psutil.Process()]
    processes += processes[0].children(recursive=True)
    for process in processes:
        try:
            times = process.cpu_times()
        except psutil.Error:  # ended meanwhile
            continue
        total += times.user + times.system
    return total


def _process_kind(process, names: dict[int, str]) -> str:
    """A process's role, from the first command line seen for its pid (an actor's title changes per method)."""
    if process.pid not in names:
        command = " ".join(process.cmdline())
        if process.pid == os.getpid():
            names[process.pid] = "driver (consumer)"
        elif "_StatsActor" in command or "_AutoscalingCoordinatorActor" in command:
            names[process.pid] = "Ray Data actors (stats, autoscaling)"
        elif command.startswith("ray::"):
            names[process.pid] = "Ray task workers (read + crop)"
        else:
            names[process.pid] = "Ray system (gcs, raylet, agents)"
    return names[process.pid]


def _cpu_by_process(names: dict[int, str]) -> dict[int, tuple[str, float]]:
    """pid -> (role, CPU seconds user + system) of this process and each descendant."""
    import psutil

    seconds = {}
    processes = [psutil.Process()]
    processes += processes[0].children(recursive=True)
    for process in processes:
        try:
            times = process.cpu_times()
            seconds[process.pid] = (_process_kind(process, names), times.user + times.system)
        except psutil.Error:
            continue
    return seconds


_NAMES: dict[int, str] = {}


def _epochs(iterate, epochs: int, breakdown: list | None = None) -> list[tuple[int, float, float]]:
    """(images, wall seconds, CPU seconds of the whole local Ray) per epoch; per-process CPU into ``breakdown``."""
    results = []
    for _ in range(epochs):
        start, cpu_start, by_process = time.perf_counter(), _cpu_seconds(), _cpu_by_process(_NAMES)
        images = sum(len(batch["L"]) for batch in iterate())
        results.append((images, time.perf_counter() - start, _cpu_seconds() - cpu_start))
        if breakdown is not None:
            by_role: dict[str, float] = {}
            for pid, (role, cpu) in _cpu_by_process(_NAMES).items():
                by_role[role] = by_role.get(role, 0.0) + cpu - by_process.get(pid, (role, 0.0))[1]
            breakdown.append(by_role)
    return results


def _repeated_files(files: list, repeat: int, folder: str) -> list[str]:
    """Symlinks to ``files`` under ``repeat`` distinct names (Ray drops rows when one path is listed twice)."""
    links = []
    for copy in range(repeat):
        for path in files:
            link = os.path.join(folder, f"r{copy:03d}-{path.parent.name}-{path.name}")
            os.symlink(path.resolve(), link)
            links.append(link)
    return links


def _trainer_loop(config: dict) -> None:
    import ray.train

    from colorization.distributed.train_data import TRAIN_DATASET, iter_shard_batches

    shard = ray.train.get_dataset_shard(TRAIN_DATASET)
    results = _epochs(lambda: iter_shard_batches(shard, batch_size=config["batch"], device="cpu"), config["epochs"])
    ray.train.report({"epochs": [list(result) for result in results]})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shards")
    parser.add_argument("--crop", type=int, default=176)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--num-cpus", type=float, default=1.0, help="Ray CPUs for the ingest")
    parser.add_argument("--cores", type=float, help="cores to divide by (default: num-cpus + 1 consumer)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=20, help="list the split's files this many times per epoch")
    parser.add_argument("--trainer", action="store_true", help="consume in a TorchTrainer worker")
    args = parser.parse_args()

    import ray

    from colorization.distributed.train_data import (
        TRAIN_DATASET,
        ingest_data_config,
        iter_shard_batches,
        shard_dataset,
    )
    from colorization.io.manifest import shard_files

    links_dir = tempfile.mkdtemp(prefix="bench-ingest-")
    files = _repeated_files(shard_files(args.shards, "train"), args.repeat, links_dir)  # start-up amortized
    # Logical CPUs: the ingest gets num_cpus; a TorchTrainer worker takes a token 0.01 on top.
    breakdown: list[dict[str, float]] = []
    ray.init(num_cpus=args.num_cpus + (0.01 if args.trainer else 0), include_dashboard=False, log_to_driver=False)
    dataset = shard_dataset(files, crop=args.crop, flip=True)
    dataset.context.enable_progress_bars = False
    if args.trainer:
        from ray.train import RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        trainer = TorchTrainer(
            _trainer_loop,
            train_loop_config={"batch": args.batch, "epochs": args.epochs},
            scaling_config=ScalingConfig(num_workers=1, resources_per_worker={"CPU": 0.01}),
            run_config=RunConfig(name="bench-ingest", storage_path="/tmp/bench-ingest"),
            datasets={TRAIN_DATASET: dataset},
            dataset_config=ingest_data_config(args.num_cpus),
        )
        cpu_start = _cpu_seconds()
        results = [tuple(result) for result in trainer.fit().metrics["epochs"]]
        cpu_per_epoch = (_cpu_seconds() - cpu_start) / len(results)  # includes the trainer's start-up
        results = [(images, seconds, cpu_per_epoch) for images, seconds, _ in results]
    else:
        results = _epochs(
            lambda: iter_shard_batches(dataset, batch_size=args.batch, device="cpu"), args.epochs, breakdown
        )
    ray.shutdown()
    shutil.rmtree(links_dir)
    cores = args.cores or args.num_cpus + 1
    where = "TorchTrainer worker" if args.trainer else "driver"
    print(f"ingest: {len(files)} shards, crop {args.crop}, batch {args.batch}, {args.num_cpus:g} Ray CPUs, {where}")
    for epoch, (images, seconds, cpu) in enumerate(results):
        print(
            f"  epoch {epoch}: {images} images in {seconds:.2f} s = {images / seconds:,.0f} images/s "
            f"({images / seconds / cores:,.0f} per core over {cores:g} cores); "
            f"{cpu:.1f} CPU-s = {images / cpu:,.0f} images per CPU-second"
        )
    for epoch, seconds_by_process in enumerate(breakdown):
        parts = sorted(seconds_by_process.items(), key=lambda item: -item[1])
        print(f"  epoch {epoch} CPU-s: " + ", ".join(f"{name} {cpu:.2f}" for name, cpu in parts if cpu >= 0.005))
    steady = results[1:] or results
    images, seconds, cpu = (sum(r[i] for r in steady) for i in range(3))
    print(
        f"steady state (epochs 1+): {images / seconds:,.0f} images/s wall, {images / seconds / cores:,.0f} per core; "
        f"{images / cpu:,.0f} images per CPU-second (all Ray processes; less sensitive to other jobs than wall time)"
    )


if __name__ == "__main__":
    main()
