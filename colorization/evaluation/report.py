"""Report of a sweep: one row per (model, decoder, T), Markdown and CSV tables, the temperature recommendation.

Temperature recommendation (issue 8): among a model's annealed-mean rows, the highest rebalanced AuC whose pooled
AuC stays within :data:`RECOMMENDATION_AUC_MARGIN` points of the model's best pooled AuC over those rows. Lower T
gives more vivid colours (higher rebalanced AuC, colourfulness) at the cost of pooled AuC; the margin states how
much pooled AuC a user gives up for vibrancy.
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from colorization.evaluation.scoring import GREY_MODEL, SweepScores
from colorization.evaluation.sweep import SweepEntry

RECOMMENDATION_AUC_MARGIN = 1.0  # AuC points (percent) a recommended T may lose against the best pooled AuC
COLUMNS = (  # key, header, format
    ("model", "model", "{}"),
    ("label", "decoding", "{}"),
    ("auc", "AuC %", "{:.2f}"),
    ("rebalanced_auc", "rebal. AuC %", "{:.2f}"),
    ("psnr", "PSNR dB", "{:.2f}"),
    ("colourfulness_pred", "colourfulness", "{:.1f}"),
    ("colourfulness_truth", "truth colourfulness", "{:.1f}"),
    ("images", "images", "{:d}"),
    ("excluded_colourless", "colourless skipped", "{:d}"),
)


def report_rows(scores: SweepScores, entries: dict[str, list[SweepEntry]]) -> list[dict[str, Any]]:
    """One dict per row, grey baseline first, then each model's entries in sweep order.

    Args:
        scores: the merged scores.
        entries: model name -> its sweep entries (gives decoder, T and fading of each label).

    Returns:
        Rows with the keys of :data:`COLUMNS` plus ``decoder``, ``temperature``, ``chromatic_fading``.
    """
    rows = []
    for (model, label), accumulator in scores.rows.items():
        entry = next((e for e in entries.get(model, []) if e.label == label), None)
        rows.append(
            {
                "model": model,
                "label": label,
                "decoder": None if entry is None else entry.options.decoder,
                "temperature": None if entry is None else entry.temperature,
                "chromatic_fading": None if entry is None else entry.options.chromatic_fading,
                **accumulator.summary(),
            }
        )
    order = {GREY_MODEL: -1} | {model: index for index, model in enumerate(entries)}
    position = {(m, e.label): i for m, es in entries.items() for i, e in enumerate(es)}
    def key(row: dict[str, Any]) -> tuple[int, int]:
        return order.get(row["model"], len(order)), position.get((row["model"], row["label"]), 0)

    return sorted(rows, key=key)


def _cell(value: Any, form: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return form.format(value)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The rows as a GitHub Markdown table."""
    header = "| " + " | ".join(h for _, h, _ in COLUMNS) + " |"
    rule = "| " + " | ".join("---" if key in ("model", "label") else "---:" for key, _, _ in COLUMNS) + " |"
    lines = [header, rule]
    lines += ["| " + " | ".join(_cell(row[key], form) for key, _, form in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def csv_table(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV, every key of each row as a column (full precision)."""
    buffer = io.StringIO()
    keys = list(rows[0]) if rows else [key for key, _, _ in COLUMNS]
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def recommend_temperature(
    rows: list[dict[str, Any]], model: str, margin: float = RECOMMENDATION_AUC_MARGIN
) -> dict | None:
    """The recommended annealed-mean T of ``model`` (see the module docstring), or None without T rows.

    Args:
        rows: the report's rows.
        model: model name.
        margin: AuC points the recommendation may lose against the best pooled AuC.

    Returns:
        ``{"temperature", "auc", "rebalanced_auc", "best_auc", "margin"}`` or None.
    """
    candidates = [
        row
        for row in rows
        if row["model"] == model and row["temperature"] is not None and not math.isnan(row["rebalanced_auc"])
    ]
    if not candidates:
        return None
    best_auc = max(row["auc"] for row in candidates)
    eligible = [row for row in candidates if row["auc"] >= best_auc - margin]
    chosen = max(eligible, key=lambda row: (row["rebalanced_auc"], row["auc"]))
    return {
        "temperature": chosen["temperature"],
        "auc": chosen["auc"],
        "rebalanced_auc": chosen["rebalanced_auc"],
        "best_auc": best_auc,
        "margin": margin,
    }
