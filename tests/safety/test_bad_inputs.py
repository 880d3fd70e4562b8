"""Issue 11: crafted bad inputs against every command, each checked for the same contract (tests/safety/harness).

Exit status 2, exactly one line ``colorization <cmd>: error: ...`` naming the file and the reason, no traceback,
and no file under the test's folder changed. These run in process and need no Ray: every check they exercise
happens before Ray starts (test_bad_shards_and_names.py covers the batch cases that need Ray).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from colorization.color.ab_bins import default_ab_bins
from colorization.errors import UserError
from colorization.models.checkpoint import save_checkpoint
from colorization.models.registry import create_model
from tests.safety.harness import crafted_checkpoint, run_command


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the with block ends


@pytest.fixture(scope="module")
def good_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    model = create_model("zhang_eccv16_w8", input_size=64)
    return save_checkpoint(model, tmp_path_factory.mktemp("checkpoint") / "good.safetensors")


@pytest.fixture()
def world(tmp_path: Path) -> Path:
    """A folder of typical inputs, good and bad, that every case draws from."""
    rng = np.random.default_rng(0)
    for name in ("images/a.png", "images/sub/b.png", "pred/a.png", "truth/a.png"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(path)
    (tmp_path / "notes.txt").write_text("just some text\n" * 20)
    (tmp_path / "random.bin").write_bytes(rng.bytes(4096))
    (tmp_path / "notjson.json").write_text("scores? no\n")
    np.save(tmp_path / "bins.npy", default_ab_bins().numpy())
    (tmp_path / "dir.safetensors").mkdir()
    (tmp_path / "scores.json").mkdir()
    (tmp_path / "prior.npz").mkdir()
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("not ours")
    shards = tmp_path / "shards"
    (shards / "train").mkdir(parents=True)
    (shards / "train" / "train-00000.parquet").write_bytes(b"")
    shard = {"file": "train/train-00000.parquet", "split": "train"}
    manifest = {"status": "complete", "config": {"size": 16}, "shards": [shard]}
    (shards / "manifest.json").write_text(json.dumps(manifest))
    return tmp_path


# (id, argv(root), substrings of the error line(root))
IMPORT_WEIGHTS = [
    ("text-weights", lambda r: ["notes.txt", "--bins", "bins.npy", "--out", "o.safetensors"],
     lambda r: ["notes.txt", "not a PyTorch weights file"]),
    ("random-weights", lambda r: ["random.bin", "--bins", "bins.npy", "--out", "o.safetensors"],
     lambda r: ["random.bin", "not a PyTorch weights file"]),
    ("folder-weights", lambda r: ["images", "--bins", "bins.npy", "--out", "o.safetensors"],
     lambda r: ["images", "is a folder"]),
    ("out-is-weights", lambda r: ["w.safetensors", "--bins", "bins.npy", "--out", "w.safetensors"],
     lambda r: ["w.safetensors", "is the input"]),
    ("out-is-bins", lambda r: ["random.bin", "--bins", "bins.npy", "--out", "bins.npy"],
     lambda r: ["bins.npy", "is the input"]),
    ("out-is-folder", lambda r: ["random.bin", "--bins", "bins.npy", "--out", "dir.safetensors"],
     lambda r: ["dir.safetensors", "is a folder"]),
    ("out-wrong-suffix", lambda r: ["random.bin", "--bins", "bins.npy", "--out", "o.pth"],
     lambda r: ["o.pth", "must end in .safetensors"]),
    ("out-read-only", lambda r: ["random.bin", "--bins", "bins.npy", "--out", "/proc/o.safetensors"],
     lambda r: ["/proc/o.safetensors", "not writable"]),
    ("out-symlink-loop", lambda r: ["random.bin", "--bins", "bins.npy", "--out", "loop/o.safetensors"],
     lambda r: ["loop/o.safetensors", "symlink loop"]),
    ("text-bins", lambda r: ["random.bin", "--bins", "notes.txt", "--out", "o.safetensors"],
     lambda r: ["notes.txt", "not a .npy file"]),
    ("bad-temperature",
     lambda r: ["random.bin", "--bins", "bins.npy", "--out", "o.safetensors", "--temperature", "nan"],
     lambda r: ["--temperature", "positive"]),
]

METRICS = [
    ("json-is-an-image", lambda r: ["--json", "pred/a.png"], lambda r: ["pred/a.png", "inside the input folder"]),
    ("json-replaces-text", lambda r: ["--json", "notjson.json"], lambda r: ["notjson.json", "not a JSON file"]),
    ("json-inside-input", lambda r: ["--json", "truth/s.json"], lambda r: ["truth/s.json", "inside the input"]),
    ("json-is-folder", lambda r: ["--json", "scores.json"], lambda r: ["scores.json", "is a folder"]),
    ("json-wrong-suffix", lambda r: ["--json", "notes.txt"], lambda r: ["notes.txt", "must end in .json"]),
    ("json-read-only", lambda r: ["--json", "/proc/s.json"], lambda r: ["/proc/s.json", "not writable"]),
    ("text-bins", lambda r: ["--bins", "notes.txt"], lambda r: ["notes.txt", "not a .npy file"]),
    ("folder-bins", lambda r: ["--bins", "images"], lambda r: ["images", "is a folder"]),
]

PREPROCESS = [
    ("output-is-file", lambda r: ["images", "notes.txt"], lambda r: ["notes.txt", "is a file"]),
    ("output-is-input", lambda r: ["images", "images"], lambda r: ["images", "is the input"]),
    ("output-inside-input", lambda r: ["images", "images/sub/out"], lambda r: ["images/sub/out", "inside the input"]),
    ("output-contains-input", lambda r: ["images/sub", "images"], lambda r: ["images", "contains the input"]),
    ("output-read-only", lambda r: ["images", "/proc/shards"], lambda r: ["/proc/shards", "not writable"]),
    ("output-symlink-loop", lambda r: ["images", "loop/shards"], lambda r: ["loop/shards", "symlink loop"]),
    ("output-not-ours", lambda r: ["images", "full"], lambda r: ["full", "not empty"]),
    ("input-missing", lambda r: ["nowhere", "out"], lambda r: ["nowhere", "input not found"]),
    ("no-images", lambda r: ["shards/train", "out"], lambda r: ["no image files"]),
    ("labels-folder", lambda r: ["images", "out", "--labels", "images"], lambda r: ["label file images"]),
    ("tiny-size", lambda r: ["images", "out", "--size", "2"], lambda r: ["size must be at least 8"]),
]

PRIOR = [
    ("no-manifest", lambda r: ["images", "--out", "p.npz"],
     lambda r: ["images", "run `colorization preprocess` first"]),
    ("shards-missing", lambda r: ["nowhere", "--out", "p.npz"], lambda r: ["nowhere", "not found"]),
    ("out-is-shards", lambda r: ["shards", "--out", "shards"], lambda r: ["shards", "is the input"]),
    ("out-inside-shards", lambda r: ["shards", "--out", "shards/p.npz"],
     lambda r: ["shards/p.npz", "inside the input"]),
    ("out-is-file", lambda r: ["shards", "--out", "notes.txt"], lambda r: ["notes.txt", "is a file"]),
    ("npz-is-folder", lambda r: ["shards", "--out", "prior.npz"], lambda r: ["prior.npz", "is a folder"]),
    ("out-read-only", lambda r: ["shards", "--out", "/proc/p.npz"], lambda r: ["/proc/p.npz", "not writable"]),
    ("text-bins", lambda r: ["shards", "--out", "p.npz", "--bins", "notes.txt"], lambda r: ["notes.txt", "not a .npy"]),
    ("bins-is-out", lambda r: ["shards", "--out", "bins.npy", "--bins", "bins.npy"],
     lambda r: ["bins.npy", "is a file"]),
    ("bad-sigma", lambda r: ["shards", "--out", "p.npz", "--sigma", "-1"], lambda r: ["--sigma", "positive"]),
    ("server-down", lambda r: ["shards", "--out", "p.npz", "--tracking-uri", f"http://127.0.0.1:{_closed_port()}"],
     lambda r: ["MLflow tracking server", "not reachable"]),
    ("sqlite-read-only", lambda r: ["shards", "--out", "p.npz", "--tracking-uri", "sqlite:////proc/m.db"],
     lambda r: ["/proc/m.db", "not writable"]),
    ("sqlite-not-sqlite", lambda r: ["shards", "--out", "p.npz", "--tracking-uri", f"sqlite:///{r / 'notes.txt'}"],
     lambda r: ["notes.txt", "not an SQLite database"]),
]


def _cases(command: str, table: list) -> list:
    return [pytest.param(command, argv, says, id=f"{command}-{name}") for name, argv, says in table]


@pytest.mark.parametrize(
    ("command", "argv", "says"),
    _cases("import-weights", IMPORT_WEIGHTS) + _cases("metrics", METRICS) + _cases("preprocess", PREPROCESS)
    + _cases("prior", PRIOR),
)
def test_bad_input_is_one_line_and_changes_nothing(world, capsys, monkeypatch, command, argv, says) -> None:
    monkeypatch.chdir(world)  # relative paths in the table resolve inside the world
    if command == "import-weights":
        (world / "w.safetensors").write_bytes(b"\x00" * 16)
        argv_prefix = ["import-weights", "zhang-eccv16"]
    elif command == "metrics":
        argv_prefix = ["metrics", "--pred", "pred", "--truth", "truth"]
    else:
        argv_prefix = [command]
    run_command(argv_prefix + argv(world), world, capsys, says=says(world))


CHECKPOINTS = [
    ("text-file", lambda good, t: (t.write_text("hello\n" * 50), t)[1], ["not a readable safetensors checkpoint"]),
    ("random-bytes", lambda good, t: (t.write_bytes(os.urandom(2048)), t)[1], ["not a readable safetensors"]),
    ("zero-bytes", lambda good, t: (t.write_bytes(b""), t)[1], ["empty or truncated"]),
    ("truncated", lambda good, t: (t.write_bytes(good.read_bytes()[:-64]), t)[1], ["truncated: tensor"]),
    ("format-99", lambda good, t: crafted_checkpoint(good, t, format_version=99), ["format_version 99"]),
    ("family", lambda good, t: crafted_checkpoint(good, t, family="resnet"), ["unknown model family 'resnet'"]),
    ("width-1000", lambda good, t: crafted_checkpoint(good, t, config_width_multiplier=1000.0), ["sane range"]),
    ("width-type", lambda good, t: crafted_checkpoint(good, t, config_width_multiplier=[1]), ["must be float"]),
    ("config-json", lambda good, t: crafted_checkpoint(good, t, raw_metadata='{"config": '), ["not valid JSON"]),
    ("unknown-field", lambda good, t: crafted_checkpoint(good, t, config_layers=99), ["unknown fields"]),
    ("disagree", lambda good, t: crafted_checkpoint(good, t, config_width_multiplier=0.25), ["has shape"]),
    ("nan-weights", lambda good, t: crafted_checkpoint(good, t, tensors=_poisoned(good)), ["NaN or infinite"]),
]


def _poisoned(good: Path) -> dict[str, torch.Tensor]:
    tensors = load_file(str(good))
    name = next(key for key, value in tensors.items() if value.is_floating_point() and value.numel() > 1)
    tensors[name] = tensors[name].clone()
    tensors[name].view(-1)[1] = math.inf
    return tensors


@pytest.mark.parametrize(("craft", "says"), [pytest.param(c, s, id=n) for n, c, s in CHECKPOINTS])
def test_untrusted_checkpoint_is_one_line(world, good_checkpoint, capsys, craft, says) -> None:
    crafted = craft(good_checkpoint, world / "crafted.safetensors")
    argv = ["colorize", str(world / "images"), "--checkpoint", str(crafted), "--out", str(world / "colour")]
    before_write = crafted.read_bytes()
    run_command(argv, world, capsys, says=[str(crafted), *says])
    assert crafted.read_bytes() == before_write and "weights_only" not in capsys.readouterr().err


def test_unexpected_errors_are_one_line_and_debug_shows_the_traceback(world, capsys, monkeypatch) -> None:
    import colorization.cli.metrics as metrics

    monkeypatch.setattr(metrics, "pair_images", lambda *_: 1 / 0)
    argv = ["metrics", "--pred", str(world / "pred"), "--truth", str(world / "truth")]
    run_command(argv, world, capsys, status=1)
    with pytest.raises(ZeroDivisionError):
        from colorization.cli.main import main

        main([*argv, "--debug"])


@pytest.mark.parametrize("workflow", ["preprocess", "prior"])
def test_workflow_scripts_report_the_same_way(world, capsys, workflow) -> None:
    import importlib

    main = importlib.import_module(f"workflows.{workflow}").main
    argv = [str(world / "images"), str(world / "notes.txt")] if workflow == "preprocess" else [
        str(world / "shards"), "--out", str(world / "shards")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{workflow}: error: ") and err.count("\n") == 1 and "Traceback" not in err
    with pytest.raises(UserError):
        main([*argv, "--debug"])


def test_resolve_device_without_a_gpu() -> None:
    from colorization.devices import resolve_device

    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="--device cuda: no CUDA GPU is available"):
            resolve_device("cuda")
    with pytest.raises(UserError, match="not a device name"):
        resolve_device("gpu0")


def test_registered_model_on_an_unreachable_server_is_one_line_in_seconds(world, capsys, monkeypatch) -> None:
    """MLflow's client retries a dead server for minutes; the registry lookup probes it first."""
    monkeypatch.chdir(world)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"http://127.0.0.1:{_closed_port()}")
    start = time.perf_counter()
    run_command(["colorize", "images", "--checkpoint", "models:/zhang-eccv16@candidate", "--out", "out"], world,
                capsys, says=["models:/zhang-eccv16@candidate", "MLflow tracking server", "not reachable"])
    assert time.perf_counter() - start < 30


def test_colorize_with_no_existing_input_fails_before_loading_a_model(world, capsys, monkeypatch) -> None:
    monkeypatch.chdir(world)
    run_command(["colorize", "nowhere", "gone.png", "--checkpoint", "models:/never@loaded", "--out", "out"], world,
                capsys, says=["nowhere", "gone.png", "no such file or folder"])
