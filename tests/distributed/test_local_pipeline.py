"""The main job in local mode (``make run``): scikit-image's colour samples -> shards -> prior, rerun-safe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from workflows import local_pipeline

pytestmark = pytest.mark.ray


def test_local_pipeline_on_the_embedded_default(tmp_path, ray_session, monkeypatch, capsys):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    output = tmp_path / "local"
    assert local_pipeline.main(["--output", str(output), "--size", "64"]) == 0
    images = sorted((output / "images").glob("*.png"))
    manifest = json.loads((output / "shards" / "manifest.json").read_text())
    assert manifest["counts"]["listed"] == len(images) >= len(local_pipeline.SAMPLE_IMAGES)
    assert manifest["counts"]["written"] == len(images) and manifest["counts"]["failed"] == 0
    with np.load(output / "prior" / "ab_prior.npz") as prior_file:
        prior, weights = prior_file["prior"], prior_file["weights"]
    assert prior.sum() == pytest.approx(1.0) and (prior * weights).sum() == pytest.approx(1.0)
    assert (output / "prior" / "ab_prior.png").is_file()
    # Rerunning reuses the shards (same config) and recomputes the same prior.
    assert local_pipeline.main(["--output", str(output), "--size", "64"]) == 0
    with np.load(output / "prior" / "ab_prior.npz") as again:
        assert np.array_equal(again["prior"], prior)
    assert "reused" in capsys.readouterr().out
