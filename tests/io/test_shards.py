"""Shards without Ray: quantization bounds, schema read back by plain pyarrow / pandas / a DataLoader, planning,
the split, labels, manifest and reruns (colorization.io.shards and colorization.io.manifest)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from colorization.color.ab_bins import default_ab_bins
from colorization.color.ab_prior import ab_bin_counts, colourful_images
from colorization.color.lab import rgb_to_lab
from colorization.io.ab_bins_file import load_ab_bins
from colorization.io.images import decode_image, resize_shorter_side_and_center_crop
from colorization.io.manifest import (
    MANIFEST_NAME,
    OutputConflictError,
    PreprocessConfig,
    build_manifest,
    list_sources,
    plan_shards,
    prepare_output_dir,
    read_label_file,
    reusable_reports,
    split_for_path,
    synset_for_path,
    write_json_atomic,
)
from colorization.io.shards import (
    AB_MAX_QUANTIZATION_ERROR,
    L_MAX_QUANTIZATION_ERROR,
    LabShardDataset,
    SourceFile,
    _most_chromatic_ab,
    _rgb8_codes,
    build_shard,
    colourless_images,
    dequantize_ab,
    dequantize_lightness,
    quantize_lab,
    quantized_ab_bin_counts,
    read_shard_arrays,
    rgb8_to_quantized_lab,
    lab_column_to_numpy,
    shard_schema,
)
from tests.io.crafted import colour_test_pattern, write_crafted_files

FLOAT_SLACK = 1e-4  # float32 Lab arithmetic on top of the quantization bound


# --- quantization ---------------------------------------------------------------------------------------------------


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_quantization_error_is_within_the_documented_bounds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    lab = torch.from_numpy(
        np.stack(
            [
                rng.uniform(0, 100, (4, 8, 8)),
                rng.uniform(-127.99, 127.99, (4, 8, 8)),
                rng.uniform(-128, 127.99, (4, 8, 8)),
            ],
            1,
        )
    ).float()
    lightness, ab = quantize_lab(lab)
    assert lightness.dtype == torch.uint8 and ab.dtype == torch.int8
    assert lightness.shape == (4, 1, 8, 8) and ab.shape == (4, 2, 8, 8)
    assert (dequantize_lightness(lightness) - lab[:, :1]).abs().max() <= L_MAX_QUANTIZATION_ERROR + FLOAT_SLACK
    assert (dequantize_ab(ab) - lab[:, 1:]).abs().max() <= AB_MAX_QUANTIZATION_ERROR + FLOAT_SLACK


def test_quantization_bounds_are_the_documented_numbers() -> None:
    assert L_MAX_QUANTIZATION_ERROR == pytest.approx(50 / 255) and AB_MAX_QUANTIZATION_ERROR == 0.5


def test_ab_quantization_keeps_the_nearest_grid_bin() -> None:
    """Mid-rise: the stored value is never on a boundary between neighbouring grid-10 bins, so each axis keeps
    its nearest grid centre; rounding to integers would put boundary values exactly on the tie."""
    values = torch.from_numpy(np.random.default_rng(0).uniform(-110, 110, 200_000)).float()
    values = values[(values.abs() % 10 - 5).abs() > 1e-4]  # drop exact ties of the float values themselves
    stored = dequantize_ab(values.floor().to(torch.int8))
    assert torch.equal(torch.round(stored / 10), torch.round(values / 10))
    rounded = values.round()
    assert ((rounded % 10) == 5).float().mean() > 0.05  # what mid-rise avoids: ~1 in 10 values on a boundary


def test_colour_table_equals_the_direct_conversion(dev_image_paths: list[Path]) -> None:
    """The 2**24-colour table gives exactly quantize(rgb_to_lab(rgb)), on a million random colours and on photos."""
    colours = np.random.default_rng(2).integers(0, 256, (1000, 1000, 3), dtype=np.uint8)
    corners = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255], [1, 2, 3]]], np.uint8)
    photos = [np.asarray(decode_image(path.read_bytes(), draft_size=64).rgb) for path in dev_image_paths[20:23]]
    for rgb in [colours, corners, *photos]:
        by_table, direct = rgb8_to_quantized_lab(rgb), rgb8_to_quantized_lab(rgb, use_table=False)
        np.testing.assert_array_equal(by_table[0], direct[0])
        np.testing.assert_array_equal(by_table[1], direct[1])
        assert by_table[0].shape == (1, *rgb.shape[:2]) and by_table[1].shape == (2, *rgb.shape[:2])


def test_photo_lab_matches_the_core_within_the_bounds(dev_image_paths: list[Path]) -> None:
    errors_l, errors_ab = [], []
    for path in dev_image_paths[:12]:
        rgb = np.asarray(resize_shorter_side_and_center_crop(decode_image(path.read_bytes(), draft_size=128).rgb, 128))
        lightness, ab = rgb8_to_quantized_lab(rgb)
        exact = rgb_to_lab(torch.from_numpy(rgb.copy()).permute(2, 0, 1).double() / 255)
        errors_l.append((dequantize_lightness(lightness).double() - exact[:1]).abs().max().item())
        errors_ab.append((dequantize_ab(ab).double() - exact[1:]).abs().max().item())
    assert max(errors_l) <= L_MAX_QUANTIZATION_ERROR + FLOAT_SLACK and max(errors_l) > 0.15  # the bound is tight
    assert max(errors_ab) <= AB_MAX_QUANTIZATION_ERROR + FLOAT_SLACK and max(errors_ab) > 0.45


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 9))
def test_colourless_flag_equals_the_core_on_every_pixel(seed: int, spread: int) -> None:
    rng = np.random.default_rng(seed)
    ab = rng.integers(-spread, spread, (8, 2, 5, 7)).astype(np.int8)  # chromas straddling the threshold of 5
    expected = (~colourful_images(dequantize_ab(ab))).numpy()
    np.testing.assert_array_equal(colourless_images(ab), expected)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 130))
def test_shard_builders_most_chromatic_pixel_gives_the_same_flag(seed: int, spread: int) -> None:
    """build_shard decides the flag from the packed table values of each image: same answer as colourless_images."""
    rng = np.random.default_rng(seed)
    ab = rng.integers(max(-spread, -128), min(spread, 128), (6, 2, 5, 7)).astype(np.int8)
    packed = (ab[:, 0].view(np.uint8).astype(np.uint32) << 8) | (ab[:, 1].view(np.uint8).astype(np.uint32) << 16)
    pixels = np.array([_most_chromatic_ab(image) for image in packed], dtype=np.int8)
    flags = (~colourful_images(dequantize_ab(pixels)[:, :, None, None])).numpy()
    np.testing.assert_array_equal(flags, colourless_images(ab))


def test_pil_image_codes_equal_the_array_codes(dev_image_paths: list[Path]) -> None:
    """The table is indexed straight from PIL's RGBX bytes; an (H, W, 3) array gives the same codes."""
    image = decode_image(dev_image_paths[3].read_bytes(), draft_size=64).rgb
    rgb = np.asarray(image)
    channels = rgb.astype(np.uint32)
    expected = channels[..., 0] | (channels[..., 1] << 8) | (channels[..., 2] << 16)
    np.testing.assert_array_equal(_rgb8_codes(image), expected)
    np.testing.assert_array_equal(_rgb8_codes(rgb), expected)


def test_colourless_flag_uses_the_core_threshold() -> None:
    grey = np.zeros((1, 2, 4, 4), np.int8)  # stored 0 = ab 0.5
    faint = grey.copy()
    faint[0, 0, 1, 1] = 3  # chroma sqrt(3.5^2 + 0.5^2) = 3.54 < 5
    vivid = grey.copy()
    vivid[0, 1, 2, 2] = -6  # chroma sqrt(0.5^2 + 5.5^2) = 5.52 >= 5
    assert colourless_images(np.concatenate([grey, faint, vivid])).tolist() == [True, True, False]


# --- counting bins on stored values ---------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default", "zhang"])
def test_lattice_counts_equal_the_core_per_pixel(which: str, zhang_bins_file: Path) -> None:
    bins = default_ab_bins() if which == "default" else load_ab_bins(zhang_bins_file)
    rng = np.random.default_rng(1)
    ab = rng.integers(-128, 128, (3, 2, 24, 24)).astype(np.int8)
    ab[0] = (rng.normal(0, 12, (2, 24, 24))).clip(-128, 127).astype(np.int8)  # mostly near grey, like photos
    expected = ab_bin_counts(dequantize_ab(ab), bins).numpy()
    counts = quantized_ab_bin_counts(ab, bins)
    assert counts.dtype == np.int64 and counts.sum() == ab[:, 0].size
    np.testing.assert_array_equal(counts, expected)


# --- labels, split, plan --------------------------------------------------------------------------------------------


def test_synset_from_folders_prefixes_and_label_files(tmp_path: Path) -> None:
    assert synset_for_path("train/n01440764/n01440764_10026.JPEG") == "n01440764"
    assert synset_for_path("n01443537_goldfish.JPEG") == "n01443537"
    assert synset_for_path("val/ILSVRC2012_val_00000001.JPEG") is None
    lines = tmp_path / "val.txt"
    lines.write_text("ILSVRC2012_val_00000001.JPEG n01751748\nILSVRC2012_val_00000002.JPEG n09193705\n")
    csv = tmp_path / "LOC_val_solution.csv"
    csv.write_text("ImageId,PredictionString\nILSVRC2012_val_00000001,n01751748 1 2 3 4 n01751748 5 6 7 8\n")
    assert read_label_file(lines)["ILSVRC2012_val_00000002"] == "n09193705"
    assert read_label_file(csv) == {"ILSVRC2012_val_00000001": "n01751748"}
    assert synset_for_path("val/ILSVRC2012_val_00000001.JPEG", read_label_file(csv)) == "n01751748"
    bad = tmp_path / "bad.txt"
    bad.write_text("ILSVRC2012_val_00000001.JPEG 65\n")
    with pytest.raises(ValueError, match="wnid"):
        read_label_file(bad)


def test_split_is_a_stable_hash() -> None:
    paths = [f"train/n{index:08d}/img_{index}.JPEG" for index in range(4000)]
    splits = [split_for_path(path, 0.1) for path in paths]
    assert splits == [split_for_path(path, 0.1) for path in paths]
    assert 0.08 < splits.count("val") / len(paths) < 0.12
    assert split_for_path("a.jpg", 0.0) == "train"
    assert split_for_path("val/x.JPEG", 0.5, imagenet_tree=True) == "test"
    # Growing the fraction only moves files from train to val.
    moved = [split_for_path(path, 0.2) for path in paths]
    assert all(new == "val" for old, new in zip(splits, moved, strict=True) if old == "val")


def _imagenet_tree(root: Path) -> None:
    for wnid in ("n01440764", "n01443537"):
        for index in range(6):
            path = root / "train" / wnid / f"{wnid}_{index}.JPEG"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"x")
    for index in range(4):
        (root / "val").mkdir(exist_ok=True)
        (root / "val" / f"ILSVRC2012_val_{index:08d}.JPEG").write_bytes(b"x")


def test_listing_and_plan_are_deterministic(tmp_path: Path) -> None:
    _imagenet_tree(tmp_path)
    config = PreprocessConfig(
        input_root=str(tmp_path), size=32, val_fraction=0.25, target_shard_mb=3 * 32 * 32 * 3 / 2**20
    )
    assert config.rows_per_shard == 3
    sources, synsets = list_sources(config)
    assert synsets == ["n01440764", "n01443537"]
    assert len(sources) == 16 and {source.split for source in sources} == {"train", "val", "test"}
    assert all(source.split == "test" for source in sources if source.path.startswith("val/"))
    assert all(source.label == synsets.index(source.synset) for source in sources if source.synset)
    tasks = plan_shards(sources, config)
    assert tasks == plan_shards(list_sources(config)[0], config)
    assert all(len(task.sources) <= 3 for task in tasks)
    assert sorted(source.path for task in tasks for source in task.sources) == sorted(source.path for source in sources)
    assert tasks[0].file == "train/train-00000.parquet"
    # The order inside a split is a hash order: classes mix within a shard.
    assert len({source.synset for source in tasks[0].sources}) == 2 or len(tasks[0].sources) < 3
    limited = list_sources(PreprocessConfig(input_root=str(tmp_path), limit=5))[0]
    assert [source.path for source in limited] == [source.path for source in sources[:5]]


def test_a_changed_source_changes_only_its_shard_digest(tmp_path: Path) -> None:
    _imagenet_tree(tmp_path)
    config = PreprocessConfig(input_root=str(tmp_path), size=32, target_shard_mb=0.01)
    before = {task.file: task.digest for task in plan_shards(list_sources(config)[0], config)}
    changed = tmp_path / "train" / "n01440764" / "n01440764_0.JPEG"
    changed.write_bytes(b"xy")
    after = {task.file: task.digest for task in plan_shards(list_sources(config)[0], config)}
    differing = [file for file in before if before[file] != after[file]]
    assert len(differing) == 1


# --- building, reading, manifest ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built_shards(
    tmp_path_factory: pytest.TempPathFactory, dev_image_paths: list[Path]
) -> tuple[Path, Path, dict, dict]:
    """8 dev photos + the crafted zoo, built shard by shard without Ray."""
    root = tmp_path_factory.mktemp("input")
    for path in dev_image_paths[:8]:
        os.symlink(path, root / path.name)
    expected = write_crafted_files(root / "crafted", dev_image_paths[0])
    output = tmp_path_factory.mktemp("shards")
    config = PreprocessConfig(
        input_root=str(root), size=64, val_fraction=0.3, target_shard_mb=5 * 3 * 64 * 64 / 2**20, row_group_size=2
    )
    assert not prepare_output_dir(output, config)
    sources, synsets = list_sources(config)
    tasks = plan_shards(sources, config)
    reports = {
        task.file: build_shard(
            task, input_root=root, output_dir=output, size=config.size, row_group_size=config.row_group_size
        )
        for task in tasks
    }
    manifest = build_manifest(config, tasks, reports, synsets, status="complete")
    write_json_atomic(output / MANIFEST_NAME, manifest)
    return root, output, manifest, expected


def test_counts_reconcile_and_failures_are_named(built_shards) -> None:
    _, _, manifest, expected = built_shards
    counts = manifest["counts"]
    assert counts["listed"] == 8 + len(expected) == counts["written"] + counts["failed"]
    failed = {Path(failure["path"]).name: failure["reason"] for failure in manifest["failures"]}
    assert failed == {name: reason for name, reason in expected.items() if reason}
    for split in manifest["splits"].values():
        assert split["listed"] == split["written"] + split["failed"]
    assert sum(shard["rows"] for shard in manifest["shards"]) == counts["written"]


def test_plain_pyarrow_reads_the_shards(built_shards) -> None:
    root, output, manifest, expected = built_shards
    table = pa.concat_tables([pq.read_table(output / shard["file"]) for shard in manifest["shards"]])
    assert table.schema.equals(shard_schema(64), check_metadata=False)
    assert table.schema.field("ab").type == pa.binary(2 * 64 * 64)
    lightness, ab = lab_column_to_numpy(table.column("L"), "L"), lab_column_to_numpy(table.column("ab"), "ab")
    assert lightness.shape == (table.num_rows, 1, 64, 64) and lightness.dtype == np.uint8
    assert ab.shape == (table.num_rows, 2, 64, 64) and ab.dtype == np.int8
    rows = {Path(row["path"]).name: row for row in table.drop_columns(["L", "ab"]).to_pylist()}
    good_crafted = [name for name, reason in expected.items() if reason is None]
    assert set(good_crafted) <= set(rows)
    assert rows["cmyk.jpg"]["source_mode"] == "CMYK" and rows["rgba.png"]["has_alpha"]
    assert rows["grey16.png"]["source_mode"] in ("I;16", "I") and rows["grey16.png"]["colourless"]
    assert rows["palette.gif"]["source_mode"] == "P" and not rows["palette.gif"]["colourless"]
    assert rows["grey16.png"]["original_width"] == 80 and rows["grey16.png"]["original_height"] == 64
    dev = [row for name, row in rows.items() if name.startswith("n")]
    assert all(row["synset"] == row["path"][:9] and row["label"] >= 0 for row in dev)
    assert all(rows[name]["synset"] is None and rows[name]["label"] == -1 for name in good_crafted)
    # pandas (through pyarrow) reads them too
    frame = pq.read_table(output / manifest["shards"][0]["file"]).to_pandas()
    assert len(frame) == manifest["shards"][0]["rows"]


def test_stored_lab_matches_the_core(built_shards) -> None:
    root, output, manifest, _ = built_shards
    for shard in manifest["shards"]:
        table = pq.read_table(output / shard["file"])
        arrays = read_shard_arrays(table)
        for index, path in enumerate(table.column("path").to_pylist()):
            rgb = resize_shorter_side_and_center_crop(decode_image((root / path).read_bytes(), draft_size=64).rgb, 64)
            exact = rgb_to_lab(torch.from_numpy(np.array(rgb)).permute(2, 0, 1).double() / 255)
            assert (
                dequantize_lightness(arrays["L"][index]).double() - exact[:1]
            ).abs().max() <= L_MAX_QUANTIZATION_ERROR + FLOAT_SLACK
            assert (
                dequantize_ab(arrays["ab"][index]).double() - exact[1:]
            ).abs().max() <= AB_MAX_QUANTIZATION_ERROR + FLOAT_SLACK
            assert arrays["colourless"][index] == (not colourful_images(dequantize_ab(arrays["ab"][index][None]))[0])


def test_row_groups_and_a_plain_dataloader(built_shards) -> None:
    _, output, manifest, _ = built_shards
    files = [output / shard["file"] for shard in manifest["shards"] if shard["rows"]]
    assert max(pq.ParquetFile(file).num_row_groups for file in files) > 1
    dataset = LabShardDataset(files, skip_colourless=True)
    kept = manifest["counts"]["written"] - manifest["counts"]["colourless"]
    assert len(dataset) == kept and len(LabShardDataset(files, skip_colourless=False)) == manifest["counts"]["written"]
    batches = list(torch.utils.data.DataLoader(dataset, batch_size=4, shuffle=False))
    assert sum(len(batch["L"]) for batch in batches) == kept
    first = batches[0]
    assert (
        first["L"].shape == (4, 1, 64, 64) and first["ab"].shape == (4, 2, 64, 64) and first["L"].dtype == torch.float32
    )
    reference = read_shard_arrays(files[0])
    keep = ~reference["colourless"]
    torch.testing.assert_close(first["ab"][0], dequantize_ab(reference["ab"][keep][0]))


def test_shards_are_bytewise_deterministic(built_shards, tmp_path: Path) -> None:
    root, output, manifest, _ = built_shards
    config = PreprocessConfig(**manifest["config"])
    task = plan_shards(list_sources(config)[0], config)[0]
    build_shard(task, input_root=root, output_dir=tmp_path, size=config.size, row_group_size=config.row_group_size)
    assert (tmp_path / task.file).read_bytes() == (output / task.file).read_bytes()


def test_different_config_is_refused_with_the_differing_fields(built_shards) -> None:
    _, output, manifest, _ = built_shards
    config = PreprocessConfig(**manifest["config"])
    assert prepare_output_dir(output, config)  # same config: an existing run of it
    changed = PreprocessConfig(**{**manifest["config"], "size": 32, "val_fraction": 0.5})
    with pytest.raises(OutputConflictError) as caught:
        prepare_output_dir(output, changed)
    assert "size: 64 -> 32" in str(caught.value) and "val_fraction: 0.3 -> 0.5" in str(caught.value)


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(OutputConflictError, match="not empty"):
        prepare_output_dir(tmp_path, PreprocessConfig(input_root="/data"))
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(OutputConflictError, match="not a colorization"):
        prepare_output_dir(tmp_path, PreprocessConfig(input_root="/data"))


def test_reports_are_reused_only_when_they_match(built_shards, tmp_path: Path) -> None:
    root, output, manifest, _ = built_shards
    config = PreprocessConfig(**manifest["config"])
    tasks = plan_shards(list_sources(config)[0], config)
    # build_shard's reports were not saved by this fixture (the Ray job saves them); save them the way it does.
    from colorization.io.manifest import report_path

    task = tasks[0]
    report = build_shard(
        task, input_root=root, output_dir=tmp_path, size=config.size, row_group_size=config.row_group_size
    )
    write_json_atomic(report_path(tmp_path, task.file), json.loads(report.to_json()))
    assert set(reusable_reports(tmp_path, tasks)) == {task.file}
    (tmp_path / task.file).write_bytes(b"damaged")
    assert reusable_reports(tmp_path, tasks) == {}


def test_source_file_round_trips_through_json() -> None:
    from colorization.io.shards import ShardTask

    task = ShardTask(
        file="train/train-00000.parquet",
        split="train",
        sources=(SourceFile("a.jpg", "train", None, -1, 3, 4),),
        digest="d",
    )
    assert ShardTask.from_json(task.to_json()) == task


def test_small_pattern_round_trip_through_a_shard(tmp_path: Path) -> None:
    from PIL import Image

    from colorization.io.shards import ShardTask

    Image.fromarray(colour_test_pattern(64, 64)).save(tmp_path / "pattern.png")
    task = ShardTask(
        file="train/train-00000.parquet", split="train", sources=(SourceFile("pattern.png", "train"),), digest="d"
    )
    report = build_shard(task, input_root=tmp_path, output_dir=tmp_path / "out", size=64)
    assert (
        report.written == 1
        and report.failures == []
        and set(report.seconds) == {"read", "decode", "resize", "lab", "write"}
    )
    arrays = read_shard_arrays(tmp_path / "out" / task.file)
    exact = rgb_to_lab(torch.from_numpy(colour_test_pattern(64, 64)).permute(2, 0, 1).double() / 255)
    assert (dequantize_ab(arrays["ab"][0]).double() - exact[1:]).abs().max() <= AB_MAX_QUANTIZATION_ERROR + FLOAT_SLACK
