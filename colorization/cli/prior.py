"""``colorization prior SHARDS --out PRIOR``: the empirical ab prior and rebalancing weights, logged to MLflow.

A thin front for ``workflows/prior.py`` (same arguments; see docs/data-pipeline.md): counts the training split's
colourful pixels into the ab bins (``--bins default`` or a ``.npy`` of centres) with Ray Data, exactly; writes
PRIOR.npz, PRIOR.json and PRIOR.png (PRIOR/ab_prior.* when PRIOR is a directory); logs them as an MLflow run
($MLFLOW_TRACKING_URI, else ./mlflow.db).
"""

from __future__ import annotations

import argparse

from colorization.cli.workflow_front import add_workflow_parser

_DESCRIPTION = (
    "Empirical ab prior and rebalancing weights from Lab shards, with Ray Data and MLflow (workflows/prior.py)."
)


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization prior`` with the arguments of ``workflows/prior.py``."""
    return add_workflow_parser(subparsers, name, help_text, _DESCRIPTION, "prior")
