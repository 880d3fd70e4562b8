"""``--device`` for every command: a name the user typed -> a torch.device this machine really has, or one line.

Without this, ``--device cuda`` on a machine without a GPU fails deep inside the first ``.to(device)`` with a
CUDA driver traceback, after the checkpoint and the images were already read.
"""

from __future__ import annotations

import torch

from colorization.errors import UserError

AUTO = "auto"  # the best device this machine has: cuda:0, else mps, else cpu
DEVICE_CHOICES_TEXT = "auto, cpu, cuda, cuda:N or mps"


def resolve_device(name: str | torch.device | None, *, what: str = "--device") -> torch.device:
    """The device called ``name``, checked to exist on this machine.

    Args:
        name: "auto" (or None), "cpu", "cuda", "cuda:N", "mps", or a torch.device.
        what: how the error message names the setting.

    Returns:
        The torch.device ("cuda" becomes "cuda:0" so every caller sees the same index).

    Raises:
        UserError: not a device name, or the device is not available here (no GPU, index out of range).
    """
    if name is None or str(name) == AUTO:
        if torch.cuda.is_available():
            return torch.device("cuda", 0)
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        raise UserError(f"{what} {name!r} is not a device name (use {DEVICE_CHOICES_TEXT})") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"{what} {name}: no CUDA GPU is available on this machine (use --device cpu)")
        index = 0 if device.index is None else device.index
        if index >= torch.cuda.device_count():
            raise UserError(f"{what} {name}: this machine has {torch.cuda.device_count()} CUDA GPU(s)")
        return torch.device("cuda", index)
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise UserError(f"{what} {name}: Apple MPS is not available on this machine (use --device cpu)")
        return device
    raise UserError(f"{what} {name}: device type {device.type!r} is not supported (use {DEVICE_CHOICES_TEXT})")
