"""The ab prior with Ray Data over the mixed shards: exact integer counts equal to a single-process numpy
reference (pyarrow + brute-force nearest bin, independent of the core), outputs and the MLflow run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from PIL import Image

from colorization.color.ab_bins import default_ab_bins
from colorization.color.ab_prior import rebalance_weights, smooth_ab_prior
from colorization.io.ab_bins_file import load_ab_bins
from colorization.io.manifest import read_manifest, shard_files
from colorization.io.prior_file import load_ab_prior

pytestmark = pytest.mark.ray


def numpy_reference_counts(files: list[Path], bins: np.ndarray) -> tuple[np.ndarray, int, int]:
    """Single process, no torch: read the shards with pyarrow, skip colourless rows, dequantize ab (q + 0.5) and
    send every pixel to its nearest bin by brute force (first minimum = lowest index on ties)."""
    counts = np.zeros(len(bins), dtype=np.int64)
    images = pixels = 0
    centres = np.asarray(bins, dtype=np.float64)
    for file in files:
        table = pq.read_table(file, columns=["ab", "colourless"])
        keep = ~np.asarray(table.column("colourless").to_pylist(), dtype=bool)
        if not keep.any():
            continue
        column = table.column("ab").combine_chunks()  # schema version 2: fixed_size_binary[2 * S * S]
        raw = np.frombuffer(column.buffers()[1], dtype=np.int8)[column.offset * column.type.byte_width :]
        ab = raw[: len(table) * column.type.byte_width].reshape(len(table), 2, -1)[keep].astype(np.float64) + 0.5
        values = ab.transpose(0, 2, 1).reshape(-1, 2)  # (pixels, 2)
        for start in range(0, len(values), 8192):
            chunk = values[start : start + 8192]
            distances = ((chunk[:, None, :] - centres[None, :, :]) ** 2).sum(axis=-1)
            counts += np.bincount(distances.argmin(axis=1), minlength=len(bins))
        images += int(keep.sum())
        pixels += len(values)
    return counts, images, pixels


def test_prior_workflow_equals_the_numpy_reference_and_logs_to_mlflow(
    mixed_shards: Path, tmp_path: Path, capsys
) -> None:
    from mlflow.tracking import MlflowClient

    from colorization.cli.main import main as cli

    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    out = tmp_path / "prior" / "mixed.npz"
    assert cli(["prior", str(mixed_shards), "--out", str(out), "--tracking-uri", tracking_uri]) == 0
    printed = capsys.readouterr().out
    assert "pixels/s" in printed and "MLflow run" in printed

    bins = default_ab_bins()
    files = shard_files(mixed_shards, "train")
    expected, images, pixels = numpy_reference_counts(files, bins.numpy())
    record = load_ab_prior(out)
    np.testing.assert_array_equal(record["counts"], expected)  # exact integers
    assert record["counts"].sum() == pixels == record["metadata"]["pixels"] and images == record["metadata"]["images"]
    manifest = read_manifest(mixed_shards)
    assert record["metadata"]["colourless_skipped"] == manifest["splits"]["train"]["colourless"] > 0
    assert images == manifest["splits"]["train"]["written"] - manifest["splits"]["train"]["colourless"]
    np.testing.assert_array_equal(record["bins"], bins.numpy())
    prior = smooth_ab_prior(torch.from_numpy(expected), bins, sigma=5.0)
    np.testing.assert_allclose(record["prior"], prior.numpy(), rtol=0, atol=1e-15)
    np.testing.assert_allclose(record["weights"], rebalance_weights(prior, 0.5).numpy(), rtol=1e-12)
    assert abs((record["prior"] * record["weights"]).sum() - 1) < 1e-9

    as_json = json.loads(out.with_suffix(".json").read_text())
    assert as_json["counts"] == expected.tolist() and as_json["num_bins"] == len(bins)
    figure = Image.open(out.with_suffix(".png"))
    assert figure.format == "PNG" and figure.size[0] > 300

    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("colorization-prior")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["num_bins"] == str(len(bins)) and run.data.params["sigma"] == "5.0"
    assert run.data.params["lambda"] == "0.5" and run.data.params["bins_source"].startswith("default")
    assert run.data.metrics["pixels"] == pixels and run.data.metrics["images"] == images
    logged = {artifact.path for artifact in client.list_artifacts(run.info.run_id, "prior")}
    assert logged == {"prior/mixed.npz", "prior/mixed.json", "prior/mixed.png"}
    assert [artifact.path for artifact in client.list_artifacts(run.info.run_id, "shards")] == ["shards/manifest.json"]


def test_counts_with_the_papers_bins_and_both_methods(mixed_shards: Path, zhang_bins_file: Path, ray_session) -> None:
    from colorization.distributed.data import ab_prior_counts

    bins = load_ab_bins(zhang_bins_file)
    files = shard_files(mixed_shards, "train")
    expected, images, pixels = numpy_reference_counts(files, bins.numpy())
    lattice = ab_prior_counts(files, bins)
    per_pixel = ab_prior_counts(files, bins, method="per-pixel")
    np.testing.assert_array_equal(lattice["counts"], expected)
    np.testing.assert_array_equal(per_pixel["counts"], expected)
    assert lattice["images"] == per_pixel["images"] == images and lattice["pixels"] == pixels
    assert lattice["blocks"] >= 1


def test_prior_cli_errors(tmp_path: Path, mixed_shards: Path, capsys) -> None:
    from colorization.cli.main import main as cli

    assert cli(["prior", str(tmp_path), "--out", str(tmp_path / "p.npz")]) == 2
    assert "run `colorization preprocess` first" in capsys.readouterr().err
    bad_bins = tmp_path / "bins.npy"
    np.save(bad_bins, np.zeros((3, 3)))
    assert cli(["prior", str(mixed_shards), "--out", str(tmp_path / "p.npz"), "--bins", str(bad_bins)]) == 2
    assert "(Q, 2)" in capsys.readouterr().err
