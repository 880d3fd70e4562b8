"""colorization.io.safe_outputs: output checks refuse what would replace or nest inputs; writes are atomic."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from colorization.errors import UserError
from colorization.io.safe_outputs import (
    atomic_write,
    check_output_dir,
    check_output_file,
    output_names,
    write_json_atomic,
)


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    (tmp_path / "in" / "sub").mkdir(parents=True)
    (tmp_path / "in" / "a.jpg").write_bytes(b"jpeg")
    (tmp_path / "note.txt").write_text("text")
    return tmp_path


def test_output_dir_accepts_new_folder_and_returns_resolved(tree: Path) -> None:
    assert check_output_dir(tree / "out" / "deep", inputs=[tree / "in"]) == (tree / "out" / "deep").resolve()
    assert not (tree / "out").exists()  # checking creates nothing
    assert sorted(p.name for p in tree.iterdir()) == ["in", "note.txt"]  # no probe file left behind


@pytest.mark.parametrize(
    ("output", "reason"),
    [
        ("note.txt", "is a file"),
        ("in", "is the input"),
        ("in/sub", "lies inside the input"),
        (".", "contains the input"),
        ("note.txt/out", "is a file, not a folder"),
    ],
)
def test_output_dir_refusals(tree: Path, output: str, reason: str) -> None:
    with pytest.raises(UserError, match=reason):
        check_output_dir(tree / output, inputs=[tree / "in"])


def test_output_dir_through_symlink_to_input_is_refused(tree: Path) -> None:
    (tree / "alias").symlink_to(tree / "in")
    with pytest.raises(UserError, match="is the input"):
        check_output_dir(tree / "alias", inputs=[tree / "in"])


def test_symlink_loop_is_one_user_error(tree: Path) -> None:
    (tree / "loop").symlink_to(tree / "loop")
    with pytest.raises(UserError, match="symlink loop"):
        check_output_dir(tree / "loop" / "out")


def test_unwritable_parent_is_refused() -> None:
    # chmod cannot stop root; /proc refuses new files for everyone
    with pytest.raises(UserError, match="not writable"):
        check_output_dir("/proc/colorization-out")
    with pytest.raises(UserError, match="not writable"):
        check_output_file("/proc/colorization.json")


@pytest.mark.parametrize(
    ("output", "kwargs", "reason"),
    [
        ("in", {}, "is a folder"),
        ("in/a.jpg", {}, "is the input"),
        ("in/new.json", {}, "lies inside the input folder"),
        ("out.txt", {"suffixes": (".json",)}, r"must end in \.json"),
    ],
)
def test_output_file_refusals(tree: Path, output: str, kwargs: dict, reason: str) -> None:
    with pytest.raises(UserError, match=reason):
        check_output_file(tree / output, inputs=[tree / "in", tree / "in" / "a.jpg"], **kwargs)


def test_output_file_accepts_and_allows_inside_when_asked(tree: Path) -> None:
    assert check_output_file(tree / "x.JSON", suffixes=(".json",)) == tree.resolve() / "x.JSON"
    assert check_output_file(tree / "in" / "x.json", inputs=[tree / "in"], inside_inputs_ok=True)


def test_atomic_write_replaces_whole_or_not_at_all(tree: Path) -> None:
    target = tree / "out" / "r.json"
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(ValueError), atomic_write(target) as temporary:
        assert temporary.parent == target.parent and temporary.suffix == ".json"
        temporary.write_text("half")
        raise ValueError("crash mid-write")
    assert json.loads(target.read_text()) == {"a": 1}  # the old file survives the crash
    assert os.listdir(target.parent) == ["r.json"]  # and no temporary file is left


def test_output_names_rule() -> None:
    given = ["a.jpg", "a.jpeg", "A.JPG", "b.png", "x/c.JPG", "d", "e.tif", "f.jpg", "f.png", "f.jpg.png"]
    names = output_names(given, ".png")
    assert names == {
        "a.jpg": "a.jpg-2.png",  # its full name a.jpg.png is taken by A.JPG.png on a case-insensitive disk
        "a.jpeg": "a.jpeg.png",
        "A.JPG": "A.JPG.png",
        "b.png": "b.png",
        "x/c.JPG": "x/c.png",
        "d": "d.png",
        "e.tif": "e.png",
        "f.jpg": "f.jpg.png",  # f.jpg and f.png would both be f.png: both keep their full names
        "f.png": "f.png.png",
        "f.jpg.png": "f.jpg.png-2.png",  # sorted after f.jpg, whose full name it would otherwise take
    }
    assert len({name.casefold() for name in names.values()}) == len(names)
    assert output_names(reversed(given), ".png") == names  # order of the inputs does not matter
