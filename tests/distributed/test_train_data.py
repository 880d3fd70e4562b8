"""The Ray Data ingest's batch function: colourless rows dropped, crops and flips cut from the stored integers."""

from __future__ import annotations

import numpy as np
import pytest

from colorization.distributed.train_data import centre_crop, crop_batch, random_crop_flip


def _batch(count: int = 6, side: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "L": rng.integers(0, 256, size=(count, 1, side, side), dtype=np.uint8),
        "ab": rng.integers(-128, 128, size=(count, 2, side, side), dtype=np.int8),
        "colourless": np.array([False, True, False, False, True, False][:count]),
    }


def _windows(image: np.ndarray, crop: int) -> list[np.ndarray]:
    """Every crop x crop window of (C, S, S) and its mirror image: the independent reference."""
    side = image.shape[-1]
    found = []
    for top in range(side - crop + 1):
        for left in range(side - crop + 1):
            window = image[:, top : top + crop, left : left + crop]
            found += [window, window[..., ::-1]]
    return found


def test_colourless_rows_are_dropped_and_types_kept():
    batch = _batch()
    out = crop_batch(batch, crop=8, flip=True, centre=False, seed=1)
    assert out["L"].shape == (4, 1, 8, 8) and out["ab"].shape == (4, 2, 8, 8)
    assert out["L"].dtype == np.uint8 and out["ab"].dtype == np.int8
    passthrough = crop_batch(batch, crop=None, flip=True, centre=False)
    np.testing.assert_array_equal(passthrough["L"], batch["L"][~batch["colourless"]])
    np.testing.assert_array_equal(passthrough["ab"], batch["ab"][~batch["colourless"]])


def test_random_crops_are_windows_of_their_own_image_with_l_and_ab_aligned():
    batch = _batch(count=4, side=10)
    lightness, ab = random_crop_flip(batch["L"], batch["ab"], crop=6, flip=True, rng=np.random.default_rng(3))
    for index in range(4):
        stacked = np.concatenate((batch["L"][index].astype(np.int16), batch["ab"][index].astype(np.int16)))
        cut = np.concatenate((lightness[index].astype(np.int16), ab[index].astype(np.int16)))
        assert any(np.array_equal(cut, window) for window in _windows(stacked, 6))


def test_flips_happen_about_half_the_time_and_never_without_flip():
    side, crop, count = 8, 8, 400  # a full-size window: the only freedom is the mirror
    lightness = np.tile(np.arange(side, dtype=np.uint8), (count, 1, side, 1))
    ab = np.zeros((count, 2, side, side), dtype=np.int8)
    flipped, _ = random_crop_flip(lightness, ab, crop=crop, flip=True, rng=np.random.default_rng(0))
    mirrored = int((flipped[:, 0, 0, 0] == side - 1).sum())
    assert 150 < mirrored < 250
    kept, _ = random_crop_flip(lightness, ab, crop=crop, flip=False, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(kept, lightness)


def test_centre_crop_is_the_middle_and_too_large_crops_are_refused():
    batch = _batch(count=2, side=10)
    lightness, ab = centre_crop(batch["L"], batch["ab"], size=4)
    np.testing.assert_array_equal(lightness, batch["L"][..., 3:7, 3:7])
    np.testing.assert_array_equal(ab, batch["ab"][..., 3:7, 3:7])
    with pytest.raises(ValueError, match="larger"):
        centre_crop(batch["L"], batch["ab"], size=12)
    with pytest.raises(ValueError, match="larger"):
        random_crop_flip(batch["L"], batch["ab"], crop=12, flip=False, rng=np.random.default_rng(0))
