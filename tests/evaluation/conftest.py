"""Tiny models and a few real crops for the evaluation tests (kept small: the budget is seconds, not minutes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from colorization.io.images import read_image, resize_shorter_side_and_center_crop
from colorization.models.checkpoint import save_checkpoint
from colorization.models.registry import create_model

CROP = 64  # protocol crop used by the tests (the real protocol is 256)
WORKING = 32


def tiny_zhang() -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model("zhang_eccv16", width_multiplier=0.125, input_size=WORKING)


def tiny_larsson() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model("larsson_hypercolumn_w16", input_size=WORKING)
    with torch.no_grad():  # decisive histograms, so the decoders differ
        for head in model.heads.values():
            head.weight.mul_(1e3)
    return model


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("tiny-models")
    return {
        "zhang": save_checkpoint(tiny_zhang(), folder / "zhang.safetensors"),
        "larsson": save_checkpoint(tiny_larsson(), folder / "larsson.safetensors"),
    }


@pytest.fixture(scope="session")
def few_images(dev_image_paths) -> list[Path]:
    """Six real photos, one of them black-and-white (colourless), spread over the dev set."""
    chosen = dev_image_paths[::83][:5]
    grey = [path for path in dev_image_paths if path.name == "n02676566_acoustic_guitar.JPEG"]
    return sorted(chosen + grey)


@pytest.fixture(scope="session")
def truth_crops(few_images) -> torch.Tensor:
    crops = [np.asarray(resize_shorter_side_and_center_crop(read_image(p).rgb, CROP)) for p in few_images]
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).contiguous()
