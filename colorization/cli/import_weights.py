"""``colorization import-weights``: officially released weights -> one of our safetensors checkpoints.

Supported: ``zhang-eccv16``, the PyTorch port of Zhang et al. (richzhang/colorization,
``colorization_release_v2-9b330a0b.pth``) together with its bin centres ``pts_in_hull.npy``. The conversion
itself is ``colorization.models.zhang_official``; this module only reads files, hashes and writes.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import pickle
from pathlib import Path

import torch

from colorization.cli.errors import CommandError
from colorization.color.constants import ANNEALED_MEAN_TEMPERATURE
from colorization.io.ab_bins_file import load_ab_bins
from colorization.models.checkpoint import save_checkpoint
from colorization.models.zhang_official import zhang_from_official_state_dict

_HASH_CHUNK_BYTES = 1 << 20
_SOURCES = {"zhang-eccv16": "richzhang/colorization eccv16 release"}

_EPILOG = """\
The Caffe deploy net of Zhang et al. multiplied the logits by 2.606 (about 1/0.38) before its softmax, i.e. it
applied the annealed-mean temperature inside the network. The PyTorch port applies no visible scale, and
whether that factor was folded into the released weights is unknown (richzhang/colorization issue #93).
--temperature therefore sets the checkpoint's default decoding temperature explicitly: keep 0.38 (the
paper's T) if the weights are unscaled logits; use 1.0 if you believe the scale is already folded in.

example:
  colorization import-weights zhang-eccv16 colorization_release_v2-9b330a0b.pth \\
      --bins pts_in_hull.npy --out checkpoints/zhang_eccv16_official.safetensors
"""


def add_parser(subparsers: argparse._SubParsersAction, name: str, help_text: str) -> argparse.ArgumentParser:
    """Registers ``import-weights`` and its arguments; ``func`` is :func:`run`."""
    parser = subparsers.add_parser(
        name,
        help=help_text,
        description=help_text,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("model", choices=sorted(_SOURCES), help="which release the weights come from")
    parser.add_argument("weights", type=Path, metavar="WEIGHTS.pth", help="the released PyTorch state dict")
    parser.add_argument(
        "--bins",
        type=Path,
        required=True,
        metavar="PTS_IN_HULL.npy",
        help="the (Q, 2) ab bin centres released with the weights, in their original order",
    )
    parser.add_argument(
        "--out", type=Path, required=True, metavar="CHECKPOINT.safetensors", help="checkpoint to write"
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=ANNEALED_MEAN_TEMPERATURE,
        metavar="T",
        help=f"default annealed-mean temperature stored in the checkpoint (default: {ANNEALED_MEAN_TEMPERATURE};"
        " see below)",
    )
    parser.set_defaults(func=run)
    return parser


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CommandError(f"weights file not found: {path}")
    try:
        # weights_only: a .pth is a pickle, and an untrusted pickle must not run code.
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"cannot read {path} as a PyTorch state dict: {first_line}") from None
    if not isinstance(loaded, dict) or not all(isinstance(key, str) for key in loaded):
        raise CommandError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return loaded


def _read_bins(path: Path) -> torch.Tensor:
    if not path.is_file():
        raise CommandError(f"bins file not found: {path}")
    try:
        return load_ab_bins(path)
    except (OSError, ValueError) as error:
        raise CommandError(f"cannot read bins from {path}: {error}") from None


def run(args: argparse.Namespace) -> int:
    """Converts, verifies and writes; returns 0 (user errors raise :class:`CommandError`)."""
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise CommandError(f"--temperature must be a positive number; got {args.temperature}")
    weights_path: Path = args.weights
    bins = _read_bins(args.bins)  # small: fail fast before reading 128 MB of weights
    state_dict = _read_state_dict(weights_path)
    try:
        model = zhang_from_official_state_dict(state_dict, bins, temperature=args.temperature)
    except ValueError as error:  # OfficialWeightsError, or bins that are no valid bin set
        raise CommandError(f"{weights_path.name}: {error}") from None
    sha256 = _sha256(weights_path)
    try:
        out = save_checkpoint(
            model,
            args.out,
            extra={"source": _SOURCES[args.model], "weights_file": weights_path.name, "sha256": sha256},
        )
    except OSError as error:
        raise CommandError(f"cannot write {args.out}: {error}") from None
    print(
        f"wrote {out}: {args.model}, {model.config.num_bins} bins, temperature {args.temperature:g}, "
        f"from {weights_path.name} (sha256 {sha256[:12]}...)"
    )
    return 0
