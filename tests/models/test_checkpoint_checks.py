"""Untrusted checkpoints: every crafted file fails with one CheckpointError line naming it, before allocation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from colorization.errors import UserError
from colorization.models.checkpoint import load_checkpoint, save_checkpoint
from colorization.models.checkpoint_checks import METADATA_KEY, CheckpointError, inspect_checkpoint
from colorization.models.registry import create_model


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = create_model("zhang_eccv16_w8", input_size=64)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "good.safetensors")


def _metadata(path: Path) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        return json.loads(handle.metadata()[METADATA_KEY])


def _rewrite(good: Path, target: Path, *, metadata=None, raw_metadata=None, tensors=None) -> Path:
    """A copy of ``good`` with its metadata (dict, or a raw string) and/or tensors replaced."""
    raw = raw_metadata if raw_metadata is not None else json.dumps(metadata or _metadata(good))
    save_file(tensors if tensors is not None else load_file(str(good)), str(target), metadata={METADATA_KEY: raw})
    return target


def _with(good: Path, **changes) -> dict:
    metadata = _metadata(good)
    for key, value in changes.items():
        if key.startswith("config_"):
            metadata["config"][key.removeprefix("config_")] = value
        else:
            metadata[key] = value
    return metadata


def test_good_checkpoint_passes_and_loads(good: Path) -> None:
    checked = inspect_checkpoint(good)
    assert checked.metadata["family"] == "zhang_eccv16" and checked.config.input_size == 64
    model, _ = load_checkpoint(good)
    assert sum(p.numel() for p in model.state_dict().values()) == checked.parameters


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"format_version": True}, "format_version True is not supported"),
        ({"family": "gpt"}, "unknown model family 'gpt'"),
        ({"config": "big"}, "config is a str, not an object"),
        ({"extra": [1]}, "extra is not an object"),
        ({"config_depth": 3}, r"unknown fields \['depth'\]"),
        ({"config_width_multiplier": 1000.0}, r"width_multiplier = 1000.0 is outside the sane range \(0.0, 4.0\]"),
        ({"config_width_multiplier": "wide"}, "width_multiplier must be float; got 'wide'"),
        ({"config_input_size": 10**9}, "input_size = 1000000000 is outside the sane range"),
        ({"config_input_size": 64.5}, "input_size must be int; got 64.5"),
        ({"config_temperature": -1.0}, "temperature = -1.0 is outside"),
        ({"config_l_scale": math.nan}, "invalid config: l_scale must be a positive number"),
        ({"config_ab_bins": [[0.0, 0.0]] * 5000}, "ab_bins must be"),
        ({"config_width_multiplier": 0.25}, "tensor 'model1.0.weight' has shape"),  # tensors disagree with config
        ({"config_ab_bins": [[0.0, 0.0], [10.0, 0.0]]}, "has shape"),  # fewer bins than the file's logits
    ],
)
def test_tampered_metadata_is_refused(good: Path, tmp_path: Path, changes: dict, reason: str) -> None:
    crafted = _rewrite(good, tmp_path / "bad.safetensors", metadata=_with(good, **changes))
    with pytest.raises(CheckpointError, match=reason) as refused:
        load_checkpoint(crafted)
    assert str(refused.value).startswith(f"checkpoint {crafted}: ") and "\n" not in str(refused.value)
    assert "weights_only" not in str(refused.value)


def test_unparseable_metadata_json(good: Path, tmp_path: Path) -> None:
    crafted = _rewrite(good, tmp_path / "bad.safetensors", raw_metadata="{not json")
    with pytest.raises(CheckpointError, match="metadata is not valid JSON"):
        load_checkpoint(crafted)


def test_missing_unexpected_and_nan_tensors(good: Path, tmp_path: Path) -> None:
    tensors = load_file(str(good))
    name = next(key for key, value in tensors.items() if value.is_floating_point())
    fewer = {key: value for key, value in tensors.items() if key != name}
    with pytest.raises(CheckpointError, match=f"missing tensors \\['{name}'\\]"):
        load_checkpoint(_rewrite(good, tmp_path / "fewer.safetensors", tensors=fewer))
    with pytest.raises(CheckpointError, match="unexpected tensors \\['extra'\\]"):
        load_checkpoint(_rewrite(good, tmp_path / "more.safetensors", tensors=tensors | {"extra": torch.zeros(1)}))
    poisoned = dict(tensors)
    poisoned[name] = poisoned[name].clone()
    poisoned[name].view(-1)[0] = math.nan
    with pytest.raises(CheckpointError, match=f"tensor '{name}' holds NaN or infinite values"):
        load_checkpoint(_rewrite(good, tmp_path / "nan.safetensors", tensors=poisoned))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty or truncated: 0 bytes"),
        (b"hello, I am a text file\n" * 4, "header length .* does not fit the file"),
        (b"\x10\x00\x00\x00\x00\x00\x00\x00" + b"\xff" * 16, "header is not JSON"),
        (b"\x02\x00\x00\x00\x00\x00\x00\x00[]", "header is not a JSON object"),
    ],
)
def test_foreign_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "x.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=f"not a readable safetensors checkpoint \\((its )?{reason}"):
        load_checkpoint(path)


def test_truncated_missing_and_folder(good: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "cut.safetensors"
    truncated.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated: tensor"):
        load_checkpoint(truncated)
    with pytest.raises(UserError, match="not found"):
        load_checkpoint(tmp_path / "none.safetensors")
    with pytest.raises(ValueError, match="is a folder"):  # also a ValueError for library callers
        load_checkpoint(tmp_path)


def test_save_is_atomic_and_leaves_no_temporary(good: Path, tmp_path: Path) -> None:
    model, _ = load_checkpoint(good)
    target = save_checkpoint(model, tmp_path / "deep" / "copy.safetensors")
    assert [p.name for p in target.parent.iterdir()] == ["copy.safetensors"]
    assert load_file(str(target)).keys() == load_file(str(good)).keys()
