"""Importing the official Zhang et al. ECCV16 weights (pure function) from a synthesized release state dict.

The release itself (128 MB) is not downloaded: a state dict with exactly the keys and shapes listed in
shared/reference/zhang-eccv16-state-dict.txt, random values and ``model_out.weight = bins.T / 110`` (the real
``pts_in_hull.npy``) stands in for it. The CLI path, files and the forward pass are in
tests/cli/test_import_weights_cli.py.
"""

from __future__ import annotations


import numpy as np
import pytest
import torch

from colorization.models.zhang_eccv16 import ZhangECCV16
from colorization.models.zhang_official import OfficialWeightsError, zhang_from_official_state_dict
from tests.zhang_release import BIN_CENTRES_KEY


def test_every_tensor_is_imported_bit_exactly(release: dict[str, torch.Tensor], release_bins: np.ndarray) -> None:
    model = zhang_from_official_state_dict(release, release_bins)
    assert isinstance(model, ZhangECCV16) and not model.training
    state = model.state_dict()
    assert set(state) == set(release) - {BIN_CENTRES_KEY}
    for key, tensor in state.items():
        assert tensor.dtype == release[key].dtype and torch.equal(tensor, release[key]), key
    # The logits keep the file's bin order: logit q scores pts_in_hull[q].
    assert model.config.ab_bins == tuple((float(a), float(b)) for a, b in release_bins.tolist())
    assert model.config.width_multiplier == 1.0
    assert model.config.temperature == pytest.approx(0.38)


def test_temperature_is_the_callers_choice(release: dict[str, torch.Tensor], release_bins: np.ndarray) -> None:
    assert zhang_from_official_state_dict(release, release_bins, temperature=1.0).config.temperature == 1.0


def test_counters_may_be_absent(release: dict[str, torch.Tensor], release_bins: np.ndarray) -> None:
    without = {key: value for key, value in release.items() if not key.endswith("num_batches_tracked")}
    assert len(without) < len(release)
    model = zhang_from_official_state_dict(without, release_bins)
    assert torch.equal(model.state_dict()["model5.6.running_var"], release["model5.6.running_var"])
    assert int(model.state_dict()["model1.4.num_batches_tracked"]) == 0


def test_data_parallel_prefix_is_stripped(release: dict[str, torch.Tensor], release_bins: np.ndarray) -> None:
    prefixed = {f"module.{key}": value for key, value in release.items()}
    model = zhang_from_official_state_dict(prefixed, release_bins)
    assert torch.equal(model.state_dict()["model8.0.weight"], release["model8.0.weight"])


def test_wrong_shape_missing_and_unexpected_keys_are_all_named(
    release: dict[str, torch.Tensor], release_bins: np.ndarray
) -> None:
    broken = dict(release)
    broken["model4.2.weight"] = torch.zeros(512, 512, 1, 1)
    del broken["model2.0.bias"]
    broken["model9.0.weight"] = torch.zeros(1)
    with pytest.raises(OfficialWeightsError) as caught:
        zhang_from_official_state_dict(broken, release_bins)
    message = str(caught.value)
    assert "model4.2.weight [512, 512, 1, 1] (expected [512, 512, 3, 3])" in message
    assert "missing keys: model2.0.bias" in message
    assert "unexpected keys: model9.0.weight" in message


def test_bins_in_another_order_are_refused(release: dict[str, torch.Tensor], release_bins: np.ndarray) -> None:
    shuffled = release_bins[np.random.default_rng(0).permutation(len(release_bins))]
    with pytest.raises(OfficialWeightsError, match="bin order"):
        zhang_from_official_state_dict(release, shuffled)


def test_bins_of_another_count_are_refused(release: dict[str, torch.Tensor], release_bins: np.ndarray) -> None:
    with pytest.raises(OfficialWeightsError, match=f"predict {len(release_bins)} bins"):
        zhang_from_official_state_dict(release, release_bins[:-1])


def test_small_rounding_of_the_bin_centres_is_accepted(
    release: dict[str, torch.Tensor], release_bins: np.ndarray
) -> None:
    nudged = dict(release)
    nudged[BIN_CENTRES_KEY] = release[BIN_CENTRES_KEY] * (1 + 1e-5)
    zhang_from_official_state_dict(nudged, release_bins)


def test_non_finite_weights_are_refused(release: dict[str, torch.Tensor], release_bins: np.ndarray) -> None:
    broken = dict(release)
    broken["model3.2.bias"] = release["model3.2.bias"].clone()
    broken["model3.2.bias"][7] = float("nan")
    with pytest.raises(OfficialWeightsError, match=r"NaN.*model3\.2\.bias"):
        zhang_from_official_state_dict(broken, release_bins)
