"""Shared fixtures: the real data of ../shared/data, read in place (tests skip with a reason without it)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
DEV_IMAGES_DIR = SHARED_DATA / "imagenet-sample" / "dev"
ZHANG_BINS_FILE = SHARED_DATA / "zhang-eccv16" / "pts_in_hull.npy"


@pytest.fixture(scope="session")
def dev_images_dir() -> Path:
    if not DEV_IMAGES_DIR.is_dir():
        pytest.skip(f"real dev photos not found at {DEV_IMAGES_DIR} (../shared is absent on a plain clone)")
    return DEV_IMAGES_DIR


@pytest.fixture(scope="session")
def dev_image_paths(dev_images_dir: Path) -> list[Path]:
    return sorted(dev_images_dir.glob("*.JPEG"))


@pytest.fixture(scope="session")
def zhang_bins_file() -> Path:
    if not ZHANG_BINS_FILE.is_file():
        pytest.skip(f"Zhang et al.'s reference bins not found at {ZHANG_BINS_FILE} (../shared is absent)")
    return ZHANG_BINS_FILE


@pytest.fixture(scope="module")
def release_bins(zhang_bins_file: Path) -> np.ndarray:
    """The official bin centres (313, 2) in the released order."""
    return np.load(zhang_bins_file)


@pytest.fixture(scope="module")
def release(release_bins: np.ndarray) -> dict[str, torch.Tensor]:
    """A synthesized state dict in the layout of Zhang et al.'s released weights (tests/zhang_release.py)."""
    from tests.zhang_release import synthesize_release

    return synthesize_release(release_bins)


# One local Ray for the whole test session (start-up and shutdown cost 6-8 s: ray-mlflow-notes section 0).
RAY_TEST_CPUS = int(os.environ.get("COLORIZATION_TEST_RAY_CPUS", "2"))


@pytest.fixture(scope="session")
def ray_session():
    """ray.init(num_cpus=RAY_TEST_CPUS) once; Ray Data progress bars off."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        ray.init(address="local", num_cpus=RAY_TEST_CPUS, include_dashboard=False, log_to_driver=False)
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False
    yield ray
    if started:
        ray.shutdown()
