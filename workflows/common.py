"""What every workflow shares: its user-facing error, starting or joining Ray, and the ``main`` around ``run``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from colorization.distributed.runtime import init_ray  # noqa: F401  (re-exported for the workflows)
from colorization.errors import DEBUG_FLAG, UserError, pop_debug_flag, run_reporting

WorkflowError = UserError  # the workflows' name for the project-wide user-facing error


def run_main(
    name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """Parses ``argv`` with the workflow's arguments and runs it, reporting failures as the CLI does.

    A UserError becomes one line and exit 2, any other exception one line with a hint and exit 1; ``--debug``
    shows the traceback instead (see :func:`colorization.errors.run_reporting`).
    """
    argv, debug = pop_debug_flag(list(sys.argv[1:] if argv is None else argv))
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the full traceback of any failure")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_reporting(name, lambda: run(args), debug=debug)
