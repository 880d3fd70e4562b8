"""Zhang et al.'s rebalanced multinomial cross-entropy against numpy brute force and its closed-form gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colorization.color.ab_bins import default_ab_bins, soft_encode_ab
from colorization.color.ab_prior import colourful_images, pixel_rebalance_weights
from colorization.losses.zhang_loss import cross_entropy_unweighted, rebalanced_cross_entropy


def _brute_force_loss(logits: np.ndarray, target: np.ndarray, weights: np.ndarray | None, mask: np.ndarray | None):
    """Per-pixel loop: sum over valid pixels of -v sum_q Z_q log softmax_q, divided by the number of valid pixels."""
    n, _, h, w = logits.shape
    total, count = 0.0, 0
    for i, y, x in np.ndindex(n, h, w):
        if mask is not None and not mask[i]:
            continue
        scores = logits[i, :, y, x]
        log_softmax = scores - scores.max() - np.log(np.exp(scores - scores.max()).sum())
        total += (1.0 if weights is None else weights[i, y, x]) * -(target[i, :, y, x] * log_softmax).sum()
        count += 1
    return total / count if count else 0.0


def _random_case(seed: int, n: int = 3, q: int = 7, h: int = 2, w: int = 3):
    generator = np.random.default_rng(seed)
    logits = generator.normal(0, 2, size=(n, q, h, w))
    target = generator.dirichlet(np.full(q, 0.3), size=(n, h, w)).transpose(0, 3, 1, 2)  # rows sum to 1
    weights = generator.uniform(0.2, 5.0, size=(n, h, w))
    return logits, target, weights


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), mask_bits=st.lists(st.booleans(), min_size=3, max_size=3))
def test_loss_matches_brute_force(seed: int, mask_bits: list[bool]) -> None:
    logits, target, weights = _random_case(seed)
    mask = np.array(mask_bits)
    as_tensor = torch.from_numpy
    for pixel_weights in (None, weights):
        for image_mask in (None, mask):
            loss = rebalanced_cross_entropy(
                as_tensor(logits),
                as_tensor(target),
                pixel_weights=None if pixel_weights is None else as_tensor(pixel_weights),
                image_mask=None if image_mask is None else as_tensor(image_mask),
            )
            assert loss.ndim == 0 and loss.dtype == torch.float64
            assert float(loss) == pytest.approx(_brute_force_loss(logits, target, pixel_weights, image_mask), rel=1e-12)


def test_unweighted_alias_and_none_weights() -> None:
    logits, target, _ = _random_case(0)
    mask = torch.tensor([True, False, True])
    logits, target = torch.from_numpy(logits), torch.from_numpy(target)
    ones = torch.ones(3, 2, 3, dtype=torch.float64)
    unweighted = cross_entropy_unweighted(logits, target, mask)
    assert torch.equal(unweighted, rebalanced_cross_entropy(logits, target, None, mask))
    assert torch.allclose(rebalanced_cross_entropy(logits, target, ones, mask), unweighted)


def test_gradient_is_weighted_softmax_minus_target_over_valid_pixels() -> None:
    logits, target, weights = _random_case(1)
    logits = torch.from_numpy(logits).requires_grad_(True)
    target, weights = torch.from_numpy(target), torch.from_numpy(weights)
    mask = torch.tensor([True, False, True])
    rebalanced_cross_entropy(logits, target, weights, mask).backward()
    num_valid_pixels = int(mask.sum()) * 2 * 3
    expected = weights[:, None] * (torch.softmax(logits.detach(), dim=1) - target) / num_valid_pixels
    expected[~mask] = 0.0
    assert torch.allclose(logits.grad, expected, atol=1e-14)
    assert logits.grad[mask].abs().sum() > 0  # not vacuous


def test_masked_out_images_do_not_matter() -> None:
    logits, target, weights = (torch.from_numpy(array) for array in _random_case(2))
    mask = torch.tensor([False, True, True])
    loss = rebalanced_cross_entropy(logits, target, weights, mask)
    changed = logits.clone()
    changed[0] = 1e3 * torch.randn_like(changed[0])
    assert torch.equal(rebalanced_cross_entropy(changed, target, weights, mask), loss)
    assert torch.allclose(loss, rebalanced_cross_entropy(logits[1:], target[1:], weights[1:]))


def test_no_valid_image_gives_zero_with_a_graph() -> None:
    logits, target, weights = (torch.from_numpy(array) for array in _random_case(3))
    logits.requires_grad_(True)
    loss = rebalanced_cross_entropy(logits, target, weights, torch.zeros(3, dtype=torch.bool))
    assert float(loss.detach()) == 0.0 and loss.grad_fn is not None
    loss.backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_colourless_images_are_masked_out_end_to_end() -> None:
    bins = default_ab_bins()
    generator = torch.Generator().manual_seed(4)
    ab = 40.0 * torch.randn(4, 2, 4, 4, generator=generator)
    ab[1] = 0.5 * torch.randn(2, 4, 4, generator=generator)  # a grey photo: max |ab| well below 5
    ab[3] = 0.0
    mask = colourful_images(ab)
    assert mask.tolist() == [True, False, True, False]
    target = soft_encode_ab(ab, bins, neighbours=10)
    weights = pixel_rebalance_weights(target, torch.linspace(0.5, 3.0, len(bins)))
    logits = torch.randn(4, len(bins), 4, 4, generator=generator, requires_grad=True)
    loss = rebalanced_cross_entropy(logits, target, weights, mask)
    subset = rebalanced_cross_entropy(logits[mask], target[mask], weights[mask])
    assert torch.allclose(loss, subset)
    loss.backward()
    assert logits.grad[~mask].abs().sum() == 0 and logits.grad[mask].abs().sum() > 0


def test_float32_and_errors() -> None:
    logits, target, weights = (torch.from_numpy(array).float() for array in _random_case(5))
    loss = rebalanced_cross_entropy(logits, target, weights)
    assert loss.dtype == torch.float32
    as_float64 = (array.double().numpy() for array in (logits, target, weights))
    assert float(loss) == pytest.approx(_brute_force_loss(*as_float64, None), rel=1e-5)
    with pytest.raises(ValueError, match="soft_target"):
        rebalanced_cross_entropy(logits, target[:, :-1])
    with pytest.raises(ValueError, match="pixel_weights"):
        rebalanced_cross_entropy(logits, target, weights[:, :1])
    with pytest.raises(ValueError, match="image_mask"):
        rebalanced_cross_entropy(logits, target, image_mask=torch.ones(3))
    with pytest.raises(ValueError, match="image_mask"):
        rebalanced_cross_entropy(logits, target, image_mask=torch.ones(2, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(N, Q, h, w\)"):
        rebalanced_cross_entropy(logits[0], target[0])
