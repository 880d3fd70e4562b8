"""Entry point of the ``colorization`` console script.

Each subcommand lives in ``colorization/cli/<name>.py`` and exposes ``add_parser(subparsers)``, which registers
its arguments and sets ``func`` (taking the parsed namespace, returning an exit code). Modules are imported only
when their command runs, so ``colorization metrics`` never pays for importing Ray.

Failures are reported by :func:`colorization.errors.run_reporting`: a UserError is one line
``colorization <cmd>: error: <line>`` and exit 2; anything else one line with a hint and exit 1; the global
``--debug`` flag (accepted anywhere) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from colorization.errors import DEBUG_FLAG, pop_debug_flag, run_reporting

_DESCRIPTION = "Automatic image colorization (Zhang et al. and Larsson et al., ECCV 2016) on Ray and MLflow."

# command name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "metrics": ("colorization.cli.metrics", "score colorized images against ground truth (AuC, PSNR, colourfulness)"),
    "colorize": ("colorization.cli.colorize", "colorize image files or folders with a checkpoint"),
    "import-weights": ("colorization.cli.import_weights", "convert officially released weights to a checkpoint"),
    "preprocess": ("colorization.cli.preprocess", "Ray Data: image folders -> Lab Parquet shards"),
    "prior": ("colorization.cli.prior", "Ray Data: empirical ab prior and rebalancing weights from shards"),
    "train": ("colorization.cli.train", "train a network from Lab shards (Ray Train, or --no-ray)"),
    "serve": ("colorization.cli.serve", "Ray Serve: the models over HTTP (API and web page)"),
    "evaluate": ("colorization.cli.evaluate", "score models and the grey baseline: AuC, PSNR, colourfulness per decoder/T"),
    "pipeline": ("colorization.cli.pipeline", "the whole system as one job: preprocess, prior, train both, evaluate, register"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    """The parser, with the full arguments of ``command`` only (other commands stay unimported)."""
    parser = argparse.ArgumentParser(prog="colorization", description=_DESCRIPTION)
    parser.add_argument(DEBUG_FLAG, action="store_true", help="show the full traceback of any failure")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == command:
            importlib.import_module(module_name).add_parser(subparsers, name, help_text)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Runs one command; returns its exit status (0 ok, 1 bug, 2 user error or bad arguments)."""
    argv, debug = pop_debug_flag(list(sys.argv[1:] if argv is None else argv))
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    prog = f"colorization {command}" if command in SUBCOMMANDS else "colorization"
    parser = build_parser(command if command in SUBCOMMANDS else None)
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse already printed usage and its one error line (or the help)
        return stop.code if isinstance(stop.code, int) else 0
    return run_reporting(prog, lambda: args.func(args), debug=debug)


if __name__ == "__main__":
    sys.exit(main())
