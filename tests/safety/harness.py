"""What every bad-input case asserts: exit status, one clear error line, no traceback, nothing else touched."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from colorization.cli.main import main
from colorization.models.checkpoint_checks import METADATA_KEY


def snapshot(root: Path) -> dict[str, str]:
    """Relative path -> content digest (files), link target (symlinks, never followed) or "dir"."""
    entries = {}
    for folder, directories, files in os.walk(root, followlinks=False):
        for name in directories + files:
            path = Path(folder) / name
            relative = str(path.relative_to(root))
            if path.is_symlink():
                entries[relative] = "link:" + os.readlink(path)
            elif path.is_dir():
                entries[relative] = "dir"
            else:
                entries[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return entries


def changed_paths(before: dict[str, str], after: dict[str, str]) -> set[str]:
    return {key for key in before.keys() | after.keys() if before.get(key) != after.get(key)}


def run_command(
    argv: list[str],
    root: Path,
    capsys: pytest.CaptureFixture,
    *,
    status: int = 2,
    says: Iterable[str] = (),
    declared_outputs: Iterable[str] = (),
) -> tuple[str, str]:
    """Runs ``colorization ARGV`` in process and checks the contract of issue 11 for a failing command.

    Args:
        argv: the command line (without "colorization").
        root: the folder whose every file must be unchanged, except ``declared_outputs``.
        capsys: pytest's capture fixture.
        status: the expected exit status.
        says: substrings the one error line must contain (the file's name and the reason).
        declared_outputs: paths relative to ``root`` that may change.

    Returns:
        (stdout, stderr).
    """
    before = snapshot(root)
    assert main(argv) == status
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if status == 2:
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1, err
        assert lines[0].startswith(f"colorization {argv[0]}: error: "), lines[0]
        for text in says:
            assert text in lines[0], (text, lines[0])
    assert changed_paths(before, snapshot(root)) <= set(declared_outputs)
    return out, err


def crafted_checkpoint(good: Path, target: Path, *, raw_metadata: str | None = None, tensors=None, **changes) -> Path:
    """A copy of checkpoint ``good`` with metadata fields (``config_<name>`` for config fields) or tensors changed."""
    with safe_open(str(good), framework="pt") as handle:
        metadata = json.loads(handle.metadata()[METADATA_KEY])
    for key, value in changes.items():
        if key.startswith("config_"):
            metadata["config"][key.removeprefix("config_")] = value
        else:
            metadata[key] = value
    raw = raw_metadata if raw_metadata is not None else json.dumps(metadata)
    save_file(tensors if tensors is not None else load_file(str(good)), str(target), metadata={METADATA_KEY: raw})
    return target
