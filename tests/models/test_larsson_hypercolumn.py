"""Larsson et al.'s hypercolumn network: layout at full width (meta device), sampled/dense agreement, gradient
routing, the no-hypercolumn dense path and balancing at 1/16 width, config, registry and checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from colorization.color.hue_chroma import larsson_grey
from colorization.io.images import image_to_tensor, read_image, resize_shorter_side_and_center_crop
from colorization.models.checkpoint import load_checkpoint, save_checkpoint
from colorization.models.larsson_hypercolumn import (
    HEAD_NAMES,
    TAPPED_LAYERS,
    LarssonConfig,
    LarssonHypercolumn,
    dense_grid_locations,
    gather_pixels,
    locations_to_grid,
    sample_pixel_locations,
)
from colorization.models.registry import build_model, config_to_dict, create_model


def small_model(**overrides) -> LarssonHypercolumn:
    """1/16 width, all heads, eval mode, with a hypercolumn layer large enough that outputs are not ~0."""
    torch.manual_seed(0)
    model = create_model("larsson_hypercolumn_w16", **overrides).eval()
    with torch.no_grad():
        model.hypercolumn_fc.weight.normal_(std=0.05)
        model.hypercolumn_fc.bias.normal_(std=0.1)
        model.hypercolumn_scales.copy_(torch.linspace(0.5, 20.0, len(TAPPED_LAYERS)))
    return model


def random_grey(batch: int, height: int, width: int, seed: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 1, height, width, generator=generator)


# --- layout -----------------------------------------------------------------------------------------------------


def test_full_width_hypercolumn_has_12417_channels_and_the_paper_shapes() -> None:
    with torch.device("meta"):  # shapes only: no 147M-parameter allocation
        model = create_model("larsson_hypercolumn")
    assert model.hypercolumn_channels == 12417  # Sec. 3.4: "a 12,417 channel descriptor"
    assert model.hypercolumn_fc.in_features == 12417
    assert model.tap_channels == (1, 64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512, 4096, 4096)
    shapes = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    assert shapes["conv1_1.weight"] == (64, 1, 3, 3)  # one grey input channel
    assert shapes["conv5_3.weight"] == (512, 512, 3, 3)
    assert shapes["fc6.weight"] == (4096, 512, 7, 7)
    assert shapes["fc7.weight"] == (4096, 4096, 1, 1)
    assert shapes["hypercolumn_fc.weight"] == (1024, 12417)
    assert shapes["heads.hue_chroma.weight"] == (64, 1024)
    assert shapes["hypercolumn_scales"] == (len(TAPPED_LAYERS),) == (16,)
    assert not any(key.startswith("fc8") for key in shapes)
    assert model.config.heads == ("hue_chroma",)


@pytest.mark.parametrize(
    ("name", "head", "outputs"),
    [("larsson_lab_marginal", "lab_marginal", 64), ("larsson_lab_joint", "lab_joint", 256), ("larsson_l2", "l2", 2)],
)
def test_per_head_variants_have_their_output_widths(name: str, head: str, outputs: int) -> None:
    with torch.device("meta"):
        model = create_model(name)
    assert tuple(model.heads) == (head,)
    assert model.heads[head].out_features == outputs == model.config.head_outputs(head)


def test_small_variant_scales_every_layer() -> None:
    model = create_model("larsson_hypercolumn_w16")
    assert model.tap_channels == (1, 4, 4, 8, 8, 16, 16, 16, 32, 32, 32, 32, 32, 32, 256, 256)
    assert model.hypercolumn_channels == 777
    assert tuple(model.heads) == HEAD_NAMES


# --- sampled and dense paths ------------------------------------------------------------------------------------


def test_forward_shapes_and_input_checks() -> None:
    model = small_model()
    grey = random_grey(2, 64, 96)
    dense = model(grey)
    assert {head: tuple(out.shape) for head, out in dense.items()} == {
        "lab_marginal": (2, 64, 16, 24),
        "lab_joint": (2, 256, 16, 24),
        "hue_chroma": (2, 64, 16, 24),
        "l2": (2, 2, 16, 24),
    }
    sampled = model(grey, sample_pixel_locations(2, 64, 96, 5, torch.Generator().manual_seed(0)))
    assert {head: tuple(out.shape) for head, out in sampled.items()} == {
        "lab_marginal": (2, 64, 5),
        "lab_joint": (2, 256, 5),
        "hue_chroma": (2, 64, 5),
        "l2": (2, 2, 5),
    }
    assert set(model.split_head("hue_chroma", sampled["hue_chroma"])) == {"hue", "chroma"}
    assert model.split_head("lab_marginal", sampled["lab_marginal"])["b"].shape == (2, 32, 5)
    with pytest.raises(ValueError, match="multiples of 8"):
        model(random_grey(1, 44, 64))
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        model(torch.rand(1, 3, 64, 64))


@pytest.mark.parametrize("stride", [1, 4, 32])
def test_dense_output_equals_sampled_output_at_the_cell_centres(stride: int) -> None:
    model = small_model(dense_stride=stride)
    grey = random_grey(2, 64, 96)
    dense = model(grey)  # {head: (N, K, h, w)}
    cells = dense_grid_locations(64, 96, stride)  # (h, w, 2)
    locations = cells.reshape(1, -1, 2).expand(2, -1, -1)  # every cell, border cells included
    sampled = model.forward_sampled(grey, locations)  # {head: (N, K, h * w)}
    for head in HEAD_NAMES:
        assert dense[head].abs().amax() > 0.1  # the comparison is not between near-zero maps
        torch.testing.assert_close(dense[head].flatten(2), sampled[head], rtol=1e-4, atol=1e-4)


def test_sampled_gradient_reaches_exactly_the_four_neighbour_cells(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_model()
    height = width = 64
    x, y = 21.3, 37.6  # off every layer's grid, so all four bilinear weights are non-zero
    captured: list[torch.Tensor] = []
    original = model.forward_features

    def capturing(grey: torch.Tensor) -> list[torch.Tensor]:
        # The hypercolumn reads clones whose only consumer is the read, so their .grad is what the read sends
        # back (a tap's own .grad also carries the gradient of the deeper layers computed from it).
        reads = [tap.clone() for tap in original(grey)]
        for read in reads:
            read.retain_grad()
        captured.extend(reads)
        return reads

    monkeypatch.setattr(model, "forward_features", capturing)
    grey = random_grey(1, height, width).requires_grad_(True)
    outputs = model.forward_sampled(grey, torch.tensor([[[x, y]]]))
    sum(output.sum() for output in outputs.values()).backward()

    assert len(captured) == len(TAPPED_LAYERS)
    for name, stride, tap in zip(TAPPED_LAYERS, model.tap_strides, captured):
        # Cell coordinate of pixel x at stride s: (x + 0.5) / s - 0.5, clamped to the grid.
        cell_x = min(max((x + 0.5) / stride - 0.5, 0.0), tap.shape[-1] - 1)
        cell_y = min(max((y + 0.5) / stride - 0.5, 0.0), tap.shape[-2] - 1)
        expected = torch.zeros(tap.shape[-2:], dtype=torch.bool)
        expected[math.floor(cell_y) : math.floor(cell_y) + 2, math.floor(cell_x) : math.floor(cell_x) + 2] = True
        assert int(expected.sum()) == 4, name
        touched = tap.grad[0].abs().sum(dim=0) > 0  # (h, w): any channel received gradient
        assert torch.equal(touched, expected), f"{name}: gradient at {touched.nonzero()[:8].tolist()}..."


class _LargestTensors(TorchFunctionMode):
    """Records, for every torch function called, the shapes of the tensors it returns."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        for value in result if isinstance(result, (tuple, list)) else (result,):
            if isinstance(value, torch.Tensor):
                self.shapes.append(tuple(value.shape))
        return result


def test_dense_forward_never_builds_a_hypercolumn() -> None:
    model = small_model()
    batch, height, width = 2, 64, 64
    grey = random_grey(batch, height, width)
    channels = model.hypercolumn_channels  # 777 at 1/16 width
    cells = (height // model.config.dense_stride) * (width // model.config.dense_stride)
    hypercolumn_numel = batch * channels * cells  # the hypercolumns of every output cell

    def too_big(shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return [shape for shape in shapes if channels in shape or math.prod(shape) >= hypercolumn_numel]

    # The detector works: reading hypercolumns at every output cell does build them.
    locations = dense_grid_locations(height, width, model.config.dense_stride).reshape(1, -1, 2).expand(batch, -1, -1)
    with _LargestTensors() as sampled_mode:
        model.forward_sampled(grey, locations)
    assert (batch, channels, cells) in too_big(sampled_mode.shapes)

    with _LargestTensors() as dense_mode:
        model(grey)
    assert dense_mode.shapes, "the mode saw no torch calls"
    assert too_big(dense_mode.shapes) == []


# --- locations ---------------------------------------------------------------------------------------------------


def test_sampled_locations_are_reproducible_integer_pixels_inside_the_margin() -> None:
    first = sample_pixel_locations(3, 64, 96, 500, torch.Generator().manual_seed(7), margin=10)
    second = sample_pixel_locations(3, 64, 96, 500, torch.Generator().manual_seed(7), margin=10)
    assert first.shape == (3, 500, 2) and first.dtype == torch.float32
    assert torch.equal(first, second)
    assert torch.equal(first, first.round())
    assert first[..., 0].min() >= 10 and first[..., 0].max() <= 96 - 11
    assert first[..., 1].min() >= 10 and first[..., 1].max() <= 64 - 11
    with pytest.raises(ValueError, match="margin"):
        sample_pixel_locations(1, 20, 20, 1, margin=10)


def test_gather_pixels_reads_x_as_column_and_y_as_row() -> None:
    image = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    locations = torch.tensor([[[4.0, 0.0], [1.2, 2.8]], [[0.0, 3.0], [9.0, -2.0]]])  # last one clamps to (4, 0)
    values = gather_pixels(image, locations)  # (2, 3, 2)
    assert torch.equal(values[0, :, 0], image[0, :, 0, 4])
    assert torch.equal(values[0, :, 1], image[0, :, 3, 1])
    assert torch.equal(values[1, :, 0], image[1, :, 3, 0])
    assert torch.equal(values[1, :, 1], image[1, :, 0, 4])


def test_location_conventions() -> None:
    grid = locations_to_grid(torch.tensor([[[0.0, 0.0], [-0.5, 63.5]]]), height=64, width=32)
    torch.testing.assert_close(grid[0, :, 0], torch.tensor([[-1 + 1 / 32, -1 + 1 / 64], [-1.0, 1.0]]))
    cells = dense_grid_locations(8, 12, 4)
    assert cells.shape == (2, 3, 2)
    torch.testing.assert_close(cells[1, 2], torch.tensor([9.5, 5.5]))  # cell (row 1, col 2) covers x 8..11, y 4..7


# --- balancing ---------------------------------------------------------------------------------------------------


def _photos(paths: list[Path], size: int) -> torch.Tensor:
    return torch.stack([image_to_tensor(resize_shorter_side_and_center_crop(read_image(p).rgb, size)) for p in paths])


def test_balancing_gives_each_tapped_layer_unit_second_moment_on_real_photos(dev_image_paths: list[Path]) -> None:
    torch.manual_seed(0)
    model = create_model("larsson_hypercolumn_w16").train()
    photos = _photos(dev_image_paths[:8], 64)  # (8, 3, 64, 64) in [0, 1]
    grey = larsson_grey(photos)  # (8, 1, 64, 64)
    scales = model.estimate_hypercolumn_scales(grey[:6])
    assert model.training  # the mode is restored
    assert torch.equal(scales, model.hypercolumn_scales) and bool((scales > 0).all())
    assert not torch.allclose(scales, torch.ones_like(scales))  # the raw layers are far from balanced

    model.eval()
    with torch.no_grad():
        taps = model.forward_features(grey)
    for name, scale, tap in zip(TAPPED_LAYERS, scales, taps):
        seen = (scale * tap[:6]).square().mean()
        held_out = (scale * tap[6:]).square().mean()
        assert seen == pytest.approx(1.0, rel=1e-4), name
        assert 0.2 < held_out < 5.0, f"{name}: second moment {held_out:.3f} on photos not used for estimation"


def test_balancing_scales_live_in_checkpoints(tmp_path: Path) -> None:
    model = small_model()
    model.estimate_hypercolumn_scales(random_grey(2, 64, 64))
    assert "hypercolumn_scales" in model.state_dict()
    path = save_checkpoint(model, tmp_path / "larsson.safetensors")
    restored, metadata = load_checkpoint(path)
    assert metadata["family"] == "larsson_hypercolumn"
    assert restored.config == model.config
    torch.testing.assert_close(restored.hypercolumn_scales, model.hypercolumn_scales)
    grey = random_grey(1, 64, 64, seed=3)
    for head, output in model(grey).items():
        torch.testing.assert_close(restored(grey)[head], output)


def test_batch_norm_follows_every_convolution_and_replaces_balancing(tmp_path: Path) -> None:
    plain, normed = small_model(), small_model(batch_norm=True)
    assert not any(key.startswith("norms.") for key in plain.state_dict())  # old checkpoints keep their tensors
    assert sorted(normed.norms) == sorted(TAPPED_LAYERS[1:])  # conv1_1 .. conv5_3, fc6, fc7
    for name, channels in zip(TAPPED_LAYERS[1:], normed.tap_channels[1:]):
        assert normed.norms[name].num_features == channels

    # In training mode every tapped layer is ReLU(BatchNorm(conv)): per channel, the pre-activation has batch mean 0
    # and variance 1, so the post-ReLU layer's mean is half the mean of |N(0,1)|-like values, never 0 or huge.
    normed.train()
    grey = random_grey(4, 64, 64)
    pre_activations = {}
    def keep(name: str):
        return lambda module, args, output: pre_activations.update({name: output})

    hooks = [normed.norms[name].register_forward_hook(keep(name)) for name in TAPPED_LAYERS[1:]]
    with torch.no_grad():
        normed.forward_features(grey)
    for hook in hooks:
        hook.remove()
    for name, output in pre_activations.items():
        if output.shape[0] * output.shape[-1] * output.shape[-2] < 8:
            continue  # too few values per channel for a meaningful variance (fc layers at 1/32 of 64 px)
        channels = output.shape[1]
        torch.testing.assert_close(output.mean(dim=(0, 2, 3)), torch.zeros(channels), atol=1e-4, rtol=0)
        torch.testing.assert_close(output.var(dim=(0, 2, 3), unbiased=False), torch.ones(channels), atol=1e-2, rtol=0)

    # Balancing is the normalization layers' job: the scales stay 1.
    scales = normed.estimate_hypercolumn_scales(grey)
    assert torch.equal(scales, torch.ones(len(TAPPED_LAYERS)))

    # Running statistics live in checkpoints; dense and sampled outputs still agree (eval mode).
    normed.eval()
    path = save_checkpoint(normed, tmp_path / "larsson-bn.safetensors")
    restored, _ = load_checkpoint(path)
    assert restored.config.batch_norm is True
    torch.testing.assert_close(restored.norms["conv3_1"].running_var, normed.norms["conv3_1"].running_var)
    assert not torch.equal(normed.norms["conv3_1"].running_var, torch.ones_like(normed.norms["conv3_1"].running_var))
    dense = restored(grey)
    cells = dense_grid_locations(64, 64, restored.config.dense_stride).reshape(1, -1, 2).expand(4, -1, -1)
    sampled = restored.forward_sampled(grey, cells)
    for head in HEAD_NAMES:
        torch.testing.assert_close(dense[head].flatten(2), sampled[head], rtol=1e-4, atol=1e-4)


# --- config and registry -----------------------------------------------------------------------------------------


def test_config_round_trips_through_json_shaped_dicts() -> None:
    config = LarssonConfig(width_multiplier=1 / 16, hypercolumn_units=8, heads=("l2", "lab_joint"))
    as_dict = config_to_dict(config)
    as_dict["heads"] = list(as_dict["heads"])  # what JSON gives back
    rebuilt = build_model("larsson_hypercolumn", as_dict)
    assert rebuilt.config == config
    assert tuple(rebuilt.heads) == ("l2", "lab_joint")


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"heads": ()}, ValueError),
        ({"heads": ("rgb",)}, ValueError),
        ({"heads": ("l2", "l2")}, ValueError),
        ({"width_multiplier": 0.0}, ValueError),
        ({"width_multiplier": float("nan")}, ValueError),
        ({"hypercolumn_units": 0}, ValueError),
        ({"hypercolumn_units": 2.5}, TypeError),
        ({"sampled_pixels": 0}, ValueError),
        ({"input_size": 100}, ValueError),
        ({"dense_stride": 3}, ValueError),
        ({"dense_stride": 64}, ValueError),
        ({"dropout": 1.0}, ValueError),
        ({"batch_norm": 1}, TypeError),
        ({"default_decoder": "best"}, ValueError),
        ({"grey_offset": float("inf")}, ValueError),
        ({"marginal_bins": 0}, ValueError),
        ({"lab_sigma": -1.0}, ValueError),
    ],
)
def test_config_rejects_bad_values(overrides: dict, error: type[Exception]) -> None:
    with pytest.raises(error):
        LarssonConfig(**overrides)


def test_config_defaults_follow_the_paper() -> None:
    config = LarssonConfig()
    assert config.hypercolumn_units == 1024
    assert config.sampled_pixels == 128
    assert config.grey_offset == 0.4488
    assert config.dense_stride == 4
    assert config.dropout == 0.5
    assert config.batch_norm is False  # the paper balances the hypercolumn; BatchNorm is the release's option
    assert config.default_decoder == "auto"  # the paper's decoder per head
    assert config.head_outputs("lab_marginal") == 2 * 32
    assert config.head_outputs("lab_joint") == 16 * 16
    assert config.head_outputs("hue_chroma") == 2 * 32
    assert config.head_outputs("l2") == 2


def test_inputs_not_multiple_of_32_are_replicate_padded_inside() -> None:
    """A 48x72 input gives exactly the padded 64x96 input's outputs on its own cells (dense and sampled)."""
    model = small_model()
    grey = random_grey(2, 48, 72)
    padded = torch.nn.functional.pad(grey, (0, 24, 0, 16), mode="replicate")
    with torch.no_grad():
        dense, dense_padded = model(grey), model(padded)
        locations = sample_pixel_locations(2, 48, 72, 7, torch.Generator().manual_seed(1))
        sampled, sampled_padded = model(grey, locations), model(padded, locations)
    for head in model.config.heads:
        assert dense[head].shape[-2:] == (12, 18)
        torch.testing.assert_close(dense[head], dense_padded[head][..., :12, :18], rtol=0, atol=1e-6)
        torch.testing.assert_close(sampled[head], sampled_padded[head], rtol=0, atol=1e-6)
