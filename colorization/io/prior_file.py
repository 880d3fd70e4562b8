"""The empirical ab prior on disk: ``.npz`` (arrays), ``.json`` (the same, readable) and a ``.png`` figure.

The figure is the log-probability of the smoothed prior over the ab plane, as in Figure 3(b) of Zhang et al.
2016, next to the colour of each bin at L = 50; drawn with PIL (no matplotlib dependency).

Arrays: ``counts`` (Q,) int64 raw nearest-bin counts; ``prior`` (Q,) float64 smoothed distribution;
``weights`` (Q,) float64 rebalancing weights; ``bins`` (Q, 2) float raw (a, b) centres. Metadata (sigma, lambda,
pixel and image counts, sources) goes into the JSON and, as a JSON string, into the npz as ``metadata``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from colorization.color.constants import LAB_NORMALIZATION
from colorization.color.lab import lab_to_rgb
from colorization.io.safe_outputs import atomic_write, write_text_atomic

__all__ = ["DEFAULT_STEM", "prior_paths", "save_ab_prior", "load_ab_prior", "render_prior_png"]

# A few anchors of matplotlib's "viridis", interpolated linearly (enough for a readable heat map).
_VIRIDIS = np.array(
    [
        [68, 1, 84],
        [72, 40, 120],
        [62, 74, 137],
        [49, 104, 142],
        [38, 130, 142],
        [31, 158, 137],
        [53, 183, 121],
        [109, 205, 89],
        [180, 222, 44],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
_EMPTY = (235, 235, 235)
_CELL = 12  # pixels per grid cell
_MARGIN = 34


DEFAULT_STEM = "ab_prior"


def prior_paths(out: str | Path) -> tuple[Path, Path, Path]:
    """(npz, json, png) paths: ``out`` itself when it ends in ``.npz`` (siblings share its stem), else a directory
    holding ``ab_prior.npz``, ``ab_prior.json`` and ``ab_prior.png``."""
    out = Path(out)
    npz = out if out.suffix == ".npz" else out / f"{DEFAULT_STEM}.npz"
    return npz, npz.with_suffix(".json"), npz.with_suffix(".png")


def save_ab_prior(
    out: str | Path,
    *,
    counts: np.ndarray,
    prior: np.ndarray,
    weights: np.ndarray,
    bins: np.ndarray,
    metadata: dict,
) -> tuple[Path, Path, Path]:
    """Writes the npz, json and png (each atomically: a reader never sees half a file); returns their paths."""
    npz_path, json_path, png_path = prior_paths(out)
    counts, prior, weights, bins = (np.asarray(x) for x in (counts, prior, weights, bins))
    with atomic_write(npz_path) as temporary:
        np.savez(
            temporary,
            counts=counts.astype(np.int64),
            prior=prior.astype(np.float64),
            weights=weights.astype(np.float64),
            bins=bins,
            metadata=np.array(json.dumps(metadata)),
        )
    record = {
        **metadata,
        "num_bins": int(len(bins)),
        "bins": bins.tolist(),
        "counts": counts.astype(np.int64).tolist(),
        "prior": prior.astype(np.float64).tolist(),
        "weights": weights.astype(np.float64).tolist(),
    }
    write_text_atomic(json_path, json.dumps(record, indent=1) + "\n")
    with atomic_write(png_path) as temporary:
        render_prior_png(prior, bins, temporary)
    return npz_path, json_path, png_path


def load_ab_prior(path: str | Path) -> dict:
    """Reads what :func:`save_ab_prior` wrote (the ``.npz``, or its directory) -> {"counts", "prior", "weights",
    "bins", "metadata"}."""
    with np.load(prior_paths(path)[0], allow_pickle=False) as archive:
        record = {name: archive[name] for name in ("counts", "prior", "weights", "bins")}
        record["metadata"] = json.loads(str(archive["metadata"]))
    return record


def _viridis(values: np.ndarray) -> np.ndarray:
    """values in [0, 1] -> (..., 3) uint8."""
    position = np.clip(values, 0, 1) * (len(_VIRIDIS) - 1)
    low = np.floor(position).astype(int).clip(0, len(_VIRIDIS) - 2)
    fraction = (position - low)[..., None]
    return np.rint(_VIRIDIS[low] * (1 - fraction) + _VIRIDIS[low + 1] * fraction).astype(np.uint8)


def render_prior_png(prior: np.ndarray, bins: np.ndarray, path: str | Path) -> Path:
    """Heat map of log10 p over the ab grid (a to the right, b upwards) + each bin's colour at L = 50."""
    prior = np.asarray(prior, dtype=np.float64)
    bins = np.asarray(bins, dtype=np.float64)
    steps = np.diff(np.unique(bins[:, 0]))
    step = float(steps.min()) if len(steps) else 10.0
    low = np.floor(bins.min(axis=0) / step) * step - step
    high = np.ceil(bins.max(axis=0) / step) * step + step
    columns, rows = (np.rint((high - low) / step).astype(int) + 1).tolist()
    cell_column = np.rint((bins[:, 0] - low[0]) / step).astype(int)
    cell_row = rows - 1 - np.rint((bins[:, 1] - low[1]) / step).astype(int)  # b grows upwards

    positive = prior > 0
    log_prior = np.full(len(prior), np.nan)
    log_prior[positive] = np.log10(prior[positive])
    vmin, vmax = (np.nanmin(log_prior), np.nanmax(log_prior)) if positive.any() else (-1.0, 0.0)
    scaled = (log_prior - vmin) / max(vmax - vmin, 1e-12)
    heat = np.zeros((rows, columns, 3), dtype=np.uint8) + np.array(_EMPTY, dtype=np.uint8)
    heat[cell_row[positive], cell_column[positive]] = _viridis(scaled[positive])

    colours = np.zeros_like(heat) + np.array(_EMPTY, dtype=np.uint8)
    lab = torch.tensor(np.stack([np.full(len(bins), LAB_NORMALIZATION.l_center), bins[:, 0], bins[:, 1]]), dtype=torch.float64)[:, None, :]
    rgb = (lab_to_rgb(lab)[:, 0, :].T.numpy() * 255).round().astype(np.uint8)
    colours[cell_row, cell_column] = rgb

    font = ImageFont.load_default(size=11)
    panel_w, panel_h = columns * _CELL, rows * _CELL
    bar_w = 14
    width = _MARGIN * 2 + panel_w * 2 + _MARGIN + bar_w + 50
    height = _MARGIN * 2 + panel_h + 10
    canvas = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(canvas)
    panels = [(heat, "log10 p(a, b), smoothed prior"), (colours, "bin colours at L = 50")]
    for index, (cells, title) in enumerate(panels):
        left = _MARGIN if index == 0 else _MARGIN + panel_w + bar_w + 50 + _MARGIN  # heat map, colour bar, colours
        canvas.paste(Image.fromarray(cells).resize((panel_w, panel_h), Image.Resampling.NEAREST), (left, _MARGIN))
        draw.rectangle((left - 1, _MARGIN - 1, left + panel_w, _MARGIN + panel_h), outline="black")
        draw.text((left, 6), title, fill="black", font=font)
        for value in range(int(np.ceil(low[0] / 50) * 50), int(high[0]) + 1, 50):  # a ticks (bottom)
            x = left + (value - low[0]) / step * _CELL + _CELL / 2
            draw.line((x, _MARGIN + panel_h, x, _MARGIN + panel_h + 4), fill="black")
            draw.text((x - 8, _MARGIN + panel_h + 5), f"{value}", fill="black", font=font)
        for value in range(int(np.ceil(low[1] / 50) * 50), int(high[1]) + 1, 50):  # b ticks (left)
            y = _MARGIN + (rows - 1 - (value - low[1]) / step) * _CELL + _CELL / 2
            draw.line((left - 4, y, left, y), fill="black")
            draw.text((left - 30, y - 6), f"{value}", fill="black", font=font)
        draw.text((left + panel_w - 10, _MARGIN + panel_h + 18), "a", fill="black", font=font)
        draw.text((left - 30, _MARGIN - 14), "b", fill="black", font=font)
    bar_left = _MARGIN + panel_w + 10
    ramp = _viridis(np.linspace(1, 0, panel_h))[:, None, :].repeat(bar_w, axis=1)
    canvas.paste(Image.fromarray(ramp), (bar_left, _MARGIN))
    draw.text((bar_left + bar_w + 3, _MARGIN - 4), f"{vmax:.1f}", fill="black", font=font)
    draw.text((bar_left + bar_w + 3, _MARGIN + panel_h - 8), f"{vmin:.1f}", fill="black", font=font)
    path = Path(path)
    canvas.save(path, format="PNG")
    return path
