"""Lab Parquet shards: the row schema, the 8-bit quantization of L and ab, building one shard, reading shards back.

Plain pyarrow, numpy and torch (no Ray): ``colorization/distributed/data.py`` runs :func:`build_shard` in Ray Data
tasks; a PyTorch ``DataLoader`` (:class:`LabShardDataset`), pandas or a Ray Train loader read the files directly.

One row per image (schema version 2; S = the configured size, default 256):

==================  =====================================  ============================================
column              Arrow type                             meaning
==================  =====================================  ============================================
path                string                                 source file relative to the input root (POSIX)
split               string                                 "train", "val" or "test" (see manifest.py)
synset              string, null when unknown              WordNet id, e.g. "n01440764"
label               int32                                  index of synset in manifest["synsets"]; -1 unknown
original_width      int32                                  source size after EXIF orientation
original_height     int32
source_mode         string                                 PIL mode of the file ("RGB", "L", "CMYK", "I;16" ..)
has_alpha           bool                                   the source had transparency (alpha is dropped)
colourless          bool                                   no stored pixel has chroma >= 5 (a grey photo)
L                   fixed_size_binary(S * S)               quantized lightness, uint8 (1, S, S) C order
ab                  fixed_size_binary(2 * S * S)           quantized (a, b), int8 (2, S, S) C order
==================  =====================================  ============================================

Lab values are the core's ``rgb_to_lab`` of the 8-bit crop, quantized; a table of all 2**24 8-bit colours, built
once per worker process with that same function, replaces the per-pixel arithmetic (:func:`rgb8_to_quantized_lab`).

Each image's L and ab are one fixed-size binary value holding the raw bytes of the channel-first array; the dtype
and shape are in the schema metadata (``"columns"``), and :func:`lab_column_to_numpy` turns a column back into a
zero-copy numpy view (N, 1, S, S) uint8 / (N, 2, S, S) int8. Parquet stores them as FIXED_LEN_BYTE_ARRAY, PLAIN,
zstd: decoding is a decompression and a memcpy (3,000-4,400 images/s per core at 256 x 256, against 580-700
for version 1), at the same size on disk. Version 1 shards (written before December 2026) stored L and ab as Arrow's
``arrow.fixed_shape_tensor`` (Parquet LIST<INT32>, delta-encoded); every reader still accepts them, and a shard of
an unknown version, or whose L / ab columns have another type or size, is refused with one line naming the file
(:func:`shard_schema_problem`).

Quantization (documented error bounds; the measured errors on ImageNet photos are in docs/data-pipeline.md):

* ``L_q = round(L * 255 / 100)`` as uint8, read back as ``L_q * 100 / 255``: error <= 50 / 255 = 0.196.
* ``ab_q = floor(ab)`` clipped to [-128, 127] as int8, read back as ``ab_q + 0.5`` (a mid-rise quantizer):
  error <= 0.5 for ab in [-128, 128), which holds the whole sRGB gamut (a in [-86.2, 98.3], b in [-107.9, 94.5]).
  Mid-rise rather than rounding because the boundaries between neighbouring bins of Zhang et al.'s grid of step 10
  lie at integers (odd multiples of 5): rounded values would land exactly on them (about one pixel in ten near
  each boundary), and the nearest-bin rule would send all of those to the lower bin, biasing the prior. Stored
  values are never integers, so the nearest grid-neighbour bin of a stored value is that of the exact ab.

Storage: 3 bytes per pixel before compression (196,608 B for 256 x 256); zstd brings ImageNet photos to about
119 KiB. The colourless flag is computed on the stored (dequantized) ab, so it can be
recomputed from the shard alone and agrees with what training and the prior read.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image

from colorization.color.ab_bins import hard_encode_ab
from colorization.color.ab_prior import colourful_images
from colorization.color.constants import COLOURLESS_AB_THRESHOLD
from colorization.color.lab import rgb_to_lab
from colorization.io.images import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    decode_image,
    resize_shorter_side_and_center_crop,
)
from colorization.io.shard_format import (  # re-exported: the readers' half of the format, without torch
    _METADATA_KEY,
    LAB_COLUMNS,
    READABLE_SCHEMA_VERSIONS,
    SCHEMA_VERSION,
    check_shard_files,
    lab_column_to_numpy,
    shard_file_problem,
    shard_schema_problem,
    tensor_column_to_numpy,
)

__all__ = [
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "LAB_COLUMNS",
    "SPLITS",
    "STAGES",
    "DEFAULT_COMPRESSION",
    "DEFAULT_ROW_GROUP_SIZE",
    "L_MAX_QUANTIZATION_ERROR",
    "AB_MAX_QUANTIZATION_ERROR",
    "QUANTIZATION",
    "SourceFile",
    "ShardTask",
    "ShardReport",
    "shard_schema",
    "quantize_lab",
    "dequantize_lightness",
    "dequantize_ab",
    "rgb8_to_quantized_lab",
    "colourless_images",
    "build_shard",
    "shard_record_batch",
    "open_shard_writer",
    "lab_column_to_numpy",
    "tensor_column_to_numpy",
    "shard_schema_problem",
    "shard_file_problem",
    "check_shard_files",
    "read_shard_arrays",
    "lab_batch",
    "as_writable_tensor",
    "quantized_ab_bin_counts",
    "LabShardDataset",
    "file_digest",
]

SPLITS = ("train", "val", "test")

_L_LEVELS_PER_UNIT = 255.0 / 100.0  # L in [0, 100] -> uint8 levels
_AB_MIN, _AB_MAX = -128, 127  # int8 range of floor(ab)
_AB_CELL_CENTRE = 0.5  # mid-rise: the stored integer k stands for the interval [k, k + 1)
L_MAX_QUANTIZATION_ERROR = 0.5 / _L_LEVELS_PER_UNIT  # 0.196
AB_MAX_QUANTIZATION_ERROR = _AB_CELL_CENTRE
# (2 k + 1)^2 for the int8 k stored in each byte value 0..255: twice the stored value, squared, exactly.
_DOUBLED_SQUARES = (2 * np.arange(256, dtype=np.uint8).view(np.int8).astype(np.int32) + 1) ** 2
# 4 |stored ab|^2 for each (a_q, b_q) pair, indexed by a_q's byte | b_q's byte << 8 (as packed in the colour table).
_CHROMA_BY_AB_CODE = (_DOUBLED_SQUARES[None, :] + _DOUBLED_SQUARES[:, None]).reshape(-1)
_CODE_MASK = np.uint32(0xFFFFFF)

QUANTIZATION = {
    "L": {
        "dtype": "uint8",
        "encode": "round(L * 255 / 100)",
        "decode": "L_q * 100 / 255",
        "max_error": L_MAX_QUANTIZATION_ERROR,
    },
    "ab": {
        "dtype": "int8",
        "encode": "clip(floor(ab), -128, 127)",
        "decode": "ab_q + 0.5",
        "max_error": AB_MAX_QUANTIZATION_ERROR,
    },
}

# Parquet layout (schema version 2). Each image's L and ab are one FIXED_LEN_BYTE_ARRAY value, PLAIN (the raw
# bytes), no dictionary, no statistics, compressed with zstd: reading is a decompression and a copy. Measured on the
# 405 train images of the dev sample at 256 x 256 (one core, docs/data-pipeline.md): 118.7 KiB/image and about 4,000
# images/s decoded, against 118.5 KiB and 700 images/s for version 1's LIST<INT32> with DELTA_BINARY_PACKED
# (decoding deltas of 32-bit list elements, then the list offsets, was what limited training ingest). zstd level 6
# would save 10 % of the bytes at 30 % slower decoding; lz4 decodes twice as fast but is 25 % larger.
_PARQUET_ENCODING = {
    "use_dictionary": ["path", "split", "synset", "source_mode"],
    "column_encoding": {"L": "PLAIN", "ab": "PLAIN"},
    "write_statistics": False,
}
DEFAULT_COMPRESSION = "zstd"
DEFAULT_ROW_GROUP_SIZE = 64  # rows; about 8 MB compressed at 256 x 256, the unit a reader decodes at once


def shard_schema(size: int) -> pa.Schema:
    """The Arrow schema of a shard of size x size crops (schema version, quantization and the L / ab layout in its
    metadata)."""
    columns = {
        name: {"dtype": dtype.name, "shape": [channels, size, size], "order": "C"}
        for name, (channels, dtype) in LAB_COLUMNS.items()
    }
    metadata = {"schema_version": SCHEMA_VERSION, "size": size, "quantization": QUANTIZATION, "columns": columns}
    return pa.schema(
        [
            pa.field("path", pa.string(), nullable=False),
            pa.field("split", pa.string(), nullable=False),
            pa.field("synset", pa.string()),
            pa.field("label", pa.int32(), nullable=False),
            pa.field("original_width", pa.int32(), nullable=False),
            pa.field("original_height", pa.int32(), nullable=False),
            pa.field("source_mode", pa.string(), nullable=False),
            pa.field("has_alpha", pa.bool_(), nullable=False),
            pa.field("colourless", pa.bool_(), nullable=False),
            pa.field("L", pa.binary(size * size), nullable=False),
            pa.field("ab", pa.binary(2 * size * size), nullable=False),
        ],
        metadata={_METADATA_KEY: json.dumps(metadata).encode()},
    )


# ---------------------------------------------------------------------------------------------------------------
# Quantization
# ---------------------------------------------------------------------------------------------------------------


def quantize_lab(lab: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Raw Lab (..., 3, H, W) float -> (L_q uint8 (..., 1, H, W), ab_q int8 (..., 2, H, W)); see the module doc."""
    if lab.ndim < 3 or lab.shape[-3] != 3 or not lab.is_floating_point():
        raise ValueError(f"lab must be a float tensor of shape (..., 3, H, W); got {lab.dtype} {tuple(lab.shape)}")
    lightness = (lab[..., :1, :, :] * _L_LEVELS_PER_UNIT).round_().clamp_(0, 255).to(torch.uint8)
    ab = lab[..., 1:, :, :].floor().clamp_(_AB_MIN, _AB_MAX).to(torch.int8)
    return lightness, ab


def as_writable_tensor(values: torch.Tensor | np.ndarray) -> torch.Tensor:
    """A tensor over ``values`` (shared memory when writable; a copy of read-only views, which torch refuses)."""
    if isinstance(values, torch.Tensor):
        return values
    values = np.asarray(values)
    # Arrays read from Parquet / Ray are often read-only views; torch wants writable memory (this copy is 1 B/value).
    return torch.from_numpy(values if values.flags.writeable else values.copy())


def dequantize_lightness(l_quantized: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 L_q -> raw L in [0, 100], float32, same shape."""
    return as_writable_tensor(l_quantized).to(torch.float32) / _L_LEVELS_PER_UNIT


def dequantize_ab(ab_quantized: torch.Tensor | np.ndarray) -> torch.Tensor:
    """int8 ab_q -> raw ab (the centre of each stored unit interval), float32, same shape."""
    return as_writable_tensor(ab_quantized).to(torch.float32) + _AB_CELL_CENTRE


def lab_batch(
    l_quantized: torch.Tensor | np.ndarray,
    ab_quantized: torch.Tensor | np.ndarray,
    device: torch.device | str = "cpu",
    *,
    colourless: torch.Tensor | np.ndarray | None = None,
) -> torch.Tensor:
    """A batch as stored -> float32 raw Lab on ``device``: the one conversion of every reader (Ray ingest, the plain
    loop, :class:`LabShardDataset`).

    The integers move to the device first (a third of float32's bytes) and are dequantized there.

    Args:
        l_quantized: (N, 1, S, S) uint8 stored lightness.
        ab_quantized: (N, 2, S, S) int8 stored ab.
        device: where the batch is needed.
        colourless: optional (N,) bool flags of the shard; flagged rows are dropped.

    Returns:
        (M, 3, S, S) float32 raw Lab, M = N minus the colourless rows.
    """
    lightness, ab = as_writable_tensor(l_quantized), as_writable_tensor(ab_quantized)
    if lightness.dtype != torch.uint8 or ab.dtype != torch.int8 or lightness.ndim != 4 or ab.ndim != 4:
        raise ValueError(
            f"expected L uint8 (N, 1, S, S) and ab int8 (N, 2, S, S); got {lightness.dtype} {tuple(lightness.shape)}"
            f" and {ab.dtype} {tuple(ab.shape)}"
        )
    if colourless is not None:
        keep = ~as_writable_tensor(colourless).to(torch.bool).reshape(-1)
        if not bool(keep.all()):
            lightness, ab = lightness[keep], ab[keep]
    device = torch.device(device)
    non_blocking = device.type == "cuda"
    lightness = dequantize_lightness(lightness.to(device, non_blocking=non_blocking))
    ab = dequantize_ab(ab.to(device, non_blocking=non_blocking))
    return torch.cat((lightness, ab), dim=1)


@lru_cache(maxsize=1)
def _quantized_lab_table() -> np.ndarray:
    """(2**24,) uint32: for every 8-bit colour (code r | g << 8 | b << 16), its stored L_q, a_q, b_q in bytes 0-2.

    Built once per process with the core's ``rgb_to_lab`` (float32, in chunks of 2**20 colours: about 1 s on one
    core, 64 MiB), so converting an image becomes one table lookup per pixel (0.2 ms for 256 x 256) instead of
    the float conversion (1-2 ms). The code is the little-endian ``uint32`` of a pixel's R, G, B, X bytes with X
    masked off, which is how PIL hands out an RGB image (``tobytes("raw", "RGBX")``): no per-channel arithmetic.
    """
    table = np.empty(1 << 24, dtype=np.uint32)
    chunk = 1 << 20
    for start in range(0, 1 << 24, chunk):
        codes = torch.arange(start, start + chunk, dtype=torch.int32)
        rgb = torch.stack((codes & 255, (codes >> 8) & 255, codes >> 16)).to(torch.float32).div_(255.0)
        lightness, ab = quantize_lab(rgb_to_lab(rgb[:, None, :]))  # (1, 1, chunk) uint8, (2, 1, chunk) int8
        packed = np.zeros((chunk, 4), dtype=np.uint8)
        packed[:, 0] = lightness[0, 0].numpy()
        packed[:, 1:3] = ab[:, 0].numpy().view(np.uint8).T
        table[start : start + chunk] = packed.view(np.uint32)[:, 0]
    return table


def _rgb8_codes(rgb: np.ndarray | Image.Image) -> np.ndarray:
    """(H, W, 3) uint8 array or RGB PIL image -> (H, W) uint32 colour codes r | g << 8 | b << 16."""
    if isinstance(rgb, Image.Image):
        width, height = rgb.size
        return np.frombuffer(rgb.tobytes("raw", "RGBX"), dtype=np.uint32).reshape(height, width) & _CODE_MASK
    codes = np.zeros((*rgb.shape[:2], 4), dtype=np.uint8)
    codes[..., :3] = rgb
    return codes.view(np.uint32)[..., 0]


def _lookup(codes: np.ndarray, lightness_out: np.ndarray, ab_out: np.ndarray) -> np.ndarray:
    """Table lookup of (H, W) codes into L_q (1, H, W) and ab_q (2, H, W) buffers; returns the packed values."""
    packed = np.take(_quantized_lab_table(), codes)
    planes = packed.view(np.uint8).reshape(*codes.shape, 4)
    lightness_out[0] = planes[:, :, 0]
    ab_out.view(np.uint8)[0] = planes[:, :, 1]
    ab_out.view(np.uint8)[1] = planes[:, :, 2]
    return packed


def rgb8_to_quantized_lab(rgb: np.ndarray, *, use_table: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One 8-bit RGB image (H, W, 3) -> quantized L (1, H, W) uint8 and ab (2, H, W) int8.

    Args:
        rgb: (H, W, 3) uint8.
        use_table: look each colour up in a table of the core's conversion of all 2**24 colours (fast; see
            ``_quantized_lab_table``); False converts the image with the core's ``rgb_to_lab`` directly. Both are
            ``quantize_lab(rgb_to_lab(rgb / 255))``; they can differ only where float32 rounding of the same colour
            differs between two tensor shapes and lands on a quantization step (a level, rarely).
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"rgb must be uint8 (H, W, 3); got {rgb.dtype} {rgb.shape}")
    if not use_table:
        # Channel-first and contiguous before the float conversion: rgb_to_lab is twice as fast on it.
        channels_first = torch.from_numpy(np.ascontiguousarray(np.moveaxis(rgb, -1, 0)))
        lightness, ab = quantize_lab(rgb_to_lab(channels_first.to(torch.float32).div_(255.0)))
        return lightness.numpy(), ab.numpy()
    height, width = rgb.shape[:2]
    lightness, ab = np.empty((1, height, width), dtype=np.uint8), np.empty((2, height, width), dtype=np.int8)
    _lookup(_rgb8_codes(rgb), lightness, ab)
    return lightness, ab


def _most_chromatic_ab(packed: np.ndarray) -> tuple[int, int]:
    """Packed table values of one image -> (a_q, b_q) of its most chromatic stored pixel (first one on ties)."""
    ab_codes = ((packed >> 8) & 0xFFFF).astype(np.uint16)  # a_q byte | b_q byte << 8
    code = int(ab_codes.reshape(-1)[np.take(_CHROMA_BY_AB_CODE, ab_codes).argmax()])
    return int(np.uint8(code & 255).view(np.int8)), int(np.uint8(code >> 8).view(np.int8))


def colourless_images(
    ab_quantized: torch.Tensor | np.ndarray, threshold: float = COLOURLESS_AB_THRESHOLD
) -> np.ndarray:
    """(N, 2, H, W) int8 ab_q -> (N,) bool: no stored pixel reaches chroma ``threshold``.

    The core's rule (``colourful_images``) decides, applied to each image's most chromatic stored pixel: the same
    answer as applying it to every pixel (the stored squared chromas are exact and at least 0.5 apart), at a
    fraction of the cost. The pixel is found in integers: 2 * stored ab = 2 ab_q + 1.
    """
    ab_quantized = np.asarray(ab_quantized)
    if ab_quantized.ndim != 4 or ab_quantized.shape[1] != 2 or ab_quantized.dtype != np.int8:
        raise ValueError(f"ab_quantized must be int8 (N, 2, H, W); got {ab_quantized.dtype} {ab_quantized.shape}")
    count = len(ab_quantized)
    flat = ab_quantized.reshape(count, 2, -1)
    if flat.shape[-1] == 0:
        return np.ones(count, dtype=bool)
    pixels = np.empty((count, 2), dtype=np.int8)
    for index in range(count):  # one image at a time: the temporaries stay in cache
        a_bytes, b_bytes = flat[index, 0].view(np.uint8), flat[index, 1].view(np.uint8)
        most_chromatic = (_DOUBLED_SQUARES[a_bytes] + _DOUBLED_SQUARES[b_bytes]).argmax()
        pixels[index] = flat[index, :, most_chromatic]
    return (~colourful_images(dequantize_ab(pixels)[:, :, None, None], threshold)).numpy()


# ---------------------------------------------------------------------------------------------------------------
# Building one shard
# ---------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceFile:
    """One listed input file, with what is known about it before decoding."""

    path: str  # relative to the input root, POSIX separators
    split: str
    synset: str | None = None
    label: int = -1
    size_bytes: int = 0
    mtime_ns: int = 0
    # Why the file cannot be used although it was listed (e.g. a name that is not UTF-8), or "": the shard build
    # turns it into a failure row instead of reading it.
    listing_problem: str = ""


@dataclass(frozen=True)
class ShardTask:
    """One output file and the sources assigned to it; ``digest`` identifies the work (config + sources)."""

    file: str  # relative to the output directory, e.g. "train/train-00003.parquet"
    split: str
    sources: tuple[SourceFile, ...]
    digest: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardTask:
        record = json.loads(text)
        sources = tuple(SourceFile(**source) for source in record.pop("sources"))
        return cls(sources=sources, **record)


@dataclass
class ShardReport:
    """What building one shard did: counts, the failures table rows, task seconds per stage."""

    file: str
    split: str
    digest: str
    listed: int
    written: int = 0
    colourless: int = 0
    bytes: int = 0
    failures: list[dict] = field(default_factory=list)  # {"path", "split", "reason", "detail"}
    seconds: dict[str, float] = field(default_factory=dict)  # read, decode, resize, lab, write

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ShardReport:
        return cls(**json.loads(text))


STAGES = ("read", "decode", "resize", "lab", "write")


class _StageClock:
    def __init__(self) -> None:
        self.seconds = dict.fromkeys(STAGES, 0.0)
        self._start = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] += now - self._start
        self._start = now


def _bytes_column(values: np.ndarray, name: str) -> pa.FixedSizeBinaryArray:
    """(N, C, S, S) uint8 / int8 -> fixed_size_binary(C * S * S), one value per image (one copy at most)."""
    channels, dtype = LAB_COLUMNS[name]
    if values.ndim != 4 or values.shape[1] != channels or values.dtype != dtype or values.shape[2] != values.shape[3]:
        raise ValueError(f"{name} must be {dtype.name} (N, {channels}, S, S); got {values.dtype} {values.shape}")
    values = np.ascontiguousarray(values)
    width = int(np.prod(values.shape[1:]))
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(values), [None, pa.py_buffer(values)])


def shard_record_batch(rows: list[dict], lightness: np.ndarray, ab: np.ndarray, schema: pa.Schema) -> pa.RecordBatch:
    """Rows (scalar columns) plus their stacked L_q (N, 1, S, S) and ab_q (N, 2, S, S) -> one record batch.

    Args:
        rows: one dict per image with every scalar column of ``schema`` (path, split, ..., colourless).
        lightness: (N, 1, S, S) uint8 as ``quantize_lab`` gives.
        ab: (N, 2, S, S) int8.
        schema: ``shard_schema(S)``.
    """
    columns = {"L": _bytes_column(lightness, "L"), "ab": _bytes_column(ab, "ab")}
    for name in schema.names:
        if name not in columns:
            columns[name] = pa.array([row[name] for row in rows], type=schema.field(name).type)
    return pa.RecordBatch.from_pydict({name: columns[name] for name in schema.names}, schema=schema)


def open_shard_writer(path: str | Path, size: int, compression: str = DEFAULT_COMPRESSION) -> pq.ParquetWriter:
    """A Parquet writer of shard rows with the shard layout (encodings, compression); the caller closes it."""
    return pq.ParquetWriter(path, shard_schema(size), compression=compression, **_PARQUET_ENCODING)


def _process_image(
    source: SourceFile,
    input_root: Path,
    size: int,
    max_pixels: int,
    clock: _StageClock,
    lightness_out: np.ndarray,
    ab_out: np.ndarray,
) -> dict:
    """One file -> one row, its L_q and ab_q written into the given (1, S, S) and (2, S, S) buffers.

    Raises ImageDecodeError for a file that cannot be used. The row's ``most_chromatic`` is the (a_q, b_q) of its
    most chromatic stored pixel, from which ``colourless`` is decided (as ``colourless_images`` does).
    """
    if source.listing_problem:
        raise ImageDecodeError("bad-file-name", source.listing_problem)
    try:
        data = (input_root / source.path).read_bytes()
    except OSError as error:
        raise ImageDecodeError("unreadable", f"{type(error).__name__}: {error}") from None
    clock.lap("read")
    decoded = decode_image(data, draft_size=size, max_pixels=max_pixels)
    clock.lap("decode")
    crop = resize_shorter_side_and_center_crop(decoded.rgb, size)
    codes = _rgb8_codes(crop)  # PIL's own RGBX bytes, no (H, W, 3) copy
    clock.lap("resize")
    packed = _lookup(codes, lightness_out, ab_out)
    most_chromatic = _most_chromatic_ab(packed)
    clock.lap("lab")
    return {
        "path": source.path,
        "split": source.split,
        "synset": source.synset,
        "label": source.label,
        "original_width": decoded.original_size[0],
        "original_height": decoded.original_size[1],
        "source_mode": decoded.source_mode,
        "has_alpha": decoded.alpha is not None,
        "most_chromatic": most_chromatic,
    }


def build_shard(
    task: ShardTask,
    *,
    input_root: str | Path,
    output_dir: str | Path,
    size: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    row_group_size: int = DEFAULT_ROW_GROUP_SIZE,
    compression: str = DEFAULT_COMPRESSION,
) -> ShardReport:
    """Decodes, crops, converts and writes one shard; a file that cannot be used becomes a failure row.

    Each source: read bytes -> decode (PIL, JPEG draft mode towards ``size``, EXIF orientation, any mode to RGB)
    -> resize the shorter side to ``size`` and centre-crop -> Lab (core ``rgb_to_lab``) -> quantize. Rows are
    written in row groups of ``row_group_size`` to a hidden temporary file that is renamed into place at the end,
    so a shard file exists only when complete. An all-failed shard is still written (empty, with the schema).

    Returns:
        The report (counts, failures, task seconds per stage). Only an error writing the output raises.
    """
    input_root, output_dir = Path(input_root), Path(output_dir)
    report = ShardReport(file=task.file, split=task.split, digest=task.digest, listed=len(task.sources))
    schema = shard_schema(size)
    final_path = output_dir / task.file
    final_path.parent.mkdir(parents=True, exist_ok=True)
    temporary_path = final_path.with_name(f".{final_path.name}.{os.getpid()}.tmp")
    clock = _StageClock()
    try:
        with open_shard_writer(temporary_path, size, compression) as writer:
            pending: list[dict] = []
            # One row group's tensors, filled in place by the table lookup and reused for every group.
            rows = max(1, min(row_group_size, len(task.sources)))
            lightness = np.empty((rows, 1, size, size), dtype=np.uint8)
            ab = np.empty((rows, 2, size, size), dtype=np.int8)

            def flush() -> None:
                count = len(pending)
                pixels = np.array([row.pop("most_chromatic") for row in pending], dtype=np.int8)
                flags = ~colourful_images(dequantize_ab(pixels)[:, :, None, None]).numpy()
                for row, colourless in zip(pending, flags, strict=True):
                    row["colourless"] = bool(colourless)
                clock.lap("lab")
                writer.write_batch(shard_record_batch(pending, lightness[:count], ab[:count], schema))
                report.written += count
                report.colourless += int(flags.sum())
                pending.clear()
                clock.lap("write")

            for source in task.sources:
                slot = len(pending)
                try:
                    pending.append(
                        _process_image(source, input_root, size, max_pixels, clock, lightness[slot], ab[slot])
                    )
                except ImageDecodeError as error:
                    report.failures.append(_failure(source, error.reason, error.detail))
                except Exception as error:  # a bug or an exotic file must not stop the job: record it
                    report.failures.append(_failure(source, "processing-error", f"{type(error).__name__}: {error}"))
                clock.lap("decode")  # time spent before a failure counts as decoding
                if len(pending) >= rows:
                    flush()
            if pending:
                flush()
        os.replace(temporary_path, final_path)
    finally:
        temporary_path.unlink(missing_ok=True)
    clock.lap("write")
    report.bytes = final_path.stat().st_size
    report.seconds = {stage: round(seconds, 6) for stage, seconds in clock.seconds.items()}
    return report


def _failure(source: SourceFile, reason: str, detail: str) -> dict:
    return {"path": source.path, "split": source.split, "reason": reason, "detail": detail[:500]}


# ---------------------------------------------------------------------------------------------------------------
# Reading shards (no Ray)
# ---------------------------------------------------------------------------------------------------------------


def read_shard_arrays(source: str | Path | pa.Table, columns: Sequence[str] = ("L", "ab", "colourless")) -> dict:
    """A shard file (or a table read from one) -> {column: numpy array}; L / ab stay quantized.

    L and ab come from :func:`lab_column_to_numpy` (either schema version; read-only views for version 2), the
    other columns from ``to_numpy``.

    Raises:
        UserError: a file that is not a readable shard (unknown version, wrong column types), naming it.
        ValueError: a table whose L / ab columns cannot be read.
    """
    if isinstance(source, pa.Table):
        table = source
        problem = shard_schema_problem(table.schema, columns)
        if problem:
            raise ValueError(problem)
    else:
        check_shard_files([source], columns)
        table = pq.read_table(source, columns=list(columns))
    arrays = {}
    for name in columns:
        column = table.column(name)
        if name in LAB_COLUMNS:
            arrays[name] = lab_column_to_numpy(column, name)
        else:
            arrays[name] = column.to_numpy(zero_copy_only=False)
    return arrays


# ---------------------------------------------------------------------------------------------------------------
# Counting bins on quantized ab (exact, fast)
# ---------------------------------------------------------------------------------------------------------------

# How the prior counts pixels: "lattice" (each of the 256 x 256 stored ab values sent to its bin once) or
# "per-pixel" (the core's ab_bin_counts on every dequantized pixel); both give the same integers.
COUNT_METHODS = ("lattice", "per-pixel")

_LATTICE_SIDE = _AB_MAX - _AB_MIN + 1  # 256 stored values per channel


@lru_cache(maxsize=4)
def _lattice_bins(bins_bytes: bytes, dtype: str) -> np.ndarray:
    """Nearest bin (core hard_encode_ab) of each of the 256 x 256 storable ab values, flat index (a_q, b_q)."""
    bins = torch.from_numpy(np.frombuffer(bins_bytes, dtype=dtype).reshape(-1, 2).copy())
    levels = torch.arange(_AB_MIN, _AB_MAX + 1, dtype=torch.int8)
    a_grid, b_grid = torch.meshgrid(levels, levels, indexing="ij")
    lattice = dequantize_ab(torch.stack((a_grid, b_grid))[None])  # (1, 2, 256, 256)
    return hard_encode_ab(lattice.to(bins.dtype), bins).reshape(-1).numpy()


def quantized_ab_bin_counts(ab_quantized: np.ndarray | torch.Tensor, bins: torch.Tensor) -> np.ndarray:
    """Exactly ``ab_bin_counts(dequantize_ab(ab_q), bins)``, computed through the 256 x 256 stored values.

    Every stored pixel is one of 65,536 (a_q, b_q) pairs, so the pixels are histogrammed over those pairs (one
    ``bincount``), and each pair is sent to its nearest bin once by the core's ``hard_encode_ab`` (same distances,
    same tie rule as the core applied per pixel). About 100x faster than encoding every pixel.

    Args:
        ab_quantized: (N, 2, H, W) int8 as stored.
        bins: (Q, 2) raw (a, b) centres, float32 or float64 (the dtype the core computes distances in).

    Returns:
        (Q,) int64 counts summing to N * H * W.
    """
    ab_quantized = np.asarray(ab_quantized)
    if ab_quantized.ndim != 4 or ab_quantized.shape[1] != 2 or ab_quantized.dtype != np.int8:
        raise ValueError(f"ab_quantized must be int8 (N, 2, H, W); got {ab_quantized.dtype} {ab_quantized.shape}")
    bins_array = np.ascontiguousarray(bins.detach().cpu().numpy())
    lattice_bins = _lattice_bins(bins_array.tobytes(), bins_array.dtype.str)
    a_index = ab_quantized[:, 0].astype(np.int32) - _AB_MIN
    b_index = ab_quantized[:, 1].astype(np.int32) - _AB_MIN
    histogram = np.bincount((a_index * _LATTICE_SIDE + b_index).ravel(), minlength=_LATTICE_SIDE**2)
    counts = np.zeros(len(bins_array), dtype=np.int64)
    np.add.at(counts, lattice_bins, histogram.astype(np.int64))
    return counts


# ---------------------------------------------------------------------------------------------------------------
# A plain PyTorch dataset over shard files
# ---------------------------------------------------------------------------------------------------------------


class LabShardDataset(torch.utils.data.Dataset):
    """Map-style dataset over shard files for a plain ``torch.utils.data.DataLoader`` (no Ray).

    Items: {"L": float32 (1, S, S) raw L, "ab": float32 (2, S, S) raw ab, "index": global row} (dequantized).
    Shards of either schema version are read; a file that is not a readable shard is refused when the dataset is
    made (``UserError`` naming it).
    Rows are read one Parquet row group at a time and the last group is cached per worker process, so sequential
    or group-wise shuffled sampling is fast; a fully random sampler decodes a row group per item.

    Args:
        files: shard paths, e.g. ``sorted(Path(out, "train").glob("*.parquet"))``.
        skip_colourless: drop rows flagged colourless (what training and the prior do).
    """

    def __init__(self, files: Iterable[str | Path], *, skip_colourless: bool = True):
        self.files = [Path(file) for file in files]
        check_shard_files(self.files)
        locations = []  # (file index, row group, row in group)
        for file_index, file in enumerate(self.files):
            parquet = pq.ParquetFile(file)
            colourless = parquet.read(columns=["colourless"]).column("colourless").to_numpy(zero_copy_only=False)
            row = 0
            for group in range(parquet.num_row_groups):
                group_rows = parquet.metadata.row_group(group).num_rows
                for offset in range(group_rows):
                    if not (skip_colourless and colourless[row]):
                        locations.append((file_index, group, offset))
                    row += 1
        self._locations = np.asarray(locations, dtype=np.int64).reshape(-1, 3)
        self._cached_key: tuple[int, int] | None = None
        self._cached: dict | None = None

    def __len__(self) -> int:
        return len(self._locations)

    def __getitem__(self, index: int) -> dict:
        file_index, group, offset = (int(value) for value in self._locations[index])
        if self._cached_key != (file_index, group):
            table = pq.ParquetFile(self.files[file_index]).read_row_group(group, columns=["L", "ab"])
            self._cached = read_shard_arrays(table, columns=("L", "ab"))
            self._cached_key = (file_index, group)
        lab = lab_batch(self._cached["L"][offset : offset + 1], self._cached["ab"][offset : offset + 1])[0]
        return {"L": lab[:1], "ab": lab[1:], "index": index}


def file_digest(parts: Iterable[str]) -> str:
    """A short stable hex digest of strings (used for shard work identities)."""
    hasher = hashlib.blake2b(digest_size=16)
    for part in parts:
        hasher.update(part.encode())
        hasher.update(b"\0")
    return hasher.hexdigest()
