"""Shared fixtures: the real data of ../shared/data, read in place (tests skip with a reason without it)."""

from __future__ import annotations

from pathlib import Path

import pytest

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
