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


def load_ab_bins(path: str | PathLike[str]) -> torch.Tensor:
    """Loads and validates a (Q, 2) array of raw (a, b) bin centres.

    Args:
        path: a ``.npy`` file holding a numeric (Q, 2) array (pickled objects are refused).

    Returns:
        (Q, 2) float32 tensor on the CPU, in file order.

    Raises:
        FileNotFoundError: no file at path.
        ValueError: not a plain .npy array, or not a valid bin set (shape, finiteness, duplicates).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ab bins file not found: {path}")
    try:
        array = np.load(path, allow_pickle=False)
    except ValueError as error:  # pickled objects, or not an .npy file at all
        raise ValueError(f"{path} is not a plain numeric .npy array: {error}") from None
    if not isinstance(array, np.ndarray):  # an .npz archive
        raise ValueError(f"{path} holds an archive, not a single (Q, 2) array")
    try:
        bins = validate_ab_bins(array)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
    return bins.to(torch.float32)
