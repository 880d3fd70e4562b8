"""Class-rebalancing weights for training from a prior file of ``colorization prior`` (Zhang et al. Sec. 2.2).

The prior file holds the smoothed empirical ab distribution over a bin set; the weights are recomputed here with
the run's lambda (``loss.uniform_mix``) by the core's :func:`rebalance_weights`. A prior counted on other bins than
the model's would weigh the wrong colours, so it is refused, with one line, before any data is read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from colorization.color.ab_prior import rebalance_weights
from colorization.errors import UserError
from colorization.families import adapter_for
from colorization.io.prior_file import load_ab_prior, prior_paths

__all__ = ["class_weights_from_prior"]

_BIN_TOLERANCE = 1e-6  # ab units; bins are stored as float32 or float64 of the same centres


def class_weights_from_prior(prior: str | Path | None, model: nn.Module, uniform_mix: float) -> torch.Tensor | None:
    """(Q,) float32 rebalancing weights for ``model`` from a prior file, or None when no weighting applies.

    Args:
        prior: the ``.npz`` written by ``colorization prior`` (or its folder); None: no rebalancing.
        model: the network (its family decides whether it uses a prior, and on which bins).
        uniform_mix: lambda of the rebalancing (0.5 in the paper).

    Returns:
        Weights in the model's bin order, or None (no prior given, or a family without a prior).

    Raises:
        UserError: the file is missing or unreadable, or its bins are not the model's.
    """
    model_bins = adapter_for(model).prior_bins(model)
    if prior is None or model_bins is None:
        return None
    path = prior_paths(prior)[0]
    if not path.is_file():
        raise UserError(f"prior {prior}: no prior file at {path} (run `colorization prior SHARDS --out {prior}`)")
    try:
        record = load_ab_prior(prior)
    except (OSError, ValueError, KeyError) as error:
        raise UserError(f"prior {path}: not a readable prior file ({error})") from None
    file_bins = np.asarray(record["bins"], dtype=np.float64)
    expected = model_bins.detach().cpu().double().numpy()
    if file_bins.shape != expected.shape or not np.allclose(file_bins, expected, rtol=0.0, atol=_BIN_TOLERANCE):
        raise UserError(
            f"prior {path}: its {len(file_bins)} ab bins differ from the model's {len(expected)} bins; "
            "compute the prior with the model's bins (colorization prior --bins ...)"
        )
    weights = rebalance_weights(torch.from_numpy(np.asarray(record["prior"], dtype=np.float64)), uniform_mix)
    return weights.float()
