"""``colorization metrics``: folders of real (small) photos, scored in process through the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.cli.main import main
from colorization.color.ab_bins import default_ab_bins
from colorization.io.ab_bins_file import load_ab_bins
from colorization.io.images import read_image, resize_shorter_side_and_center_crop
from colorization.metrics.report import ColorizationScores

NAMES = ("tench", "nested/terrier", "gown")  # a nested path checks pairing by relative path


@pytest.fixture(scope="module")
def small_photos(dev_image_paths: list[Path]) -> dict[str, Image.Image]:
    """Three colour photos (48 px wide) and one black-and-white photo, as 8-bit RGB PIL images."""
    colour = [path for path in dev_image_paths if Image.open(path).mode == "RGB"]
    grey = next(path for path in dev_image_paths if Image.open(path).mode == "L")
    chosen = dict(zip(NAMES, (colour[0], colour[100], colour[200]), strict=True)) | {"bw": grey}
    photos = {}
    for name, path in chosen.items():
        image = read_image(path).rgb
        photos[name] = image.resize((48, round(48 * image.height / image.width)), Image.Resampling.BICUBIC)
    return photos


def _save(image: Image.Image, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return path


def _grey(image: Image.Image) -> Image.Image:
    return image.convert("L").convert("RGB")


def _folders(tmp_path: Path, photos: dict[str, Image.Image], pred_suffix: str = ".bmp") -> tuple[Path, Path]:
    """truth/<name>.png and pred/<name><pred_suffix> (the grey version) for every photo."""
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    for name, image in photos.items():
        _save(image, truth / f"{name}.png")
        _save(_grey(image), pred / f"{name}{pred_suffix}")
    return pred, truth


def _library_summary(pairs: list[tuple[Image.Image, Image.Image]], bins: torch.Tensor) -> dict:
    scores = ColorizationScores.empty(bins)
    for pred, truth in pairs:
        scores.update(*(torch.from_numpy(np.asarray(image)).permute(2, 0, 1)[None] for image in (pred, truth)))
    return scores.summary()


def _run(*args: str | Path) -> int:
    return main(["metrics", *map(str, args)])


def test_json_matches_the_library_and_the_colourless_truth_is_excluded(
    tmp_path: Path, small_photos: dict[str, Image.Image], capsys: pytest.CaptureFixture
) -> None:
    pred, truth = _folders(tmp_path, small_photos)  # pred x.bmp pairs with truth x.png
    out = tmp_path / "scores.json"
    assert _run("--pred", pred, "--truth", truth, "--json", out) == 0
    record = json.loads(out.read_text())
    # The library on the same images; the black-and-white photo is excluded from every score.
    expected = _library_summary([(_grey(image), image) for image in small_photos.values()], default_ab_bins())
    assert record["images"] == 3 and record["excluded_colourless"] == 1
    for key, value in expected.items():
        assert record[key] == value, key
    assert record["num_bins"] == len(default_ab_bins()) and record["size"] is None
    table = capsys.readouterr().out
    assert "AuC (%)" in table and f"{expected['auc']:.2f}" in table and "colourless truths excluded" in table


def test_official_bins_and_perfect_predictions(
    tmp_path: Path, small_photos: dict[str, Image.Image], zhang_bins_file: Path
) -> None:
    truth = tmp_path / "truth"
    for name, image in small_photos.items():
        _save(image, truth / f"{name}.png")
    out = tmp_path / "scores.json"
    assert _run("--pred", truth, "--truth", truth, "--bins", zhang_bins_file, "--json", out) == 0
    record = json.loads(out.read_text())
    assert record["num_bins"] == len(load_ab_bins(zhang_bins_file))
    assert record["auc"] == 100.0 and record["rebalanced_auc"] == 100.0 and record["psnr"] == 100.0
    assert record["colourfulness_pred"] == record["colourfulness_truth"] > 0


def test_size_resizes_both_images_of_each_pair(tmp_path: Path, small_photos: dict[str, Image.Image]) -> None:
    truth, pred = tmp_path / "truth", tmp_path / "pred"
    pairs = []
    for name in NAMES:
        image = small_photos[name]
        small_grey = _grey(image).resize((image.width // 2, image.height // 2), Image.Resampling.BICUBIC)
        _save(image, truth / f"{name}.png")
        _save(small_grey, pred / f"{name}.png")
        pairs.append(tuple(resize_shorter_side_and_center_crop(im, 16) for im in (small_grey, image)))
    out = tmp_path / "scores.json"
    assert _run("--pred", pred, "--truth", truth, "--size", "16", "--json", out) == 0
    record = json.loads(out.read_text())
    assert record["size"] == 16
    expected = _library_summary(pairs, default_ab_bins())
    assert {key: record[key] for key in expected} == expected


def test_size_mismatch_without_size_names_every_pair(
    tmp_path: Path, small_photos: dict[str, Image.Image], capsys: pytest.CaptureFixture
) -> None:
    pred, truth = _folders(tmp_path, small_photos)
    for name in ("tench", "gown"):
        image = Image.open(pred / f"{name}.bmp")
        image.resize((image.width - 1, image.height)).save(pred / f"{name}.bmp")
    assert _run("--pred", pred, "--truth", truth) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "2 problem(s)" in captured.err and "Traceback" not in captured.err
    for name in ("tench", "gown"):
        assert f"size mismatch: {pred / name}.bmp" in captured.err and f"{truth / name}.png" in captured.err
    assert "terrier" not in captured.err


def test_missing_pairs_in_both_directions_are_all_listed(
    tmp_path: Path, small_photos: dict[str, Image.Image], capsys: pytest.CaptureFixture
) -> None:
    pred, truth = _folders(tmp_path, small_photos)
    (pred / "tench.bmp").unlink()
    (pred / "nested" / "terrier.bmp").unlink()
    _save(small_photos["gown"], pred / "extra.png")
    assert _run("--pred", pred, "--truth", truth) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert f"no prediction for {truth / 'tench.png'}" in err
    assert f"no prediction for {truth / 'nested' / 'terrier.png'}" in err
    assert f"no ground truth for {pred / 'extra.png'}" in err


def test_ambiguous_names_are_refused(
    tmp_path: Path, small_photos: dict[str, Image.Image], capsys: pytest.CaptureFixture
) -> None:
    pred, truth = _folders(tmp_path, small_photos)
    _save(small_photos["gown"], pred / "gown.png")  # pred/gown.bmp and pred/gown.png both claim "gown"
    assert _run("--pred", pred, "--truth", truth) == 2
    err = capsys.readouterr().err
    assert "ambiguous" in err and str(pred / "gown.bmp") in err and str(pred / "gown.png") in err


def test_unreadable_files_are_all_listed(
    tmp_path: Path, small_photos: dict[str, Image.Image], capsys: pytest.CaptureFixture
) -> None:
    pred, truth = _folders(tmp_path, small_photos)
    (pred / "tench.bmp").write_bytes(b"this is not an image")
    (pred / "gown.bmp").write_bytes(b"")
    assert _run("--pred", pred, "--truth", truth, "--json", tmp_path / "never.json") == 2
    err = capsys.readouterr().err
    assert "2 problem(s)" in err and "Traceback" not in err
    assert f"cannot read {pred / 'tench.bmp'} (not-an-image" in err
    assert f"cannot read {pred / 'gown.bmp'} (zero-byte" in err
    assert not (tmp_path / "never.json").exists()


def test_all_colourless_and_bad_folders_are_errors(
    tmp_path: Path, small_photos: dict[str, Image.Image], capsys: pytest.CaptureFixture
) -> None:
    pred, truth = _folders(tmp_path, {"bw": small_photos["bw"]})
    assert _run("--pred", pred, "--truth", truth) == 2
    assert "colourless" in capsys.readouterr().err
    assert _run("--pred", tmp_path / "absent", "--truth", truth) == 2
    assert "is not a folder" in capsys.readouterr().err
    assert _run("--pred", pred, "--truth", truth, "--bins", tmp_path / "absent.npy") == 2
    assert "--bins: ab bins file not found" in capsys.readouterr().err
