"""Tiny Lab shards written with the library's shard writer (no Ray): smooth random colour images, a few colourless
ones, in the current schema version."""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F

from colorization.color.lab import rgb_to_lab
from colorization.io.manifest import MANIFEST_FORMAT, MANIFEST_NAME
from colorization.io.shards import open_shard_writer, quantize_lab, shard_record_batch, shard_schema


def smooth_rgb(count: int, size: int, seed: int) -> torch.Tensor:
    """(count, 3, size, size) smooth colourful images in [0, 1] (a 4 x 4 colour field upsampled)."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 4, 4, generator=generator)
    return F.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False).clamp(0, 1)


def write_shard(path: Path, rgb: torch.Tensor, *, colourless_rows: tuple[int, ...] = (), row_group_size: int = 4,
                split: str = "train") -> dict:
    """Writes one shard of ``rgb`` images (rows in ``colourless_rows`` made grey and flagged); returns its manifest
    entry. Each image's first L pixel is set to its row number, so tests can tell rows apart."""
    rgb = rgb.clone()
    for row in colourless_rows:
        rgb[row] = rgb[row].mean(dim=0, keepdim=True)
    lightness, ab = quantize_lab(rgb_to_lab(rgb))
    lightness[:, 0, 0, 0] = torch.arange(len(rgb), dtype=torch.uint8)
    count, size = len(rgb), rgb.shape[-1]
    rows = [
        {"path": f"{split}/{index}.png", "split": split, "synset": None, "label": -1, "original_width": size,
         "original_height": size, "source_mode": "RGB", "has_alpha": False, "colourless": index in colourless_rows}
        for index in range(count)
    ]
    batch = shard_record_batch(rows, lightness.numpy(), ab.numpy(), shard_schema(size))
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_shard_writer(path, size) as writer:  # the library's layout: tests read what preprocess writes
        writer.write_batch(batch, row_group_size=row_group_size)
    return {"file": f"{path.parent.name}/{path.name}", "split": split, "rows": count,
            "colourless": len(colourless_rows)}


def write_shards(root: Path, *, size: int = 48, train_images: int = 12, val_images: int = 6) -> Path:
    """A complete shards folder (manifest + train and val shards) like ``colorization preprocess`` writes."""
    entries = [
        write_shard(root / "train" / "train-00000.parquet", smooth_rgb(train_images, size, 0), colourless_rows=(1,)),
        write_shard(root / "val" / "val-00000.parquet", smooth_rgb(val_images, size, 1), split="val"),
    ]
    manifest = {"format": MANIFEST_FORMAT, "status": "complete", "config": {"size": size}, "shards": entries}
    (root / MANIFEST_NAME).write_text(json.dumps(manifest))
    return root
