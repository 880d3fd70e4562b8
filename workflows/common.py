"""What every workflow shares: its user-facing error, starting or joining Ray, and the ``main`` around ``run``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from colorization.distributed.runtime import init_ray  # noqa: F401  (re-exported for the workflows)
from colorization.errors import UserError

WorkflowError = UserError  # the workflows' name for the project-wide user-facing error


def run_main(
    name: str,
    description: str,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    run: Callable[[argparse.Namespace], int],
    argv: list[str] | None,
) -> int:
    """Parses ``argv`` with the workflow's arguments and runs it; a WorkflowError becomes one line and exit 2."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except WorkflowError as error:
        print(f"{name}: error: {error}", file=sys.stderr)
        return 2
