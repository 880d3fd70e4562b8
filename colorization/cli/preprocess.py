"""``colorization preprocess INPUT OUTPUT``: image folders -> Lab Parquet shards with Ray Data.

A thin front for ``workflows/preprocess.py`` (same arguments; see docs/data-pipeline.md): starts Ray locally
(``--num-cpus``) or joins ``--address`` / ``$RAY_ADDRESS``, writes ``OUTPUT/<split>/<split>-NNNNN.parquet`` and
``OUTPUT/manifest.json``, and prints progress and a summary. Files that cannot be used are listed in the
manifest's failures table, never dropped; an OUTPUT holding another configuration is refused.
"""

from __future__ import annotations

import argparse

from colorization.cli.workflow_front import add_workflow_parser

_DESCRIPTION = "Image folders -> Lab Parquet shards + manifest.json, with Ray Data (workflows/preprocess.py)."


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization preprocess`` with the arguments of ``workflows/preprocess.py``."""
    return add_workflow_parser(subparsers, name, help_text, _DESCRIPTION, "preprocess")
