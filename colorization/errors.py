"""The one exception type for user-facing failures, shared by every command, stage and workflow.

Anything a user can cause (a missing file, a bad argument, an output that would replace an input, an untrusted
checkpoint that fails validation, an unreachable tracking server) raises :class:`UserError` with one line that
names the thing and the reason. The CLI and the workflows print that line and exit with status 2; any other
exception is a bug and gets a short message with a hint to rerun with ``--debug``.
"""

from __future__ import annotations

USER_ERROR_EXIT_STATUS = 2


class UserError(Exception):
    """A failure the user can fix: printed as one line (never a traceback), exit status 2."""
