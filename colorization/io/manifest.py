"""Planning a preprocessing run and its ``manifest.json``: listing, labels, the split, shard assignment, reruns.

Pure Python (no Ray): every decision here is a function of the configuration and the listed files, so the same
input and configuration always give the same shards, on one machine or on a cluster.

* Listing: every file under the input root (recursively) with an image extension (JPEG, PNG, WebP, BMP, TIFF, GIF;
  ``colorization.io.images.IMAGE_EXTENSIONS``). Every listed file ends up either written or in the failures table.
* Synset: a path component that is a WordNet id (``train/n01440764/...``), else a file-name prefix
  ``n01440764_...`` (ImageNet train files and the dev sample), else the label file (``--labels``: lines
  ``<file name> <wnid>``, or the Kaggle ``LOC_val_solution.csv``). ``label`` is the synset's index in the sorted
  list of synsets found (stored in the manifest; torchvision's ``ImageFolder`` order for a full ImageNet tree).
* Split: the input is an ImageNet tree when it has both ``train/`` and ``val/`` folders; then ``val/`` (the
  ILSVRC-2012 validation set, the test set of both papers: ctest10k is drawn from it) becomes split ``test``.
  Every other file goes to ``val`` when ``blake2b(relative path)`` as a fraction of 2**64 is below
  ``val_fraction``, else to ``train``: stable under reordering, additions and machine changes.
* Shards: within a split, files are ordered by a second hash of the path (so each shard mixes classes) and cut
  into runs of ``rows_per_shard = target_shard_mb * 2**20 // (3 * size**2)`` (the uncompressed payload).
  ``--limit N`` keeps the N files that come first in that hash order: a deterministic, class-mixed sample.
* Reruns: the manifest stores the configuration. A different configuration in an existing output is refused,
  naming the fields that differ. The same configuration reuses every shard whose digest (configuration + the
  sources' paths, sizes and modification times) matches its report; the others are built again.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from colorization import __version__
from colorization.io.images import DEFAULT_MAX_PIXELS, list_image_files
from colorization.io.safe_outputs import write_json_atomic  # re-exported: older callers import it from here
from colorization.io.shards import (
    DEFAULT_COMPRESSION,
    DEFAULT_ROW_GROUP_SIZE,
    QUANTIZATION,
    SCHEMA_VERSION,
    SPLITS,
    STAGES,
    ShardReport,
    ShardTask,
    SourceFile,
    file_digest,
)

__all__ = [
    "MANIFEST_NAME",
    "REPORTS_DIR",
    "PreprocessConfig",
    "OutputConflictError",
    "list_sources",
    "synset_for_path",
    "read_label_file",
    "split_for_path",
    "plan_shards",
    "prepare_output_dir",
    "reusable_reports",
    "report_path",
    "remove_stale_shards",
    "input_base_dir",
    "is_imagenet_tree",
    "build_manifest",
    "read_manifest",
    "write_json_atomic",
    "shard_files",
]

MANIFEST_NAME = "manifest.json"
REPORTS_DIR = "_reports"  # one JSON per finished shard; "_" keeps it out of pyarrow.dataset discovery
MANIFEST_FORMAT = "colorization-lab-shards"
_WNID = re.compile(r"^n\d{8}$")
_WNID_PREFIX = re.compile(r"^(n\d{8})_")
_SPLIT_SALT = b"colorization/split"
_ORDER_SALT = b"colorization/order"
_BYTES_PER_PIXEL = 3  # uint8 L + 2 x int8 ab


class OutputConflictError(ValueError):
    """The output directory holds something this run must not overwrite (a different config, foreign files)."""


@dataclass(frozen=True)
class PreprocessConfig:
    """Everything that determines the shards' content (and nothing that does not, such as the CPU count)."""

    input_root: str  # absolute
    size: int = 256
    val_fraction: float = 0.05
    target_shard_mb: float = 64.0
    limit: int | None = None
    labels_file: str | None = None  # absolute, or None
    max_pixels: int = DEFAULT_MAX_PIXELS
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE
    compression: str = DEFAULT_COMPRESSION
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        if self.size < 8:
            raise ValueError(f"size must be at least 8 pixels; got {self.size}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError(f"val_fraction must be in [0, 1); got {self.val_fraction}")
        if not self.target_shard_mb > 0:
            raise ValueError(f"target_shard_mb must be positive; got {self.target_shard_mb}")
        if self.limit is not None and self.limit < 1:
            raise ValueError(f"limit must be a positive number of files; got {self.limit}")
        if self.row_group_size < 1:
            raise ValueError(f"row_group_size must be positive; got {self.row_group_size}")

    @property
    def rows_per_shard(self) -> int:
        return max(1, int(self.target_shard_mb * 2**20) // (_BYTES_PER_PIXEL * self.size**2))

    def to_dict(self) -> dict:
        return asdict(self)

    def fingerprint(self) -> str:
        return file_digest([json.dumps(self.to_dict(), sort_keys=True)])


# ---------------------------------------------------------------------------------------------------------------
# Listing, labels, split
# ---------------------------------------------------------------------------------------------------------------


def _unit_hash(relative_path: str, salt: bytes) -> float:
    digest = hashlib.blake2b(relative_path.encode("utf-8"), digest_size=8, salt=salt[:16]).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def is_imagenet_tree(input_root: str | Path) -> bool:
    root = Path(input_root)
    return (root / "train").is_dir() and (root / "val").is_dir()


def split_for_path(relative_path: str, val_fraction: float, imagenet_tree: bool = False) -> str:
    """ "train", "val" or "test" for a path relative to the input root (see the module doc)."""
    if imagenet_tree and relative_path.split("/", 1)[0] == "val":
        return "test"
    return "val" if _unit_hash(relative_path, _SPLIT_SALT) < val_fraction else "train"


def read_label_file(path: str | Path) -> dict[str, str]:
    """File stem -> synset, from ``<file name> <wnid>`` lines or a Kaggle ``LOC_val_solution.csv``."""
    path = Path(path)
    labels: dict[str, str] = {}
    with path.open(newline="") as stream:
        first = stream.readline()
        stream.seek(0)
        if first.lower().startswith("imageid,"):
            for record in csv.DictReader(stream):
                labels[Path(record["ImageId"]).stem] = record["PredictionString"].split()[0]
        else:
            for number, line in enumerate(stream, 1):
                parts = line.replace(",", " ").split()
                if not parts:
                    continue
                if len(parts) < 2 or not _WNID.match(parts[1]):
                    raise ValueError(f"{path}:{number}: expected '<file name> <wnid>'; got {line.strip()!r}")
                labels[Path(parts[0]).stem] = parts[1]
    return labels


def synset_for_path(relative_path: str, labels: dict[str, str] | None = None) -> str | None:
    """WordNet id from the folders, the file-name prefix or the label file; None when unknown."""
    parts = relative_path.split("/")
    for part in reversed(parts[:-1]):
        if _WNID.match(part):
            return part
    name = parts[-1]
    match = _WNID_PREFIX.match(name)
    if match:
        return match.group(1)
    if labels:
        return labels.get(Path(name).stem)
    return None


def list_sources(config: PreprocessConfig) -> tuple[list[SourceFile], list[str]]:
    """Lists the input (sorted by the order hash, ``limit`` applied) -> (sources, sorted synsets found)."""
    root = Path(config.input_root)
    if not root.exists():
        raise FileNotFoundError(f"input not found: {root}")
    labels = read_label_file(config.labels_file) if config.labels_file else None
    imagenet_tree = is_imagenet_tree(root)
    base = root.parent if root.is_file() else root
    entries = []
    problems: dict[str, str] = {}
    for path in list_image_files(root):
        relative = path.relative_to(base).as_posix()
        if not _is_utf8(relative):  # Parquet strings and JSON are UTF-8: such a file becomes a failure row
            relative = os.fsencode(relative).decode("utf-8", "backslashreplace")
            problems[relative] = "the file name is not valid UTF-8; rename the file"
        entries.append((_unit_hash(relative, _ORDER_SALT), relative, path))
    entries.sort()
    if config.limit is not None:
        entries = entries[: config.limit]
    synsets_by_path = {relative: synset_for_path(relative, labels) for _, relative, _ in entries}
    synsets = sorted({synset for synset in synsets_by_path.values() if synset})
    label_of = {synset: index for index, synset in enumerate(synsets)}
    sources = []
    for _, relative, path in entries:
        try:
            stat = path.stat()
            size_bytes, mtime_ns = stat.st_size, stat.st_mtime_ns
        except OSError:  # vanished since listing (or a dangling link): the shard build records it as unreadable
            size_bytes, mtime_ns = -1, 0
        synset = synsets_by_path[relative]
        sources.append(
            SourceFile(
                path=relative,
                split=split_for_path(relative, config.val_fraction, imagenet_tree),
                synset=synset,
                label=label_of.get(synset, -1),
                size_bytes=size_bytes,
                mtime_ns=mtime_ns,
                listing_problem=problems.get(relative, ""),
            )
        )
    return sources, synsets


def _is_utf8(name: str) -> bool:
    """Whether a listed name (undecodable bytes arrive as surrogate escapes) is valid UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def input_base_dir(config: PreprocessConfig) -> Path:
    """The directory the sources' relative paths start from (the root, or its parent for a single file)."""
    root = Path(config.input_root)
    return root.parent if root.is_file() else root


def plan_shards(sources: Iterable[SourceFile], config: PreprocessConfig) -> list[ShardTask]:
    """Cuts each split's sources (in listing order) into shards of ``config.rows_per_shard``."""
    by_split: dict[str, list[SourceFile]] = {split: [] for split in SPLITS}
    for source in sources:
        by_split[source.split].append(source)
    fingerprint = config.fingerprint()
    tasks = []
    for split, split_sources in by_split.items():
        rows = config.rows_per_shard
        for index, start in enumerate(range(0, len(split_sources), rows)):
            chunk = tuple(split_sources[start : start + rows])
            digest = file_digest([fingerprint] + [f"{s.path}|{s.size_bytes}|{s.mtime_ns}|{s.label}" for s in chunk])
            tasks.append(
                ShardTask(file=f"{split}/{split}-{index:05d}.parquet", split=split, sources=chunk, digest=digest)
            )
    return tasks


# ---------------------------------------------------------------------------------------------------------------
# The output directory
# ---------------------------------------------------------------------------------------------------------------


def read_manifest(output_dir: str | Path) -> dict:
    path = Path(output_dir) / MANIFEST_NAME
    with path.open() as stream:
        return json.load(stream)


def _config_differences(stored: dict, wanted: dict) -> list[str]:
    names = [f.name for f in fields(PreprocessConfig)]
    return [
        f"{name}: {stored.get(name)!r} -> {wanted.get(name)!r}"
        for name in names
        if stored.get(name) != wanted.get(name)
    ]


def prepare_output_dir(output_dir: str | Path, config: PreprocessConfig) -> bool:
    """Checks (and creates) the output directory; returns True when it already holds a run of this config.

    Raises:
        OutputConflictError: the directory holds shards of another configuration, or files that are not ours.
    """
    output_dir = Path(output_dir)
    manifest_path = output_dir / MANIFEST_NAME
    if manifest_path.is_file():
        try:
            stored = read_manifest(output_dir)
        except (OSError, json.JSONDecodeError) as error:
            raise OutputConflictError(f"{manifest_path} is unreadable ({error}); use a new output directory") from None
        if stored.get("format") != MANIFEST_FORMAT:
            raise OutputConflictError(
                f"{manifest_path} is not a colorization shard manifest; use a new output directory"
            )
        differences = _config_differences(stored.get("config", {}), config.to_dict())
        if differences:
            raise OutputConflictError(
                f"{output_dir} already holds shards made with a different configuration ("
                + "; ".join(differences)
                + "). Use a new output directory, or delete this one to rebuild it."
            )
        return True
    if output_dir.exists() and any(output_dir.iterdir()):
        raise OutputConflictError(
            f"{output_dir} is not empty and has no {MANIFEST_NAME}; refusing to write shards into it"
        )
    output_dir.mkdir(parents=True, exist_ok=True)
    return False


def reusable_reports(output_dir: str | Path, tasks: Iterable[ShardTask]) -> dict[str, ShardReport]:
    """Reports of shards finished by an earlier run of the same plan (digest and file size match)."""
    output_dir = Path(output_dir)
    reusable = {}
    for task in tasks:
        shard_path = output_dir / task.file
        try:
            report = ShardReport.from_json(report_path(output_dir, task.file).read_text())
            size = shard_path.stat().st_size
        except (OSError, ValueError, TypeError):
            continue
        if report.digest == task.digest and report.bytes == size:
            reusable[task.file] = report
    return reusable


def report_path(output_dir: str | Path, shard_file: str) -> Path:
    return Path(output_dir) / REPORTS_DIR / (shard_file.replace("/", "__") + ".json")


def remove_stale_shards(output_dir: str | Path, tasks: Iterable[ShardTask]) -> list[str]:
    """Deletes our shard files (and reports) that the current plan does not contain, and killed writers' temp files."""
    output_dir = Path(output_dir)
    planned = {task.file for task in tasks}
    removed = []
    for split in SPLITS:
        for leftover in (output_dir / split).glob(f".{split}-*.parquet.*.tmp"):  # from a killed writer
            leftover.unlink(missing_ok=True)
        for path in sorted((output_dir / split).glob(f"{split}-*.parquet")):
            relative = f"{split}/{path.name}"
            if relative not in planned:
                path.unlink()
                report_path(output_dir, relative).unlink(missing_ok=True)
                removed.append(relative)
    return removed


def build_manifest(
    config: PreprocessConfig,
    tasks: list[ShardTask],
    reports: dict[str, ShardReport],
    synsets: list[str],
    *,
    status: str,
    timing: dict | None = None,
) -> dict:
    """The manifest: config, schema, counts (listed = written + failed, overall and per split), shards, failures."""
    counts = {"listed": 0, "written": 0, "failed": 0, "colourless": 0, "bytes": 0}
    splits = {split: {**counts, "shards": 0} for split in SPLITS}
    shards, failures = [], []
    for task in tasks:
        report = reports.get(task.file)
        if report is None:
            continue
        split = splits[task.split]
        split["listed"] += report.listed
        split["written"] += report.written
        split["failed"] += len(report.failures)
        split["colourless"] += report.colourless
        split["bytes"] += report.bytes
        split["shards"] += 1
        shards.append(
            {
                "file": task.file,
                "split": task.split,
                "rows": report.written,
                "colourless": report.colourless,
                "bytes": report.bytes,
                "digest": task.digest,
            }
        )
        failures.extend(report.failures)
    for key in counts:
        counts[key] = sum(split[key] for split in splits.values())
    reasons: dict[str, int] = {}
    for failure in failures:
        reasons[failure["reason"]] = reasons.get(failure["reason"], 0) + 1
    return {
        "format": MANIFEST_FORMAT,
        "schema_version": SCHEMA_VERSION,
        "status": status,
        "created_by": f"colorization {__version__}",
        "config": config.to_dict(),
        "rows_per_shard": config.rows_per_shard,
        "quantization": QUANTIZATION,
        "counts": counts,
        "splits": {name: split for name, split in splits.items() if split["listed"] or split["shards"]},
        "failure_reasons": dict(sorted(reasons.items())),
        "failures": sorted(failures, key=lambda failure: failure["path"]),
        "synsets": synsets,
        "shards": shards,
        "stage_seconds": {  # seconds spent in each stage inside the shard tasks, summed over shards
            stage: round(sum(report.seconds.get(stage, 0.0) for report in reports.values()), 3) for stage in STAGES
        },
        "timing": timing or {},
    }


def shard_files(output_dir: str | Path, split: str = "train", manifest: dict | None = None) -> list[Path]:
    """The shard files of one split, from the manifest (a complete run), sorted."""
    output_dir = Path(output_dir)
    manifest = manifest if manifest is not None else read_manifest(output_dir)
    if manifest.get("status") != "complete":
        raise OutputConflictError(
            f"{output_dir} holds an unfinished run (status {manifest.get('status')!r}); rerun preprocess"
        )
    return sorted(output_dir / shard["file"] for shard in manifest["shards"] if shard["split"] == split)
