"""``colorization preprocess INPUT OUTPUT``: image folders -> Lab Parquet shards with Ray Data.

A thin front for ``workflows/preprocess.py`` (same arguments; see docs/data-pipeline.md): starts Ray locally
(``--num-cpus``) or joins ``--address`` / ``$RAY_ADDRESS``, writes ``OUTPUT/<split>/<split>-NNNNN.parquet`` and
``OUTPUT/manifest.json``, and prints progress and a summary. Files that cannot be used are listed in the
manifest's failures table, never dropped; an OUTPUT holding another configuration is refused.
"""

from __future__ import annotations

import argparse

from colorization.cli.main import CommandError

_DESCRIPTION = "Image folders -> Lab Parquet shards + manifest.json, with Ray Data (workflows/preprocess.py)."


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization preprocess`` with the workflow's arguments."""
    from workflows.preprocess import add_arguments

    parser = subparsers.add_parser(name, help=help_text, description=_DESCRIPTION)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from workflows.preprocess import WorkflowError
    from workflows.preprocess import run as run_workflow

    try:
        return run_workflow(args)
    except WorkflowError as error:
        raise CommandError(str(error)) from None
