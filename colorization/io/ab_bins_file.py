"""Reads an ab bin set from a ``.npy`` file, e.g. the authors' ``pts_in_hull.npy`` (richzhang/colorization
``resources/``), whose row order is the channel order of the released model's logits.

The only file I/O around ``color/ab_bins.py``; the path is always explicit (never relative to the working
directory, as the Caffe layers' ``'./resources/pts_in_hull.npy'`` was).
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import torch

from colorization.color.ab_bins import validate_ab_bins

__all__ = ["load_ab_bins"]

_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = b"PK\x03\x04"


def load_ab_bins(path: str | PathLike[str]) -> torch.Tensor:
    """Loads and validates a (Q, 2) array of raw (a, b) bin centres.

    Args:
        path: a ``.npy`` file holding a numeric (Q, 2) array (pickled objects are refused).

    Returns:
        (Q, 2) float32 tensor on the CPU, in file order.

    Raises:
        FileNotFoundError: no file at path.
        ValueError: a folder, not a .npy file (e.g. text), an archive, pickled objects, truncated, or not a valid
            bin set (shape, finiteness, duplicates).
    """
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a .npy file")
    if not path.is_file():
        raise FileNotFoundError(f"ab bins file not found: {path}")
    with path.open("rb") as stream:
        magic = stream.read(len(_NPY_MAGIC))
    if magic.startswith(_ZIP_MAGIC):
        raise ValueError(f"{path} holds an archive (.npz), not a single (Q, 2) .npy array")
    if magic != _NPY_MAGIC:
        raise ValueError(f"{path} is not a .npy file (it does not start with the NumPy header)")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as error:  # pickled objects, a truncated or malformed file
        raise ValueError(f"{path} is not a plain numeric .npy array ({error})") from None
    try:
        bins = validate_ab_bins(array)
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: {error}") from None
    return bins.to(torch.float32)
