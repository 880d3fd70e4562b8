"""Bin logits -> ab point estimates: mean, mode and annealed mean (Zhang et al. 2016, Sec. 2.3).

The annealed mean H(Z) = E[f_T(Z)], f_T(z) = exp(log z / T) / sum_q exp(log z_q / T), interpolates between the
mean (T = 1: spatially coherent, desaturated) and the mode (T -> 0: vivid, spatially noisy); the paper uses
T = 0.38. With z = softmax(logits), f_T(z) = softmax(logits / T), which is how it is computed here: never via
log of a probability. The released Caffe deploy net does the same (logits x 2.606 = 1/0.38, softmax, then a 1x1
convolution holding the bin centres); here the bin centres are an explicit argument instead of checkpoint weights.

Shapes: logits (N, Q, h, w); bins (Q, 2) raw (a, b) centres, Q = ``len(bins)``; results (N, 2, h, w) raw ab.
"""

from __future__ import annotations

import math

import torch

from colorization.color.constants import ANNEALED_MEAN_TEMPERATURE

__all__ = ["annealed_mean_ab", "mean_ab", "mode_ab"]


def _check(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Checks shapes; returns bins in logits' dtype and device."""
    if logits.ndim != 4:
        raise ValueError(f"logits must have shape (N, Q, h, w); got {tuple(logits.shape)}")
    if not logits.is_floating_point():
        raise TypeError(f"logits must be a floating-point tensor; got {logits.dtype}")
    if bins.ndim != 2 or bins.shape[1] != 2:
        raise ValueError(f"bins must have shape (Q, 2); got {tuple(bins.shape)}")
    if logits.shape[1] != bins.shape[0]:
        raise ValueError(f"logits have {logits.shape[1]} channels but there are {bins.shape[0]} bins")
    return bins.to(dtype=logits.dtype, device=logits.device)


def _expected_ab(probabilities: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """(N, Q, h, w) distribution, (Q, 2) centres -> (N, 2, h, w) expectation."""
    return torch.einsum("nqhw,qc->nchw", probabilities, bins)


def mode_ab(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Centre of the most probable bin; ties go to the lower bin index (not differentiable).

    Args:
        logits: (N, Q, h, w) unnormalized bin scores.
        bins: (Q, 2) raw (a, b) centres.

    Returns:
        (N, 2, h, w) raw ab in logits' dtype.
    """
    bins = _check(logits, bins)
    index = logits.argmax(dim=1)  # (N, h, w)
    return bins[index].permute(0, 3, 1, 2)


def annealed_mean_ab(
    logits: torch.Tensor,
    bins: torch.Tensor,
    temperature: float = ANNEALED_MEAN_TEMPERATURE,
) -> torch.Tensor:
    """Annealed mean E[f_T(softmax(logits))] = sum_q softmax(logits / T)_q * bins_q (Sec. 2.3).

    Stable for small T (softmax subtracts the maximum), e.g. T = 1e-3 gives the mode's centre whenever the top
    logit leads by more than ~0.05. T = 0 is the limit T -> 0 and returns :func:`mode_ab` (when several bins share
    the top logit, the limit would average them; the mode takes the lowest index). T = inf gives the plain average
    of the bin centres.

    Args:
        logits: (N, Q, h, w) unnormalized bin scores (e.g. the network output, before any softmax).
        bins: (Q, 2) raw (a, b) centres, in logit order.
        temperature: T >= 0; 1 is the mean, 0.38 the paper's choice.

    Returns:
        (N, 2, h, w) raw ab in logits' dtype; differentiable in logits for T > 0.
    """
    temperature = float(temperature)
    if math.isnan(temperature) or temperature < 0:
        raise ValueError(f"temperature must be >= 0; got {temperature}")
    if temperature == 0:
        return mode_ab(logits, bins)
    bins = _check(logits, bins)
    return _expected_ab(torch.softmax(logits / temperature, dim=1), bins)


def mean_ab(logits: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Mean of the predicted distribution, E[softmax(logits)] (the annealed mean at T = 1).

    Args:
        logits: (N, Q, h, w) unnormalized bin scores.
        bins: (Q, 2) raw (a, b) centres.

    Returns:
        (N, 2, h, w) raw ab in logits' dtype.
    """
    return annealed_mean_ab(logits, bins, temperature=1.0)
