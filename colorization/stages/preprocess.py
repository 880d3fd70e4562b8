"""Stage: image folders (or an ImageNet tree) -> Lab Parquet shards + manifest.json, with Ray Data.

Everything a user can get wrong is checked before Ray starts: the input exists, the label file reads, the
options are valid, the output folder is not a file, not an input and not inside one, and writable, and it holds
nothing but shards of this same configuration. The input is listed before Ray starts too (an input without image
files costs nothing); a file whose name is not UTF-8 becomes a failure row, like an undecodable image.

The stage is idempotent: when the output already holds a complete run of the same configuration over the same
files (every shard present with its recorded size), nothing is rebuilt, Ray is not started, and the result says
``skipped``. A partial run is resumed (finished shards are reused).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from colorization.errors import UserError
from colorization.io.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS
from colorization.io.manifest import (
    MANIFEST_NAME,
    OutputConflictError,
    PreprocessConfig,
    list_sources,
    plan_shards,
    prepare_output_dir,
    read_label_file,
    read_manifest,
    reusable_reports,
)
from colorization.io.safe_outputs import check_output_dir
from colorization.io.shards import DEFAULT_ROW_GROUP_SIZE

_DEFAULTS = PreprocessConfig(input_root="/")
_MAX_FAILURES_SHOWN = 20


@dataclass(frozen=True)
class PreprocessStageConfig:
    """What the preprocess stage needs: the shard configuration plus where to write and where Ray runs."""

    input_root: str  # image folder (searched recursively), one image, or an ImageNet root (train/, val/)
    output_dir: str  # shards, manifest.json and _reports/ go here
    size: int = _DEFAULTS.size  # crop side in pixels
    val_fraction: float = _DEFAULTS.val_fraction  # share of files hashed to "val" (flat folders)
    target_shard_mb: float = _DEFAULTS.target_shard_mb  # uncompressed MB per shard
    limit: int | None = None  # use only N files (a deterministic sample)
    labels_file: str | None = None  # "<file> <wnid>" lines or LOC_val_solution.csv, for flat folders
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused as decompression bombs
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE
    address: str | None = None  # Ray cluster address; None: $RAY_ADDRESS, else a local Ray
    num_cpus: int | None = None  # CPUs of a local Ray (None: all)


@dataclass(frozen=True)
class PreprocessStageResult:
    """What the stage produced."""

    output_dir: Path
    manifest_path: Path
    manifest_digest: str  # sha256 of manifest.json: identifies the dataset for the stages downstream
    manifest: dict
    skipped: bool  # True when the outputs already existed for the same configuration and files


def manifest_digest(manifest_path: str | Path) -> str:
    """sha256 (hex) of a manifest file's bytes."""
    return hashlib.sha256(Path(manifest_path).read_bytes()).hexdigest()


def shard_config(config: PreprocessStageConfig) -> PreprocessConfig:
    """The configuration that determines the shards' content (validated), from the stage config.

    Raises:
        UserError: the input is missing, the label file is unreadable, or an option is out of range.
    """
    input_root = Path(config.input_root).expanduser()
    if not input_root.exists():
        raise UserError(f"input not found: {input_root}")
    if config.labels_file:
        try:
            read_label_file(config.labels_file)
        except (OSError, ValueError, KeyError, UnicodeDecodeError) as error:
            raise UserError(f"label file {config.labels_file}: {error}") from None
    try:
        return PreprocessConfig(
            input_root=str(input_root.resolve()),
            size=config.size,
            val_fraction=config.val_fraction,
            target_shard_mb=config.target_shard_mb,
            limit=config.limit,
            labels_file=str(Path(config.labels_file).resolve()) if config.labels_file else None,
            max_pixels=config.max_pixels,
            row_group_size=config.row_group_size,
        )
    except (ValueError, TypeError) as error:
        raise UserError(str(error)) from None


def _complete_and_unchanged(output_dir: Path, tasks: list) -> bool:
    """Whether ``output_dir`` holds a complete run of exactly these shard tasks (so nothing is left to do)."""
    try:
        manifest = read_manifest(output_dir)
    except (OSError, ValueError):
        return False
    if manifest.get("status") != "complete":
        return False
    return len(reusable_reports(output_dir, tasks)) == len(tasks)


def run(config: PreprocessStageConfig, *, progress: Callable[[str], None] = print) -> PreprocessStageResult:
    """Builds (or completes, or skips) the shards of ``config``.

    Args:
        config: the stage configuration.
        progress: receives one-line progress messages.

    Returns:
        The output paths, the manifest and its digest, and whether the stage was skipped.

    Raises:
        UserError: any problem the user can fix, before Ray starts.
    """
    wanted = shard_config(config)
    inputs = [wanted.input_root] + ([wanted.labels_file] if wanted.labels_file else [])
    output_dir = check_output_dir(config.output_dir, inputs=inputs, what="output folder")
    manifest_path = output_dir / MANIFEST_NAME
    try:  # conflicts are found before the (long) listing; the folder is created only when there is work
        existing = prepare_output_dir(output_dir, wanted) if output_dir.exists() else False
    except OutputConflictError as error:
        raise UserError(str(error)) from None
    start = time.perf_counter()
    sources, synsets = list_sources(wanted)
    if not sources:
        raise UserError(f"no image files under {wanted.input_root} (image extensions: {' '.join(IMAGE_EXTENSIONS)})")
    if existing and _complete_and_unchanged(output_dir, plan_shards(sources, wanted)):
        progress(f"preprocess: skipped, {output_dir} already holds these shards ({manifest_path})")
        manifest = read_manifest(output_dir)
        return PreprocessStageResult(output_dir, manifest_path, manifest_digest(manifest_path), manifest, True)

    from colorization.distributed.data import preprocess_to_shards
    from colorization.distributed.runtime import ray_session

    listing = (sources, synsets, time.perf_counter() - start)
    with ray_session(config.address, config.num_cpus):
        manifest = preprocess_to_shards(wanted, output_dir, progress=progress, listing=listing)
    progress(format_summary(manifest, output_dir))
    return PreprocessStageResult(output_dir, manifest_path, manifest_digest(manifest_path), manifest, False)


def format_summary(manifest: dict, output_dir: str | Path, max_failures: int = _MAX_FAILURES_SHOWN) -> str:
    """The end-of-run summary: throughput, counts that reconcile, failures, task seconds per stage."""
    counts, timing = manifest["counts"], manifest.get("timing", {})
    rate = timing.get("images_per_s")
    lines = [
        f"preprocess: done in {timing.get('total_s', 0):.1f} s (pipeline {timing.get('pipeline_s', 0):.1f} s"
        + (f", {rate:.1f} images/s" if rate else "")
        + f"; {timing.get('shards_built', 0)} shards built, {timing.get('shards_reused', 0)} reused)",
        f"  {counts['listed']} listed = {counts['written']} written + {counts['failed']} failed; "
        f"{counts['colourless']} colourless (kept, flagged); {counts['bytes'] / 2**20:.1f} MiB",
    ]
    for name, split in manifest["splits"].items():
        lines.append(
            f"  {name:5s}: {split['written']} written, {split['failed']} failed, {split['colourless']} colourless, "
            f"{split['shards']} shards"
        )
    if manifest["failures"]:
        reasons = ", ".join(f"{reason} {number}" for reason, number in manifest["failure_reasons"].items())
        lines.append(f"  failures: {reasons}")
        for failure in manifest["failures"][:max_failures]:
            lines.append(f"    {failure['reason']:18s} {failure['path']}: {failure['detail'][:100]}")
        if len(manifest["failures"]) > max_failures:
            lines.append(f"    ... {len(manifest['failures']) - max_failures} more in {MANIFEST_NAME}")
    stages = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in manifest["stage_seconds"].items())
    lines.append(f"  task seconds per stage: {stages}")
    lines.append(f"  manifest: {Path(output_dir) / MANIFEST_NAME}")
    return "\n".join(lines)
