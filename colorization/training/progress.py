"""The progress line and end-of-run summary of a training run (stdout; rank 0 only)."""

from __future__ import annotations

import math
import sys
from typing import TextIO

from colorization.training.loop import LoopStart, TrainHooks, TrainSummary, ValidationResult

__all__ = ["ProgressLine", "format_duration"]


def format_duration(seconds: float) -> str:
    """``3725`` -> ``"1h02m05s"``; ``"?"`` when unknown."""
    if not math.isfinite(seconds) or seconds < 0:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"


class ProgressLine(TrainHooks):
    """Prints ``step 120/3000  loss 4.812  lr 1.0e-03  63.2 img/s  data 3%  eta 12m40s`` at each log, the
    validation figures, and a summary at the end.

    Args:
        stream: where to print (stdout by default).
        rank: only rank 0 prints.
    """

    def __init__(self, stream: TextIO | None = None, rank: int = 0) -> None:
        self.stream = stream
        self.rank = rank
        self.max_steps = 0

    def _print(self, text: str) -> None:
        if self.rank == 0:
            print(text, file=self.stream or sys.stdout, flush=True)

    def on_start(self, start: LoopStart) -> None:
        self.max_steps = start.max_steps
        resumed = f", resumed at step {start.start_step}" if start.start_step else ""
        calibration = "".join(f", {name} {value:.4g}" for name, value in start.calibration.items())
        self._print(
            f"training on {start.device} ({start.autocast}{', channels_last' if start.channels_last else ''}): "
            f"{start.world_size} worker(s) x {start.per_worker_batch} images x {start.accumulation} pass(es) per "
            f"step, {start.max_steps} steps{resumed}{calibration}"
        )

    def on_log(self, step: int, metrics: dict[str, float]) -> None:
        self._print(
            f"step {step}/{self.max_steps}  loss {metrics.get('loss', float('nan')):.4f}  lr {metrics['lr']:.2e}  "
            f"{metrics['images_per_s']:.1f} img/s  data {100 * metrics['data_wait_fraction']:.0f}%  "
            f"eta {format_duration(metrics['eta_s'])}"
        )

    def on_validation(self, step: int, result: ValidationResult) -> None:
        metrics = result.metrics
        parts = [f"{name[4:]} {value:.4g}" for name, value in metrics.items() if not name.startswith("val_grey_")]
        grey = metrics.get("val_grey_rebalanced_auc")
        if grey is not None and "val_rebalanced_auc" in metrics:
            parts.append(f"(rebalanced AuC vs grey {metrics['val_rebalanced_auc'] - grey:+.2f})")
        self._print(f"  validation at step {step}: " + ", ".join(parts))

    def on_end(self, summary: TrainSummary) -> None:
        steps = summary.step - summary.start_step
        per_step = summary.seconds / steps if steps else float("nan")
        ended = " (the data ran out first)" if summary.stopped_early else ""
        self._print(
            f"done: step {summary.step}{ended}; {steps} steps in {format_duration(summary.seconds)} "
            f"({per_step:.3f} s/step, {summary.images / summary.seconds if summary.seconds else 0:.1f} img/s on "
            f"this worker, {100 * summary.data_wait_fraction:.0f}% waiting for data, "
            f"{summary.skipped_steps} skipped steps)"
        )
