"""``colorization metrics``: score a folder of colorized images against the ground-truth folder.

Scores: Zhang et al.'s AuC and class-rebalanced AuC (ECCV 2016, Sec. 3.1), PSNR (8-bit RGB) and Hasler &
Suesstrunk (2003) colourfulness, through :class:`colorization.metrics.report.ColorizationScores`.

Pairing: a prediction and a ground truth belong together when their paths relative to ``--pred`` and ``--truth``
are equal without the extension, so ``pred/a/x.png`` scores against ``truth/a/x.JPEG``. Two files of one folder
with the same path up to the extension (``x.png`` and ``x.jpg``) are ambiguous and refused. Every problem of the
inputs (unpaired files on either side, ambiguous names, unreadable files, size mismatches) is collected and
reported together on one line (the first 20, then a count), with exit code 2; no scores are printed then.
``--json`` is checked before scoring (a ``.json`` path outside the inputs; an existing file there must be JSON)
and written atomically.

Sizes: a pair must have the same width and height unless ``--size N`` is given; then both are resized (shorter
side to N, bicubic) and centre-cropped to N x N. Ground-truth images without colour (max |ab| < 5) are left out
of every score and counted. Images are read one pair at a time, so memory does not grow with the folder.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from colorization.cli.errors import CommandError
from colorization.color.ab_bins import default_ab_bins
from colorization.io.ab_bins_file import load_ab_bins
from colorization.io.images import ImageDecodeError, list_image_files, read_image, resize_shorter_side_and_center_crop
from colorization.io.safe_outputs import check_output_file, write_text_atomic
from colorization.metrics.report import ColorizationScores

_TABLE_ROWS = (  # summary key, label, format
    ("images", "images scored", "{:d}"),
    ("excluded_colourless", "colourless truths excluded", "{:d}"),
    ("auc", "AuC (%)", "{:.2f}"),
    ("rebalanced_auc", "rebalanced AuC (%)", "{:.2f}"),
    ("psnr", "PSNR (dB)", "{:.2f}"),
    ("colourfulness_pred", "colourfulness, predictions", "{:.2f}"),
    ("colourfulness_truth", "colourfulness, ground truth", "{:.2f}"),
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {text}")
    return value


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``colorization metrics`` and its arguments."""
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=f"{help_text[0].upper()}{help_text[1:]}. Files pair by their relative path without the "
        "extension (pred/a/x.png with truth/a/x.JPEG); colourless ground truths are excluded and counted.",
    )
    parser.add_argument("--pred", type=Path, required=True, metavar="DIR", help="folder of colorized images")
    parser.add_argument("--truth", type=Path, required=True, metavar="DIR", help="folder of ground-truth images")
    parser.add_argument(
        "--bins",
        type=Path,
        metavar="FILE",
        help="ab bin centres (Q, 2) for the rebalanced AuC, e.g. Zhang et al.'s pts_in_hull.npy "
        "(default: the in-gamut grid of step 10)",
    )
    parser.add_argument(
        "--size",
        type=_positive_int,
        metavar="N",
        help="resize both images of each pair (shorter side N, centre crop N x N); without it sizes must match",
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the scores to this JSON file")
    parser.set_defaults(func=run)
    return parser


def _files_by_key(root: Path) -> dict[str, list[Path]]:
    """Image files under ``root`` grouped by relative path without extension (POSIX separators)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in list_image_files(root):
        groups[path.relative_to(root).with_suffix("").as_posix()].append(path)
    return groups


def pair_images(pred_root: Path, truth_root: Path) -> list[tuple[Path, Path]]:
    """(prediction, ground truth) pairs, sorted by name; raises CommandError listing every pairing problem.

    Args:
        pred_root: folder of predictions.
        truth_root: folder of ground-truth images.

    Returns:
        The pairs, matched by relative path without extension.
    """
    for role, root in (("--pred", pred_root), ("--truth", truth_root)):
        if not root.is_dir():
            raise CommandError(f"{role} {root} is not a folder")
    pred_files, truth_files = _files_by_key(pred_root), _files_by_key(truth_root)
    problems = []
    for files in (truth_files, pred_files):
        for key in sorted(files):
            if len(files[key]) > 1:
                names = ", ".join(str(path) for path in files[key])
                problems.append(f"ambiguous: {names} have the same name up to the extension")
    problems += [f"no prediction for {truth_files[key][0]}" for key in sorted(truth_files.keys() - pred_files.keys())]
    problems += [f"no ground truth for {pred_files[key][0]}" for key in sorted(pred_files.keys() - truth_files.keys())]
    if problems:
        raise CommandError(_problem_report(problems))
    if not truth_files:
        raise CommandError(f"no image files in {truth_root} or {pred_root}")
    return [(pred_files[key][0], truth_files[key][0]) for key in sorted(truth_files)]


_MAX_PROBLEMS_LISTED = 20  # the error stays one readable line; the count says how many there are


def _problem_report(problems: list[str]) -> str:
    listed = problems[:_MAX_PROBLEMS_LISTED]
    more = f"; ... and {len(problems) - len(listed)} more" if len(problems) > len(listed) else ""
    return f"{len(problems)} problem(s) with the inputs: " + "; ".join(listed) + more


def _uint8_tensor(image: Image.Image) -> torch.Tensor:
    """8-bit RGB PIL image -> uint8 tensor (1, 3, H, W)."""
    return torch.from_numpy(np.array(image.convert("RGB"), dtype=np.uint8)).permute(2, 0, 1)[None]


def score_pairs(
    pairs: list[tuple[Path, Path]], bins: torch.Tensor, size: int | None, progress: bool = True
) -> ColorizationScores:
    """Scores the pairs one at a time; raises CommandError listing every unreadable file and size mismatch.

    Args:
        pairs: (prediction, ground truth) paths.
        bins: (Q, 2) raw ab bin centres for the rebalanced AuC.
        size: when set, both images are resized (shorter side) and centre-cropped to size x size.
        progress: show a tqdm bar on stderr (only when stderr is a terminal).

    Returns:
        The accumulated scores.
    """
    scores = ColorizationScores.empty(bins)
    problems = []
    bar = tqdm(pairs, desc="scoring", unit="pair", file=sys.stderr, disable=None if progress else True)
    for pred_path, truth_path in bar:
        images = []
        for path in (pred_path, truth_path):
            try:
                images.append(read_image(path).rgb)
            except ImageDecodeError as error:
                problems.append(f"cannot read {path} ({error.reason}: {error.detail})")
        if len(images) < 2:
            continue
        pred_image, truth_image = images
        if size is not None:
            pred_image = resize_shorter_side_and_center_crop(pred_image, size)
            truth_image = resize_shorter_side_and_center_crop(truth_image, size)
        elif pred_image.size != truth_image.size:
            problems.append(
                f"size mismatch: {pred_path} is {pred_image.width}x{pred_image.height}, "
                f"{truth_path} is {truth_image.width}x{truth_image.height} (--size N resizes both)"
            )
            continue
        if not problems:  # once the run has failed, only keep looking for further problems
            scores.update(_uint8_tensor(pred_image), _uint8_tensor(truth_image))
    if problems:
        raise CommandError(_problem_report(problems))
    return scores


def _load_bins(path: Path | None) -> tuple[torch.Tensor, str]:
    if path is None:
        return default_ab_bins(), "default in-gamut grid"
    try:
        return load_ab_bins(path), str(path)
    except (OSError, ValueError, TypeError) as error:
        raise CommandError(f"--bins: {error}") from None


def format_table(summary: dict[str, float | int]) -> str:
    """The summary as a small two-column text table."""
    width = max(len(label) for _, label, _ in _TABLE_ROWS)
    return "\n".join(f"{label:<{width}}  {form.format(summary[key]):>8}" for key, label, form in _TABLE_ROWS)


def _check_json_output(path: Path, inputs: list[Path]) -> None:
    """``--json`` must be a new or an existing JSON file outside the inputs: it never replaces anything else."""
    check_output_file(path, inputs=inputs, suffixes=(".json",), what="--json")
    if path.exists():
        try:
            json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            raise CommandError(f"--json {path} exists and is not a JSON file; refusing to replace it") from None


def run(args: argparse.Namespace) -> int:
    """Pairs, scores, prints the table and optionally writes JSON; returns the exit code."""
    inputs = [path for path in (args.pred, args.truth, args.bins) if path is not None]
    if args.json is not None:
        _check_json_output(args.json, inputs)  # before any scoring: a bad path costs nothing
    bins, bins_source = _load_bins(args.bins)
    pairs = pair_images(args.pred, args.truth)
    scores = score_pairs(pairs, bins, args.size)
    summary = scores.summary()
    if summary["images"] == 0:
        raise CommandError(
            f"nothing to score: all {summary['excluded_colourless']} ground-truth images are colourless (max |ab| < 5)"
        )
    print(format_table(summary))
    if args.json is not None:
        record = {
            "pred": str(args.pred),
            "truth": str(args.truth),
            "bins": bins_source,
            "num_bins": len(bins),
            "size": args.size,
            **summary,
        }
        try:
            write_text_atomic(args.json, json.dumps(record, indent=2) + "\n")
        except OSError as error:
            raise CommandError(f"cannot write --json {args.json}: {error}") from None
    return 0
