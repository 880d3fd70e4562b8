"""Kept for the subcommands' imports: their user-facing error is the project-wide :class:`UserError`."""

from colorization.errors import UserError

CommandError = UserError
