"""What every workflow shares: its user-facing error, starting or joining Ray, and the ``main`` around ``run``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable


class WorkflowError(Exception):
    """A user-facing failure (bad input, conflicting output): printed as one line, exit status 2."""


def init_ray(address: str | None, num_cpus: int | None) -> bool:
    """Starts or joins Ray unless it is already up (tests, a parent workflow); True when this call started it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    if ray.is_initialized():
        return False
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address)  # a cluster decides its own CPUs
    else:
        ray.init(num_cpus=num_cpus, include_dashboard=False)
    ray.data.DataContext.get_current().enable_progress_bars = False  # progress lines come from the job itself
    return True


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
