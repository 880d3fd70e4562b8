"""Sweep scoring: same numbers as the metrics accumulator, one network pass per image, exact merges."""

from __future__ import annotations

import numpy as np
import torch

from colorization.color.ab_bins import default_ab_bins
from colorization.evaluation.protocol import grey_baseline, truth_from_shard
from colorization.evaluation.scoring import GREY_LABEL, GREY_MODEL, SweepScores, TruthBatch, add_prediction, score_batch
from colorization.evaluation.sweep import default_sweep
from colorization.families import adapter_for
from colorization.inference import Colorizer
from colorization.io.shards import rgb8_to_quantized_lab
from colorization.metrics.report import ColorizationScores
from tests.evaluation.conftest import tiny_zhang

BINS = default_ab_bins().double().numpy()


def _same(a: ColorizationScores, b: ColorizationScores) -> None:
    assert np.array_equal(a.histogram.counts, b.histogram.counts)
    assert (a.images, a.excluded_colourless) == (b.images, b.excluded_colourless)
    for key in ("psnr_sum", "colourfulness_pred_sum", "colourfulness_truth_sum"):
        assert getattr(a, key) == getattr(b, key), key


def test_cached_truth_scores_exactly_like_the_metrics_accumulator(truth_crops):
    torch.manual_seed(1)
    predicted = (truth_crops.float() / 255 + 0.2 * torch.rand(truth_crops.shape)).clamp(0, 1)
    reference = ColorizationScores.empty(BINS).update(predicted, truth_crops)
    cached = ColorizationScores.empty(BINS)
    add_prediction(cached, TruthBatch.of(truth_crops, BINS), predicted)
    _same(cached, reference)
    assert reference.excluded_colourless == 1  # the black-and-white photo


def test_network_runs_once_per_image_whatever_the_sweep(truth_crops):
    model = tiny_zhang()
    calls = []
    model.register_forward_hook(lambda module, inputs, output: calls.append(inputs[0].shape[0]))
    entries = default_sweep(adapter_for(model), model)
    colorizer = Colorizer(model, batch_size=4)
    scores = score_batch(truth_crops, {"zhang": (colorizer, entries)}, SweepScores(BINS))
    assert sum(calls) == len(truth_crops) == scores.network_images["zhang"]
    assert len(calls) == -(-len(truth_crops) // colorizer.forward_batch)  # one pass per chunk for 7 decoded rows
    assert len(scores.rows) == len(entries) + 1
    # each row equals rendering that entry on its own through the public Colorizer API
    for entry in entries[:2]:
        images = list(truth_crops.float() / 255)
        alone = torch.stack(colorizer.colorize_tensors(images, entry.options))
        reference = ColorizationScores.empty(BINS).update(alone, truth_crops)
        assert np.array_equal(scores.rows[("zhang", entry.label)].histogram.counts, reference.histogram.counts)


def test_grey_row_and_merges_are_exact(truth_crops):
    whole = score_batch(truth_crops, {}, SweepScores(BINS))
    parts = [score_batch(truth_crops[i : i + 2], {}, SweepScores(BINS)) for i in range(0, len(truth_crops), 2)]
    merged = sum(parts)
    key = (GREY_MODEL, GREY_LABEL)
    assert np.array_equal(merged.rows[key].histogram.counts, whole.rows[key].histogram.counts)
    assert merged.images_read == whole.images_read == len(truth_crops)
    reference = ColorizationScores.empty(BINS).update(grey_baseline(truth_crops), truth_crops)
    _same(whole.rows[key], reference)


def test_truth_from_shard_is_the_stored_crop(truth_crops):
    stored = [rgb8_to_quantized_lab(crop.permute(1, 2, 0).numpy(), use_table=False) for crop in truth_crops]
    lightness = np.stack([l for l, _ in stored])
    ab = np.stack([ab for _, ab in stored])
    restored = truth_from_shard(lightness, ab)
    difference = (restored.int() - truth_crops.int()).abs()
    # 8-bit L and 1-unit ab quantization (docs/data-pipeline.md): under one level on average, a few at most
    assert difference.float().mean() < 1.0 and difference.max() <= 8
