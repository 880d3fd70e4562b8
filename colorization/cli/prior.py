"""``colorization prior SHARDS --out PRIOR``: the empirical ab prior and rebalancing weights, logged to MLflow.

A thin front for :mod:`colorization.stages.prior` (see docs/data-pipeline.md): counts the training split's
colourful pixels into the ab bins (``--bins default`` or a ``.npy`` of centres) with Ray Data, exactly; writes
PRIOR.npz, PRIOR.json and PRIOR.png (PRIOR/ab_prior.* when PRIOR is a directory); logs them as an MLflow run
($MLFLOW_TRACKING_URI, else ./mlflow.db). Unreadable shards are named, counted and left out; a rerun with the
same shards and options is skipped. ``workflows/prior.py`` takes the same arguments (plus ``--smoke-test``).
"""

from __future__ import annotations

import argparse

from colorization.io.shards import COUNT_METHODS
from colorization.stages.prior import EXPERIMENT, PriorConfig, run as run_stage

_DESCRIPTION = "Empirical ab prior and rebalancing weights from Lab shards, with Ray Data and MLflow."
_DEFAULTS = PriorConfig(shards_dir="", out="")


def add_arguments(parser: argparse.ArgumentParser, *, optional_paths: bool = False) -> None:
    """The prior arguments, shared by ``colorization prior`` and ``workflows/prior.py``.

    Args:
        parser: where to add them.
        optional_paths: SHARDS and --out may be omitted (the workflow's ``--smoke-test`` supplies them).
    """
    parser.add_argument(
        "shards", nargs="?" if optional_paths else None, help="output directory of `preprocess` (holds manifest.json)"
    )
    parser.add_argument(
        "--out",
        required=not optional_paths,
        help="PRIOR.npz (+ .json, .png beside it), or a directory (ab_prior.npz, .json, .png)",
    )
    parser.add_argument(
        "--bins", default=_DEFAULTS.bins, help="'default' (in-gamut grid of 10) or a .npy of (Q, 2) centres"
    )
    parser.add_argument("--split", default=_DEFAULTS.split, help="split to count (default %(default)s)")
    parser.add_argument("--sigma", type=float, default=_DEFAULTS.sigma, help="smoothing sigma (default %(default)s)")
    parser.add_argument(
        "--lambda",
        dest="uniform_mix",
        type=float,
        default=_DEFAULTS.uniform_mix,
        help="uniform mix (default %(default)s)",
    )
    parser.add_argument("--method", choices=COUNT_METHODS, default=_DEFAULTS.method, help=argparse.SUPPRESS)
    parser.add_argument("--experiment", default=EXPERIMENT, help="MLflow experiment (default %(default)s)")
    parser.add_argument(
        "--tracking-uri", default=None, help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite)"
    )
    parser.add_argument("--num-cpus", type=int, default=None, help="CPUs for a local Ray (default: all)")
    parser.add_argument(
        "--address", default=None, help="Ray cluster address (default: $RAY_ADDRESS, else start Ray locally)"
    )


def config_from_args(args: argparse.Namespace) -> PriorConfig:
    """The stage configuration for parsed arguments."""
    return PriorConfig(
        shards_dir=args.shards,
        out=args.out,
        bins=args.bins,
        split=args.split,
        sigma=args.sigma,
        uniform_mix=args.uniform_mix,
        method=args.method,
        experiment=args.experiment,
        tracking_uri=args.tracking_uri,
        address=args.address,
        num_cpus=args.num_cpus,
    )


def run(args: argparse.Namespace) -> int:
    """Runs the stage; user errors raise :class:`colorization.errors.UserError`."""
    run_stage(config_from_args(args))
    return 0


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization prior``."""
    parser = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser
