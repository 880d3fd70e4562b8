"""Pictures of an evaluation, drawn with matplotlib (imported lazily, Agg backend) and returned as PNG bytes.

* :func:`temperature_sweep_png`: AuC and rebalanced AuC against the colourfulness of the predictions, one line
  per model through its annealed-mean temperatures (the "vibrancy" trade-off), the grey baseline and the ground
  truth's colourfulness as references.
* :func:`sample_grid_png`: fixed images in rows; columns grey | each model | truth.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

FIGURE_DPI = 100


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=FIGURE_DPI, bbox_inches="tight")
    _pyplot().close(figure)
    return buffer.getvalue()


def temperature_sweep_png(rows: list[dict[str, Any]], grey_model: str) -> bytes:
    """The temperature sweep as a PNG (see the module docstring).

    Args:
        rows: report rows (``evaluation.report.report_rows``).
        grey_model: the grey baseline's model name.

    Returns:
        PNG bytes.
    """
    plt = _pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    truth = [row["colourfulness_truth"] for row in rows if not math.isnan(row["colourfulness_truth"])]
    models = list(dict.fromkeys(row["model"] for row in rows if row["temperature"] is not None))
    for axis, key, title in ((axes[0], "auc", "AuC (%)"), (axes[1], "rebalanced_auc", "rebalanced AuC (%)")):
        for model in models:
            points = sorted((row for row in rows if row["model"] == model and row["temperature"] is not None),
                            key=lambda row: row["temperature"])
            x = [row["colourfulness_pred"] for row in points]
            y = [row[key] for row in points]
            axis.plot(x, y, marker="o", label=model)
            for row, xi, yi in zip(points, x, y):
                axis.annotate(f"T={row['temperature']:g}", (xi, yi), textcoords="offset points", xytext=(4, 4),
                              fontsize=8)
        for row in rows:
            if row["temperature"] is None and row["model"] != grey_model:
                axis.scatter([row["colourfulness_pred"]], [row[key]], marker="x", s=30)
                axis.annotate(f"{row['model']}: {row['label']}", (row["colourfulness_pred"], row[key]),
                              textcoords="offset points", xytext=(4, -10), fontsize=7)
        grey = [row for row in rows if row["model"] == grey_model]
        if grey:
            axis.scatter([grey[0]["colourfulness_pred"]], [grey[0][key]], marker="s", color="grey",
                         label="grey (ab = 0)")
        if truth:
            axis.axvline(float(np.mean(truth)), color="black", linestyle="--", linewidth=1, label="truth colourfulness")
        axis.set_xlabel("colourfulness of the predictions (Hasler & Suesstrunk)")
        axis.set_ylabel(title)
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    figure.suptitle("Annealed-mean temperature sweep: accuracy against vibrancy")
    return _png(figure)


def sample_grid_png(columns: list[tuple[str, list[np.ndarray]]]) -> bytes:
    """A grid of images: one column per (title, images), one row per sample.

    Args:
        columns: (title, list of (H, W, 3) uint8 arrays); every column holds the same number of images.

    Returns:
        PNG bytes.
    """
    plt = _pyplot()
    rows = len(columns[0][1]) if columns else 0
    if rows == 0:
        raise ValueError("the sample grid needs at least one image")
    figure, axes = plt.subplots(rows, len(columns), figsize=(2.2 * len(columns), 2.2 * rows), squeeze=False)
    for column, (title, images) in enumerate(columns):
        for row, image in enumerate(images):
            axis = axes[row][column]
            axis.imshow(image)
            axis.set_xticks([])
            axis.set_yticks([])
            if row == 0:
                axis.set_title(title, fontsize=8)
    figure.tight_layout()
    return _png(figure)
