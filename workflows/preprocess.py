"""Ray job: an image folder or ImageNet tree -> Lab Parquet shards + manifest.json (docs/data-pipeline.md).

A thin entry point for :mod:`colorization.stages.preprocess` (the CLI's ``colorization preprocess`` calls the same
stage). Locally (starts Ray on this machine)::

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
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

if __package__ in (None, ""):  # run as a script (as `ray job submit ... python workflows/preprocess.py` does)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from colorization.cli.preprocess import add_arguments as add_stage_arguments  # noqa: E402
from colorization.cli.preprocess import config_from_args  # noqa: E402
from colorization.errors import UserError  # noqa: E402
from colorization.stages.preprocess import run as run_stage  # noqa: E402
from workflows.common import run_main  # noqa: E402

SMOKE_SIZE = 64
_SMOKE_SHARD_MB = 0.05
_SMOKE_IMAGES = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "retina", "coins")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The stage's arguments plus ``--smoke-test``."""
    add_stage_arguments(parser, optional_paths=True)
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


def run(args: argparse.Namespace) -> int:
    """Runs the stage for parsed arguments (in a temporary folder for ``--smoke-test``)."""
    if not args.smoke_test:
        if not args.input or not args.output:
            raise UserError("INPUT and OUTPUT are required (or use --smoke-test)")
        run_stage(config_from_args(args))
        return 0
    temporary = Path(tempfile.mkdtemp(prefix="colorization-preprocess-smoke-"))
    try:
        args.input = str(write_smoke_images(temporary / "images"))
        keep = bool(args.output)
        args.output = args.output or str(temporary / "shards")
        config = dataclasses.replace(
            config_from_args(args), size=min(args.size, SMOKE_SIZE), target_shard_mb=min(args.shard_mb, _SMOKE_SHARD_MB)
        )
        run_stage(config)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    if not keep:
        print("  (smoke test: temporary files removed)")
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_main("preprocess", __doc__.splitlines()[0], add_arguments, run, argv)


if __name__ == "__main__":
    sys.exit(main())
