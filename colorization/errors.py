"""The one exception type for user-facing failures, and the one way every command and workflow reports failures.

Anything a user can cause (a missing file, a bad argument, an output that would replace an input, an untrusted
checkpoint that fails validation, an unreachable tracking server) raises :class:`UserError` with one line that
names the thing and the reason. :func:`run_reporting` is the single place that turns failures into output: a
UserError prints ``<prog>: error: <line>`` and exits with status 2; any other exception is a bug and prints one
short line with its type and a hint to rerun with ``--debug`` (exit 1); ``--debug`` re-raises for the traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Callable

USER_ERROR_EXIT_STATUS = 2
BUG_EXIT_STATUS = 1
INTERRUPTED_EXIT_STATUS = 130  # the shell's convention for SIGINT
DEBUG_FLAG = "--debug"
_MAX_BUG_CHARS = 300  # a bug's one line stays readable even when the exception carries a whole log
_MAX_USER_CHARS = 2000  # a user error may list several problems (commands cap long lists themselves)


class UserError(Exception):
    """A failure the user can fix: printed as one line (never a traceback), exit status 2."""


def one_line(text: str, limit: int = _MAX_BUG_CHARS) -> str:
    """``text`` folded onto one line (newlines become "; "), shortened to ``limit`` characters.

    Args:
        text: any message, possibly multi-line.
        limit: the longest line returned.

    Returns:
        A single line.
    """
    line = "; ".join(part.strip() for part in str(text).splitlines() if part.strip())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def run_reporting(prog: str, func: Callable[[], int | None], *, debug: bool = False) -> int:
    """Runs ``func`` and turns its failures into one line on stderr and an exit status.

    Args:
        prog: how the line starts, e.g. ``"colorization metrics"`` or ``"workflows/prior.py"``.
        func: the command's body; returns an exit status (None counts as 0).
        debug: re-raise every exception instead (the user asked for the traceback).

    Returns:
        ``func``'s status; 2 after a UserError; 1 after any other exception; 130 after Ctrl-C.
    """
    try:
        return int(func() or 0)
    except UserError as error:
        if debug:
            raise
        print(f"{prog}: error: {one_line(str(error), _MAX_USER_CHARS)}", file=sys.stderr)
        return USER_ERROR_EXIT_STATUS
    except KeyboardInterrupt:
        if debug:
            raise
        print(f"{prog}: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT_STATUS
    except Exception as error:  # noqa: BLE001 - anything else is a bug: one line, the traceback on request
        if debug:
            raise
        detail = one_line(f"{type(error).__name__}: {error}")
        print(f"{prog}: error: {detail} (unexpected; rerun with {DEBUG_FLAG} for the traceback)", file=sys.stderr)
        return BUG_EXIT_STATUS


def pop_debug_flag(argv: list[str]) -> tuple[list[str], bool]:
    """``argv`` without ``--debug`` (accepted anywhere before a ``--``), and whether it was there.

    Args:
        argv: command-line arguments.

    Returns:
        (the remaining arguments, whether ``--debug`` was given).
    """
    end = argv.index("--") if "--" in argv else len(argv)
    kept = [arg for arg in argv[:end] if arg != DEBUG_FLAG] + argv[end:]
    return kept, len(kept) != len(argv)
