"""Generic tests over every registered variant (timm style): shapes, gradients, no NaN, checkpoint round trip.

Variants are built at a small width (the architecture and heads are the variant's own) so the whole registry
runs on a CPU in seconds.
"""

from __future__ import annotations

import pytest
import torch

from colorization.color.lab import rgb_to_lab
from colorization.families import adapter_for
from colorization.models.checkpoint import load_checkpoint, read_checkpoint_metadata, save_checkpoint
from colorization.models.registry import create_model, family_of, list_models

SMALL_WIDTH = 1 / 16
INPUT_SIZE = 64  # a multiple of 32, valid for both families


def small_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, width_multiplier=SMALL_WIDTH)


def forward_outputs(model: torch.nn.Module, grey: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every output tensor of the network on a grey picture, by name (the family adapter's ``predict``)."""
    outputs = adapter_for(model).predict(model, grey.expand(-1, 3, -1, -1))
    return {name: output for name, output in outputs.items() if output.shape[-2:] != grey.shape[-2:]}


def test_registry_lists_both_families():
    names = list_models()
    families = {family_of(small_model(name)) for name in names}
    assert families == {"zhang_eccv16", "larsson_hypercolumn"}
    with pytest.raises(KeyError, match="unknown model"):
        create_model("no_such_model")


@pytest.mark.parametrize("name", list_models())
def test_forward_backward_shapes_and_finite(name):
    model = small_model(name).train()
    grey = torch.rand(2, 1, INPUT_SIZE, INPUT_SIZE)
    outputs = forward_outputs(model, grey)
    assert outputs
    for output in outputs.values():
        assert output.shape[0] == 2
        assert output.shape[-2:] == (INPUT_SIZE // 4, INPUT_SIZE // 4)
        assert torch.isfinite(output).all()
    expected_channels = (
        {head: model.config.head_outputs(head) for head in model.config.heads}
        if hasattr(model.config, "heads")
        else {"logits": model.config.num_bins}
    )
    assert {name: output.shape[1] for name, output in outputs.items()} == expected_channels
    total = sum(output.square().mean() for output in outputs.values())
    total.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_round_trip_is_bit_exact(name, tmp_path):
    model = small_model(name).eval()
    # Calibration makes Larsson's balancing buffers non-trivial too (Zhang has none).
    adapter_for(model).calibrate(model, rgb_to_lab(torch.rand(2, 3, INPUT_SIZE, INPUT_SIZE)))
    path = save_checkpoint(model, tmp_path / f"{name}.safetensors", extra={"step": 7})
    loaded, metadata = load_checkpoint(path)
    assert type(loaded) is type(model)
    assert loaded.config == model.config
    assert metadata["extra"] == {"step": 7}
    assert read_checkpoint_metadata(path)["family"] == family_of(model)
    original, restored = model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for key in original:
        assert original[key].dtype == restored[key].dtype
        assert torch.equal(original[key], restored[key]), key
    grey = torch.rand(1, 1, INPUT_SIZE, INPUT_SIZE)
    with torch.no_grad():
        for key, output in forward_outputs(model, grey).items():
            assert torch.equal(output, forward_outputs(loaded, grey)[key])


def test_checkpoint_refuses_foreign_files(tmp_path):
    not_a_checkpoint = tmp_path / "x.safetensors"
    not_a_checkpoint.write_bytes(b"not safetensors at all")
    with pytest.raises(ValueError, match="not a readable safetensors checkpoint"):
        load_checkpoint(not_a_checkpoint)
    from safetensors.torch import save_file

    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    with pytest.raises(ValueError, match="not a colorization checkpoint"):
        load_checkpoint(plain)
