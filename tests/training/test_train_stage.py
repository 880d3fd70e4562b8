"""``colorization train --no-ray`` end to end on tiny shards: outputs, resume, refusals before any compute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from colorization.cli.main import main
from colorization.color.ab_bins import default_ab_bins
from colorization.io.prior_file import save_ab_prior
from colorization.models.checkpoint import load_checkpoint
from tests.training.tiny_shards import write_shards

QUICK = ["schedule.max_steps=2", "schedule.lr_steps=[]", "cadence.validate_every=2", "cadence.checkpoint_every=1"]


def _prior(path: Path, bins: np.ndarray) -> Path:
    prior = np.full(len(bins), 1.0 / len(bins))
    save_ab_prior(path, counts=np.ones(len(bins), dtype=np.int64), prior=prior, weights=np.ones(len(bins)),
                  bins=bins, metadata={"test": True})
    return path


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    return write_shards(tmp_path_factory.mktemp("shards") / "shards", size=48, train_images=12, val_images=4)


def _train(shards: Path, out: Path, *extra: str, prior: Path | None = None) -> int:
    argv = ["train", "--recipe", "zhang-smoke", "--shards", str(shards), "--out", str(out), "--no-ray",
            "--threads", "1", *QUICK, *extra]
    if prior is not None:
        argv += ["--prior", str(prior)]
    return main(argv)


def test_train_writes_a_usable_model_and_resumes(shards: Path, tmp_path: Path, capsys) -> None:
    prior = _prior(tmp_path / "prior.npz", default_ab_bins().double().numpy())
    out = tmp_path / "run"
    assert _train(shards, out, prior=prior) == 0
    printed = capsys.readouterr().out
    assert "step 2/2" in printed and "final model" in printed and "rebalanced AuC" in printed
    model, metadata = load_checkpoint(out / "model.safetensors")
    assert metadata["extra"]["step"] == 2 and metadata["extra"]["recipe"] == "zhang-smoke"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["step"] == 2 and summary["images"] == 2 * 4
    assert {"val_auc", "val_rebalanced_auc", "val_psnr", "val_colourfulness"} <= set(summary["last_validation"])
    assert len(list((out / "samples").glob("*.png"))) == 1
    assert [path.name for path in sorted((out / "checkpoints").iterdir())] == ["step_000000001", "step_000000002"]

    assert _train(shards, out, prior=prior) == 0  # the same command again: nothing to do
    assert "already trained" in capsys.readouterr().out

    assert _train(shards, out, "schedule.max_steps=3", prior=prior) == 0  # longer: resumes at step 2
    printed = capsys.readouterr().out
    assert "resumed at step 2" in printed and "step 3/3" in printed
    assert json.loads((out / "summary.json").read_text())["start_step"] == 2

    assert _train(shards, out, "optimizer.lr=0.5", prior=prior) == 2  # another run in the same folder
    assert "another config" in capsys.readouterr().err


def test_refusals_come_before_any_output(shards: Path, tmp_path: Path, capsys) -> None:
    other_bins = default_ab_bins().double().numpy()[:-1]  # one bin fewer than the model's
    out = tmp_path / "never"
    assert _train(shards, out, prior=_prior(tmp_path / "other.npz", other_bins)) == 2
    assert "differ from the model" in capsys.readouterr().err
    assert _train(shards, out, "optimizer.lr=fast") == 2
    assert "optimizer.lr" in capsys.readouterr().err
    assert _train(tmp_path / "no-shards", out) == 2
    assert "manifest.json" in capsys.readouterr().err
    assert not out.exists()
