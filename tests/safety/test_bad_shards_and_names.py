"""Issue 11, batch commands under Ray: bad files are reported by name and counted; every good one is processed.

* preprocess: a file name that is not UTF-8, a zero-byte image and a text file named .jpg become failure rows;
  the job never aborts, and the input folder is left exactly as it was.
* prior: a zero-byte shard, a shard whose columns are not what they should be and a shard of an unknown schema
  version (all found from their footers, before any task) are named with the reason and left out; the counts equal
  an independent count over the good shards; a split with no readable shard is one error line.
* every other reader (the plain reader, the DataLoader dataset, the Ray training ingest) refuses the unknown
  version with the same one line naming the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from colorization.color.ab_bins import default_ab_bins
from colorization.color.ab_prior import ab_bin_counts
from colorization.io.manifest import read_manifest, shard_files
from colorization.io.prior_file import load_ab_prior
from colorization.io.shards import dequantize_ab, read_shard_arrays
from tests.safety.harness import changed_paths, run_command, snapshot

pytestmark = pytest.mark.ray

SIZE = 16
GOOD_IMAGES = 4


@pytest.fixture(scope="module")
def bad_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bad-names")
    rng = np.random.default_rng(1)
    for index in range(GOOD_IMAGES):
        colour = np.array([[200, 40, 40], [40, 160, 60], [30, 60, 200], [220, 180, 30]][index], dtype=np.uint8)
        pixels = np.clip(colour + rng.integers(-20, 20, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(root / f"good{index}.png")
    good_bytes = (root / "good0.png").read_bytes()
    with open(os.path.join(os.fsencode(root), b"bad-name-\xff\xfe.png"), "wb") as stream:
        stream.write(good_bytes)  # a perfectly good image whose name is not UTF-8
    (root / "empty.jpg").write_bytes(b"")
    (root / "notes.jpg").write_text("not an image\n")
    return root


@pytest.fixture(scope="module")
def shards(bad_folder: Path, tmp_path_factory: pytest.TempPathFactory, ray_session) -> Path:
    from colorization.cli.main import main

    output = tmp_path_factory.mktemp("bad-shards") / "shards"
    before = snapshot(bad_folder)
    argv = ["preprocess", str(bad_folder), str(output), "--size", str(SIZE), "--val-fraction", "0"]
    assert main(argv) == 0
    assert not changed_paths(before, snapshot(bad_folder))  # the input is untouched
    return output


def test_preprocess_reports_bad_names_and_files_and_keeps_every_good_one(shards: Path) -> None:
    manifest = read_manifest(shards)
    assert manifest["counts"]["listed"] == GOOD_IMAGES + 3
    assert manifest["counts"]["written"] == GOOD_IMAGES + 0 and manifest["counts"]["failed"] == 3
    reasons = {failure["path"]: failure["reason"] for failure in manifest["failures"]}
    assert reasons == {
        "bad-name-\\xff\\xfe.png": "bad-file-name", "empty.jpg": "zero-byte", "notes.jpg": "not-an-image"
    }


def _independent_counts(files: list[Path]) -> np.ndarray:
    bins = default_ab_bins()
    counts = torch.zeros(len(bins), dtype=torch.int64)
    for path in files:
        arrays = read_shard_arrays(path, ("ab", "colourless"))
        keep = ~arrays["colourless"].astype(bool)
        if keep.any():
            counts += ab_bin_counts(dequantize_ab(arrays["ab"][keep]), bins)
    return counts.numpy()


def _write_future_version(good: Path, path: Path) -> None:
    """A copy of a good shard whose schema metadata says version 99 (a shard from a newer colorization)."""
    table = pq.read_table(good)
    metadata = json.loads(table.schema.metadata[b"colorization"])
    metadata["schema_version"] = 99
    pq.write_table(table.replace_schema_metadata({b"colorization": json.dumps(metadata).encode()}), path)


def test_every_reader_refuses_an_unknown_schema_version_naming_the_file(shards: Path, tmp_path: Path) -> None:
    from colorization.distributed.train_data import shard_dataset
    from colorization.errors import UserError
    from colorization.io.shards import LabShardDataset
    from colorization.training.data import read_rows

    future = tmp_path / "train-00000.parquet"
    _write_future_version(shard_files(shards, "train")[0], future)
    readers = [
        lambda: read_shard_arrays(future), lambda: LabShardDataset([future]), lambda: read_rows([future], 1),
        lambda: shard_dataset([future], crop=8),
    ]
    for reader in readers:
        with pytest.raises(UserError) as caught:
            reader()
        assert str(caught.value).startswith(f"{future}: shard schema version 99 is not one this colorization reads")
        assert "\n" not in str(caught.value)


def _add_shards(shards: Path, names: list[str]) -> list[Path]:
    """Lists extra train shard files in the manifest (as if preprocess had written them); returns their paths."""
    manifest = read_manifest(shards)
    manifest["shards"] += [{"file": f"train/{name}", "split": "train"} for name in names]
    (shards / "manifest.json").write_text(json.dumps(manifest))
    return [shards / "train" / name for name in names]


def test_prior_names_and_counts_bad_shards_and_counts_the_good_ones(shards: Path, tmp_path: Path, capsys) -> None:
    good = shard_files(shards, "train")
    future, empty, foreign = _add_shards(shards, ["train-00097.parquet", "train-00098.parquet", "train-00099.parquet"])
    _write_future_version(good[0], future)
    empty.write_bytes(b"")  # zero-byte: refused from its (missing) footer, before any task
    pq.write_table(  # a Parquet file with the right column names but not our images: refused from its footer
        pa.table({"ab": pa.array([1, 2], pa.int64()), "colourless": pa.array([False, False])}), foreign
    )
    expected = _independent_counts(good)
    assert expected.sum() > 0
    out = tmp_path / "prior.npz"
    argv = ["prior", str(shards), "--out", str(out), "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}"]
    printed, _ = run_command(argv, shards.parent, capsys, status=0)
    assert "3 shard(s) could not be read" in printed
    assert f"{empty}: not a readable Parquet file" in printed and f"{foreign}: column ab has type int64" in printed
    assert f"{future}: shard schema version 99 is not one this colorization reads" in printed
    record = load_ab_prior(out)
    np.testing.assert_array_equal(record["counts"], expected)
    failed = sorted(failure["file"] for failure in record["metadata"]["failed_shards"])
    assert failed == [str(future), str(empty), str(foreign)], record["metadata"]["failed_shards"]
    run_id = json.loads(out.with_suffix(".json").read_text())["mlflow_run_id"]
    assert run_id

    printed, _ = run_command(argv, shards.parent, capsys, status=0)  # same shards and options: skipped, no new run
    assert printed.startswith("prior: skipped") and run_id in printed

    for path in good:
        path.write_text("no longer Parquet")
    run_command(argv, shards.parent, capsys, says=["no shard of split 'train'", "could be read"])
