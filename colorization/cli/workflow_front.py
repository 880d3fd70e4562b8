"""Subcommands that are thin fronts for a Ray workflow (``workflows/<name>.py``): same arguments, same run."""

from __future__ import annotations

import argparse
import importlib

from colorization.cli.errors import CommandError


def add_workflow_parser(
    subparsers: argparse._SubParsersAction, name: str, help_text: str, description: str, workflow: str
) -> argparse.ArgumentParser:
    """Registers ``name`` with the arguments of ``workflows.<workflow>``; running it runs the workflow."""
    module = importlib.import_module(f"workflows.{workflow}")
    parser = subparsers.add_parser(name, help=help_text, description=description)
    module.add_arguments(parser)
    parser.set_defaults(func=lambda args: run_workflow(module, args))
    return parser


def run_workflow(module, args: argparse.Namespace) -> int:
    """Runs a workflow module's ``run``; its user-facing WorkflowError becomes a CommandError."""
    from workflows.common import WorkflowError

    try:
        return module.run(args)
    except WorkflowError as error:
        raise CommandError(str(error)) from None
