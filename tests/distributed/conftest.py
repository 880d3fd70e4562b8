"""The shards built once from a mixed folder (real dev photos + the crafted zoo) for the Ray Data tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.io.crafted import write_crafted_files

DEV_PHOTOS_IN_MIXED_FOLDER = 24
GREY_DEV_PHOTO = "n02676566_acoustic_guitar.JPEG"  # one of the 9 single-channel dev photos
MIXED_SIZE = 64  # crop side of the test shards: small, so the Ray tests stay fast
MIXED_SHARD_MB = 6 * 3 * MIXED_SIZE**2 / 2**20  # 6 images per shard


@pytest.fixture(scope="session")
def mixed_folder(
    tmp_path_factory: pytest.TempPathFactory, dev_image_paths: list[Path]
) -> tuple[Path, dict[str, str | None]]:
    """24 real dev photos (symlinked) + crafted files in ``crafted/``; returns (root, {crafted name: reason})."""
    root = tmp_path_factory.mktemp("mixed")
    grey = [path for path in dev_image_paths if path.name == GREY_DEV_PHOTO]  # a real black-and-white photo
    spread = dev_image_paths[:: len(dev_image_paths) // DEV_PHOTOS_IN_MIXED_FOLDER]
    for path in spread[: DEV_PHOTOS_IN_MIXED_FOLDER - len(grey)] + grey:
        os.symlink(path, root / path.name)
    expected = write_crafted_files(root / "crafted", dev_image_paths[0])
    return root, expected


def preprocess_argv(root: Path, output: Path, *extra: str) -> list[str]:
    return [
        str(root),
        str(output),
        "--size",
        str(MIXED_SIZE),
        "--shard-mb",
        f"{MIXED_SHARD_MB:.8f}",
        "--val-fraction",
        "0.2",
        *extra,
    ]


@pytest.fixture(scope="session")
def mixed_shards(ray_session, mixed_folder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The mixed folder preprocessed once by the workflow (as `colorization preprocess` runs it)."""
    from workflows.preprocess import main

    root, _ = mixed_folder
    output = tmp_path_factory.mktemp("shards") / "mixed-64"
    assert main(preprocess_argv(root, output)) == 0
    return output
