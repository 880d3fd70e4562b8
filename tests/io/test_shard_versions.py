"""Shard schema versions: version 2 round-trips the exact quantized bytes; version 1 shards (users' existing sets)
are read identically by every reader entry point; unknown versions and wrong columns are refused by name; the
zero-copy views never reach torch as non-writable arrays."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
import torch.nn.functional as F

from colorization.color.ab_bins import default_ab_bins
from colorization.color.ab_prior import ab_bin_counts
from colorization.color.lab import rgb_to_lab
from colorization.errors import UserError
from colorization.io.shards import (
    SCHEMA_VERSION,
    LabShardDataset,
    check_shard_files,
    dequantize_ab,
    dequantize_lightness,
    lab_column_to_numpy,
    open_shard_writer,
    quantize_lab,
    read_shard_arrays,
    shard_file_problem,
    shard_record_batch,
    shard_schema,
)
from tests.io.legacy_shards import write_v1_shard

SIZE, COUNT, COLOURLESS_ROWS = 16, 10, (2, 7)


@pytest.fixture(scope="module")
def quantized() -> tuple[list[dict], np.ndarray, np.ndarray]:
    """Rows, L_q and ab_q of smooth random colour images (two of them grey), straight from ``quantize_lab``."""
    generator = torch.Generator().manual_seed(5)
    rgb = F.interpolate(torch.rand(COUNT, 3, 4, 4, generator=generator), size=(SIZE, SIZE), mode="bilinear")
    rgb[list(COLOURLESS_ROWS)] = rgb[list(COLOURLESS_ROWS)].mean(dim=1, keepdim=True)
    lightness, ab = quantize_lab(rgb_to_lab(rgb.clamp(0, 1)))
    rows = [
        {"path": f"{index}.png", "split": "train", "synset": None, "label": -1, "original_width": SIZE,
         "original_height": SIZE, "source_mode": "RGB", "has_alpha": False, "colourless": index in COLOURLESS_ROWS}
        for index in range(COUNT)
    ]
    return rows, lightness.numpy(), ab.numpy()


def _write_v2(path: Path, rows, lightness, ab, row_group_size: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open_shard_writer(path, lightness.shape[-1]) as writer:
        writer.write_batch(shard_record_batch(rows, lightness, ab, shard_schema(lightness.shape[-1])),
                           row_group_size=row_group_size)
    return path


@pytest.fixture(scope="module")
def both_versions(quantized, tmp_path_factory) -> dict[int, Path]:
    root = tmp_path_factory.mktemp("versions")
    rows, lightness, ab = quantized
    write_v1_shard(root / "v1" / "train-00000.parquet", rows, lightness, ab)
    return {1: root / "v1" / "train-00000.parquet", 2: _write_v2(root / "v2" / "train-00000.parquet", *quantized)}


def test_version_2_round_trips_the_exact_bytes_in_the_fast_layout(quantized, both_versions) -> None:
    _, lightness, ab = quantized
    path = both_versions[2]
    assert json.loads(pq.read_schema(path).metadata[b"colorization"])["schema_version"] == SCHEMA_VERSION == 2
    arrays = read_shard_arrays(path)
    assert arrays["L"].dtype == np.uint8 and arrays["ab"].dtype == np.int8
    assert arrays["L"].tobytes() == lightness.tobytes() and arrays["ab"].tobytes() == ab.tobytes()
    np.testing.assert_array_equal(arrays["colourless"], np.isin(np.arange(COUNT), COLOURLESS_ROWS))
    column = pq.ParquetFile(path).metadata.row_group(0).column(pq.read_schema(path).names.index("ab"))
    assert column.physical_type == "FIXED_LEN_BYTE_ARRAY" and column.compression == "ZSTD"
    assert "PLAIN" in column.encodings and not column.is_stats_set and not column.has_dictionary_page


def test_views_honour_offsets_and_chunks(quantized, both_versions) -> None:
    _, lightness, ab = quantized
    table = pq.read_table(both_versions[2])  # row groups of 4: several chunks
    assert table.column("ab").num_chunks > 1
    np.testing.assert_array_equal(lab_column_to_numpy(table.column("ab"), "ab"), ab)
    sliced = table.combine_chunks().slice(3, 5)  # one chunk with an offset of 3 rows
    np.testing.assert_array_equal(lab_column_to_numpy(sliced.column("L"), "L"), lightness[3:8])
    np.testing.assert_array_equal(read_shard_arrays(sliced)["ab"], ab[3:8])
    assert lab_column_to_numpy(table.slice(0, 0).column("L"), "L").shape == (0, 1, SIZE, SIZE)


def test_every_reader_reads_a_version_1_shard_identically(both_versions, tmp_path) -> None:
    from colorization.distributed.data import _count_table
    from colorization.distributed.train_data import crop_batch
    from colorization.training.data import ShardRowStream, read_rows

    old, new = both_versions[1], both_versions[2]
    assert isinstance(pq.read_schema(old).field("L").type, pa.FixedShapeTensorType)
    for name, value in read_shard_arrays(old).items():
        np.testing.assert_array_equal(value, read_shard_arrays(new)[name])
    for item_old, item_new in zip(LabShardDataset([old]), LabShardDataset([new]), strict=True):
        torch.testing.assert_close(item_old, item_new, rtol=0, atol=0)
    for key, value in read_rows([old], 6).items():
        np.testing.assert_array_equal(value, read_rows([new], 6)[key])
    streams = [iter(ShardRowStream([path], seed=1, buffer_size=3)) for path in (old, new)]
    for _ in range(COUNT):
        row_old, row_new = (next(stream) for stream in streams)
        assert torch.equal(row_old["L"], row_new["L"]) and torch.equal(row_old["ab"], row_new["ab"])
    tables = [pq.read_table(path, columns=["L", "ab", "colourless"]) for path in (old, new)]
    for options in ({"crop": 8, "flip": True, "centre": False, "seed": 3}, {"crop": 8, "flip": False, "centre": True},
                    {"crop": None, "flip": False, "centre": False}):
        cut_old, cut_new = (crop_batch(table, **options) for table in tables)
        assert cut_old["L"].shape == (COUNT - len(COLOURLESS_ROWS), 1, options["crop"] or SIZE, options["crop"] or SIZE)
        for key in ("L", "ab"):
            np.testing.assert_array_equal(cut_old[key], cut_new[key])
    bins = default_ab_bins().numpy()
    counts = [_count_table(pq.read_table(path, columns=["ab", "colourless"]), bins, "lattice") for path in (old, new)]
    arrays = read_shard_arrays(old)
    reference = ab_bin_counts(dequantize_ab(arrays["ab"][~arrays["colourless"]]), default_ab_bins()).numpy()
    np.testing.assert_array_equal(counts[0][0], reference)
    np.testing.assert_array_equal(counts[1][0], reference)
    assert counts[0][1:] == counts[1][1:] == (COUNT - len(COLOURLESS_ROWS), len(COLOURLESS_ROWS), 8 * SIZE**2)


def _with_metadata(source: Path, target: Path, **changes) -> Path:
    table = pq.read_table(source)
    metadata = {**json.loads(table.schema.metadata[b"colorization"]), **changes}
    pq.write_table(table.replace_schema_metadata({b"colorization": json.dumps(metadata).encode()}), target)
    return target


def test_unknown_versions_and_wrong_columns_are_refused_naming_the_file(quantized, both_versions, tmp_path) -> None:
    rows, lightness, ab = quantized
    future = _with_metadata(both_versions[2], tmp_path / "future.parquet", schema_version=99)
    assert shard_file_problem(future).startswith("shard schema version 99 is not one this colorization reads (1, 2)")
    with pytest.raises(UserError, match=r"^.*future\.parquet: shard schema version 99 "):
        read_shard_arrays(future)
    wrong_size = _with_metadata(both_versions[2], tmp_path / "wrong-size.parquet", size=SIZE // 2)
    expected = f"column L holds {SIZE**2} bytes per image, not {SIZE**2 // 4} bytes"
    assert shard_file_problem(wrong_size, ("L", "ab")) == expected
    wrong_type = tmp_path / "wrong-type.parquet"
    pq.write_table(pa.table({"L": pa.array([b"xy"], pa.binary()), "ab": pa.array([b"xyz"], pa.binary(3))}), wrong_type)
    with pytest.raises(UserError, match=r"wrong-type\.parquet: column L has type binary, not fixed_size_binary"):
        check_shard_files([both_versions[1], both_versions[2], wrong_type], ("L", "ab"))
    table = pq.read_table(both_versions[2]).replace_schema_metadata(None)  # no metadata: judged by the types
    wrong_ab = tmp_path / "wrong-ab.parquet"
    wrong_ab_column = pa.array([b"xyz"] * COUNT, pa.binary(3))
    pq.write_table(table.set_column(table.schema.get_field_index("ab"), "ab", wrong_ab_column), wrong_ab)
    with pytest.raises(UserError, match=r"wrong-ab\.parquet: column ab holds 3 bytes per image, not 2 x S x S bytes"):
        LabShardDataset([_write_v2(tmp_path / "ok.parquet", rows, lightness, ab), wrong_ab])
    with pytest.raises(ValueError, match="column ab is a uint8 tensor"):
        lab_column_to_numpy(pa.FixedShapeTensorArray.from_numpy_ndarray(ab.view(np.uint8)), "ab")


def test_read_only_views_never_reach_torch_uncopied(quantized) -> None:
    from colorization.distributed.train_data import crop_batch

    rows, lightness, ab = quantized
    batch = shard_record_batch(rows, lightness, ab, shard_schema(SIZE))
    frozen = pa.Table.from_batches([batch]).combine_chunks()
    # Columns over immutable bytes, as Ray's object store hands them to a task: the views are read-only.
    columns = {name: pa.FixedSizeBinaryArray.from_buffers(frozen.column(name).type, COUNT,
                                                          [None, pa.py_buffer(frozen.column(name).chunk(0)
                                                                              .buffers()[1].to_pybytes())])
               for name in ("L", "ab")}
    table = frozen.set_column(frozen.schema.get_field_index("L"), "L", columns["L"])
    table = table.set_column(table.schema.get_field_index("ab"), "ab", columns["ab"])
    view = lab_column_to_numpy(table.column("ab"), "ab")
    assert not view.flags.writeable
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns on non-writable arrays
        torch.testing.assert_close(dequantize_ab(view), dequantize_ab(torch.from_numpy(ab)))
        dequantize_lightness(lab_column_to_numpy(table.column("L"), "L"))
        for output in crop_batch(table, crop=8, flip=True, centre=False).values():
            assert output.flags.writeable and output.flags.c_contiguous
            torch.from_numpy(output)
