"""Batch colorization: mirrored tree, collisions kept apart, provenance and ICC, manifest, resume, failures never
abort, Ray == one process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from colorization.errors import UserError
from colorization.families import DecodeOptions
from colorization.io.provenance import read_provenance
from colorization.models.checkpoint import save_checkpoint
from colorization.models.registry import create_model
from colorization.stages.colorize import MANIFEST_NAME, ColorizeConfig, run


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = create_model("zhang_eccv16", width_multiplier=0.125, input_size=32)
    return save_checkpoint(model, tmp_path_factory.mktemp("model") / "zhang.safetensors")


@pytest.fixture()
def tree(tmp_path, dev_image_paths) -> tuple[Path, Path]:
    """Two input folders sharing a relative path, a.jpg + a.jpeg, an sRGB-profiled PNG and a broken file."""
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "sub").mkdir(parents=True)
    second.mkdir()
    photo = Image.open(dev_image_paths[0]).convert("RGB")
    photo.resize((40, 30)).save(first / "a.jpg")
    photo.resize((30, 40)).save(first / "a.jpeg")
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    photo.resize((24, 24)).save(first / "sub" / "icc.png", icc_profile=srgb)
    photo.resize((20, 20)).save(second / "a.jpg")
    (second / "broken.png").write_bytes(b"\x89PNG not really")
    return first, second


def test_outputs_mirror_inputs_without_collisions_and_carry_provenance(tmp_path, tree, checkpoint):
    first, second = tree
    before = {path: path.read_bytes() for path in (*first.rglob("*"), *second.rglob("*")) if path.is_file()}
    out = tmp_path / "out"
    result = run(ColorizeConfig(inputs=(first, second), out=out, model=str(checkpoint),
                                options=DecodeOptions(temperature=0.5), use_ray=False))
    names = sorted(str(Path(d).relative_to(out)) for _, d in result.written)
    assert names == ["first/a.jpeg.png", "first/a.jpg.png", "second/a.png", "sub/icc.png"]
    assert Image.open(out / "first" / "a.jpeg.png").size == (30, 40)
    record = read_provenance(out / "sub" / "icc.png")
    assert record["colorized"] is True and record["decoder"] == "annealed_mean" and record["temperature"] == 0.5
    assert len(record["model_sha256"]) == 64 and record["source"] == "icc.png"
    kept = Image.open(out / "sub" / "icc.png").info.get("icc_profile")
    assert kept == Image.open(first / "sub" / "icc.png").info["icc_profile"]
    assert [Path(s).name for s, _ in result.failed] == ["broken.png"]
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["counts"] == {"listed": 5, "written": 4, "skipped_done": 0, "failed": 1}
    assert {path: path.read_bytes() for path in before} == before  # originals untouched

    again = run(ColorizeConfig(inputs=(first, second), out=out, model=str(checkpoint),
                               options=DecodeOptions(temperature=0.5), use_ray=False))
    assert again.written == [] and len(again.skipped_done) == 4 and len(again.failed) == 1
    changed = run(ColorizeConfig(inputs=(first,), out=out, model=str(checkpoint),
                                 options=DecodeOptions(temperature=0.2), use_ray=False))
    assert len(changed.written) == 3  # another T: not the same outputs, redone


def test_pipelined_small_batches_write_what_one_batch_writes(tmp_path, tree, checkpoint):
    """The local loop reads batch k + 1 and writes batch k - 1 while it colorizes batch k: nothing lost or mixed."""
    first, second = tree
    results = {size: run(ColorizeConfig(inputs=(first, second), out=tmp_path / f"b{size}", model=str(checkpoint),
                                        use_ray=False, batch_size=size)) for size in (1, 2, 8)}
    reference = results[8]
    for size, result in results.items():
        out = tmp_path / f"b{size}"
        assert [Path(s).name for s, _ in result.failed] == ["broken.png"]
        assert sorted(str(Path(d).relative_to(out)) for _, d in result.written) == sorted(
            str(Path(d).relative_to(tmp_path / "b8")) for _, d in reference.written
        )
        for _, destination in result.written:
            same = tmp_path / "b8" / Path(destination).relative_to(out)
            assert np.array_equal(np.asarray(Image.open(destination)), np.asarray(Image.open(same)))


def test_one_unwritable_output_never_aborts_and_bad_out_fails_first(tmp_path, tree, checkpoint):
    first, _ = tree
    out = tmp_path / "out"
    (out / "a.jpg.png").mkdir(parents=True)  # a folder where an output file must go
    result = run(ColorizeConfig(inputs=(first,), out=out, model=str(checkpoint), use_ray=False))
    assert len(result.written) == 2
    assert [(Path(s).name, "cannot write" in r) for s, r in result.failed] == [("a.jpg", True)]
    for bad_out, message in ((first, "is the input"), (first / "x", "lies inside the input")):
        with pytest.raises(UserError, match=message):
            run(ColorizeConfig(inputs=(first,), out=bad_out, model=str(checkpoint)))


@pytest.mark.ray
def test_ray_writes_the_same_images_as_one_process(ray_session, tmp_path, tree, checkpoint):
    first, second = tree
    local = run(ColorizeConfig(inputs=(first, second), out=tmp_path / "local", model=str(checkpoint), use_ray=False))
    distributed = run(ColorizeConfig(inputs=(first, second), out=tmp_path / "ray", model=str(checkpoint),
                                     use_ray=True, batch_size=2))
    assert distributed.used_ray and len(distributed.written) == len(local.written) == 4
    for _, destination in local.written:
        relative = Path(destination).relative_to(tmp_path / "local")
        a = np.asarray(Image.open(destination), dtype=int)
        b = np.asarray(Image.open(tmp_path / "ray" / relative), dtype=int)
        assert np.abs(a - b).max() <= 1  # float convolutions differ in the last bits across thread counts
    assert [Path(s).name for s, _ in distributed.failed] == ["broken.png"]
