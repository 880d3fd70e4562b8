"""Ray Data preprocessing of a mixed folder (real dev photos + crafted broken and odd files), end to end through
``workflows/preprocess.py`` and ``colorization preprocess``: nothing lost, failures named, Lab within the documented
quantization error, reruns safe, other configs refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from colorization.color.ab_prior import colourful_images
from colorization.color.lab import rgb_to_lab
from colorization.io.images import decode_image, resize_shorter_side_and_center_crop
from colorization.io.manifest import MANIFEST_NAME, REPORTS_DIR, read_manifest
from colorization.io.shards import (
    AB_MAX_QUANTIZATION_ERROR,
    L_MAX_QUANTIZATION_ERROR,
    dequantize_ab,
    dequantize_lightness,
    SCHEMA_VERSION,
    lab_column_to_numpy,
    read_shard_arrays,
)
from tests.distributed.conftest import DEV_PHOTOS_IN_MIXED_FOLDER, GREY_DEV_PHOTO, MIXED_SIZE, preprocess_argv

pytestmark = pytest.mark.ray

FLOAT_SLACK = 1e-4
GREY_RGB_DEV_PHOTO = "n03532672_hook.JPEG"  # in the mixed folder's spread of dev photos


def _all_rows(output: Path, manifest: dict) -> pa.Table:
    return pa.concat_tables([pq.read_table(output / shard["file"]) for shard in manifest["shards"]])


def test_counts_reconcile_and_every_bad_file_is_named(mixed_folder, mixed_shards: Path) -> None:
    _, expected = mixed_folder
    manifest = read_manifest(mixed_shards)
    counts = manifest["counts"]
    assert manifest["status"] == "complete" and manifest["schema_version"] == SCHEMA_VERSION == 2
    assert counts["listed"] == DEV_PHOTOS_IN_MIXED_FOLDER + len(expected)
    assert counts["listed"] == counts["written"] + counts["failed"]
    for split in manifest["splits"].values():
        assert split["listed"] == split["written"] + split["failed"]
    assert set(manifest["splits"]) == {"train", "val"}
    failures = {failure["path"]: failure for failure in manifest["failures"]}
    assert failures.keys() == {f"crafted/{name}" for name, reason in expected.items() if reason}
    for name, reason in expected.items():
        if reason:
            assert failures[f"crafted/{name}"]["reason"] == reason and failures[f"crafted/{name}"]["detail"]
    assert manifest["failure_reasons"] == {"decompression-bomb": 1, "not-an-image": 1, "truncated": 1, "zero-byte": 1}
    table = _all_rows(mixed_shards, manifest)
    written = set(table.column("path").to_pylist())
    assert len(written) == table.num_rows == counts["written"]
    assert {f"crafted/{name}" for name, reason in expected.items() if reason is None} <= written
    assert not written & failures.keys()


def test_shards_are_plain_parquet_with_fixed_size_binary_images(mixed_shards: Path) -> None:
    manifest = read_manifest(mixed_shards)
    for shard in manifest["shards"]:
        assert (mixed_shards / shard["file"]).is_file()
        assert shard["file"].startswith(f"{shard['split']}/{shard['split']}-")
    table = _all_rows(mixed_shards, manifest)
    assert table.schema.field("L").type == pa.binary(MIXED_SIZE**2)
    assert table.schema.field("ab").type == pa.binary(2 * MIXED_SIZE**2)
    assert lab_column_to_numpy(table.column("ab"), "ab").shape == (table.num_rows, 2, MIXED_SIZE, MIXED_SIZE)
    assert max(shard["rows"] for shard in manifest["shards"]) == manifest["rows_per_shard"] == 6
    rows = {row["path"]: row for row in table.drop_columns(["L", "ab"]).to_pylist()}
    assert rows[GREY_DEV_PHOTO]["colourless"] and rows[GREY_DEV_PHOTO]["source_mode"] == "L"
    assert rows["crafted/cmyk.jpg"]["source_mode"] == "CMYK" and not rows["crafted/cmyk.jpg"]["colourless"]
    assert rows["crafted/grey16.png"]["colourless"] and rows["crafted/rgba.png"]["has_alpha"]
    # The hook photo is stored as an RGB JPEG but is grey: flagged from its content, not its mode.
    assert rows[GREY_RGB_DEV_PHOTO]["colourless"] and rows[GREY_RGB_DEV_PHOTO]["source_mode"] == "RGB"
    assert manifest["counts"]["colourless"] == sum(row["colourless"] for row in rows.values()) == 3
    synsets = manifest["synsets"]
    for path, row in rows.items():
        if not path.startswith("crafted/"):
            assert row["synset"] == path[:9] and synsets[row["label"]] == row["synset"]


def test_stored_lab_matches_the_core_within_the_quantization_error(mixed_folder, mixed_shards: Path) -> None:
    root, _ = mixed_folder
    manifest = read_manifest(mixed_shards)
    worst_l = worst_ab = 0.0
    for shard in manifest["shards"]:
        table = pq.read_table(mixed_shards / shard["file"])
        arrays = read_shard_arrays(table)
        for index, path in enumerate(table.column("path").to_pylist()):
            crop = resize_shorter_side_and_center_crop(
                decode_image((root / path).read_bytes(), draft_size=MIXED_SIZE).rgb, MIXED_SIZE
            )
            exact = rgb_to_lab(torch.from_numpy(np.array(crop)).permute(2, 0, 1).double() / 255)
            worst_l = max(worst_l, (dequantize_lightness(arrays["L"][index]).double() - exact[:1]).abs().max().item())
            worst_ab = max(worst_ab, (dequantize_ab(arrays["ab"][index]).double() - exact[1:]).abs().max().item())
            assert arrays["colourless"][index] == (not colourful_images(dequantize_ab(arrays["ab"][index][None]))[0])
    assert worst_l <= L_MAX_QUANTIZATION_ERROR + FLOAT_SLACK
    assert worst_ab <= AB_MAX_QUANTIZATION_ERROR + FLOAT_SLACK


def test_progress_and_summary_are_printed(mixed_folder, ray_session, tmp_path: Path, capsys) -> None:
    from workflows.preprocess import main

    root, _ = mixed_folder
    assert main(preprocess_argv(root, tmp_path / "out", "--limit", "10")) == 0
    printed = capsys.readouterr().out
    assert "shards]" in printed and "images/s" in printed
    assert "10 listed = " in printed and "task seconds per stage: read" in printed
    assert read_manifest(tmp_path / "out")["counts"]["listed"] == 10


def test_rerun_same_config_is_safe_and_resumes(mixed_folder, ray_session, tmp_path: Path, capsys) -> None:
    from workflows.preprocess import main

    root, _ = mixed_folder
    output = tmp_path / "out"
    argv = preprocess_argv(root, output, "--limit", "14")
    assert main(argv) == 0
    first = read_manifest(output)
    files = {shard["file"]: (output / shard["file"]).read_bytes() for shard in first["shards"]}
    capsys.readouterr()

    assert main(argv) == 0  # same config and files: skipped (no Ray), nothing rewritten
    assert "preprocess: skipped" in capsys.readouterr().out
    assert read_manifest(output) == first
    assert {shard["file"]: (output / shard["file"]).read_bytes() for shard in first["shards"]} == files

    # An interrupted run: one shard and its report missing -> only that shard is built again, identically.
    lost = first["shards"][0]["file"]
    (output / lost).unlink()
    (output / REPORTS_DIR / (lost.replace("/", "__") + ".json")).unlink()
    assert main(argv) == 0
    third = read_manifest(output)
    assert third["timing"]["shards_built"] == 1 and third["counts"] == first["counts"]
    assert {shard["file"]: (output / shard["file"]).read_bytes() for shard in third["shards"]} == files


def test_different_config_is_refused_through_the_cli(mixed_folder, mixed_shards: Path, capsys) -> None:
    from colorization.cli.main import main as cli

    root, _ = mixed_folder
    before = (mixed_shards / MANIFEST_NAME).read_text()
    argv = preprocess_argv(root, mixed_shards)
    argv[argv.index("--size") + 1] = "32"
    assert cli(["preprocess", *argv]) == 2
    error = capsys.readouterr().err
    assert "different configuration" in error and "size: 64 -> 32" in error and "Traceback" not in error
    assert (mixed_shards / MANIFEST_NAME).read_text() == before


def test_cli_reports_a_missing_input_and_an_empty_folder(tmp_path: Path, ray_session, capsys) -> None:
    from colorization.cli.main import main as cli

    assert cli(["preprocess", str(tmp_path / "nowhere"), str(tmp_path / "out")]) == 2
    assert "input not found" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    assert cli(["preprocess", str(tmp_path / "empty"), str(tmp_path / "out2")]) == 2
    assert "no image files" in capsys.readouterr().err
    assert not (tmp_path / "out2").exists()


def test_manifest_is_json_with_the_config(mixed_shards: Path) -> None:
    manifest = json.loads((mixed_shards / MANIFEST_NAME).read_text())
    assert manifest["config"]["size"] == MIXED_SIZE and manifest["config"]["val_fraction"] == 0.2
    assert manifest["quantization"]["ab"]["decode"] == "ab_q + 0.5"
    assert set(manifest["stage_seconds"]) == {"read", "decode", "resize", "lab", "write"}
    assert os.path.isabs(manifest["config"]["input_root"])
