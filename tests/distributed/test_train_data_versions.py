"""The Ray Data training ingest reads version 1 and version 2 shards alike: the same centre crops, as torch
uint8 / int8 batches, through the row-group reading crop UDF -> ``iter_torch_batches``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from colorization.distributed.train_data import iter_shard_batches, shard_dataset
from colorization.io.shards import read_shard_arrays
from tests.io.legacy_shards import write_v1_shard
from tests.training.tiny_shards import smooth_rgb, write_shard

pytestmark = pytest.mark.ray

SIZE, CROP, COUNT, COLOURLESS = 24, 16, 9, (4,)


def test_both_versions_give_the_same_centre_crops_as_torch_batches(ray_session, tmp_path) -> None:
    new = tmp_path / "v2" / "train-00000.parquet"
    write_shard(new, smooth_rgb(COUNT, SIZE, 3), colourless_rows=COLOURLESS)
    stored = read_shard_arrays(new)
    rows = [{"path": f"{index}.png", "split": "train", "synset": None, "label": -1, "original_width": SIZE,
             "original_height": SIZE, "source_mode": "RGB", "has_alpha": False, "colourless": bool(flag)}
            for index, flag in enumerate(stored["colourless"])]
    old = tmp_path / "v1" / "train-00000.parquet"
    write_v1_shard(old, rows, stored["L"], stored["ab"])
    keep = ~stored["colourless"]
    margin = (SIZE - CROP) // 2
    expected = {key: stored[key][keep][..., margin : margin + CROP, margin : margin + CROP] for key in ("L", "ab")}
    for path in (old, new):
        dataset = shard_dataset([path], crop=CROP, flip=False, centre=True, shuffle_files=False)
        batches = list(iter_shard_batches(dataset, batch_size=4, device="cpu", drop_last=False))
        assert batches[0]["L"].dtype == torch.uint8 and batches[0]["ab"].dtype == torch.int8
        got = {key: torch.cat([batch[key] for batch in batches]).numpy() for key in ("L", "ab")}
        assert _images(got) == _images(expected)  # blocks may arrive in any order


def _images(arrays: dict[str, np.ndarray]) -> list[bytes]:
    """Each image's L and ab bytes, sorted (an order-free comparison)."""
    return sorted(arrays["L"][index].tobytes() + arrays["ab"][index].tobytes() for index in range(len(arrays["L"])))
