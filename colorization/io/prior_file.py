"""The empirical ab prior on disk: ``.npz`` (arrays), ``.json`` (the same, readable) and a ``.png`` figure.

The figure is the log-probability of the smoothed prior over the ab plane, as in Figure 3(b) of Zhang et al.
2016, next to the colour of each bin at L = 50; drawn with matplotlib (imported lazily, Agg backend).

Arrays: ``counts`` (Q,) int64 raw nearest-bin counts; ``prior`` (Q,) float64 smoothed distribution;
``weights`` (Q,) float64 rebalancing weights; ``bins`` (Q, 2) float raw (a, b) centres. Metadata (sigma, lambda,
pixel and image counts, sources) goes into the JSON and, as a JSON string, into the npz as ``metadata``.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from colorization.color.constants import LAB_NORMALIZATION
from colorization.color.lab import lab_to_rgb
from colorization.io.safe_outputs import atomic_write, write_text_atomic

__all__ = ["DEFAULT_STEM", "prior_paths", "save_ab_prior", "load_ab_prior", "render_prior_png"]

_EMPTY = (235, 235, 235)  # cells of the grid that are not bins


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
    file = prior_paths(path)[0]
    if not zipfile.is_zipfile(file):  # numpy would call any other file "pickled data", which is never loaded here
        raise ValueError("not an .npz archive")
    with np.load(file, allow_pickle=False) as archive:
        record = {name: archive[name] for name in ("counts", "prior", "weights", "bins")}
        record["metadata"] = json.loads(str(archive["metadata"]))
    return record


def render_prior_png(prior: np.ndarray, bins: np.ndarray, path: str | Path) -> Path:
    """Heat map of log10 p over the ab grid (a to the right, b upwards) + each bin's colour at L = 50."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    prior = np.asarray(prior, dtype=np.float64)
    bins = np.asarray(bins, dtype=np.float64)
    steps = np.diff(np.unique(bins[:, 0]))
    step = float(steps.min()) if len(steps) else 10.0
    low = np.floor(bins.min(axis=0) / step) * step - step
    high = np.ceil(bins.max(axis=0) / step) * step + step
    columns, rows = (np.rint((high - low) / step).astype(int) + 1).tolist()
    cell_column = np.rint((bins[:, 0] - low[0]) / step).astype(int)
    cell_row = np.rint((bins[:, 1] - low[1]) / step).astype(int)  # drawn with origin="lower": b grows upwards

    positive = prior > 0
    heat = np.full((rows, columns), np.nan)
    heat[cell_row[positive], cell_column[positive]] = np.log10(prior[positive])
    colours = np.zeros((rows, columns, 3)) + np.array(_EMPTY) / 255.0
    lab = torch.tensor(
        np.stack([np.full(len(bins), LAB_NORMALIZATION.l_center), bins[:, 0], bins[:, 1]]), dtype=torch.float64
    )[:, None, :]
    colours[cell_row, cell_column] = lab_to_rgb(lab)[:, 0, :].T.numpy()

    extent = (low[0] - step / 2, high[0] + step / 2, low[1] - step / 2, high[1] + step / 2)
    figure, (heat_axis, colour_axis) = plt.subplots(1, 2, figsize=(10, 4.6))
    heat_axis.set_facecolor(np.array(_EMPTY) / 255.0)
    image = heat_axis.imshow(heat, origin="lower", extent=extent, cmap="viridis", interpolation="nearest")
    figure.colorbar(image, ax=heat_axis, label="log10 p")
    heat_axis.set_title("log10 p(a, b), smoothed prior")
    colour_axis.imshow(colours, origin="lower", extent=extent, interpolation="nearest")
    colour_axis.set_title("bin colours at L = 50")
    for axis in (heat_axis, colour_axis):
        axis.set_xlabel("a")
        axis.set_ylabel("b")
    figure.tight_layout()
    path = Path(path)
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
    return path
