"""``colorization colorize``: files and folders in, PNGs out; bad inputs reported and skipped, never fatal."""

from __future__ import annotations

import torch
from PIL import Image

from colorization.cli.main import main
from colorization.models.checkpoint import save_checkpoint
from colorization.models.registry import create_model


def make_checkpoint(tmp_path):
    torch.manual_seed(0)
    return save_checkpoint(create_model("zhang_eccv16_w8", input_size=64), tmp_path / "zhang.safetensors")


def test_colorize_folder_skips_bad_files(tmp_path, dev_image_paths, capsys):
    checkpoint = make_checkpoint(tmp_path)
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    Image.open(dev_image_paths[0]).convert("RGB").resize((70, 45)).save(inputs / "a.jpg")
    Image.open(dev_image_paths[1]).convert("RGBA").resize((33, 60)).save(inputs / "sub" / "b.png")
    (inputs / "broken.jpg").write_text("not an image")
    single = tmp_path / "single.bmp"
    Image.open(dev_image_paths[2]).convert("L").resize((40, 40)).save(single)
    out = tmp_path / "out"

    code = main(["colorize", str(inputs), str(single), str(tmp_path / "missing.png"),
                 "--checkpoint", str(checkpoint), "--out", str(out), "--batch-size", "2"])

    assert code == 1
    assert Image.open(out / "a.png").size == (70, 45)
    with Image.open(out / "sub" / "b.png") as rgba:
        assert rgba.size == (33, 60) and rgba.mode == "RGBA"
    assert Image.open(out / "single.png").size == (40, 40)
    assert not (out / "broken.png").exists()
    err = capsys.readouterr().err
    assert "colorized 3 image(s)" in err
    assert "broken.jpg: not-an-image" in err
    assert "missing.png: no such file or folder" in err


def test_colorize_all_good_returns_zero(tmp_path, dev_image_paths):
    checkpoint = make_checkpoint(tmp_path)
    source = tmp_path / "x.jpg"
    Image.open(dev_image_paths[0]).convert("RGB").resize((64, 48)).save(source)
    code = main(["colorize", str(source), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
                 "--decoder", "mode"])
    assert code == 0 and (tmp_path / "o" / "x.png").is_file()


def test_colorize_clear_errors(tmp_path, capsys):
    inputs = tmp_path / "in"
    inputs.mkdir()
    assert main(["colorize", str(inputs), "--checkpoint", str(tmp_path / "none.safetensors"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "none.safetensors: no such file" in capsys.readouterr().err
    checkpoint = make_checkpoint(tmp_path)
    assert main(["colorize", str(inputs), "--checkpoint", str(checkpoint), "--out", str(tmp_path / "o"),
                 "--decoder", "median"]) == 2
    assert "not a Zhang decoder" in capsys.readouterr().err
    assert main(["colorize", str(inputs), "--checkpoint", str(checkpoint), "--out", str(inputs / "o")]) == 2
    assert "lies inside the input" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not (inputs / "o").exists()
