"""Diagnostic (not a test): are skies blue, foliage green and skin warm in the colorized photos?

    python tests/benchmarks/hue_agreement.py --pred COLORIZED --truth ORIGINALS [--pred OTHER ...]

AuC and colourfulness do not say whether a colour lands on the right object; this does, crudely. Both images of a
pair are resized like ``colorization metrics --size 256`` and converted to CIE Lab (scikit-image). Ground-truth
pixels are grouped by their own colour: "blue" (b* < -12, chroma > 12: skies, water, blue things), "sky" (the
blue pixels of the upper 40 % of the photo, L* > 40), "green" (a* < -8, b* > 0: foliage, grass), "skin"
(8 < a* < 30, 12 < b* < 40, L* > 35: skin, wood, sand) and "saturated" (chroma > 15). A
pixel agrees when the prediction has chroma > 5 and a hue within 45 degrees of the truth's. Printed per group: the
share of agreeing pixels over all photos, and the mean share over photos with at least 500 such pixels (so a few
large skies do not decide alone). A grey output agrees nowhere (0 %); a constant sepia tint agrees on "skin" only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from skimage.color import rgb2lab

from colorization.color.constants import COLOURLESS_AB_THRESHOLD
from colorization.io.images import list_image_files, read_image, resize_shorter_side_and_center_crop

SIZE = 256
MIN_PIXELS = 500  # a photo counts for a group's per-photo mean when it has this many of its pixels
AGREEING_HUE = np.pi / 4
MIN_PREDICTED_CHROMA = 5.0
SKY_ROWS = 0.4  # "sky": blue pixels in this upper share of the photo


def _blue(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (b < -12) & (np.hypot(a, b) > 12)


GROUPS = {
    "blue": lambda lightness, a, b, upper: _blue(a, b),
    "sky": lambda lightness, a, b, upper: _blue(a, b) & upper & (lightness > 40),
    "green": lambda lightness, a, b, upper: (a < -8) & (b > 0),
    "skin": lambda lightness, a, b, upper: (a > 8) & (a < 30) & (b > 12) & (b < 40) & (lightness > 35),
    "saturated": lambda lightness, a, b, upper: np.hypot(a, b) > 15,
}


def lab_of(path: Path) -> np.ndarray:
    image = resize_shorter_side_and_center_crop(read_image(path).rgb, SIZE)
    return rgb2lab(np.asarray(image, dtype=np.float64) / 255.0)


def agreement(pred_dir: Path, truth_dir: Path) -> dict[str, tuple[float, float, int]]:
    """Per group: (share of agreeing pixels in %, mean per-photo share in %, photos in that mean)."""
    predictions = {path.relative_to(pred_dir).with_suffix(""): path for path in list_image_files(pred_dir)}
    pixels = {name: [0, 0] for name in GROUPS}
    per_photo: dict[str, list[float]] = {name: [] for name in GROUPS}
    for truth_path in list_image_files(truth_dir):
        pred_path = predictions.get(truth_path.relative_to(truth_dir).with_suffix(""))
        if pred_path is None:
            continue
        truth, pred = lab_of(truth_path), lab_of(pred_path)
        if np.abs(truth[..., 1:]).max() < COLOURLESS_AB_THRESHOLD:  # left out, as `colorization metrics` does
            continue
        hue_pred, hue_truth = np.arctan2(pred[..., 2], pred[..., 1]), np.arctan2(truth[..., 2], truth[..., 1])
        hue_gap = np.angle(np.exp(1j * (hue_pred - hue_truth)))
        agrees = (np.abs(hue_gap) < AGREEING_HUE) & (np.hypot(pred[..., 1], pred[..., 2]) > MIN_PREDICTED_CHROMA)
        upper = (np.arange(SIZE) < SKY_ROWS * SIZE)[:, None]
        for name, select in GROUPS.items():
            mask = select(truth[..., 0], truth[..., 1], truth[..., 2], upper)
            pixels[name][0] += int(agrees[mask].sum())
            pixels[name][1] += int(mask.sum())
            if mask.sum() >= MIN_PIXELS:
                per_photo[name].append(float(agrees[mask].mean()))
    return {
        name: (100.0 * hits / max(total, 1), 100.0 * float(np.mean(per_photo[name] or [0.0])), len(per_photo[name]))
        for name, (hits, total) in pixels.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pred", type=Path, action="append", required=True, help="colorized folder (repeatable)")
    parser.add_argument("--truth", type=Path, required=True, help="folder of the original photos")
    args = parser.parse_args()
    print("% of truth pixels whose predicted hue agrees (within 45 deg, chroma > 5): all pixels / mean per photo")
    print(f"{'predictions':32s}" + "".join(f"{name:>21s}" for name in GROUPS))
    for pred_dir in args.pred:
        scores = agreement(pred_dir, args.truth)
        cells = "".join(f"{f'{pooled:.1f} / {mean:.1f} ({n})':>21s}" for pooled, mean, n in scores.values())
        print(f"{str(pred_dir)[-32:]:32s}{cells}")


if __name__ == "__main__":
    main()
