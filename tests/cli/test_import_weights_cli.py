"""``colorization import-weights zhang-eccv16``: a synthesized release .pth -> checkpoint -> the same network.

The release (128 MB) is not downloaded: a state dict with exactly the keys and shapes of
shared/reference/zhang-eccv16-state-dict.txt, random values and ``model_out.weight = bins.T / 110`` (the real
``pts_in_hull.npy``) is saved with ``torch.save`` and imported through the command line, in process. The loaded
network is checked against a forward pass written directly with ``torch.nn.functional`` from the synthesized
tensors, following the authors' ``colorizers/eccv16.py``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from colorization.cli.main import main
from colorization.color.zhang_decode import mean_ab
from colorization.models.checkpoint import load_checkpoint
from tests.zhang_release import BIN_CENTRES_KEY, RELEASE_AB_SCALE

# The release's conventions, as the reference file states them (deliberately not our constants module).
RELEASE_L_CENTER, RELEASE_L_SCALE = 50.0, 100.0
BATCH_NORM_EPS = 1e-5  # nn.BatchNorm2d's default, which eccv16.py keeps


def _release_logits(state: dict[str, torch.Tensor], l_normalized: torch.Tensor) -> torch.Tensor:
    """ECCVGenerator.forward up to the 313 logits, written with torch.nn.functional (eval mode)."""
    x = l_normalized
    for block, num_convs in enumerate((2, 2, 3, 3, 3, 3, 3), start=1):
        dilation = 2 if block in (5, 6) else 1
        for index in range(num_convs):
            stride = 2 if block <= 3 and index == num_convs - 1 else 1
            weight, bias = state[f"model{block}.{2 * index}.weight"], state[f"model{block}.{2 * index}.bias"]
            x = F.relu(F.conv2d(x, weight, bias, stride=stride, padding=dilation, dilation=dilation))
        norm = f"model{block}.{2 * num_convs}"
        x = F.batch_norm(
            x,
            state[f"{norm}.running_mean"],
            state[f"{norm}.running_var"],
            state[f"{norm}.weight"],
            state[f"{norm}.bias"],
            training=False,
            eps=BATCH_NORM_EPS,
        )
    x = F.relu(F.conv_transpose2d(x, state["model8.0.weight"], state["model8.0.bias"], stride=2, padding=1))
    x = F.relu(F.conv2d(x, state["model8.2.weight"], state["model8.2.bias"], padding=1))
    x = F.relu(F.conv2d(x, state["model8.4.weight"], state["model8.4.bias"], padding=1))
    return F.conv2d(x, state["model8.6.weight"], state["model8.6.bias"])


@pytest.fixture(scope="module")
def release_file(release: dict[str, torch.Tensor], tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("release") / "colorization_release_v2-synthetic.pth"
    torch.save(release, path)
    return path


def _import(weights: Path, bins: Path, out: Path, *extra: str) -> int:
    return main(["import-weights", "zhang-eccv16", str(weights), "--bins", str(bins), "--out", str(out), *extra])


def test_import_reproduces_the_release_network(
    release: dict[str, torch.Tensor],
    release_file: Path,
    release_bins: np.ndarray,
    zhang_bins_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "official.safetensors"
    assert _import(release_file, zhang_bins_file, out) == 0
    assert str(out) in capsys.readouterr().out

    model, metadata = load_checkpoint(out)
    assert metadata["family"] == "zhang_eccv16"
    assert metadata["extra"] == {
        "source": "richzhang/colorization eccv16 release",
        "weights_file": release_file.name,
        "sha256": hashlib.sha256(release_file.read_bytes()).hexdigest(),
    }
    state = model.state_dict()
    assert set(state) == set(release) - {BIN_CENTRES_KEY}
    for key, tensor in state.items():
        assert torch.equal(tensor, release[key]), key
    assert model.config.ab_bins == tuple((float(a), float(b)) for a, b in release_bins.tolist())
    assert model.config.temperature == pytest.approx(0.38)
    assert model.config.width_multiplier == 1.0

    l_raw = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(1)) * 100.0
    with torch.no_grad():
        logits = model(model.normalize_lightness(l_raw))
        expected_logits = _release_logits(release, (l_raw - RELEASE_L_CENTER) / RELEASE_L_SCALE)
        assert torch.isfinite(expected_logits).all() and expected_logits.abs().max() > 1e-3
        torch.testing.assert_close(logits, expected_logits, rtol=1e-5, atol=1e-5)
        # The release decodes with softmax -> model_out (bin centres / 110) -> x110; ours from the config's bins.
        release_ab = RELEASE_AB_SCALE * F.conv2d(torch.softmax(expected_logits, dim=1), release[BIN_CENTRES_KEY])
        torch.testing.assert_close(mean_ab(logits, model.ab_bins_tensor()), release_ab, rtol=1e-4, atol=1e-3)


def test_prefixed_weights_without_counters_and_an_explicit_temperature(
    release: dict[str, torch.Tensor], zhang_bins_file: Path, tmp_path: Path
) -> None:
    variant = {f"module.{key}": value for key, value in release.items() if not key.endswith("num_batches_tracked")}
    weights = tmp_path / "data_parallel.pth"
    torch.save(variant, weights)
    out = tmp_path / "official.safetensors"
    assert _import(weights, zhang_bins_file, out, "--temperature", "1.0") == 0
    model, _ = load_checkpoint(out)
    assert model.config.temperature == 1.0
    assert torch.equal(model.state_dict()["model8.6.weight"], release["model8.6.weight"])


def test_wrong_shape_is_refused_naming_the_key(
    release: dict[str, torch.Tensor], zhang_bins_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = dict(release)
    broken["model6.2.weight"] = torch.zeros(512, 256, 3, 3)
    weights = tmp_path / "broken.pth"
    torch.save(broken, weights)
    out = tmp_path / "official.safetensors"
    assert _import(weights, zhang_bins_file, out) == 2
    error = capsys.readouterr().err
    assert "model6.2.weight [512, 256, 3, 3] (expected [512, 512, 3, 3])" in error
    assert "Traceback" not in error
    assert not out.exists()


def test_bins_in_another_order_are_refused(
    release_file: Path, release_bins: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shuffled = tmp_path / "pts_in_hull_shuffled.npy"
    np.save(shuffled, release_bins[np.random.default_rng(0).permutation(len(release_bins))])
    out = tmp_path / "official.safetensors"
    assert _import(release_file, shuffled, out) == 2
    assert "does not match the weights' bin order" in capsys.readouterr().err
    assert not out.exists()


def test_unreadable_inputs_give_one_line_errors(
    zhang_bins_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "official.safetensors"
    assert _import(tmp_path / "absent.pth", zhang_bins_file, out) == 2
    assert "weights file not found" in capsys.readouterr().err

    not_a_dict = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], not_a_dict)
    assert _import(not_a_dict, zhang_bins_file, out) == 2
    assert "does not hold a state dict" in capsys.readouterr().err

    unsafe = tmp_path / "unsafe.pth"
    torch.save({"path": Path("x")}, unsafe)  # a pickled class: weights_only refuses to load it
    assert _import(unsafe, zhang_bins_file, out) == 2
    assert "holds Python objects other than tensors" in capsys.readouterr().err

    assert _import(not_a_dict, zhang_bins_file, out, "--temperature", "0") == 2
    assert "--temperature" in capsys.readouterr().err
    assert not out.exists()


def test_help_documents_the_temperature_question(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import-weights", "--help"]) == 0
    help_text = capsys.readouterr().out
    assert "--temperature" in help_text and "2.606" in help_text and "--bins" in help_text
