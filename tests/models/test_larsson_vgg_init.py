"""torchvision VGG-16 -> Larsson's grey network: the key table, the conv1_1 grey rule and layer-for-layer agreement
with torchvision's own forward pass (random ``vgg16(weights=None)`` weights; nothing is downloaded)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchvision
from torchvision.models import VGG16_Weights

from colorization.color.constants import TORCHVISION_IMAGENET_MEAN, TORCHVISION_IMAGENET_STD
from colorization.models.larsson_hypercolumn import TAPPED_LAYERS, LarssonHypercolumn
from colorization.models.larsson_vgg_init import (
    TORCHVISION_VGG16_KEYS,
    grey_conv1_1,
    load_torchvision_vgg16_weights,
    torchvision_vgg16_to_larsson,
)
from colorization.models.registry import create_model

# torchvision's features: the ReLU after each of our convolutions (our taps are post-ReLU), and pool5.
_TORCHVISION_RELU_INDEX = {name: int(key.split(".")[1]) + 1 for name, key in TORCHVISION_VGG16_KEYS.items()
                           if key.startswith("features.")}
_POOL5_INDEX = 30


@pytest.fixture(scope="module")
def torchvision_vgg() -> torchvision.models.VGG:
    torch.manual_seed(0)
    return torchvision.models.vgg16(weights=None).eval()


@pytest.fixture(scope="module")
def loaded_model(torchvision_vgg: torchvision.models.VGG) -> LarssonHypercolumn:
    torch.manual_seed(1)
    model = create_model("larsson_hypercolumn", dropout=0.0).eval()
    load_torchvision_vgg16_weights(model, torchvision_vgg.state_dict())
    return model


def test_normalization_constants_are_torchvision_s() -> None:
    preset = VGG16_Weights.IMAGENET1K_V1.transforms()  # metadata only, no download
    assert tuple(preset.mean) == TORCHVISION_IMAGENET_MEAN
    assert tuple(preset.std) == TORCHVISION_IMAGENET_STD


def test_every_vgg_tensor_is_the_torchvision_tensor_reshaped(
    torchvision_vgg: torchvision.models.VGG, loaded_model: LarssonHypercolumn
) -> None:
    source = torchvision_vgg.state_dict()
    ours = loaded_model.state_dict()
    assert set(TORCHVISION_VGG16_KEYS) == set(TAPPED_LAYERS[1:])  # every tapped layer but data, nothing else
    assert "classifier.6" not in TORCHVISION_VGG16_KEYS.values()  # fc8 is dropped
    for name, key in TORCHVISION_VGG16_KEYS.items():
        if name == "conv1_1":  # the grey rule, tested below
            continue
        assert torch.equal(ours[f"{name}.bias"], source[f"{key}.bias"]), name
        assert torch.equal(ours[f"{name}.weight"].flatten(), source[f"{key}.weight"].flatten()), name
    assert ours["fc6.weight"].shape == (4096, 512, 7, 7)
    assert ours["fc7.weight"].shape == (4096, 4096, 1, 1)


def test_conv1_1_grey_rule_matches_its_closed_form(
    torchvision_vgg: torchvision.models.VGG, loaded_model: LarssonHypercolumn
) -> None:
    weight = torchvision_vgg.state_dict()["features.0.weight"].double()  # (64, 3, 3, 3)
    bias = torchvision_vgg.state_dict()["features.0.bias"].double()
    offset = loaded_model.config.grey_offset
    expected_weight = sum(weight[:, c : c + 1] / TORCHVISION_IMAGENET_STD[c] for c in range(3))
    expected_bias = bias + sum(
        weight[:, c].sum(dim=(1, 2)) * (offset - TORCHVISION_IMAGENET_MEAN[c]) / TORCHVISION_IMAGENET_STD[c]
        for c in range(3)
    )
    torch.testing.assert_close(loaded_model.conv1_1.weight.double(), expected_weight, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(loaded_model.conv1_1.bias.double(), expected_bias, rtol=1e-6, atol=1e-7)


def test_grey_conv1_1_equals_the_rgb_conv_on_replicated_grey_inside_and_differs_by_the_padding_term() -> None:
    torch.manual_seed(2)
    weight, bias = torch.randn(8, 3, 3, 3, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    offset = 0.4488
    grey = torch.rand(1, 1, 12, 12, dtype=torch.float64)
    mean = torch.tensor(TORCHVISION_IMAGENET_MEAN, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(TORCHVISION_IMAGENET_STD, dtype=torch.float64).view(1, 3, 1, 1)
    rgb_output = F.conv2d((grey.expand(-1, 3, -1, -1) - mean) / std, weight, bias, padding=1)
    grey_weight, grey_bias = grey_conv1_1(weight, bias, offset)
    grey_output = F.conv2d(grey - offset, grey_weight, grey_bias, padding=1)
    torch.testing.assert_close(grey_output[..., 1:-1, 1:-1], rgb_output[..., 1:-1, 1:-1])
    # Top-left corner: taps in row 0 and column 0 fall on the padding (5 of the 9).
    per_tap = (weight * (offset - mean) / std).sum(dim=1)  # (8, 3, 3)
    padding_term = per_tap[:, 0, :].sum(dim=1) + per_tap[:, 1:, 0].sum(dim=1)
    torch.testing.assert_close(grey_output[0, :, 0, 0] - rgb_output[0, :, 0, 0], padding_term)


def _embed_pool5(pool5: torch.Tensor, row: int, col: int) -> torch.Tensor:
    """The 7x7 window fc6 (7x7 conv, padding 3) reads at output (row, col) of a small pool5 (1, 512, h, w)."""
    window = torch.zeros(1, 512, 7, 7)
    height, width = pool5.shape[-2:]
    for i in range(height):
        for j in range(width):
            window[0, :, i - row + 3, j - col + 3] = pool5[0, :, i, j]
    return window


@torch.no_grad()
def test_mapped_network_reproduces_torchvision_layer_for_layer(torchvision_vgg: torchvision.models.VGG) -> None:
    """Exact check of every layer: load with mean = (grey_offset,) * 3, the one rule without border effects.

    Then zero padding means the same thing to both networks (r = grey_offset = g), so our taps must equal
    torchvision's on the whole image, and fc6/fc7 its classifier on the 7x7 window each output reads.
    """
    with torch.device("meta"):  # skip initializing 147M parameters: the VGG ones are overwritten, the rest unused
        model = create_model("larsson_hypercolumn", dropout=0.0)
    model = model.to_empty(device="cpu").eval()
    offset = model.config.grey_offset
    mapped = torchvision_vgg16_to_larsson(torchvision_vgg.state_dict(), grey_offset=offset, mean=(offset,) * 3)
    model.load_state_dict(mapped, strict=False)

    grey = torch.rand(1, 1, 64, 64, generator=torch.Generator().manual_seed(4))  # pool5 is 2x2
    std = torch.tensor(TORCHVISION_IMAGENET_STD).view(1, 3, 1, 1)
    rgb_normalized = (grey.expand(-1, 3, -1, -1) - offset) / std
    taps = dict(zip(TAPPED_LAYERS, model.forward_features(grey)))

    reference = rgb_normalized
    references: dict[str, torch.Tensor] = {}
    for index, layer in enumerate(torchvision_vgg.features):
        reference = layer(reference)
        for name, relu_index in _TORCHVISION_RELU_INDEX.items():
            if index == relu_index:
                references[name] = reference
        if index == _POOL5_INDEX:
            pool5 = reference
    for name, expected in references.items():
        torch.testing.assert_close(taps[name], expected, rtol=1e-4, atol=1e-5, msg=name)

    classifier = torchvision_vgg.classifier
    for row, col in ((0, 0), (0, 1), (1, 0)):
        fc6 = F.relu(classifier[0](_embed_pool5(pool5, row, col).flatten(1)))  # (1, 4096)
        fc7 = F.relu(classifier[3](fc6))
        torch.testing.assert_close(taps["fc6"][:, :, row, col], fc6, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(taps["fc7"][:, :, row, col], fc7, rtol=1e-4, atol=1e-5)


def test_load_leaves_the_colorization_layers_alone(torchvision_vgg: torchvision.models.VGG) -> None:
    model = create_model("larsson_hypercolumn")
    before = {key: value.clone() for key, value in model.state_dict().items() if not key.startswith(("conv", "fc"))}
    load_torchvision_vgg16_weights(model, torchvision_vgg.state_dict())
    after = model.state_dict()
    assert {"hypercolumn_fc.weight", "hypercolumn_scales", "heads.hue_chroma.bias"} <= set(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), key


def test_only_full_width_takes_vgg_weights(torchvision_vgg: torchvision.models.VGG) -> None:
    with pytest.raises(ValueError, match="width_multiplier 1"):
        load_torchvision_vgg16_weights(create_model("larsson_hypercolumn_w16"), torchvision_vgg.state_dict())


def test_a_foreign_state_dict_is_refused() -> None:
    with torch.device("meta"):
        model = create_model("larsson_hypercolumn")
    with pytest.raises(KeyError, match="features.0.weight"):
        load_torchvision_vgg16_weights(model, {"conv1.weight": torch.zeros(1)})
