"""Shared set-up of the Ray Train tests: tiny recipes on the mixed 64 px test shards, and priors on any bin set."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

SMALL_RAY_WORKER_CPUS = 0.25  # logical: the session's 2 CPUs stay with Ray Data


def stage_config(shards: Path, out: Path, tracking_uri: str, *overrides: str, recipe: str = "zhang-smoke", **stage):
    """A TrainStageConfig of a shipped smoke recipe on ``shards`` with one Ray worker (plus ``overrides``)."""
    from colorization.stages.train import TrainStageConfig
    from colorization.training.recipes import load_recipe

    train = load_recipe(
        recipe,
        [
            f"data.shards={shards}",
            "scaling.num_workers=1",
            f"scaling.cpus_per_worker={SMALL_RAY_WORKER_CPUS}",
            *overrides,
        ],
    )
    return TrainStageConfig(train=train, out=str(out), tracking_uri=tracking_uri, **stage)


def write_prior(folder: Path, bins: torch.Tensor) -> Path:
    """A prior file over ``bins`` (uniform counts: every rebalancing weight is 1)."""
    from colorization.color.ab_prior import rebalance_weights
    from colorization.io.prior_file import save_ab_prior

    counts = np.full(len(bins), 100, dtype=np.int64)
    prior = counts / counts.sum()
    weights = rebalance_weights(torch.from_numpy(prior), 0.5).numpy()
    save_ab_prior(folder, counts=counts, prior=prior, weights=weights, bins=bins.numpy(), metadata={"test": True})
    return folder


def model_bins(variant: str, **overrides) -> torch.Tensor:
    """The ab bins a prior for ``variant`` must be computed on."""
    from colorization.families import adapter_for
    from colorization.models.registry import create_model

    model = create_model(variant, **overrides)
    return adapter_for(model).prior_bins(model).detach().cpu().double()
