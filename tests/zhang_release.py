"""The layout of Zhang et al.'s released ECCV16 state dict, read from shared/reference, and a synthesized release.

Shared by the model, import and CLI tests. The release (128 MB) is never downloaded: a state dict with exactly
the listed keys and shapes, random values and ``model_out.weight = bins.T / 110`` stands in for it.
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from tests.conftest import SHARED_DATA

REFERENCE_STATE_DICT = SHARED_DATA.parent / "reference" / "zhang-eccv16-state-dict.txt"
BIN_CENTRES_KEY = "model_out.weight"  # the release's decoding conv, not a module of ours
RELEASE_AB_SCALE = 110.0  # the release's convention, stated in the reference file (independent of our constants)
_LINE = re.compile(r"^(?P<key>\S+) \[(?P<shape>[\d, ]*)\]")


def reference_layout() -> dict[str, tuple[int, ...]]:
    """key -> shape of every tensor of the release, in file order (skips the test when the file is absent)."""
    if not REFERENCE_STATE_DICT.is_file():
        pytest.skip(f"reference state-dict listing not found at {REFERENCE_STATE_DICT}")
    layout = {}
    for line in REFERENCE_STATE_DICT.read_text().splitlines():
        match = _LINE.match(line)
        if match and not line.startswith("#"):
            shape = match["shape"].strip()
            layout[match["key"]] = tuple(int(size) for size in shape.split(",")) if shape else ()
    return layout


def synthesize_release(bins: np.ndarray, seed: int = 0) -> dict[str, torch.Tensor]:
    """Random tensors in the release's layout, scaled so a forward pass stays finite; model_out = bins.T / 110."""
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in reference_layout().items():
        if key == BIN_CENTRES_KEY:
            value = torch.from_numpy(bins.T.astype(np.float32) / RELEASE_AB_SCALE).reshape(shape)
        elif key.endswith("num_batches_tracked"):
            value = torch.randint(0, 1000, shape, generator=generator)
        elif key.endswith("running_var"):
            value = torch.rand(shape, generator=generator) + 0.5
        elif len(shape) == 4:  # conv weights: unit gain, so activations keep their scale through 20 layers
            value = torch.randn(shape, generator=generator) / (torch.Size(shape).numel() / shape[0]) ** 0.5
        else:
            value = 0.1 * torch.randn(shape, generator=generator)
        state[key] = value
    return state
