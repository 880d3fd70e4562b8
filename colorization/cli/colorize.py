"""``colorization colorize``: colorize image files and folders with a checkpoint.

Inputs are files or folders (searched recursively for images). Each output is a PNG in ``--out`` at the input's
path relative to the folder it came from (a file given directly lands at ``--out/<name>.png``). Unreadable inputs
are reported at the end and skipped; they never abort the batch. The exit code is 1 when any input failed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from colorization.cli.errors import CommandError
from colorization.inference import LARSSON_DECODERS, ZHANG_DECODERS, Colorizer, DecodeOptions
from colorization.io.images import ImageDecodeError, list_image_files, read_image
from colorization.model_source import load_model


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorize`` and its arguments; ``func`` is :func:`run`."""
    parser = subparsers.add_parser(name, help=help_text, description=__doc__)
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image files or folders")
    parser.add_argument("--checkpoint", type=Path, required=True, help="a .safetensors checkpoint of this project")
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
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.set_defaults(func=run)
    return parser


def _jobs(inputs: list[Path], out_dir: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(source, destination) pairs for every image under the inputs, and the inputs that do not exist."""
    jobs: list[tuple[Path, Path]] = []
    missing: list[str] = []
    for source in inputs:
        if not source.exists():
            missing.append(str(source))
        elif source.is_dir():
            jobs += [(path, out_dir / path.relative_to(source).with_suffix(".png")) for path in list_image_files(source)]
        else:
            jobs.append((source, out_dir / source.with_suffix(".png").name))
    return jobs, missing


def run(args: argparse.Namespace) -> int:
    options = DecodeOptions(
        decoder=args.decoder,
        temperature=args.temperature,
        chromatic_fading=not args.no_chromatic_fading,
        head=args.head,
        seed=args.seed,
    )
    if not str(args.checkpoint).startswith("models:/") and not args.checkpoint.is_file():
        raise CommandError(f"checkpoint not found: {args.checkpoint}")
    try:
        model, _ = load_model(str(args.checkpoint))
        colorizer = Colorizer(model, options, device=args.device, batch_size=args.batch_size)
    except ValueError as error:
        raise CommandError(str(error)) from None
    jobs, missing = _jobs(args.inputs, args.out)
    failures = [(path, "no such file or folder") for path in missing]
    written = 0
    for start in tqdm(range(0, len(jobs), args.batch_size), desc="colorize", unit="batch", file=sys.stderr):
        batch = jobs[start : start + args.batch_size]
        decoded = []
        for source, destination in batch:
            try:
                decoded.append((read_image(source), destination))
            except ImageDecodeError as error:
                failures.append((str(source), f"{error.reason}: {error.detail}"))
        if not decoded:
            continue
        outputs = colorizer.colorize_images([image.rgb for image, _ in decoded])
        for (image, destination), output in zip(decoded, outputs):
            if image.alpha is not None:
                output.putalpha(image.alpha)
            destination.parent.mkdir(parents=True, exist_ok=True)
            output.save(destination)
            written += 1
    print(f"colorized {written} image(s) into {args.out}", file=sys.stderr)
    if failures:
        print(f"skipped {len(failures)} input(s):", file=sys.stderr)
        for path, reason in failures:
            print(f"  {path}: {reason}", file=sys.stderr)
        return 1
    return 0
