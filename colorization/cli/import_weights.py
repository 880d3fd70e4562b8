"""``colorization import-weights``: officially released weights -> one of our safetensors checkpoints.

Supported: ``zhang-eccv16``, the PyTorch port of Zhang et al. (richzhang/colorization,
``colorization_release_v2-9b330a0b.pth``) together with its bin centres ``pts_in_hull.npy``. The conversion
itself is ``colorization.models.zhang_official``; this module only reads files, hashes and writes. ``--out`` is
checked first (a new ``.safetensors`` path, never WEIGHTS or the bins file) and written atomically.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import pickle
import warnings
from pathlib import Path

import torch
from safetensors import SafetensorError

from colorization.cli.errors import CommandError
from colorization.color.constants import ANNEALED_MEAN_TEMPERATURE
from colorization.io.ab_bins_file import load_ab_bins
from colorization.io.safe_outputs import check_output_file
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


_ZIP_MAGIC = b"PK\x03\x04"  # torch.save's default format is a zip archive
_PICKLE_PROTOCOL_2_PLUS = b"\x80"  # the legacy torch.save format is a bare pickle (protocol >= 2)


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """The released state dict; any file that is not one gives one line (and never runs pickled code)."""
    if path.is_dir():
        raise CommandError(f"weights {path} is a folder, not a .pth file")
    if not path.is_file():
        raise CommandError(f"weights file not found: {path}")
    with path.open("rb") as stream:
        head = stream.read(4)
    if not (head.startswith(_ZIP_MAGIC) or head.startswith(_PICKLE_PROTOCOL_2_PLUS)):
        raise CommandError(f"weights {path}: not a PyTorch weights file (neither a zip archive nor a pickle)")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols on stderr: not the user's business
            warnings.simplefilter("ignore")
            # weights_only: a .pth is a pickle, and an untrusted pickle must not run code.
            loaded = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if "weights only load failed" in str(error).lower():
            raise CommandError(
                f"weights {path}: holds Python objects other than tensors; refused, since loading them could run code"
            ) from None
        raise CommandError(f"weights {path}: not a readable PyTorch weights file ({_first_line(error)})") from None
    except Exception as error:  # noqa: BLE001 - a crafted file can make the unpickler fail in many ways
        raise CommandError(f"weights {path}: not a readable PyTorch weights file ({_first_line(error)})") from None
    if not isinstance(loaded, dict) or not all(isinstance(key, str) for key in loaded):
        raise CommandError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    if not all(isinstance(value, torch.Tensor) for value in loaded.values()):
        raise CommandError(f"{path} does not hold a state dict (some values are not tensors)")
    return loaded


def _first_line(error: BaseException) -> str:
    """``Type: first line`` of an exception, without PyTorch's advice to load untrusted files unsafely."""
    lines = [line for line in str(error).strip().splitlines() if line.strip() and "weights_only" not in line]
    return f"{type(error).__name__}: {lines[0][:160]}" if lines else type(error).__name__


def _read_bins(path: Path) -> torch.Tensor:
    try:
        return load_ab_bins(path)
    except (OSError, ValueError) as error:
        raise CommandError(f"--bins: {error}") from None


def run(args: argparse.Namespace) -> int:
    """Converts, verifies and writes; returns 0 (user errors raise :class:`CommandError`)."""
    if not (math.isfinite(args.temperature) and args.temperature > 0):
        raise CommandError(f"--temperature must be a positive number; got {args.temperature}")
    weights_path: Path = args.weights
    check_output_file(args.out, inputs=[weights_path, args.bins], suffixes=(".safetensors",), what="--out")
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
    except (OSError, SafetensorError) as error:
        raise CommandError(f"cannot write {args.out}: {error}") from None
    print(
        f"wrote {out}: {args.model}, {model.config.num_bins} bins, temperature {args.temperature:g}, "
        f"from {weights_path.name} (sha256 {sha256[:12]}...)"
    )
    return 0
