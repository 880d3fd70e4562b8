"""Diagnostic (not a test): how far can green be told from grey at all, with the photos of a small split?

    python tests/benchmarks/green_learnability.py --shards SHARDS [--size 96] [--checkpoint CKPT ...]

The small recipes colour lawns brown. This asks whether that is the networks' fault or the data's. Green pixels
("green" of ``hue_agreement.py``: a* < -8, b* > 0) are ranked, on the validation split, by

* a texture classifier: gradient-boosted trees (scikit-learn, installed with MLflow) on hand-made grey features
  (L and its local mean, local spread and gradient energy over 3 to 15 pixels, and the row), fitted on the
  training split at ``--size`` and scored on the 1/4-size grid the networks predict on;
* each checkpoint: its decoded prediction (default decoder, through the Colorizer), ranked by its component along
  the mean ab of the training split's green pixels (so yellow-green outranks brown, and blue ranks last).

The ranking quality is the ROC AUC (0.5: no better than chance; 1: perfect). When the texture classifier barely
generalizes, local grey texture does not say "grass" in these photos, and a network trained on them from scratch
has only what it can learn of semantics to go on.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score

from colorization.color.lab import lab_to_rgb
from colorization.inference import Colorizer, load_model
from colorization.io.shards import lab_batch, read_shard_arrays

sys.path.insert(0, str(Path(__file__).parent))
from hue_agreement import GROUPS  # noqa: E402  (one definition of "green")

WINDOWS = (3, 7, 15)  # local statistics over these square windows, pixels at --size
GRID_STRIDE = 4  # the networks predict at 1/4 of their working size


def load_split(shards: Path, split: str) -> torch.Tensor:
    """Every colourful image of one split as raw Lab (N, 3, S, S)."""
    files = sorted((shards / split).glob("*.parquet"))
    if not files:
        raise SystemExit(f"no {split} shards under {shards}")
    rows = [read_shard_arrays(path) for path in files]
    columns = {key: np.concatenate([row[key] for row in rows]) for key in ("L", "ab", "colourless")}
    return lab_batch(columns["L"], columns["ab"], "cpu", colourless=columns["colourless"])


def green_mask(lab: torch.Tensor) -> np.ndarray:
    """(N, 3, h, w) raw Lab -> (N * h * w,) bool, the "green" group of hue_agreement.py."""
    lightness, a, b = (lab[:, channel].numpy() for channel in range(3))
    return GROUPS["green"](lightness, a, b, None).reshape(-1)


def texture_features(lab: torch.Tensor) -> np.ndarray:
    """(N, 3, S, S) raw Lab -> (N * (S/4)^2, F) grey features on the 1/4-size grid."""
    lightness = lab[:, :1] / 100.0
    dx = F.pad((lightness[..., :, 1:] - lightness[..., :, :-1]).abs(), (0, 1))
    dy = F.pad((lightness[..., 1:, :] - lightness[..., :-1, :]).abs(), (0, 0, 0, 1))
    features = [lightness]
    for window in WINDOWS:
        mean = F.avg_pool2d(lightness, window, 1, window // 2, count_include_pad=False)
        square = F.avg_pool2d(lightness * lightness, window, 1, window // 2, count_include_pad=False)
        energy = F.avg_pool2d(dx + dy, window, 1, window // 2, count_include_pad=False)
        features += [mean, (square - mean * mean).clamp_min(0).sqrt(), energy]
    size = lab.shape[-1]
    features.append(torch.linspace(0.0, 1.0, size).view(1, 1, size, 1).expand_as(lightness))
    stacked = torch.cat(features, dim=1)[..., ::GRID_STRIDE, ::GRID_STRIDE]
    return stacked.permute(0, 2, 3, 1).reshape(-1, stacked.shape[1]).numpy()


def shrink(lab: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(lab, size=(size, size), mode="area")


def texture_auc(train: torch.Tensor, val: torch.Tensor, size: int) -> tuple[float, float]:
    """ROC AUC of the texture classifier for green, on its training pixels and on the validation pixels."""
    train, val = shrink(train, size), shrink(val, size)
    truth_train = green_mask(train[..., ::GRID_STRIDE, ::GRID_STRIDE])
    truth_val = green_mask(val[..., ::GRID_STRIDE, ::GRID_STRIDE])
    classifier = HistGradientBoostingClassifier(max_iter=200, random_state=0).fit(texture_features(train), truth_train)
    return (
        roc_auc_score(truth_train, classifier.predict_proba(texture_features(train))[:, 1]),
        roc_auc_score(truth_val, classifier.predict_proba(texture_features(val))[:, 1]),
    )


def green_direction(lab: torch.Tensor) -> torch.Tensor:
    """Unit (2,) vector along the mean ab of the green pixels of ``lab``."""
    ab = lab[:, 1:].permute(0, 2, 3, 1).reshape(-1, 2)[torch.from_numpy(green_mask(lab))]
    mean = ab.mean(dim=0)
    return mean / mean.norm()


def checkpoint_auc(checkpoint: str, val: torch.Tensor, direction: torch.Tensor) -> tuple[float, int]:
    """ROC AUC for green of a checkpoint's decoded ab along ``direction``, and the side of its prediction grid."""
    colorizer = Colorizer(load_model(checkpoint), batch_size=32)
    working = colorizer.working_batch(list(lab_to_rgb(val)))
    ab = colorizer.predict_ab(working)  # (N, 2, h, w) raw ab
    truth = green_mask(shrink(val, ab.shape[-1]))
    score = torch.einsum("nchw,c->nhw", ab, direction.to(ab.dtype)).reshape(-1).numpy()
    return roc_auc_score(truth, score), ab.shape[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--shards", type=Path, required=True, help="preprocess output with train/ and val/")
    parser.add_argument("--size", type=int, default=96, help="working size of the texture classifier")
    parser.add_argument("--checkpoint", action="append", default=[], help="a checkpoint to rank the same way")
    args = parser.parse_args()
    torch.manual_seed(0)
    train, val = load_split(args.shards, "train"), load_split(args.shards, "val")
    fit, held_out = texture_auc(train, val, args.size)
    val_green = green_mask(val).mean()
    print(f"{len(train)} training / {len(val)} validation photos; green pixels in validation: {100 * val_green:.1f} %")
    grid = args.size // GRID_STRIDE
    print(f"texture classifier at {args.size} px ({grid}x{grid} grid): ROC AUC {fit:.3f} on its training photos, "
          f"{held_out:.3f} on the validation photos")
    direction = green_direction(train)
    for checkpoint in args.checkpoint:
        auc, side = checkpoint_auc(checkpoint, val, direction)
        print(f"{checkpoint} ({side}x{side} grid): ROC AUC {auc:.3f} on the validation photos")


if __name__ == "__main__":
    main()
