"""Zhang et al.'s training step at 1/8 width on tiny synthetic Lab batches (fast, CPU)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from colorization.color.lab import rgb_to_lab
from colorization.models.registry import create_model
from colorization.models.zhang_eccv16 import ZhangECCV16
from colorization.training.zhang_step import (
    ADAM_BETAS,
    ADAM_LEARNING_RATE,
    ADAM_WEIGHT_DECAY,
    default_zhang_optimizer,
    subsample_ab_to_logits,
    zhang_loss,
    zhang_loss_terms,
    zhang_train_step,
)

SIZE = 32  # input side; logits are 8x8


def _colourful_batch(batch: int, seed: int = 0) -> torch.Tensor:
    """(N, 3, 32, 32) raw Lab of blocky random colours: learnable from L only up to the block structure."""
    generator = torch.Generator().manual_seed(seed)
    rgb = torch.rand(batch, 3, 4, 4, generator=generator)
    rgb = F.interpolate(rgb, size=(SIZE, SIZE), mode="nearest")
    return rgb_to_lab(rgb)


def _grey_batch(batch: int) -> torch.Tensor:
    lab = torch.zeros(batch, 3, SIZE, SIZE)
    lab[:, 0] = torch.linspace(5.0, 95.0, SIZE)
    return lab


def _model(seed: int = 0) -> ZhangECCV16:
    torch.manual_seed(seed)
    return create_model("zhang_eccv16_w8").train()


def test_loss_decreases_on_a_repeated_batch() -> None:
    model = _model()
    lab = _colourful_batch(4)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # faster than the paper's 3e-5, for 20 steps
    losses = [zhang_train_step(model, optimizer, lab, class_weights=None)["loss"] for _ in range(20)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < 0.9 * losses[0], losses  # ~5.57 -> ~4.79 at seed 0


def test_gradients_are_finite_and_reach_every_block() -> None:
    model = _model()
    weights = torch.rand(model.config.num_bins, generator=torch.Generator().manual_seed(2)) + 0.5
    loss = zhang_loss(model, _colourful_batch(2), class_weights=weights)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and torch.isfinite(parameter.grad).all(), name
    assert all(float(getattr(model, f"model{block}")[0].weight.grad.abs().sum()) > 0 for block in range(1, 9))


def test_step_reports_weighted_and_unweighted_loss_and_clears_gradients() -> None:
    model = _model()
    lab = _colourful_batch(2)
    uniform = torch.full((model.config.num_bins,), 2.0)
    result = zhang_train_step(model, default_zhang_optimizer(model), lab, class_weights=uniform)
    assert set(result) == {"loss", "loss_unweighted", "colourful_images"}
    assert result["colourful_images"] == 2
    assert result["loss"] == pytest.approx(2.0 * result["loss_unweighted"], rel=1e-5)
    assert all(parameter.grad is None for parameter in model.parameters())


def test_colourless_images_do_not_count() -> None:
    model = _model().eval()  # eval: BatchNorm must not mix the images, so the two losses are comparable
    colourful = _colourful_batch(2)
    mixed = torch.cat((colourful[:1], _grey_batch(1), colourful[1:]))
    with torch.no_grad():
        alone = zhang_loss_terms(model, colourful, class_weights=None)
        with_grey = zhang_loss_terms(model, mixed, class_weights=None)
    assert (alone.colourful_images, with_grey.colourful_images) == (2, 2)
    torch.testing.assert_close(with_grey.loss, alone.loss)


def test_all_grey_batch_has_zero_loss_and_only_weight_decay_moves_the_weights() -> None:
    grey = _grey_batch(3)

    plain = _model()
    before = copy.deepcopy(plain.state_dict())
    result = zhang_train_step(plain, torch.optim.Adam(plain.parameters(), lr=1e-3), grey, class_weights=None)
    assert result == {"loss": 0.0, "loss_unweighted": 0.0, "colourful_images": 0}
    for name, parameter in plain.named_parameters():  # zero gradient, no decay: Adam's update is exactly 0
        assert torch.equal(parameter.detach(), before[name]), name
    # BatchNorm still saw the batch in train mode: its running statistics moved.
    assert not torch.equal(plain.model1[4].running_mean, before["model1.4.running_mean"])

    # The paper's Adam has weight decay: the parameters move exactly as a step with zero loss gradient would.
    decayed = _model()
    twin = copy.deepcopy(decayed)
    zhang_train_step(decayed, default_zhang_optimizer(decayed), grey, class_weights=None)
    twin_optimizer = default_zhang_optimizer(twin)
    for parameter in twin.parameters():
        parameter.grad = torch.zeros_like(parameter)
    twin_optimizer.step()
    for (name, parameter), twin_parameter in zip(decayed.named_parameters(), twin.parameters(), strict=True):
        assert torch.equal(parameter, twin_parameter), name
    assert not torch.equal(decayed.model1[0].weight, plain.model1[0].weight)


def test_ground_truth_is_every_fourth_pixel() -> None:
    ab = torch.arange(2 * 2 * 16 * 8, dtype=torch.float32).reshape(2, 2, 16, 8)
    subsampled = subsample_ab_to_logits(ab, (4, 2))
    assert torch.equal(subsampled, ab[..., ::4, ::4])
    assert subsampled[0, 0, 1, 1] == ab[0, 0, 4, 4]
    with pytest.raises(ValueError, match="integer multiple"):
        subsample_ab_to_logits(ab, (5, 2))


def test_class_weights_must_cover_every_bin() -> None:
    model = _model()
    with pytest.raises(ValueError, match="one per bin"):
        zhang_loss(model, _colourful_batch(1), class_weights=torch.ones(model.config.num_bins + 1))


def test_default_optimizer_is_the_authors_solver() -> None:
    model = _model()
    group = default_zhang_optimizer(model).param_groups[0]
    assert (ADAM_LEARNING_RATE, ADAM_BETAS, ADAM_WEIGHT_DECAY) == (3e-5, (0.9, 0.99), 1e-3)
    assert (group["lr"], group["betas"], group["weight_decay"]) == (3e-5, (0.9, 0.99), 1e-3)
    assert len(group["params"]) == len(list(model.parameters()))
