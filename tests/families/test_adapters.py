"""The family interface over every registered variant: training, the Colorizer, evaluation and serving call only
these methods, so each variant must answer all of them without the caller knowing its family."""

from __future__ import annotations

import pytest
import torch

from colorization.color.lab import rgb_to_lab
from colorization.families import DecodeOptions, LossInputs, adapter_for, registered_families
from colorization.models.registry import create_model, family_of, list_models
from colorization.training.precision import MixedPrecision

SIZE = 32


def _tiny(name: str, **overrides) -> torch.nn.Module:
    """The variant at a small width and working size (enough to exercise every code path quickly)."""
    torch.manual_seed(0)
    model = create_model(name, width_multiplier=0.0625, input_size=SIZE, **overrides)
    return model


def _lab_batch(batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(1)
    return rgb_to_lab(torch.rand(batch, 3, SIZE, SIZE, generator=generator))


def test_every_registered_family_has_an_adapter():
    families = {family_of(create_model(name, width_multiplier=0.0625)) for name in list_models()}
    assert families <= set(registered_families())
    assert len(families) == 2


def test_adapter_is_found_through_wrappers():
    model = _tiny("zhang_eccv16")
    assert adapter_for(MixedPrecision(model, None)) is adapter_for(model)
    assert adapter_for(model.family) is adapter_for(model)
    with pytest.raises(KeyError):
        adapter_for("no_such_family")


@pytest.mark.parametrize("name", list_models())
def test_loss_terms_backpropagate_to_every_parameter(name):
    model = _tiny(name).train()
    adapter = adapter_for(model)
    bins = adapter.prior_bins(model)
    weights = None if bins is None else torch.rand(bins.shape[0], generator=torch.Generator().manual_seed(2)) + 0.5
    terms = adapter.loss_terms(
        model, _lab_batch(), LossInputs(class_weights=weights, generator=torch.Generator().manual_seed(3))
    )
    assert terms.loss.ndim == 0 and torch.isfinite(terms.loss)
    assert 0 <= terms.colourful_images <= 2
    assert all(value.ndim == 0 and not value.requires_grad for value in terms.logged.values())
    terms.loss.backward()
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    assert any(parameter.grad is not None and parameter.grad.abs().sum() > 0 for parameter in trainable)


@pytest.mark.parametrize("name", list_models())
def test_predict_then_decode_with_every_decoder(name):
    model = _tiny(name).eval()
    adapter = adapter_for(model)
    rgb = torch.rand(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        outputs = adapter.predict(model, rgb)
        assert all(tensor.shape[0] == 3 for tensor in outputs.values())  # batch first: sliceable per image
        decoded_any = False
        for decoder in adapter.decoders:
            try:
                options = adapter.resolve_options(model, DecodeOptions(decoder=decoder))
            except ValueError:
                continue  # e.g. the joint head has no median
            ab = adapter.decode(model, outputs, options)
            assert ab.shape[:2] == (3, 2) and torch.isfinite(ab).all()
            if decoder == "sample":  # random draws depend on the batch's shape, not only on the seed
                decoded_any = True
                continue
            # Decoding a slice equals slicing the decoded batch (what caches and sweeps rely on).
            single = adapter.decode(model, {key: value[1:2] for key, value in outputs.items()}, options)
            torch.testing.assert_close(single, ab[1:2], atol=1e-4, rtol=1e-4)
            decoded_any = True
        assert decoded_any


@pytest.mark.parametrize("name", list_models())
def test_default_options_are_a_decoder_of_the_family(name):
    model = _tiny(name)
    adapter = adapter_for(model)
    resolved = adapter.resolve_options(model, DecodeOptions())
    assert resolved.decoder in adapter.decoders
    with pytest.raises(ValueError):
        adapter.resolve_options(model, DecodeOptions(decoder="no_such_decoder"))


def test_a_larsson_model_decodes_by_its_stored_default_decoder_unless_told_otherwise():
    paper = _tiny("larsson_hypercolumn")
    adapter = adapter_for(paper)
    assert adapter.resolve_options(paper, DecodeOptions()).decoder == "median"  # hue/chroma: the paper's choice
    stored = _tiny("larsson_hypercolumn", default_decoder="expectation")
    assert adapter.resolve_options(stored, DecodeOptions()).decoder == "expectation"
    assert adapter.resolve_options(stored, DecodeOptions(decoder="mode")).decoder == "mode"  # the caller wins
    joint = _tiny("larsson_hypercolumn", heads=("lab_joint",), default_decoder="median")
    with pytest.raises(ValueError, match="joint"):
        adapter.resolve_options(joint, DecodeOptions())  # a stored decoder the head cannot use is refused


def test_calibrate_changes_only_what_the_family_needs():
    lab = _lab_batch(4)
    zhang = _tiny("zhang_eccv16")
    before = {key: value.clone() for key, value in zhang.state_dict().items()}
    assert adapter_for(zhang).calibrate(zhang, lab) == {}
    assert all(torch.equal(before[key], value) for key, value in zhang.state_dict().items())
    larsson = _tiny("larsson_hypercolumn")
    facts = adapter_for(larsson).calibrate(larsson, lab)
    assert facts and not torch.equal(larsson.hypercolumn_scales, torch.ones_like(larsson.hypercolumn_scales))


def test_zhang_prior_bins_are_the_models_bins():
    model = _tiny("zhang_eccv16")
    bins = adapter_for(model).prior_bins(model)
    torch.testing.assert_close(bins, torch.tensor(model.config.ab_bins, dtype=torch.float64))
    larsson = _tiny("larsson_hypercolumn")
    assert adapter_for(larsson).prior_bins(larsson) is None
