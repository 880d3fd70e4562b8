"""Stage: the empirical ab prior and class-rebalancing weights (Zhang et al. Sec. 2.2) from Lab shards, in MLflow.

Counts every pixel of the split's colourful images into its nearest ab bin with Ray Data (exact integer sums),
smooths (sigma) and mixes with the uniform distribution (lambda) with the core's functions, writes PRIOR.npz,
PRIOR.json and PRIOR.png (or ``ab_prior.*`` inside a folder) atomically, and logs them as one MLflow run.

Checked before Ray starts: the options, the shards' manifest and split, the ``--bins`` file, the three output
paths (never an input, never inside the shards folder, writable), and the MLflow tracking store (a server must
answer within seconds; a SQLite file's folder must be writable). Shards that cannot be read (a zero-byte file,
a corrupted footer or page) are reported by name with the reason, counted, and left out of the counts.

Idempotent: PRIOR.json records a fingerprint of what determines the prior (the manifest's digest, each shard's
size and modification time, the bins, the split, sigma, lambda) and the MLflow run id; when all three files
exist with the same fingerprint the stage is skipped (no Ray, no new run) and returns the recorded run id.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from colorization.color.constants import AB_GRID_STEP, COLOURLESS_AB_THRESHOLD, PRIOR_UNIFORM_MIX, SOFT_ENCODE_SIGMA
from colorization.errors import UserError
from colorization.io.manifest import MANIFEST_NAME, OutputConflictError, read_manifest, shard_files
from colorization.io.prior_file import prior_paths
from colorization.io.safe_outputs import check_output_dir, check_output_file
from colorization.io.shards import COUNT_METHODS
from colorization.stages.preprocess import manifest_digest

EXPERIMENT = "colorization-prior"
DEFAULT_BINS = "default"
_MAX_FAILURES_SHOWN = 10


@dataclass(frozen=True)
class PriorConfig:
    """What the prior stage needs."""

    shards_dir: str  # output folder of the preprocess stage (holds manifest.json)
    out: str  # PRIOR.npz (siblings .json, .png), or a folder (ab_prior.npz, .json, .png)
    bins: str = DEFAULT_BINS  # "default" (in-gamut grid of 10) or a .npy of (Q, 2) centres
    split: str = "train"
    sigma: float = SOFT_ENCODE_SIGMA  # smoothing of the counts (Sec. 2.2)
    uniform_mix: float = PRIOR_UNIFORM_MIX  # lambda (Sec. 2.2)
    method: str = COUNT_METHODS[0]
    experiment: str = EXPERIMENT
    tracking_uri: str | None = None  # None: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db
    address: str | None = None  # Ray cluster address; None: $RAY_ADDRESS, else a local Ray
    num_cpus: int | None = None


@dataclass(frozen=True)
class PriorResult:
    """What the stage produced."""

    paths: tuple[Path, Path, Path]  # npz, json, png
    run_id: str  # the MLflow run holding them
    tracking_uri: str
    manifest_digest: str  # of the shards it counted
    skipped: bool  # True when the outputs already existed for the same inputs and options
    num_bins: int = 0
    images: int = 0
    colourless: int = 0
    pixels: int = 0
    seconds: float = 0.0  # counting, wall clock
    blocks: int = 0
    failed_shards: list[dict] = field(default_factory=list)  # {"file", "reason"}


def _check_options(config: PriorConfig) -> None:
    if not (math.isfinite(config.sigma) and config.sigma > 0):
        raise UserError(f"--sigma must be a positive number; got {config.sigma}")
    if not (math.isfinite(config.uniform_mix) and 0.0 <= config.uniform_mix <= 1.0):
        raise UserError(f"--lambda must be in [0, 1]; got {config.uniform_mix}")
    if config.method not in COUNT_METHODS:
        raise UserError(f"--method must be one of {', '.join(COUNT_METHODS)}; got {config.method!r}")


def _split_shards(shards_dir: Path, split: str) -> tuple[dict, list[Path]]:
    """The manifest and the shard files of ``split``; UserError when there are none."""
    if not shards_dir.is_dir():
        raise UserError(f"shards folder {shards_dir} not found (run `colorization preprocess` first)")
    try:
        manifest = read_manifest(shards_dir)
        files = shard_files(shards_dir, split, manifest)
    except FileNotFoundError:
        raise UserError(f"{shards_dir} has no {MANIFEST_NAME}: run `colorization preprocess` first") from None
    except (OutputConflictError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{shards_dir / MANIFEST_NAME} is not a usable shard manifest ({error})") from None
    if not files:
        raise UserError(f"{shards_dir} has no shards in split {split!r}")
    return manifest, files


def _load_bins(spec: str):
    """(bins (Q, 2) float32, a description for the records)."""
    import torch

    from colorization.color.ab_bins import default_ab_bins
    from colorization.io.ab_bins_file import load_ab_bins

    if spec == DEFAULT_BINS:
        return default_ab_bins(AB_GRID_STEP, dtype=torch.float32), f"default (in-gamut grid {AB_GRID_STEP:g})"
    try:
        return load_ab_bins(spec), str(Path(spec).resolve())
    except (OSError, ValueError) as error:
        raise UserError(f"--bins: {error}") from None


def _check_outputs(config: PriorConfig, inputs: list[str | Path]) -> tuple[Path, Path, Path]:
    """The three output paths, checked: a folder ``--out`` may not be a file, a ``.npz`` one not a folder."""
    out = Path(config.out)
    if out.suffix != ".npz":
        check_output_dir(out, inputs=inputs, what="--out")
    paths = prior_paths(out)
    for path in paths:
        check_output_file(path, inputs=inputs, what="--out")
    return paths


def _file_stamps(files: list[Path]) -> list[tuple[str, int, int]]:
    """(path, size, mtime) of each shard: a shard replaced since the last run changes the fingerprint."""
    stamps = []
    for path in files:
        try:
            stat = path.stat()
            stamps.append((str(path), stat.st_size, stat.st_mtime_ns))
        except OSError:
            stamps.append((str(path), -1, 0))
    return stamps


def _fingerprint(digest: str, files: list[Path], bins, config: PriorConfig) -> str:
    """What determines the prior's content (not the count method: both give the same integers)."""
    parts = {
        "manifest_digest": digest,
        "shard_files": _file_stamps(files),
        "bins_sha256": hashlib.sha256(bins.numpy().tobytes()).hexdigest(),
        "split": config.split,
        "sigma": config.sigma,
        "uniform_mix": config.uniform_mix,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _previous_run(paths: tuple[Path, Path, Path], fingerprint: str) -> dict | None:
    """The metadata of an earlier run with the same fingerprint whose three files all exist, else None."""
    if not all(path.is_file() for path in paths):
        return None
    try:
        record = json.loads(paths[1].read_text())
    except (OSError, ValueError):
        return None
    if record.get("stage_fingerprint") == fingerprint and record.get("mlflow_run_id"):
        return record
    return None


def run(config: PriorConfig, *, progress: Callable[[str], None] = print) -> PriorResult:
    """Counts, smooths, writes and logs the prior of ``config`` (or skips it when it exists already).

    Args:
        config: the stage configuration.
        progress: receives one-line progress messages and the summary.

    Returns:
        Output paths, MLflow run id, the shards' manifest digest, counts, failed shards, and the skipped flag.

    Raises:
        UserError: any problem the user can fix; all but an all-unreadable split are found before Ray starts.
    """
    from colorization.tracking import check_tracking_store

    _check_options(config)
    shards_dir = Path(config.shards_dir).expanduser()
    manifest, files = _split_shards(shards_dir, config.split)
    bins, bins_source = _load_bins(config.bins)
    inputs = [shards_dir] + ([config.bins] if config.bins != DEFAULT_BINS else [])
    paths = _check_outputs(config, inputs)
    tracking_uri = check_tracking_store(config.tracking_uri)
    digest = manifest_digest(shards_dir / MANIFEST_NAME)
    fingerprint = _fingerprint(digest, files, bins, config)
    previous = _previous_run(paths, fingerprint)
    if previous is not None:
        progress(f"prior: skipped, {paths[0]} already holds this prior (MLflow run {previous['mlflow_run_id']})")
        return PriorResult(
            paths, previous["mlflow_run_id"], tracking_uri, digest, True, len(bins),
            previous.get("images", 0), previous.get("colourless_skipped", 0), previous.get("pixels", 0),
            failed_shards=previous.get("failed_shards", []),
        )  # fmt: skip

    from colorization.distributed.data import ab_prior_counts
    from colorization.distributed.runtime import ray_session

    with ray_session(config.address, config.num_cpus):
        totals = ab_prior_counts(files, bins, method=config.method)
    failures = totals["failures"]
    if totals["files"] == 0:
        first = failures[0]
        raise UserError(
            f"no shard of split {config.split!r} in {shards_dir} could be read ({len(failures)} failed; "
            f"first: {first['file']}: {first['reason']})"
        )
    if totals["pixels"] == 0:
        raise UserError(f"split {config.split!r} of {shards_dir} has no colourful images to count")
    start = time.perf_counter()
    run_id = _write_and_log(config, paths, manifest, files, bins, bins_source, totals, fingerprint, digest)
    result = PriorResult(
        paths, run_id, tracking_uri, digest, False, len(bins), totals["images"], totals["colourless"],
        totals["pixels"], totals["seconds"], totals["blocks"], failures,
    )  # fmt: skip
    progress(format_summary(result, time.perf_counter() - start))
    return result


def _write_and_log(config, paths, manifest, files, bins, bins_source, totals, fingerprint, digest) -> str:
    """Opens the MLflow run, writes the three files (with the run id inside) and logs them; returns the run id."""
    import mlflow
    import torch

    from colorization.color.ab_prior import rebalance_weights, smooth_ab_prior
    from colorization.io.prior_file import save_ab_prior
    from colorization.tracking import configure_tracking

    counts = torch.from_numpy(totals["counts"])
    prior = smooth_ab_prior(counts, bins, sigma=config.sigma)
    weights = rebalance_weights(prior, uniform_mix=config.uniform_mix)
    shards_dir = Path(config.shards_dir).expanduser().resolve()
    pixels_per_s = totals["pixels"] / max(totals["seconds"], 1e-9)
    configure_tracking(config.experiment, config.tracking_uri)
    with mlflow.start_run(run_name=f"ab-prior-{config.split}") as run:
        metadata = {
            "shards": str(shards_dir),
            "split": config.split,
            "shard_files": len(files),
            "failed_shards": totals["failures"],
            "bins_source": bins_source,
            "sigma": config.sigma,
            "uniform_mix": config.uniform_mix,
            "colourless_threshold": COLOURLESS_AB_THRESHOLD,
            "count_method": config.method,
            "images": totals["images"],
            "colourless_skipped": totals["colourless"],
            "pixels": totals["pixels"],
            "preprocess_config": manifest["config"],
            "manifest_digest": digest,
            "stage_fingerprint": fingerprint,
            "mlflow_run_id": run.info.run_id,
        }
        save_ab_prior(
            paths[0], counts=totals["counts"], prior=prior.numpy(), weights=weights.numpy(), bins=bins.numpy(),
            metadata=metadata,
        )  # fmt: skip
        mlflow.set_tag("colorization.stage", "prior")
        mlflow.log_params(
            {
                "shards": str(shards_dir),
                "split": config.split,
                "shard_files": len(files),
                "bins_source": bins_source,
                "num_bins": len(bins),
                "sigma": config.sigma,
                "lambda": config.uniform_mix,
                "colourless_threshold": COLOURLESS_AB_THRESHOLD,
                "count_method": config.method,
                "crop_size": manifest["config"]["size"],
                "manifest_digest": digest,
            }
        )
        mlflow.log_metrics(
            {
                "images": totals["images"],
                "colourless_skipped": totals["colourless"],
                "pixels": totals["pixels"],
                "failed_shards": len(totals["failures"]),
                "count_seconds": totals["seconds"],
                "count_task_seconds": totals["task_seconds"],
                "pixels_per_second": pixels_per_s,
                "bins_seen": int((totals["counts"] > 0).sum()),
                "max_weight": float(weights.max()),
            }
        )
        for path in paths:
            mlflow.log_artifact(str(path), artifact_path="prior")
        mlflow.log_artifact(str(shards_dir / MANIFEST_NAME), artifact_path="shards")
        return run.info.run_id


def format_summary(result: PriorResult, writing_s: float = 0.0) -> str:
    """Counts and throughput, failed shards by name, the files written and the MLflow run."""
    pixels_per_s = result.pixels / max(result.seconds, 1e-9)
    lines = [
        f"prior: {result.images} images ({result.colourless} colourless skipped), {result.pixels:,} pixels "
        f"into {result.num_bins} bins: counted in {result.seconds:.1f} s = {pixels_per_s:,.0f} pixels/s "
        f"({result.blocks} tasks; {writing_s:.1f} s writing and MLflow logging)"
    ]
    if result.failed_shards:
        lines.append(f"  {len(result.failed_shards)} shard(s) could not be read and were left out:")
        for failure in result.failed_shards[:_MAX_FAILURES_SHOWN]:
            lines.append(f"    {failure['file']}: {failure['reason']}")
        if len(result.failed_shards) > _MAX_FAILURES_SHOWN:
            lines.append(f"    ... {len(result.failed_shards) - _MAX_FAILURES_SHOWN} more in {result.paths[1]}")
    lines.append("  wrote " + ", ".join(str(path) for path in result.paths))
    lines.append(f"  MLflow run {result.run_id} at {result.tracking_uri}")
    return "\n".join(lines)
