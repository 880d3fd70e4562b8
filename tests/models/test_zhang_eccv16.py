"""Zhang et al.'s network: the released layout at full width, shapes and errors at 1/8 width, config, registry."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from colorization.models.checkpoint import load_checkpoint, save_checkpoint
from colorization.models.registry import build_model, create_model
from colorization.models.zhang_eccv16 import ZhangConfig, ZhangECCV16
from tests.zhang_release import BIN_CENTRES_KEY, reference_layout

RELEASE_PARAMETERS = 32_236_011  # stated in the reference file's header (colorization_release_v2-9b330a0b.pth)


def _distinct_bins(count: int) -> tuple[tuple[float, float], ...]:
    # Any Q distinct centres give the layout; the real ones matter only for decoding (tested elsewhere).
    return tuple((float(index), 0.0) for index in range(count))


def test_full_width_state_dict_matches_the_release_key_for_key() -> None:
    reference = reference_layout()
    num_bins = reference["model8.6.bias"][0]
    model = ZhangECCV16(ZhangConfig(ab_bins=_distinct_bins(num_bins)))

    ours = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    expected = {key: shape for key, shape in reference.items() if key != BIN_CENTRES_KEY}
    assert ours == expected
    assert list(ours) == list(expected)  # same order, too

    # The release counts model_out's bias-free (2, Q, 1, 1) weight, which we leave to the decoding function.
    bin_centres_parameters = 2 * num_bins  # 626 for the 313 bins
    assert sum(parameter.numel() for parameter in model.parameters()) == RELEASE_PARAMETERS - bin_centres_parameters


def test_full_width_layers_follow_the_paper() -> None:
    model = ZhangECCV16(ZhangConfig(ab_bins=_distinct_bins(4)))
    assert [model.model1[2].stride, model.model2[2].stride, model.model3[4].stride] == [(2, 2)] * 3
    assert model.model4[4].stride == (1, 1)
    for block in (model.model5, model.model6):
        assert all(block[index].dilation == (2, 2) and block[index].padding == (2, 2) for index in (0, 2, 4))
    assert model.model7[0].dilation == (1, 1)
    deconv = model.model8[0]
    assert isinstance(deconv, torch.nn.ConvTranspose2d)
    assert (deconv.kernel_size, deconv.stride, deconv.padding) == ((4, 4), (2, 2), (1, 1))
    assert not isinstance(model.model8[-1], torch.nn.ReLU)  # logits are not rectified
    assert all(isinstance(block[-1], torch.nn.BatchNorm2d) for block in list(model.children())[:7])


@pytest.fixture(scope="module")
def small_model() -> ZhangECCV16:
    torch.manual_seed(0)
    return create_model("zhang_eccv16_w8").eval()


@pytest.mark.parametrize(("height", "width"), [(32, 32), (48, 40)])
def test_w8_forward_gives_quarter_resolution_logits(small_model: ZhangECCV16, height: int, width: int) -> None:
    l_raw = torch.rand(2, 1, height, width) * 100.0
    with torch.no_grad():
        logits = small_model(small_model.normalize_lightness(l_raw))
    assert logits.shape == (2, small_model.config.num_bins, height // 4, width // 4)
    assert torch.isfinite(logits).all()


def test_w8_width_and_default_bins(small_model: ZhangECCV16) -> None:
    assert small_model.config.width_multiplier == pytest.approx(1 / 8)
    assert small_model.model1[0].out_channels == 8
    assert small_model.model8[-1].out_channels == len(small_model.config.ab_bins)
    assert small_model.ab_bins_tensor().shape == (small_model.config.num_bins, 2)


@pytest.mark.parametrize("shape", [(1, 1, 36, 32), (1, 1, 32, 30)])
def test_input_not_a_multiple_of_8_is_refused(small_model: ZhangECCV16, shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match="multiples of 8"):
        small_model(torch.zeros(shape))


def test_input_with_colour_channels_is_refused(small_model: ZhangECCV16) -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        small_model(torch.zeros(1, 3, 32, 32))


def test_normalize_lightness_uses_the_config() -> None:
    model = create_model("zhang_eccv16_w8", ab_bins=_distinct_bins(3), l_center=40.0, l_scale=20.0)
    assert model.normalize_lightness(torch.tensor([40.0, 60.0])).tolist() == [0.0, 1.0]
    default = create_model("zhang_eccv16_w8", ab_bins=_distinct_bins(3))
    assert default.normalize_lightness(torch.tensor([50.0, 100.0])).tolist() == [0.0, 0.5]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"input_size": 100}, "multiple of 8"),
        ({"input_size": 0}, "multiple of 8"),
        ({"width_multiplier": 0.0}, "width_multiplier"),
        ({"width_multiplier": float("nan")}, "width_multiplier"),
        ({"temperature": 0.0}, "temperature"),
        ({"l_scale": -1.0}, "l_scale"),
        ({"ab_scale": 0.0}, "ab_scale"),
        ({"ab_bins": ((0.0, 0.0),)}, "at least 2"),
        ({"ab_bins": ((0.0, 0.0), (0.0, 0.0))}, "duplicate"),
        ({"ab_bins": ((0.0, float("inf")), (0.0, 0.0))}, "finite"),
        ({"ab_bins": ((0.0, 1.0, 2.0), (0.0, 0.0))}, "pairs"),
    ],
)
def test_config_rejects_bad_values(overrides: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ZhangConfig(**{"ab_bins": _distinct_bins(3), **overrides})


def test_config_round_trips_through_json_and_the_registry() -> None:
    config = ZhangConfig(ab_bins=((-10, 20), (30, -40), (0, 0)), width_multiplier=0.125, temperature=0.5)
    assert config.ab_bins == ((-10.0, 20.0), (30.0, -40.0), (0.0, 0.0))
    assert config.num_bins == 3
    stored = json.loads(json.dumps(dataclasses.asdict(config)))  # what a checkpoint keeps
    rebuilt = build_model("zhang_eccv16", stored)
    assert isinstance(rebuilt, ZhangECCV16)
    assert rebuilt.config == config


def test_named_variants() -> None:
    assert create_model("zhang_eccv16_w8", ab_bins=_distinct_bins(3)).config.width_multiplier == 1 / 8
    quarter = create_model("zhang_eccv16_w8", ab_bins=_distinct_bins(3), width_multiplier=0.25)
    assert quarter.model1[0].out_channels == 16
    full = create_model("zhang_eccv16", ab_bins=_distinct_bins(3))
    assert full.config.width_multiplier == 1.0 and full.model4[0].out_channels == 512


def test_checkpoint_round_trip(small_model: ZhangECCV16, tmp_path: Path) -> None:
    path = save_checkpoint(small_model, tmp_path / "w8.safetensors", extra={"step": 7})
    loaded, metadata = load_checkpoint(path)
    assert metadata["family"] == "zhang_eccv16" and metadata["extra"] == {"step": 7}
    assert loaded.config == small_model.config
    for key, tensor in small_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], tensor), key
