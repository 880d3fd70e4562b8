"""Larsson losses against brute-force numpy, closed-form gradients and KL identities."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from colorization.color.constants import (
    LARSSON_HUE_CHROMA_BINS,
    LARSSON_HUE_WEIGHT,
    LARSSON_JOINT_BINS,
    LARSSON_LAB_SIGMA,
    LARSSON_MARGINAL_BINS,
)
from colorization.color.larsson_bins import encode_joint_ab, encode_marginal, gaussian_quantile_edges
from colorization.losses.larsson_loss import (
    histogram_kl,
    hue_chroma_loss,
    lab_joint_loss,
    lab_l2_loss,
    lab_marginal_loss,
)


def numpy_kl(y: np.ndarray, logits: np.ndarray) -> float:
    """KL(y || softmax(logits)) of one histogram, term by term, skipping y_k = 0."""
    shifted = logits - logits.max()
    log_q = shifted - np.log(np.exp(shifted).sum())
    return sum(y[k] * (np.log(y[k]) - log_q[k]) for k in range(len(y)) if y[k] > 0)


def per_pixel(fn, *arrays: np.ndarray) -> np.ndarray:
    """Applies ``fn`` to each pixel's bin vectors of (N, K, *S) arrays -> (N, *S)."""
    n, _, *trailing = arrays[0].shape
    out = np.zeros((n, *trailing))
    for index in np.ndindex(n, *trailing):
        sl = (index[0], slice(None), *index[1:])
        out[index] = fn(*(a[sl] for a in arrays))
    return out


def brute_quantile_bin(value: float, num_bins: int) -> int:
    """Bin of ``value`` on scipy's quantile edges, by a loop over the inner edges."""
    edges = norm.ppf(np.arange(1, num_bins) / num_bins, scale=LARSSON_LAB_SIGMA)
    return int(sum(value >= e for e in edges))


def brute_uniform_bin(value: float, num_bins: int) -> int:
    return min(int(np.floor(value * num_bins)), num_bins - 1)


def soft_targets(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    y = rng.random(shape) * (rng.random(shape) > 0.5)
    y[:, 0] += 1e-3
    return y / y.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("shape", [(2, 7, 3, 4), (3, 5, 6), (4, 9)])
def test_histogram_kl_matches_numpy_on_soft_targets_with_zeros(shape: tuple[int, ...]) -> None:
    y = soft_targets(shape, seed=0)
    logits = 2.0 * np.random.default_rng(1).normal(size=shape)
    kl = histogram_kl(torch.from_numpy(y), torch.from_numpy(logits))
    assert kl.shape == shape[:1] + shape[2:]
    np.testing.assert_allclose(kl.numpy(), per_pixel(numpy_kl, y, logits), rtol=1e-10, atol=1e-12)
    kl32 = histogram_kl(torch.from_numpy(y).float(), torch.from_numpy(logits).float())
    np.testing.assert_allclose(kl32.numpy(), kl.numpy(), rtol=1e-4, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), num_bins=st.integers(1, 40), scale=st.floats(0.0, 20.0))
def test_histogram_kl_is_non_negative(seed: int, num_bins: int, scale: float) -> None:
    y = torch.from_numpy(soft_targets((3, num_bins, 4), seed))
    logits = scale * torch.randn(3, num_bins, 4, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert (histogram_kl(y, logits) >= -1e-12).all()


def test_histogram_kl_vanishes_when_the_prediction_is_the_target() -> None:
    positive = torch.from_numpy(np.random.default_rng(2).dirichlet(np.ones(8), size=(5, 3))).permute(0, 2, 1)
    zeros = torch.zeros(5, 3, dtype=torch.float64)
    for shift in (0.0, 17.0):  # softmax is shift invariant
        torch.testing.assert_close(histogram_kl(positive, positive.log() + shift), zeros, rtol=0, atol=1e-12)
    with_zeros = torch.from_numpy(soft_targets((5, 8, 3), seed=3))
    kl = histogram_kl(with_zeros, with_zeros.log())  # -inf logits where the target is 0
    torch.testing.assert_close(kl, zeros, rtol=0, atol=1e-12)


def test_one_hot_kl_is_the_cross_entropy() -> None:
    logits = np.random.default_rng(4).normal(size=(4, 6, 5))
    index = np.random.default_rng(5).integers(0, 6, size=(4, 5))
    one_hot = np.zeros_like(logits)
    for n, p in np.ndindex(4, 5):
        one_hot[n, index[n, p], p] = 1.0
    kl = histogram_kl(torch.from_numpy(one_hot), torch.from_numpy(logits)).numpy()
    for n, p in np.ndindex(4, 5):
        column = logits[n, :, p]
        assert kl[n, p] == pytest.approx(np.log(np.exp(column).sum()) - column[index[n, p]], rel=1e-12)


@pytest.mark.parametrize("trailing", [(4, 3), (10,)])
def test_lab_marginal_loss_matches_brute_force(trailing: tuple[int, ...]) -> None:
    rng = np.random.default_rng(6)
    ab = rng.normal(0.0, 40.0, size=(2, 2, *trailing))
    logits_a = rng.normal(size=(2, LARSSON_MARGINAL_BINS, *trailing))
    logits_b = rng.normal(size=(2, LARSSON_MARGINAL_BINS, *trailing))
    total, count = 0.0, 0
    for index in np.ndindex(2, *trailing):
        for channel, logits in ((0, logits_a), (1, logits_b)):
            target = np.zeros(LARSSON_MARGINAL_BINS)
            target[brute_quantile_bin(ab[(index[0], channel, *index[1:])], LARSSON_MARGINAL_BINS)] = 1.0
            total += numpy_kl(target, logits[(index[0], slice(None), *index[1:])])
        count += 1
    loss = lab_marginal_loss(torch.from_numpy(logits_a), torch.from_numpy(logits_b), torch.from_numpy(ab))
    assert loss.ndim == 0
    assert loss.item() == pytest.approx(total / count, rel=1e-10)


def test_lab_marginal_loss_is_the_mean_kl_of_the_encoded_targets() -> None:
    generator = torch.Generator().manual_seed(7)
    ab = 30.0 * torch.randn(3, 2, 5, 5, generator=generator)
    logits_a = torch.randn(3, LARSSON_MARGINAL_BINS, 5, 5, generator=generator)
    logits_b = torch.randn(3, LARSSON_MARGINAL_BINS, 5, 5, generator=generator)
    edges = gaussian_quantile_edges()
    expected = (histogram_kl(encode_marginal(ab[:, 0], edges), logits_a)
                + histogram_kl(encode_marginal(ab[:, 1], edges), logits_b)).mean()
    torch.testing.assert_close(lab_marginal_loss(logits_a, logits_b, ab), expected)


def test_lab_joint_loss_matches_brute_force_and_encoded_targets() -> None:
    rng = np.random.default_rng(8)
    num_bins = LARSSON_JOINT_BINS
    ab = rng.normal(0.0, 40.0, size=(2, 2, 7))
    logits = rng.normal(size=(2, num_bins * num_bins, 7))
    total = 0.0
    for n, p in np.ndindex(2, 7):
        target = np.zeros(num_bins * num_bins)
        target[brute_quantile_bin(ab[n, 0, p], num_bins) * num_bins + brute_quantile_bin(ab[n, 1, p], num_bins)] = 1
        total += numpy_kl(target, logits[n, :, p])
    loss = lab_joint_loss(torch.from_numpy(logits), torch.from_numpy(ab))
    assert loss.item() == pytest.approx(total / 14, rel=1e-10)
    encoded = histogram_kl(encode_joint_ab(torch.from_numpy(ab)), torch.from_numpy(logits)).mean()
    torch.testing.assert_close(loss, encoded)


def test_hue_chroma_loss_matches_brute_force() -> None:
    rng = np.random.default_rng(9)
    num_bins = LARSSON_HUE_CHROMA_BINS
    hue = rng.random((3, 6))
    chroma = rng.random((3, 6)) * 0.6
    chroma[0, 0], hue[1, 1] = 1.0, 1.0  # both ends of [0, 1]
    logits_hue = rng.normal(size=(3, num_bins, 6))
    logits_chroma = rng.normal(size=(3, num_bins, 6))
    total = 0.0
    for n, p in np.ndindex(3, 6):
        y_chroma = np.eye(num_bins)[brute_uniform_bin(chroma[n, p], num_bins)]
        y_hue = np.eye(num_bins)[brute_uniform_bin(hue[n, p], num_bins)]
        total += numpy_kl(y_chroma, logits_chroma[n, :, p])
        total += LARSSON_HUE_WEIGHT * chroma[n, p] * numpy_kl(y_hue, logits_hue[n, :, p])
    loss = hue_chroma_loss(*(torch.from_numpy(x) for x in (logits_hue, logits_chroma, hue, chroma)))
    assert loss.item() == pytest.approx(total / 18, rel=1e-10)


def test_hue_term_is_weighted_by_chroma() -> None:
    generator = torch.Generator().manual_seed(10)
    num_bins, shape = LARSSON_HUE_CHROMA_BINS, (2, 8)
    hue = torch.rand(shape, generator=generator, dtype=torch.float64)
    chroma = torch.rand(shape, generator=generator, dtype=torch.float64)
    chroma[:, :3] = 0.0
    logits_hue = torch.randn(2, num_bins, 8, generator=generator, dtype=torch.float64, requires_grad=True)
    logits_chroma = torch.randn(2, num_bins, 8, generator=generator, dtype=torch.float64)

    loss = hue_chroma_loss(logits_hue, logits_chroma, hue, chroma)
    (grad,) = torch.autograd.grad(loss, logits_hue)
    # closed form: d/dlogits of lambda * y_C * CE / #pixels = lambda * y_C * (softmax - onehot) / #pixels
    one_hot = torch.nn.functional.one_hot((hue * num_bins).long().clamp_max(num_bins - 1), num_bins)
    expected = (LARSSON_HUE_WEIGHT * chroma[:, None] * (logits_hue.detach().softmax(dim=1)
                                                        - one_hot.permute(0, 2, 1)) / hue.numel())
    torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-14)
    assert torch.equal(grad[:, :, :3], torch.zeros_like(grad[:, :, :3]))

    # zero-chroma pixels contribute no hue loss: changing their hue logits or hue leaves it unchanged
    other_logits = logits_hue.detach().clone()
    other_logits[:, :, :3] = 50.0 * torch.randn(2, num_bins, 3, generator=generator, dtype=torch.float64)
    other_hue = hue.clone()
    other_hue[:, :3] = 1.0 - other_hue[:, :3]
    torch.testing.assert_close(hue_chroma_loss(other_logits, logits_chroma, other_hue, chroma), loss.detach())

    # with lambda_H = 0 only the chroma KL remains
    chroma_only = hue_chroma_loss(logits_hue.detach(), logits_chroma, hue, chroma, hue_weight=0.0)
    index = (chroma * num_bins).long().clamp_max(num_bins - 1)
    torch.testing.assert_close(chroma_only, torch.nn.functional.cross_entropy(logits_chroma, index))


def test_hue_chroma_loss_gradient_does_not_flow_into_chroma_weight() -> None:
    chroma = torch.full((1, 4), 0.5, requires_grad=True)
    loss = hue_chroma_loss(torch.randn(1, 32, 4), torch.randn(1, 32, 4), torch.rand(1, 4), chroma)
    assert not loss.requires_grad


def test_lab_l2_loss_is_mean_squared_euclidean_distance() -> None:
    rng = np.random.default_rng(11)
    pred, target = rng.normal(0, 30, size=(2, 2, 3, 4)), rng.normal(0, 30, size=(2, 2, 3, 4))
    expected = np.mean([np.sum((pred[n, :, i, j] - target[n, :, i, j]) ** 2) for n, i, j in np.ndindex(2, 3, 4)])
    loss = lab_l2_loss(torch.from_numpy(pred), torch.from_numpy(target))
    assert loss.item() == pytest.approx(expected, rel=1e-12)
    sampled = lab_l2_loss(torch.from_numpy(pred).flatten(2), torch.from_numpy(target).flatten(2))
    assert sampled.item() == pytest.approx(expected, rel=1e-12)


def test_bad_shapes_are_rejected() -> None:
    ab = torch.zeros(2, 2, 5)
    with pytest.raises(ValueError):
        lab_marginal_loss(torch.zeros(2, 31, 5), torch.zeros(2, 31, 5), ab)
    with pytest.raises(ValueError):
        lab_joint_loss(torch.zeros(2, LARSSON_MARGINAL_BINS, 5), ab)
    with pytest.raises(ValueError):
        lab_marginal_loss(torch.zeros(2, 32, 4), torch.zeros(2, 32, 4), ab)
    with pytest.raises(ValueError):
        hue_chroma_loss(torch.zeros(2, 32, 5), torch.zeros(2, 32, 5), torch.zeros(2, 4), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        histogram_kl(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError):
        lab_l2_loss(torch.zeros(2, 3, 4), torch.zeros(2, 3, 4))
