"""The plain-PyTorch loop: accumulation, schedule, non-finite steps, hook cadence, exact resume (both families)."""

from __future__ import annotations

import copy

import pytest
import torch

from colorization.color.lab import rgb_to_lab
from colorization.families import LossInputs, adapter_for
from colorization.training.config import TrainConfig
from colorization.training.loop import Snapshot, TrainHooks, ValidationResult, build_model, place_model, train_loop
from colorization.training.state import load_training_state, save_training_state
from tests.training.tiny_shards import smooth_rgb

SIZE = 16
VARIANTS = {
    "zhang": ("zhang_eccv16_w8", {"input_size": SIZE}),
    "larsson": ("larsson_hypercolumn_w16", {"input_size": SIZE, "heads": ["hue_chroma"], "sampled_pixels": 16}),
}


def _config(family: str, **sections) -> TrainConfig:
    variant, overrides = VARIANTS[family]
    values = {
        "model": {"variant": variant, "overrides": overrides},
        "data": {"resize": SIZE, "crop": SIZE, "val_size": SIZE},
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.0, "weight_decay": 0.0},
        "schedule": {"max_steps": 4, "lr_steps": [2], "gamma": 0.5},
        "batch": {"global_size": 4, "per_worker": 2},
        "cadence": {"log_every": 1, "validate_every": 2, "checkpoint_every": 3, "val_images": 2, "sample_images": 1},
    }
    for name, section in sections.items():
        values[name] = {**values.get(name, {}), **section}
    return TrainConfig.from_dict(values)


def _batches(count: int, per_batch: int = 2, seed: int = 0) -> list[torch.Tensor]:
    return [rgb_to_lab(smooth_rgb(per_batch, SIZE, seed + index)) for index in range(count)]


class Recorder(TrainHooks):
    def __init__(self) -> None:
        self.logs, self.validations, self.checkpoints, self.snapshots = [], [], [], {}

    def on_log(self, step, metrics):
        self.logs.append((step, dict(metrics)))

    def on_validation(self, step, result):
        self.validations.append(step)

    def on_checkpoint(self, step, snapshot: Snapshot, final):
        self.checkpoints.append((step, final))
        self.snapshots[step] = copy.deepcopy(snapshot)


def test_accumulation_equals_one_step_on_the_mean_of_the_passes() -> None:
    """Two passes of 2 images, one SGD step: the same update as averaging the two passes' losses by hand."""
    config = _config("zhang", schedule={"max_steps": 1, "lr_steps": []}, cadence={"validate_every": 0})
    torch.manual_seed(0)
    model = place_model(build_model(config), config, "cpu")
    reference = copy.deepcopy(model)
    batches = _batches(2)
    train_loop(config, model, iter(batches), device="cpu")
    adapter = adapter_for(reference)
    inputs = LossInputs(soft_encode_neighbours=config.loss.soft_encode_neighbours)
    for lab in batches:
        (adapter.loss_terms(reference, lab, inputs).loss / 2).backward()
    with torch.no_grad():
        for parameter in reference.parameters():
            parameter -= 0.05 * parameter.grad
    for trained, expected in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(trained, expected, rtol=1e-5, atol=1e-6)


def test_cadence_schedule_and_summary() -> None:
    config = _config("zhang")
    model = place_model(build_model(config), config, "cpu")
    recorder = Recorder()
    validate_calls = []

    def validate(network):
        validate_calls.append(network)
        return ValidationResult(metrics={"val_x": 1.0})

    summary = train_loop(config, model, iter(_batches(8)), device="cpu", hooks=[recorder], validate=validate)
    assert summary.step == 4 and not summary.stopped_early and summary.images == 8 * 2
    assert [step for step, _ in recorder.logs] == [1, 2, 3, 4]
    assert [metrics["lr"] for _, metrics in recorder.logs] == pytest.approx([0.05, 0.025, 0.025, 0.025])
    assert {"loss", "loss_unweighted", "grad_norm", "images_per_s", "data_wait_fraction", "eta_s"} <= set(
        recorder.logs[-1][1]
    )
    assert recorder.validations == [2, 4]
    assert all(network is model for network in validate_calls)  # the bare network, never a wrapper
    assert recorder.checkpoints == [(3, False), (4, True)]
    assert summary.last_validation == {"val_x": 1.0}


def test_non_finite_gradients_skip_steps_and_repeated_ones_stop_the_run() -> None:
    config = _config(
        "zhang",
        schedule={"max_steps": 50},
        batch={"global_size": 2},
        cadence={"validate_every": 0, "checkpoint_every": 0},
    )
    model = place_model(build_model(config), config, "cpu")
    before = [parameter.detach().clone() for parameter in model.parameters()]
    poisoned = [batch.clone().fill_(float("nan")) for batch in _batches(2)]
    recorder = Recorder()
    with pytest.raises(FloatingPointError, match="diverged"):
        train_loop(config, model, iter(poisoned * 5), device="cpu", hooks=[recorder])
    assert [metrics["skipped_steps"] for _, metrics in recorder.logs] == list(range(1, 10))
    for parameter, original in zip(model.parameters(), before):
        assert torch.equal(parameter, original)  # no non-finite step was applied


@pytest.mark.parametrize("family", ["zhang", "larsson"])
def test_resume_from_a_saved_state_continues_exactly(family: str, tmp_path) -> None:
    """4 steps straight == 2 steps, save to disk, load (weights_only), 2 more steps; the data stream continues."""
    config = _config(
        family,
        schedule={"max_steps": 4, "lr_steps": [3]},
        batch={"global_size": 2},
        cadence={"checkpoint_every": 2, "validate_every": 0},
    )
    batches = _batches(4)
    straight = place_model(build_model(config), config, "cpu")
    torch.manual_seed(1)
    recorder = Recorder()
    train_loop(config, straight, iter(batches), device="cpu", hooks=[recorder])

    first = place_model(build_model(config), config, "cpu")
    torch.manual_seed(1)
    halfway = Recorder()
    train_loop(config, first, iter(batches), device="cpu", hooks=[halfway])
    snapshot = halfway.snapshots[2]
    folder = save_training_state(tmp_path / "step_2", model=snapshot.model, state=snapshot.state, config=config)
    model, state, stored = load_training_state(folder)
    assert stored == config and state.step == 2
    summary = train_loop(config, place_model(model, config, "cpu"), iter(batches[2:]), device="cpu", resume=state)
    assert summary.start_step == 2 and summary.step == 4
    for resumed, expected in zip(model.state_dict().values(), straight.state_dict().values()):
        torch.testing.assert_close(resumed, expected)
