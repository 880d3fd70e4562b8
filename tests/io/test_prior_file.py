"""colorization.io.prior_file: the prior's npz / json / png round trip and the figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from colorization.color.ab_bins import default_ab_bins
from colorization.io.prior_file import load_ab_prior, prior_paths, render_prior_png, save_ab_prior


def _example() -> dict:
    bins = default_ab_bins().numpy()
    counts = np.rint(1e6 * np.exp(-(bins**2).sum(axis=1) / 800)).astype(np.int64)
    prior = counts / counts.sum()
    return {"counts": counts, "prior": prior, "weights": 1 / (0.5 * prior + 0.5 / len(prior)), "bins": bins}


def test_paths_for_a_file_and_a_directory(tmp_path: Path) -> None:
    assert prior_paths(tmp_path / "p.npz") == (tmp_path / "p.npz", tmp_path / "p.json", tmp_path / "p.png")
    assert prior_paths(tmp_path / "out")[0] == tmp_path / "out" / "ab_prior.npz"


def test_round_trip(tmp_path: Path) -> None:
    example = _example()
    paths = save_ab_prior(
        tmp_path / "priors", metadata={"sigma": 5.0, "pixels": int(example["counts"].sum())}, **example
    )
    assert all(path.is_file() for path in paths)
    for source in (paths[0], tmp_path / "priors"):
        record = load_ab_prior(source)
        np.testing.assert_array_equal(record["counts"], example["counts"])
        np.testing.assert_array_equal(record["prior"], example["prior"])
        np.testing.assert_array_equal(record["bins"], example["bins"])
        assert record["counts"].dtype == np.int64 and record["metadata"]["sigma"] == 5.0
    as_json = json.loads(paths[1].read_text())
    assert as_json["num_bins"] == len(example["bins"]) and as_json["counts"] == example["counts"].tolist()


def test_a_file_that_is_not_an_npz_archive_is_refused_by_name(tmp_path: Path) -> None:
    import pickle

    for name, content in (("text.npz", b"hello"), ("pickle.npz", pickle.dumps({"counts": [1, 2]}))):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match="not an .npz archive"):
            load_ab_prior(tmp_path / name)


def test_figure_marks_the_bins_with_mass(tmp_path: Path) -> None:
    example = _example()
    example["prior"][: len(example["prior"]) // 2] = 0.0  # half the bins have no mass: drawn as empty cells
    path = render_prior_png(example["prior"], example["bins"], tmp_path / "prior.png")
    image = np.asarray(Image.open(path).convert("RGB"))
    assert image.shape[1] > image.shape[0] > 200
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50  # a colour map and the bins' colours, not a blank
