"""Ray job: an image folder or ImageNet tree -> Lab Parquet shards + manifest.json (docs/data-pipeline.md).

Locally (starts Ray on this machine)::

    python workflows/preprocess.py ../shared/data/imagenet-sample/dev out/dev-256 --num-cpus 2
    colorization preprocess ../shared/data/imagenet-sample/dev out/dev-256        # same, via the CLI

On a cluster (input and output on a filesystem mounted at the same path on every node)::

    ray job submit --address http://HEAD:8265 --working-dir . -- \\
        python workflows/preprocess.py /mnt/imagenet /mnt/shards/imagenet-256

Smoke test (scikit-image's bundled photos plus two broken files, < 1 minute)::

    python workflows/preprocess.py --smoke-test
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/preprocess.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.io.images import DEFAULT_MAX_PIXELS, IMAGE_EXTENSIONS  # noqa: E402
from colorization.io.manifest import MANIFEST_NAME, OutputConflictError, PreprocessConfig, read_label_file  # noqa: E402
from colorization.io.shards import DEFAULT_ROW_GROUP_SIZE  # noqa: E402
from workflows.common import WorkflowError, init_ray, run_main  # noqa: E402

DEFAULTS = PreprocessConfig(input_root="/")
SMOKE_SIZE = 64
_SMOKE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "retina", "coins")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The preprocess arguments (shared with ``colorization preprocess``)."""
    parser.add_argument("input", nargs="?", help="image folder (searched recursively) or ImageNet root (train/, val/)")
    parser.add_argument("output", nargs="?", help="output directory for the shards and manifest.json")
    parser.add_argument("--size", type=int, default=DEFAULTS.size, help="crop side in pixels (default %(default)s)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="use only N files (a deterministic sample)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULTS.val_fraction,
        help="share of files hashed to 'val' (default %(default)s)",
    )
    parser.add_argument(
        "--shard-mb",
        type=float,
        default=DEFAULTS.target_shard_mb,
        help="target uncompressed MB per shard (default %(default)s)",
    )
    parser.add_argument(
        "--labels", default=None, help="label file for flat folders: '<file> <wnid>' lines or LOC_val_solution.csv"
    )
    parser.add_argument(
        "--max-pixels", type=int, default=DEFAULT_MAX_PIXELS, help="refuse larger images as decompression bombs"
    )
    parser.add_argument("--row-group-size", type=int, default=DEFAULT_ROW_GROUP_SIZE, help=argparse.SUPPRESS)
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else start Ray locally)"
    )
    parser.add_argument(
        "--smoke-test", action="store_true", help="run on a few bundled sample images in a temp directory"
    )


def write_smoke_images(directory: str | Path) -> Path:
    """scikit-image's bundled photos (colour, grey, PNG, JPEG) plus an empty and a non-image file."""
    from PIL import Image
    from skimage import data

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name in _SMOKE_IMAGES:
        array = getattr(data, name)()
        suffix = ".jpg" if name in ("rocket", "hubble_deep_field", "retina") else ".png"
        Image.fromarray(array).save(directory / f"{name}{suffix}")
    (directory / "broken").mkdir(exist_ok=True)
    (directory / "broken" / "empty.jpg").write_bytes(b"")
    (directory / "broken" / "notes.jpg").write_text("not an image\n")
    return directory


def _config_from_args(args: argparse.Namespace, input_root: Path) -> PreprocessConfig:
    if args.labels:
        try:
            read_label_file(args.labels)  # fail now, not in the middle of the job
        except (OSError, ValueError, KeyError) as error:
            raise WorkflowError(f"label file {args.labels}: {error}") from None
    try:
        return PreprocessConfig(
            input_root=str(input_root.resolve()),
            size=args.size,
            val_fraction=args.val_fraction,
            target_shard_mb=args.shard_mb,
            limit=args.limit,
            labels_file=str(Path(args.labels).resolve()) if args.labels else None,
            max_pixels=args.max_pixels,
            row_group_size=args.row_group_size,
        )
    except ValueError as error:
        raise WorkflowError(str(error)) from None


def format_summary(manifest: dict, output_dir: str | Path, max_failures: int = 20) -> str:
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


def run(args: argparse.Namespace) -> int:
    """Runs the job for parsed arguments; raises WorkflowError for user-facing problems."""
    temporary = None
    if args.smoke_test:
        temporary = tempfile.mkdtemp(prefix="colorization-preprocess-smoke-")
        input_root = write_smoke_images(Path(temporary) / "images")
        output_dir = Path(args.output) if args.output else Path(temporary) / "shards"
        args.size = min(args.size, SMOKE_SIZE)
        args.shard_mb = min(args.shard_mb, 0.05)
    else:
        if not args.input or not args.output:
            raise WorkflowError("INPUT and OUTPUT are required (or use --smoke-test)")
        input_root, output_dir = Path(args.input), Path(args.output)
    if not input_root.exists():
        raise WorkflowError(f"input not found: {input_root}")
    config = _config_from_args(args, input_root)

    from colorization.distributed.data import preprocess_to_shards

    started_ray = init_ray(args.address, args.num_cpus)
    try:
        manifest = preprocess_to_shards(config, output_dir)
    except OutputConflictError as error:
        raise WorkflowError(str(error)) from None
    except FileNotFoundError as error:  # nothing to do
        raise WorkflowError(f"{error} (image extensions: {' '.join(IMAGE_EXTENSIONS)})") from None
    finally:
        if started_ray:
            import ray

            ray.shutdown()
    print(format_summary(manifest, output_dir))
    if temporary and not args.output:
        shutil.rmtree(temporary, ignore_errors=True)
        print("  (smoke test: temporary files removed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("preprocess", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
