"""Served models come from checkpoint files or the MLflow registry (models:/NAME@ALIAS), checked before Ray."""

from __future__ import annotations

import pytest
import torch

from colorization.errors import UserError
from colorization.serving.model_loading import check_source, load_served_model
from colorization.serving.settings import ModelSpec


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    from colorization.models.checkpoint import save_checkpoint
    from colorization.models.registry import create_model

    torch.manual_seed(0)
    model = create_model("zhang_eccv16", width_multiplier=0.125, input_size=32)
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "zhang.safetensors"), model


def test_checkpoint_file_loads_the_same_weights(checkpoint):
    path, model = checkpoint
    check_source(ModelSpec("z", str(path)))
    loaded, metadata = load_served_model(ModelSpec("z", str(path)))
    assert metadata["family"] == "zhang_eccv16"
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


def test_registry_sources_go_through_model_source_with_the_settings_store(monkeypatch, checkpoint):
    """The registry download itself is model_source's (tested there; creating an MLflow store costs ~30 s here).
    Serving hands it the URI, the device and the settings' store, and names the served model in its errors."""
    import colorization.model_source as model_source

    path, model = checkpoint
    calls = []

    def fake_load_model(spec, device="cpu", *, tracking_uri=None):
        calls.append((spec, device, tracking_uri))
        if spec.endswith("@missing"):
            raise UserError(f"model {spec}: no registered model named 'x' in the registry")
        return model, {"family": "zhang_eccv16", "extra": {"source": spec}}

    monkeypatch.setattr(model_source, "load_model", fake_load_model)
    check_source(ModelSpec("z", "models:/x@champion"), "sqlite:////store.db")
    assert calls == [("models:/x@champion", "cpu", "sqlite:////store.db")]
    with pytest.raises(UserError, match="^model 'z': model models:/x@missing: no registered model"):
        check_source(ModelSpec("z", "models:/x@missing"), "sqlite:////store.db")
