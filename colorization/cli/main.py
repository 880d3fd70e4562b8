"""Entry point of the ``colorization`` console script.

Each subcommand lives in ``colorization/cli/<name>.py`` and exposes ``add_parser(subparsers)``, which registers
its arguments and sets ``func`` (taking the parsed namespace, returning an exit code). Modules are imported only
when their command runs, so ``colorization metrics`` never pays for importing Ray.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from colorization.cli.errors import CommandError

_DESCRIPTION = "Automatic image colorization (Zhang et al. and Larsson et al., ECCV 2016) on Ray and MLflow."

# command name -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "metrics": ("colorization.cli.metrics", "score colorized images against ground truth (AuC, PSNR, colourfulness)"),
    "colorize": ("colorization.cli.colorize", "colorize image files or folders with a checkpoint"),
    "import-weights": ("colorization.cli.import_weights", "convert officially released weights to a checkpoint"),
    "preprocess": ("colorization.cli.preprocess", "Ray Data: image folders -> Lab Parquet shards"),
    "prior": ("colorization.cli.prior", "Ray Data: empirical ab prior and rebalancing weights from shards"),
}


def build_parser(command: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="colorization", description=_DESCRIPTION)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if name == command:
            importlib.import_module(module_name).add_parser(subparsers, name, help_text)
        else:
            subparsers.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((arg for arg in argv if not arg.startswith("-")), None)
    parser = build_parser(command if command in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CommandError as error:
        print(f"colorization {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
