"""Larsson et al.'s training step at 1/16 width: every head learns a tiny batch, colourless images are left out,
sampling is reproducible and the default optimizer is the released solver's."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from colorization.color.constants import LARSSON_SGD_LR, LARSSON_SGD_MOMENTUM, LARSSON_WEIGHT_DECAY
from colorization.color.hue_chroma import larsson_grey
from colorization.color.lab import lab_to_rgb, rgb_to_lab
from colorization.models.larsson_hypercolumn import HEAD_NAMES, LarssonHypercolumn
from colorization.models.registry import create_model
from colorization.training.larsson_step import (
    default_larsson_optimizer,
    larsson_loss,
    larsson_loss_terms,
    larsson_train_step,
)

SEED = 0


def colourful_lab(batch: int = 2, size: int = 32) -> torch.Tensor:
    """(N, 3, size, size) raw Lab of smooth random colour fields (bilinear upsampling of 4x4 random RGB)."""
    generator = torch.Generator().manual_seed(SEED)
    rgb = F.interpolate(torch.rand(batch, 3, 4, 4, generator=generator), size=(size, size), mode="bilinear")
    return rgb_to_lab(rgb.clamp(0, 1))


def small_model(heads: tuple[str, ...]) -> LarssonHypercolumn:
    torch.manual_seed(SEED)
    model = create_model("larsson_hypercolumn_w16", heads=heads, dropout=0.0, sampled_pixels=32)
    return model.train()


# The histogram heads share one network; the L2 head (raw Lab units, losses ~1000x larger) trains alone.
@pytest.mark.parametrize("heads", [("lab_marginal", "lab_joint", "hue_chroma"), ("l2",)])
def test_twenty_steps_reduce_the_loss_of_every_head(heads: tuple[str, ...]) -> None:
    model = small_model(heads)
    lab = colourful_lab()
    model.estimate_hypercolumn_scales(larsson_grey(lab_to_rgb(lab)))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)

    def same_pixels() -> torch.Generator:  # the same sampled pixels at every step: the batch can be learnt
        return torch.Generator().manual_seed(123)

    def head_losses() -> dict[str, float]:
        with torch.no_grad():
            terms = larsson_loss_terms(model, lab, generator=same_pixels())
        return {head: float(value) for head, value in terms.head_losses.items()}

    before = head_losses()
    for _ in range(20):
        metrics = larsson_train_step(model, optimizer, lab, generator=same_pixels())
    after = head_losses()
    assert set(metrics) == {"loss", "colourful_images"} | {f"loss_{head}" for head in heads}
    assert metrics["colourful_images"] == 2
    for head in heads:
        assert after[head] < 0.8 * before[head], f"{head}: loss {before[head]:.4f} -> {after[head]:.4f}"


def test_heads_add_up_and_sampling_is_reproducible() -> None:
    model = small_model(HEAD_NAMES).eval()
    lab = colourful_lab()
    terms = larsson_loss_terms(model, lab, generator=torch.Generator().manual_seed(5))
    again = larsson_loss_terms(model, lab, generator=torch.Generator().manual_seed(5))
    assert list(terms.head_losses) == list(HEAD_NAMES)
    torch.testing.assert_close(terms.loss, sum(terms.head_losses.values()))
    torch.testing.assert_close(terms.loss, again.loss)
    other = larsson_loss_terms(model, lab, generator=torch.Generator().manual_seed(6))
    assert not torch.equal(terms.loss, other.loss)


def test_colourless_images_are_left_out() -> None:
    model = small_model(("hue_chroma", "l2")).eval()
    lab = colourful_lab()
    grey_lab = lab.clone()
    grey_lab[:, 1:] = 0.0
    mixed = torch.cat((lab[:1], grey_lab[1:]))
    generator_seed = 9
    mixed_terms = larsson_loss_terms(model, mixed, generator=torch.Generator().manual_seed(generator_seed))
    assert mixed_terms.colourful_images == 1

    nothing = larsson_loss_terms(model, grey_lab, generator=torch.Generator().manual_seed(generator_seed))
    assert nothing.colourful_images == 0
    assert float(nothing.loss.detach()) == 0.0
    nothing.loss.backward()  # the graph is kept, so a step on an all-grey batch still runs
    assert all(p.grad is None or not p.grad.any() for p in model.parameters())


def test_default_optimizer_is_the_released_solver() -> None:
    model = small_model(("hue_chroma",))
    optimizer = default_larsson_optimizer(model)
    assert isinstance(optimizer, torch.optim.SGD)
    weights, biases = optimizer.param_groups
    assert (weights["lr"], weights["momentum"], weights["weight_decay"]) == (
        LARSSON_SGD_LR,
        LARSSON_SGD_MOMENTUM,
        LARSSON_WEIGHT_DECAY,
    ) == (1e-3, 0.9, 5e-4)
    assert (biases["lr"], biases["weight_decay"]) == (2e-3, 0.0)
    assert {id(p) for p in weights["params"]} | {id(p) for p in biases["params"]} == {
        id(p) for p in model.parameters()
    }
    assert all(p.ndim == 1 for p in biases["params"]) and all(p.ndim > 1 for p in weights["params"])
    metrics = larsson_train_step(model, optimizer, colourful_lab(), generator=torch.Generator().manual_seed(0))
    assert set(metrics) == {"loss", "loss_hue_chroma", "colourful_images"}
    assert all(p.grad is None for p in model.parameters())  # zero_grad after the step


def test_rejects_non_lab_input() -> None:
    model = small_model(("l2",))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        larsson_loss(model, torch.zeros(1, 1, 64, 64))
    with pytest.raises(TypeError, match="LarssonHypercolumn"):
        larsson_loss(torch.nn.Linear(1, 1), colourful_lab())
