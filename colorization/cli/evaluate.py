"""``colorization evaluate``: score models and the grey baseline on one split, with one protocol.

Builds an :class:`~colorization.stages.evaluate.EvaluateConfig` and runs the stage (``workflows/evaluate.py`` is
the same stage as a Ray job). The report (``report.json``, ``report.md``, ``report.csv``, ``temperature_sweep.png``,
``samples.png``) lands in ``--out``; the table is also printed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from colorization.evaluation.protocol import EVAL_SIZE
from colorization.evaluation.report import RECOMMENDATION_AUC_MARGIN

DESCRIPTION = (
    "Score models (checkpoints or models:/NAME@ALIAS) and the grey baseline on images or Lab shards: AuC, "
    "rebalanced AuC, PSNR, colourfulness for every decoder and temperature, one network pass per image. "
    "Protocol: shorter side 256, centre crop, colourless truths excluded and counted (docs/evaluation.md)."
)


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers; got {text!r}") from None


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The evaluate arguments (shared with ``workflows/evaluate.py``)."""
    parser.add_argument("--model", dest="models", action="append", default=[], metavar="CKPT|models:/NAME@ALIAS",
                        help="a model to score (repeat for several); the grey baseline is always included")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--images", type=Path, metavar="DIR", help="folder of images (the protocol crops them)")
    source.add_argument("--shards", type=Path, metavar="DIR", help="output folder of `colorization preprocess`")
    parser.add_argument("--split", default="val", help="split of --shards to score (default %(default)s)")
    parser.add_argument("--bins", type=Path, metavar="FILE", help="(Q, 2) ab bins .npy for the rebalanced AuC "
                        "(default: the in-gamut grid of step 10)")
    parser.add_argument("--out", type=Path, metavar="DIR", help="report folder (not inside an input)")
    parser.add_argument("--size", type=int, default=EVAL_SIZE, help="protocol crop size (default %(default)s)")
    parser.add_argument("--decoders", type=_names, metavar="A,B", help="decoders to sweep (default: per family)")
    parser.add_argument("--temperatures", type=_floats, metavar="T1,T2",
                        help="annealed-mean temperatures (default 0.1,0.2,0.38,0.6,1.0)")
    parser.add_argument("--limit", type=int, help="score only the first N images")
    ray_group = parser.add_mutually_exclusive_group()
    ray_group.add_argument("--ray", dest="use_ray", action="store_true", default=None, help="use a Ray actor pool")
    ray_group.add_argument("--no-ray", dest="use_ray", action="store_false", help="one process, no Ray")
    parser.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors holding the models (default %(default)s)")
    parser.add_argument("--batch-size", type=int, default=16, help="images per batch (default %(default)s)")
    parser.add_argument("--device", default="cpu", help="torch device without Ray (cpu, cuda, auto)")
    parser.add_argument("--margin", type=float, default=RECOMMENDATION_AUC_MARGIN,
                        help="AuC points the recommended T may lose vs the best (default %(default)s)")
    parser.add_argument("--write-temperature", type=Path, metavar="CKPT",
                        help="write a copy of the one --model checkpoint with the recommended T as its default")
    parser.add_argument("--no-mlflow", dest="mlflow", action="store_false", help="do not log an MLflow run")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default $MLFLOW_TRACKING_URI or sqlite)")
    parser.add_argument("--experiment", default="colorization-evaluation", help="MLflow experiment")
    parser.add_argument("--samples", type=int, default=6, help="rows of the sample grid (0: none)")


def config_from_args(args: argparse.Namespace):
    """The stage config of parsed arguments (UserError for a missing --out or input)."""
    from colorization.errors import UserError
    from colorization.stages.evaluate import EvaluateConfig

    if args.out is None:
        raise UserError("--out DIR is required (the report folder)")
    return EvaluateConfig(
        models=tuple(args.models), out=args.out, images=args.images, shards=args.shards, split=args.split,
        bins=args.bins, size=args.size, decoders=args.decoders, temperatures=args.temperatures, limit=args.limit,
        use_ray=args.use_ray, address=args.address, num_cpus=args.num_cpus, actors=args.actors,
        batch_size=args.batch_size, device=args.device, margin=args.margin,
        write_temperature=args.write_temperature, mlflow=args.mlflow, tracking_uri=args.tracking_uri,
        experiment=args.experiment, samples=args.samples,
    )


def print_result(result) -> None:
    """The table, the recommendations and the failures, for a terminal."""
    from colorization.evaluation.report import markdown_table

    print(markdown_table(result.rows), end="")
    for name, chosen in result.recommendations.items():
        if chosen is not None:
            print(f"recommended T for {name}: {chosen['temperature']:g} (AuC {chosen['auc']:.2f}, "
                  f"rebalanced AuC {chosen['rebalanced_auc']:.2f}; best AuC {chosen['best_auc']:.2f}, "
                  f"margin {chosen['margin']:g})")
    if result.failures:
        print(f"{len(result.failures)} input(s) could not be read (listed in report.json):", file=sys.stderr)
        for source, reason in result.failures:
            print(f"  {source}: {reason}", file=sys.stderr)
    print(f"report: {result.out} ({result.seconds:.1f} s{', Ray' if result.used_ray else ''}"
          f"{', MLflow run ' + result.mlflow_run_id if result.mlflow_run_id else ''})", file=sys.stderr)


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization evaluate``."""
    parser = subparsers.add_parser(name, help=help_text, description=DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from colorization.stages.evaluate import run as run_stage

    result = run_stage(config_from_args(args))
    print_result(result)
    return 0
