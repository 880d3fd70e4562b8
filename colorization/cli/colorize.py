"""``colorization colorize``: colorize image files and folders with a checkpoint or a registered model.

Inputs are files or folders (searched recursively for images). Each output is a PNG in ``--out`` at the input's
path relative to the folder it came from (a file given directly lands at ``--out/<name>.png``); names that would
meet are kept apart (``a.jpg.png`` and ``a.jpeg.png``; the same path in two input folders goes under each
folder's name). ``--out`` may not be, lie inside or contain an input. Originals are never modified; outputs are
written atomically and record the model, its digest, the decoder and T. Unreadable inputs and unwritable outputs
are listed and skipped; they never abort the batch (exit code 1 when any failed); when no input exists at
all, the command stops before loading the model (exit code 2). A rerun skips finished outputs.
From 200 images (or with ``--ray``) the work runs on a Ray Data actor pool.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from colorization.inference import LARSSON_DECODERS, ZHANG_DECODERS, DecodeOptions


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorize`` and its arguments; ``func`` is :func:`run`."""
    parser = subparsers.add_parser(name, help=help_text, description=__doc__)
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    parser.add_argument("--checkpoint", "--model", dest="checkpoint", required=True, metavar="CKPT|models:/NAME@ALIAS",
                        help="a .safetensors checkpoint of this project or a registered model URI")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the colorized PNGs")
    parser.add_argument(
        "--decoder",
        choices=sorted(set(ZHANG_DECODERS + LARSSON_DECODERS)),
        help="Zhang: annealed_mean (default), mean, mode; Larsson: median (default for hue/chroma), "
        "expectation (default for Lab heads), mode, sample",
    )
    parser.add_argument("--temperature", type=float, help="Zhang's annealed-mean T (default: the checkpoint's)")
    parser.add_argument("--no-chromatic-fading", action="store_true", help="Larsson hue/chroma: keep chroma as is")
    parser.add_argument("--head", help="Larsson: which output head to decode (default: the first trained one)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample decoder")
    parser.add_argument("--device", default="cpu", help="torch device: cpu, cuda, cuda:N, auto")
    parser.add_argument("--batch-size", type=int, default=8)
    ray_group = parser.add_mutually_exclusive_group()
    ray_group.add_argument("--ray", dest="use_ray", action="store_true", default=None,
                           help="run on a Ray Data actor pool (default: from 200 images)")
    ray_group.add_argument("--no-ray", dest="use_ray", action="store_false", help="one process, no Ray")
    parser.add_argument("--address", help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray)")
    parser.add_argument("--num-cpus", type=int, help="CPUs of a local Ray (default: all)")
    parser.add_argument("--actors", type=int, default=2, help="Ray actors holding the model (default %(default)s)")
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    from colorization.stages.colorize import ColorizeConfig
    from colorization.stages.colorize import run as run_stage

    options = DecodeOptions(
        decoder=args.decoder,
        temperature=args.temperature,
        chromatic_fading=not args.no_chromatic_fading,
        head=args.head,
        seed=args.seed,
    )
    result = run_stage(ColorizeConfig(
        inputs=tuple(args.inputs), out=args.out, model=str(args.checkpoint), options=options, device=args.device,
        batch_size=args.batch_size, use_ray=args.use_ray, address=args.address, num_cpus=args.num_cpus,
        actors=args.actors,
    ))
    print(f"colorized {len(result.written)} image(s) into {args.out}", file=sys.stderr)
    if result.skipped_done:
        print(f"kept {len(result.skipped_done)} finished output(s) from an earlier run", file=sys.stderr)
    print(f"manifest: {result.manifest}", file=sys.stderr)
    if result.failed:
        print(f"skipped {len(result.failed)} input(s):", file=sys.stderr)
        for path, reason in result.failed:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
