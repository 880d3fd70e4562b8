"""Ray Data jobs: image folders -> Lab Parquet shards, and the exact ab-bin histogram over the shards.

The only module of the package that imports Ray for preprocessing; the work itself is the pure code of
``colorization/io/shards.py`` and ``colorization/io/manifest.py``. ``ray.init`` is the caller's business
(``workflows/preprocess.py``, ``workflows/prior.py``, tests), so the same calls run on a laptop or a cluster.

Preprocessing (:func:`preprocess_to_shards`): the driver lists the input and plans the shards (deterministic
file -> shard assignment); a Ray Data dataset holds one row per shard still to build, and a ``map_batches`` task
per shard reads its files' bytes, decodes them one by one (a bad file becomes a failure row, never a lost
block, which is what ``read_images`` does: ray-mlflow-notes 1.1), converts to quantized Lab and writes the Parquet
file itself. Decoded pixels never enter the object store (ray-mlflow-notes pitfall 2); each task returns only its
report. On a cluster the input and output directories must be visible at the same path on every node.

Prior (:func:`ab_prior_counts`): the training shards in groups of about 128 MiB, one task per group that reads
its files' ``ab`` and ``colourless`` columns with pyarrow, file by file, and returns one partial histogram
(integers), summed on the driver (option A of ray-mlflow-notes 1.5). The sum is exact, so it equals a
single-process count over the same shards. Reading each file inside ``try`` (rather than ``read_parquet``) makes
a damaged shard a reported, counted failure instead of a Ray stack trace.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import ray
import torch

from colorization.color.ab_prior import ab_bin_counts
from colorization.io.manifest import (
    MANIFEST_NAME,
    PreprocessConfig,
    build_manifest,
    input_base_dir,
    list_sources,
    plan_shards,
    prepare_output_dir,
    remove_stale_shards,
    report_path,
    reusable_reports,
    write_json_atomic,
)
from colorization.io.shards import (
    COUNT_METHODS,
    ShardReport,
    ShardTask,
    build_shard,
    dequantize_ab,
    quantized_ab_bin_counts,
    lab_column_to_numpy,
    shard_file_problem,
)

__all__ = ["preprocess_to_shards", "ab_prior_counts", "COUNT_METHODS"]

_PRIOR_COLUMNS = ("ab", "colourless")
# Shard files per prior task: about Ray Data's target block size (128 MiB), as read_parquet would bucket them.
PRIOR_TASK_TARGET_BYTES = 128 * 2**20


def _build_shards(batch: dict[str, np.ndarray], *, input_root: str, output_dir: str, options: dict) -> dict:
    """map_batches UDF: one row per shard task in, one JSON report per shard out."""
    torch.set_num_threads(1)  # one CPU per task; Lab conversion must not oversubscribe the node
    reports = []
    for task_json in batch["task"]:
        task = ShardTask.from_json(str(task_json))
        report = build_shard(task, input_root=input_root, output_dir=output_dir, **options)
        # Written by the worker, so a driver that dies mid-run still leaves finished shards reusable.
        report_json = report.to_json()
        write_json_atomic(report_path(output_dir, task.file), json.loads(report_json))
        reports.append(report_json)
    return {"report": np.array(reports, dtype=object)}


def preprocess_to_shards(
    config: PreprocessConfig,
    output_dir: str | Path,
    *,
    progress: Callable[[str], None] = print,
    progress_interval_s: float = 2.0,
    listing: tuple[list, list[str], float] | None = None,
) -> dict:
    """Builds (or completes) the Lab shards of ``config`` in ``output_dir`` with Ray Data; returns the manifest.

    Needs a running Ray (``ray.init``). Reruns with the same config reuse finished shards; a different config in
    the same directory raises ``OutputConflictError`` before anything is written, and an input without image
    files raises ``FileNotFoundError``.

    Args:
        config: what to build (input, size, split, shard size, ...).
        output_dir: where ``manifest.json``, ``<split>/<split>-NNNNN.parquet`` and ``_reports/`` go.
        progress: receives one-line progress messages (``print`` by default).
        progress_interval_s: minimum seconds between two progress lines (the last shard always reports).
        listing: (sources, synsets, seconds it took) when the caller already listed the input with
            ``list_sources(config)`` (before starting Ray).

    Returns:
        The manifest (also written to ``output_dir/manifest.json``), with ``timing`` filled in.
    """
    start = time.perf_counter()
    output_dir = Path(output_dir).resolve()
    if listing is None:
        listing = (*list_sources(config), time.perf_counter() - start)
    else:
        start -= listing[2]  # the total includes the caller's listing
    sources, synsets, listed_s = listing
    if not sources:
        raise FileNotFoundError(f"no image files under {config.input_root}")
    existing = prepare_output_dir(output_dir, config)
    tasks = plan_shards(sources, config)
    reports: dict[str, ShardReport] = reusable_reports(output_dir, tasks) if existing else {}
    removed = remove_stale_shards(output_dir, tasks) if existing else []
    # The config goes on disk before any shard does, so an interrupted run is recognised (and resumed) later.
    write_json_atomic(output_dir / MANIFEST_NAME, build_manifest(config, tasks, reports, synsets, status="incomplete"))
    todo = [task for task in tasks if task.file not in reports]
    progress(
        f"preprocess: {len(sources)} files listed in {listed_s:.1f} s -> {len(tasks)} shards "
        f"({config.rows_per_shard} images each at most); {len(reports)} reused, {len(todo)} to build"
        + (f", {len(removed)} stale removed" if removed else "")
    )
    images_to_build = sum(len(task.sources) for task in todo)
    pipeline_start = time.perf_counter()
    if todo:
        options = {
            "size": config.size,
            "max_pixels": config.max_pixels,
            "row_group_size": config.row_group_size,
            "compression": config.compression,
        }
        # Largest shards first: the short last shard of each split should not be the straggler.
        todo.sort(key=lambda task: -len(task.sources))
        dataset = ray.data.from_items([{"task": task.to_json()} for task in todo], override_num_blocks=len(todo))
        dataset = dataset.map_batches(
            _build_shards,
            batch_size=1,
            batch_format="numpy",
            num_cpus=1,
            fn_kwargs={"input_root": str(input_base_dir(config)), "output_dir": str(output_dir), "options": options},
        )
        # One operator does all the work: without this, Ray Data keeps half the CPUs in reserve for operators
        # that do not exist here, and the second task starts about a second late (measured on 2 CPUs).
        dataset.context.op_resource_reservation_enabled = False
        done_shards = done_images = failed = 0
        last_print = 0.0
        for row in dataset.iter_rows():
            report = ShardReport.from_json(str(row["report"]))
            reports[report.file] = report
            done_shards += 1
            done_images += report.listed
            failed += len(report.failures)
            now = time.perf_counter()
            if now - last_print >= progress_interval_s or done_shards == len(todo):
                last_print = now
                elapsed = now - pipeline_start
                progress(
                    f"  [{done_shards}/{len(todo)} shards] {done_images}/{images_to_build} images, "
                    f"{failed} failed, {done_images / max(elapsed, 1e-9):.1f} images/s"
                )
    pipeline_s = time.perf_counter() - pipeline_start
    timing = {
        "listing_s": round(listed_s, 3),
        "pipeline_s": round(pipeline_s, 3),
        "total_s": round(time.perf_counter() - start, 3),
        "images_built": images_to_build,
        "images_per_s": round(images_to_build / pipeline_s, 2) if images_to_build and pipeline_s > 0 else None,
        "shards_built": len(todo),
        "shards_reused": len(tasks) - len(todo),
    }
    manifest = build_manifest(config, tasks, reports, synsets, status="complete", timing=timing)
    write_json_atomic(output_dir / MANIFEST_NAME, manifest)
    return manifest


def _count_table(table: pa.Table, bins: np.ndarray, method: str) -> tuple[np.ndarray, int, int, int]:
    """(counts, colourful images, colourless images, pixels) of one table of (ab, colourless) rows."""
    colourless = table.column("colourless").to_numpy(zero_copy_only=False).astype(bool)
    keep = ~colourless
    if not keep.any():
        return np.zeros(len(bins), dtype=np.int64), 0, int(colourless.sum()), 0
    ab = lab_column_to_numpy(table.column("ab"), "ab")[keep]  # either shard version; the mask copies
    pixels = int(ab.shape[0] * ab.shape[2] * ab.shape[3])
    bins_tensor = torch.from_numpy(bins.copy())  # fn_kwargs arrive read-only
    if method == "lattice":
        counts = quantized_ab_bin_counts(ab, bins_tensor)
    else:  # the core, pixel by pixel
        counts = ab_bin_counts(dequantize_ab(ab), bins_tensor).numpy().astype(np.int64)
    return counts, int(keep.sum()), int(colourless.sum()), pixels


def _count_files(batch: dict[str, np.ndarray], *, bins: np.ndarray, method: str) -> dict:
    """map_batches UDF: one group of shard files -> their summed bin counts, plus one failure per bad file.

    A file that fails anywhere while being read (a corrupted page, a vanished file) contributes nothing and is
    reported by name with the reason, so a user's damaged shard never becomes a Ray stack trace.
    """
    start = time.perf_counter()
    torch.set_num_threads(1)
    counts = np.zeros(len(bins), dtype=np.int64)
    images = colourless = pixels = 0
    failures = []
    for path in json.loads(str(batch["files"][0])):
        try:
            file_counts = np.zeros(len(bins), dtype=np.int64)
            file_images = file_colourless = file_pixels = 0
            for record_batch in pq.ParquetFile(path).iter_batches(columns=list(_PRIOR_COLUMNS)):
                part = _count_table(pa.Table.from_batches([record_batch]), bins, method)
                file_counts += part[0]
                file_images, file_colourless, file_pixels = (
                    file_images + part[1], file_colourless + part[2], file_pixels + part[3]
                )
        except Exception as error:  # noqa: BLE001 - any damage to the user's file is reported, not raised
            failures.append({"file": path, "reason": f"{type(error).__name__}: {' '.join(str(error).split())[:200]}"})
            continue
        counts += file_counts
        images, colourless, pixels = images + file_images, colourless + file_colourless, pixels + file_pixels
    return {
        "counts": counts[None, :],
        "images": np.array([images], dtype=np.int64),
        "colourless": np.array([colourless], dtype=np.int64),
        "pixels": np.array([pixels], dtype=np.int64),
        "failures": np.array([json.dumps(failures)], dtype=object),
        "task_seconds": np.array([time.perf_counter() - start]),
    }


def _group_by_bytes(paths: Sequence[str], target_bytes: int) -> list[list[str]]:
    """Consecutive files grouped into read tasks of about ``target_bytes`` (Ray Data's block size)."""
    groups: list[list[str]] = []
    size = 0
    for path in paths:
        try:
            file_bytes = Path(path).stat().st_size
        except OSError:
            file_bytes = 0  # the task reports it
        if not groups or size + file_bytes > target_bytes:
            groups.append([])
            size = 0
        groups[-1].append(path)
        size += file_bytes
    return groups


def ab_prior_counts(shard_paths: Sequence[str | Path], bins: torch.Tensor, *, method: str = "lattice") -> dict:
    """Exact nearest-bin counts of every pixel of the colourful images in ``shard_paths``, with Ray Data.

    Shards whose Parquet footer is unreadable are reported before any task starts; a shard that fails while
    being read is reported by its task. Either way the file counts as failed and contributes nothing.

    Args:
        shard_paths: Parquet shards (normally the training split, from the manifest).
        bins: (Q, 2) raw (a, b) centres; distances are computed in its dtype, as the core does.
        method: "lattice" (default; histogram of the 256 x 256 stored ab values, each sent to its bin once) or
            "per-pixel" (the core's ``ab_bin_counts`` on every dequantized pixel). Both give the same integers.

    Returns:
        {"counts": (Q,) int64 numpy, "images", "colourless" (skipped), "pixels", "blocks" (read tasks),
        "failures" (list of {"file", "reason"}), "files" (shards counted), "seconds" (wall, driver),
        "task_seconds" (summed over the tasks)}.
    """
    if method not in COUNT_METHODS:
        raise ValueError(f"method must be one of {COUNT_METHODS}; got {method!r}")
    start = time.perf_counter()
    bins_array = np.ascontiguousarray(bins.detach().cpu().numpy())
    totals = {
        "counts": np.zeros(len(bins_array), dtype=np.int64),
        "images": 0,
        "colourless": 0,
        "pixels": 0,
        "blocks": 0,
        "task_seconds": 0.0,
        "failures": [],
    }
    readable = []
    for path in map(str, shard_paths):
        problem = shard_file_problem(path, _PRIOR_COLUMNS)
        if problem:
            totals["failures"].append({"file": path, "reason": problem})
        else:
            readable.append(path)
    groups = _group_by_bytes(readable, PRIOR_TASK_TARGET_BYTES)
    if groups:
        items = [{"files": json.dumps(group)} for group in groups]
        dataset = ray.data.from_items(items, override_num_blocks=len(groups))
        dataset = dataset.map_batches(
            _count_files,
            batch_size=1,
            batch_format="numpy",
            num_cpus=1,
            fn_kwargs={"bins": bins_array, "method": method},
        )
        dataset.context.op_resource_reservation_enabled = False  # one operator does all the work (see above)
        for partial in dataset.iter_batches(batch_size=None, batch_format="numpy"):
            totals["counts"] += np.asarray(partial["counts"], dtype=np.int64).reshape(-1, len(bins_array)).sum(axis=0)
            for key in ("images", "colourless", "pixels"):
                totals[key] += int(np.asarray(partial[key], dtype=np.int64).sum())
            totals["blocks"] += len(partial["images"])
            totals["task_seconds"] += float(np.sum(partial["task_seconds"]))
            for failures in partial["failures"]:
                totals["failures"].extend(json.loads(str(failures)))
    totals["files"] = len(shard_paths) - len(totals["failures"])
    totals["seconds"] = time.perf_counter() - start
    return totals
