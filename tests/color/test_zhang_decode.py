"""Zhang et al. Sec. 2.3 decoding (mean, mode, annealed mean) against the paper's formula written in numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from colorization.color.ab_bins import default_ab_bins
from colorization.color.constants import ANNEALED_MEAN_TEMPERATURE
from colorization.color.zhang_decode import annealed_mean_ab, mean_ab, mode_ab


@pytest.fixture(scope="module")
def bins() -> torch.Tensor:
    return default_ab_bins(dtype=torch.float64)


def _paper_annealed_mean(logits: np.ndarray, bins: np.ndarray, temperature: float) -> np.ndarray:
    """Sec. 2.3 literally, per pixel: z = softmax(logits), f_T(z) = exp(log z / T) / sum exp(log z / T), E[f_T]."""
    n, q, h, w = logits.shape
    out = np.zeros((n, 2, h, w))
    for i, y, x in np.ndindex(n, h, w):
        z = np.exp(logits[i, :, y, x] - logits[i, :, y, x].max())
        z /= z.sum()
        log_z = np.log(z)
        f_t = np.exp((log_z - log_z.max()) / temperature)  # the max shift cancels in the ratio
        f_t /= f_t.sum()
        out[i, :, y, x] = f_t @ bins
    return out


def _one_hot_logits(num_bins: int, scale: float) -> torch.Tensor:
    """(1, Q, 1, Q): pixel q has logit `scale` on bin q and 0 elsewhere."""
    return (scale * torch.eye(num_bins, dtype=torch.float64))[None, :, None, :]


@pytest.mark.parametrize("temperature", [1e-3, 0.1, ANNEALED_MEAN_TEMPERATURE, 1.0, 1.5])
def test_one_hot_decodes_to_its_bin_centre(bins: torch.Tensor, temperature: float) -> None:
    centres = bins.T[None, :, None, :]  # (1, 2, 1, Q)
    # Off-bin mass is (Q - 1) exp(-60 / T) <= Q e^-40 for T <= 1.5: far below the tolerance.
    logits = _one_hot_logits(len(bins), 60.0)
    assert torch.allclose(annealed_mean_ab(logits, bins, temperature), centres, atol=1e-9, rtol=0)
    assert torch.allclose(mean_ab(logits, bins), centres, atol=1e-9, rtol=0)
    assert torch.equal(mode_ab(logits, bins), centres)


@settings(max_examples=30, deadline=None)
@given(
    logits=arrays(np.float64, (2, 12, 2, 3), elements=st.floats(-8.0, 8.0, width=64)),
    temperature=st.floats(0.05, 3.0),
)
def test_annealed_mean_equals_the_paper_formula(logits: np.ndarray, temperature: float) -> None:
    bins = default_ab_bins(dtype=torch.float64)[::20][:12]  # 12 spread-out bins
    ours = annealed_mean_ab(torch.from_numpy(logits), bins, temperature).numpy()
    np.testing.assert_allclose(ours, _paper_annealed_mean(logits, bins.numpy(), temperature), rtol=1e-9, atol=1e-9)


def test_temperature_one_is_the_mean(bins: torch.Tensor) -> None:
    logits = torch.randn(3, len(bins), 4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    expected = torch.einsum("nqhw,qc->nchw", torch.softmax(logits, dim=1), bins)
    assert torch.allclose(annealed_mean_ab(logits, bins, 1.0), expected, atol=1e-12)
    assert torch.allclose(mean_ab(logits, bins), expected, atol=1e-12)


def test_small_temperature_approaches_the_mode(bins: torch.Tensor) -> None:
    logits = 3.0 * torch.randn(2, len(bins), 6, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    top2 = logits.topk(2, dim=1).values
    assert float((top2[:, 0] - top2[:, 1]).min()) > 1e-3  # a unique mode everywhere, so the limit is the mode
    mode = mode_ab(logits, bins)
    diameter = float(torch.cdist(bins, bins).max())
    mode_probabilities = []
    for temperature in (1.0, 0.3, 0.1, 0.03):
        p_mode = torch.softmax(logits / temperature, dim=1).amax(dim=1)  # (N, h, w)
        mode_probabilities.append(p_mode)
        # |sum_q p_q (c_q - c_mode)| <= (1 - p_mode) * max |c_q - c_mode|: the decoded colour closes in on the mode.
        distance = (annealed_mean_ab(logits, bins, temperature) - mode).norm(dim=1)
        assert (distance <= (1 - p_mode) * diameter + 1e-9).all()
    for warmer, colder in zip(mode_probabilities, mode_probabilities[1:]):
        assert (colder >= warmer).all()  # exp(-(l_max - l_q) / T) shrinks with T, for every q
    assert float(mode_probabilities[0].min()) < 0.5 < float(mode_probabilities[-1].min())  # not vacuous
    assert torch.allclose(annealed_mean_ab(logits, bins, 1e-6), mode, atol=1e-6)
    assert torch.equal(annealed_mean_ab(logits, bins, 0.0), mode)  # T = 0 is defined as the mode


def test_small_temperature_is_stable_for_large_logits(bins: torch.Tensor) -> None:
    logits = torch.zeros(1, len(bins), 1, 2)
    logits[0, 7, 0, 0] = 5e4
    logits[0, 3, 0, 1] = -5e4  # every other bin ties at 0 -> the lowest index other than 3 wins the mode
    out = annealed_mean_ab(logits, bins.float(), 1e-3)
    assert torch.isfinite(out).all()
    assert torch.equal(out[0, :, 0, 0], bins[7].float())
    assert torch.equal(mode_ab(logits, bins.float())[0, :, 0, 1], bins[0].float())


def test_annealing_moves_to_the_mode_not_necessarily_to_saturation(bins: torch.Tensor) -> None:
    # Lowering T sharpens toward the mode; if the mode is grey, the decoded colour gets *less* saturated.
    grey = int(bins.norm(dim=1).argmin())
    red = int(((bins - torch.tensor([60.0, 40.0], dtype=torch.float64)).norm(dim=1)).argmin())
    logits = torch.full((1, len(bins), 1, 1), -20.0, dtype=torch.float64)
    logits[0, grey], logits[0, red] = 0.0, -0.5
    saturation = [float(annealed_mean_ab(logits, bins, t).norm()) for t in (1.0, ANNEALED_MEAN_TEMPERATURE, 0.1)]
    assert saturation == sorted(saturation, reverse=True)
    assert saturation[-1] < 0.1 * saturation[0]


def test_batched_shapes_dtypes_and_per_image_consistency(bins: torch.Tensor) -> None:
    logits = torch.randn(3, len(bins), 5, 7, generator=torch.Generator().manual_seed(2))
    for decode in (mean_ab, mode_ab, annealed_mean_ab):
        batch = decode(logits, bins)  # bins are cast to the logits' float32
        assert batch.shape == (3, 2, 5, 7) and batch.dtype == torch.float32
        singles = torch.cat([decode(logits[i : i + 1], bins) for i in range(3)])
        assert torch.allclose(batch, singles, atol=1e-5)


def test_annealed_mean_is_differentiable(bins: torch.Tensor) -> None:
    logits = torch.randn(1, len(bins), 2, 2, dtype=torch.float64, requires_grad=True)
    annealed_mean_ab(logits, bins).sum().backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all() and logits.grad.abs().sum() > 0


def test_decode_argument_errors(bins: torch.Tensor) -> None:
    logits = torch.zeros(1, len(bins), 2, 2)
    with pytest.raises(ValueError, match="temperature"):
        annealed_mean_ab(logits, bins, -0.1)
    with pytest.raises(ValueError, match="temperature"):
        annealed_mean_ab(logits, bins, float("nan"))
    with pytest.raises(ValueError, match="bins"):
        mean_ab(logits[:, :-1], bins)
    with pytest.raises(ValueError, match=r"\(N, Q, h, w\)"):
        mode_ab(logits[0], bins)
