"""The one exception type that subcommands raise for user-facing failures."""


class CommandError(Exception):
    """A user-facing failure: printed as one clear message, never as a traceback."""
