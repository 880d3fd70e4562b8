"""``colorization prior SHARDS --out PRIOR``: the empirical ab prior and rebalancing weights, logged to MLflow.

A thin front for ``workflows/prior.py`` (same arguments; see docs/data-pipeline.md): counts the training split's
colourful pixels into the ab bins (``--bins default`` or a ``.npy`` of centres) with Ray Data, exactly; writes
PRIOR.npz, PRIOR.json and PRIOR.png (PRIOR/ab_prior.* when PRIOR is a directory); logs them as an MLflow run
($MLFLOW_TRACKING_URI, else ./mlflow.db).
"""

from __future__ import annotations

import argparse

from colorization.cli.main import CommandError

_DESCRIPTION = (
    "Empirical ab prior and rebalancing weights from Lab shards, with Ray Data and MLflow (workflows/prior.py)."
)


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization prior`` with the workflow's arguments."""
    from workflows.prior import add_arguments

    parser = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from workflows.preprocess import WorkflowError
    from workflows.prior import run as run_workflow

    try:
        return run_workflow(args)
    except WorkflowError as error:
        raise CommandError(str(error)) from None
