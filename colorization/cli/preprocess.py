"""``colorization preprocess INPUT OUTPUT``: image folders -> Lab Parquet shards with Ray Data.

A thin front for :mod:`colorization.stages.preprocess` (see docs/data-pipeline.md): starts Ray locally
(``--num-cpus``) or joins ``--address`` / ``$RAY_ADDRESS``, writes ``OUTPUT/<split>/<split>-NNNNN.parquet`` and
``OUTPUT/manifest.json``, and prints progress and a summary. Files that cannot be used are listed in the
manifest's failures table, never dropped; an OUTPUT holding another configuration is refused; a rerun over the
same files and configuration is skipped. ``workflows/preprocess.py`` takes the same arguments (plus
``--smoke-test``).
"""

from __future__ import annotations

import argparse

from colorization.stages.preprocess import PreprocessStageConfig, run as run_stage

_DESCRIPTION = "Image folders -> Lab Parquet shards + manifest.json, with Ray Data (colorization.stages.preprocess)."
_DEFAULTS = PreprocessStageConfig(input_root="", output_dir="")


def add_arguments(parser: argparse.ArgumentParser, *, optional_paths: bool = False) -> None:
    """The preprocess arguments, shared by ``colorization preprocess`` and ``workflows/preprocess.py``.

    Args:
        parser: where to add them.
        optional_paths: INPUT and OUTPUT may be omitted (the workflow's ``--smoke-test`` supplies them).
    """
    nargs = "?" if optional_paths else None
    parser.add_argument(
        "input", nargs=nargs, help="image folder (searched recursively) or ImageNet root (train/, val/)"
    )
    parser.add_argument("output", nargs=nargs, help="output directory for the shards and manifest.json")
    parser.add_argument("--size", type=int, default=_DEFAULTS.size, help="crop side in pixels (default %(default)s)")
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    parser.add_argument("--limit", type=int, default=None, help="use only N files (a deterministic sample)")
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=_DEFAULTS.val_fraction,
        help="share of files hashed to 'val' (default %(default)s)",
    )
    parser.add_argument(
        "--shard-mb",
        type=float,
        default=_DEFAULTS.target_shard_mb,
        help="target uncompressed MB per shard (default %(default)s)",
    )
    parser.add_argument(
        "--labels", default=None, help="label file for flat folders: '<file> <wnid>' lines or LOC_val_solution.csv"
    )
    parser.add_argument(
        "--max-pixels", type=int, default=_DEFAULTS.max_pixels, help="refuse larger images as decompression bombs"
    )
    parser.add_argument("--row-group-size", type=int, default=_DEFAULTS.row_group_size, help=argparse.SUPPRESS)
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else start Ray locally)"
    )


def config_from_args(args: argparse.Namespace) -> PreprocessStageConfig:
    """The stage configuration for parsed arguments."""
    return PreprocessStageConfig(
        input_root=args.input,
        output_dir=args.output,
        size=args.size,
        val_fraction=args.val_fraction,
        target_shard_mb=args.shard_mb,
        limit=args.limit,
        labels_file=args.labels,
        max_pixels=args.max_pixels,
        row_group_size=args.row_group_size,
        address=args.address,
        num_cpus=args.num_cpus,
    )


def run(args: argparse.Namespace) -> int:
    """Runs the stage; user errors raise :class:`colorization.errors.UserError`."""
    run_stage(config_from_args(args))
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization preprocess``."""
    parser = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser
