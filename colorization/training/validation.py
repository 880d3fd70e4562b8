"""Validation during training: the project's metrics on fixed validation images, and a sample grid.

Each validation colorizes the same ``cadence.val_images`` images of the validation split with the
:class:`~colorization.inference.Colorizer` (the family's default decoder, exactly what ``colorization colorize``
does) and scores them as ``colorization metrics`` does (:class:`ColorizationScores`: AuC, rebalanced AuC on the
default bin grid, PSNR, colourfulness). It also reports the validation loss and the grey baseline (ab = 0) of the
same images, so that "better than grey" can be read off every validation. The sample grid (one row per image:
grey | prediction | truth) is a uint8 (H, W, 3) array for MLflow's ``log_image``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from colorization.color.ab_bins import default_ab_bins
from colorization.color.lab import join_lab, lab_to_rgb, split_lab
from colorization.families import DecodeOptions, LossInputs, adapter_for
from colorization.inference import Colorizer
from colorization.metrics.psnr import quantize_to_8bit
from colorization.metrics.report import ColorizationScores
from colorization.training.loop import ValidationResult

__all__ = ["grey_baseline", "make_validator", "sample_grid"]

SAMPLE_GRID_KEY = "val_samples"  # name of the grid in ValidationResult.samples
_LOSS_SEED = 0  # Larsson's sampled pixels for the validation loss: the same pixels every time


def _scores(pred_rgb: torch.Tensor, true_rgb: torch.Tensor) -> dict[str, float]:
    scores = ColorizationScores.empty(default_ab_bins()).update(pred_rgb, true_rgb).summary()
    return {
        "auc": scores["auc"],
        "rebalanced_auc": scores["rebalanced_auc"],
        "psnr": scores["psnr"],
        "colourfulness": scores["colourfulness_pred"],
    }


def grey_baseline(lab: torch.Tensor) -> dict[str, float]:
    """Scores of the grey prediction (ab = 0) of raw-Lab images (N, 3, H, W), keys as :func:`make_validator`'s."""
    lightness, ab = split_lab(lab)
    grey = lab_to_rgb(join_lab(lightness, torch.zeros_like(ab))).clamp(0.0, 1.0)
    return _scores(grey, lab_to_rgb(lab).clamp(0.0, 1.0))


def sample_grid(grey: torch.Tensor, pred: torch.Tensor, truth: torch.Tensor) -> np.ndarray:
    """RGB (N, 3, H, W) triples -> one uint8 (N * H, 3 * W, 3) image, a row of grey | prediction | truth each."""
    rows = torch.cat((grey, pred, truth), dim=-1)  # (N, 3, H, 3W)
    grid = quantize_to_8bit(torch.cat(list(rows), dim=-2))  # (3, N*H, 3W)
    return grid.permute(1, 2, 0).cpu().numpy()


def make_validator(
    val_lab: torch.Tensor,
    *,
    class_weights: torch.Tensor | None,
    loss_inputs: LossInputs | None = None,
    batch_size: int = 16,
    sample_images: int = 8,
    device: torch.device | str = "cpu",
) -> Callable[[nn.Module], ValidationResult]:
    """A ``validate(network)`` for :func:`~colorization.training.loop.train_loop`.

    Args:
        val_lab: (N, 3, S, S) raw Lab validation images (colourful; S = the model's working size is best).
        class_weights: rebalancing weights of the training loss (the validation loss uses the same).
        loss_inputs: other loss settings (soft-encoding k/sigma, hue weight); its generator is replaced.
        batch_size: images per forward pass.
        sample_images: the first this-many images form the sample grid (0: none).
        device: where the network runs.

    Returns:
        A function of the bare network (no DDP wrapper) that returns a :class:`ValidationResult` with
        ``val_loss`` (+ the family's other loss terms), ``val_auc``, ``val_rebalanced_auc``, ``val_psnr``,
        ``val_colourfulness`` and the grey baseline's ``val_grey_auc`` / ``val_grey_rebalanced_auc`` / ...
    """
    val_lab = val_lab.cpu()
    truth_rgb = lab_to_rgb(val_lab).clamp(0.0, 1.0)
    grey_metrics = {f"val_grey_{name}": value for name, value in grey_baseline(val_lab).items()}
    lightness, ab = split_lab(val_lab)
    grey_rgb = lab_to_rgb(join_lab(lightness, torch.zeros_like(ab))).clamp(0.0, 1.0)
    base_inputs = loss_inputs or LossInputs()

    @torch.no_grad()
    def validate(network: nn.Module) -> ValidationResult:
        network.eval()
        adapter = adapter_for(network)
        generator = torch.Generator(device=device).manual_seed(_LOSS_SEED)
        inputs = LossInputs(
            class_weights=None if class_weights is None else class_weights.to(device),
            generator=generator,
            soft_encode_neighbours=base_inputs.soft_encode_neighbours,
            soft_encode_sigma=base_inputs.soft_encode_sigma,
            hue_weight=base_inputs.hue_weight,
        )
        sums: dict[str, float] = {}
        for start in range(0, len(val_lab), batch_size):
            chunk = val_lab[start : start + batch_size].to(device)
            terms = adapter.loss_terms(network, chunk, inputs)
            for name, value in {"loss": terms.loss, **terms.logged}.items():
                sums[name] = sums.get(name, 0.0) + float(value) * len(chunk)
        metrics = {f"val_{name}": value / len(val_lab) for name, value in sums.items()}
        colorizer = Colorizer(network, DecodeOptions(), batch_size=batch_size)
        predictions = torch.stack(colorizer.colorize_tensors(list(truth_rgb)))
        metrics.update({f"val_{name}": value for name, value in _scores(predictions, truth_rgb).items()})
        metrics.update(grey_metrics)
        samples = {}
        if sample_images:
            count = min(sample_images, len(val_lab))
            samples[SAMPLE_GRID_KEY] = sample_grid(grey_rgb[:count], predictions[:count], truth_rgb[:count])
        network.train()
        return ValidationResult(metrics=metrics, samples=samples)

    return validate
