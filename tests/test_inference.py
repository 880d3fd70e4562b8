"""Colorizer: any size and mode in, same size out, the input's lightness kept, every decoder of both papers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from skimage.color import rgb2lab

from colorization.color.gamut import fit_ab_to_gamut
from colorization.color.lab import lab_to_rgb, rgb_to_lab, split_lab
from colorization.inference import CPU_FORWARD_BATCH, LARSSON_DECODERS, ZHANG_DECODERS, Colorizer, DecodeOptions
from colorization.io.images import decode_image, image_to_tensor
from colorization.models.checkpoint import save_checkpoint
from colorization.models.registry import create_model

WORKING_SIZE = 64


def zhang_model():
    torch.manual_seed(0)
    return create_model("zhang_eccv16_w8", input_size=WORKING_SIZE)


def larsson_model(heads=("hue_chroma", "lab_marginal", "lab_joint", "l2")):
    torch.manual_seed(0)
    model = create_model("larsson_hypercolumn_w16", input_size=WORKING_SIZE, heads=heads)
    with torch.no_grad():  # an untrained head predicts near-uniform histograms; make them decisive
        for head in model.heads.values():
            head.weight.mul_(1e4)
    return model


def skimage_lightness(image: Image.Image) -> np.ndarray:
    return rgb2lab(np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0)[..., 0]


@pytest.fixture(scope="module")
def odd_images(dev_image_paths) -> list[Image.Image]:
    """Real photos of odd sizes (not multiples of 8, portrait and landscape) plus a grey one."""
    rgb = Image.open(dev_image_paths[0]).convert("RGB")
    return [rgb.resize((97, 61)), rgb.resize((50, 130)), rgb.convert("L").convert("RGB").resize((80, 80))]


@pytest.mark.parametrize("decoder", ZHANG_DECODERS)
def test_zhang_colorizer_keeps_size_and_lightness(odd_images, decoder):
    colorizer = Colorizer(zhang_model(), DecodeOptions(decoder=decoder))
    outputs = colorizer.colorize_images(odd_images)
    for source, output in zip(odd_images, outputs):
        assert output.size == source.size and output.mode == "RGB"
        # 8-bit rounding of the output moves L by well under one unit
        assert np.abs(skimage_lightness(output) - skimage_lightness(source)).max() < 1.0


@pytest.mark.parametrize("head,decoder", [
    ("hue_chroma", "median"), ("hue_chroma", "expectation"), ("hue_chroma", "mode"), ("hue_chroma", "sample"),
    ("lab_marginal", "expectation"), ("lab_marginal", "median"), ("lab_marginal", "mode"), ("lab_marginal", "sample"),
    ("lab_joint", "expectation"), ("lab_joint", "mode"), ("l2", "expectation"),
])
def test_larsson_colorizer_every_head_and_decoder(odd_images, head, decoder):
    colorizer = Colorizer(larsson_model(), DecodeOptions(decoder=decoder, head=head))
    tensors = [image_to_tensor(image) for image in odd_images]
    outputs = colorizer.colorize_tensors(tensors)
    for source, output in zip(tensors, outputs):
        assert output.shape == source.shape
        assert torch.isfinite(output).all() and output.min() >= 0 and output.max() <= 1
        lightness_in, _ = split_lab(rgb_to_lab(source[None]))
        lightness_out, _ = split_lab(rgb_to_lab(output[None]))
        assert (lightness_out - lightness_in).abs().max() < 0.05  # float output: L kept up to the gamut search


def test_decoders_give_different_colours_and_sampling_is_seeded(odd_images):
    model = larsson_model(heads=("lab_marginal",))
    image = [image_to_tensor(odd_images[0])]
    results = {
        decoder: Colorizer(model, DecodeOptions(decoder=decoder)).colorize_tensors(image)[0]
        for decoder in LARSSON_DECODERS
    }
    assert not torch.equal(results["expectation"], results["mode"])
    again = Colorizer(model, DecodeOptions(decoder="sample")).colorize_tensors(image)[0]
    assert torch.equal(again, results["sample"])
    other_seed = Colorizer(model, DecodeOptions(decoder="sample", seed=1)).colorize_tensors(image)[0]
    assert not torch.equal(other_seed, results["sample"])


def test_zhang_temperature_moves_between_mean_and_mode(odd_images):
    model = zhang_model()
    rgb = torch.rand(1, 3, WORKING_SIZE, WORKING_SIZE)
    mean = Colorizer(model, DecodeOptions(decoder="mean")).predict_ab(rgb)
    mode = Colorizer(model, DecodeOptions(decoder="mode")).predict_ab(rgb)
    annealed_one = Colorizer(model, DecodeOptions(temperature=1.0)).predict_ab(rgb)
    annealed_zero = Colorizer(model, DecodeOptions(temperature=0.0)).predict_ab(rgb)
    assert torch.allclose(annealed_one, mean, atol=1e-5)
    assert torch.equal(annealed_zero, mode)


def test_decoder_must_match_the_family():
    with pytest.raises(ValueError, match="not a Zhang decoder"):
        Colorizer(zhang_model(), DecodeOptions(decoder="median"))
    with pytest.raises(ValueError, match="not a Larsson decoder"):
        Colorizer(larsson_model(), DecodeOptions(decoder="annealed_mean"))
    with pytest.raises(ValueError, match="joint ab head"):
        Colorizer(larsson_model(), DecodeOptions(decoder="median", head="lab_joint"))
    with pytest.raises(ValueError, match="not in this model's heads"):
        Colorizer(larsson_model(heads=("l2",)), DecodeOptions(head="hue_chroma"))


def test_every_source_mode_colorizes(tmp_path, dev_image_paths):
    """Grey, RGBA, palette and 16-bit sources decode with io.images and keep their lightness."""
    import io

    photo = Image.open(dev_image_paths[1]).convert("RGB").resize((72, 56))
    grey16 = Image.fromarray(np.asarray(photo.convert("L"), dtype=np.uint16) * 257)
    sources = {"L": photo.convert("L"), "RGBA": photo.convert("RGBA"), "P": photo.convert("P"), "I;16": grey16}
    colorizer = Colorizer(zhang_model())
    for mode, image in sources.items():
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        decoded = decode_image(buffer.getvalue())
        output = colorizer.colorize_images([decoded.rgb])[0]
        assert output.size == photo.size, mode
        assert np.abs(skimage_lightness(output) - skimage_lightness(decoded.rgb)).max() < 1.0, mode


def test_from_checkpoint_matches_the_model(tmp_path, odd_images):
    model = zhang_model()
    path = save_checkpoint(model, tmp_path / "zhang.safetensors")
    direct = Colorizer(model).colorize_images(odd_images[:1])[0]
    loaded = Colorizer.from_checkpoint(path).colorize_images(odd_images[:1])[0]
    assert np.array_equal(np.asarray(direct), np.asarray(loaded))


@pytest.mark.parametrize("make_model", [zhang_model, larsson_model])
def test_cpu_forward_in_small_chunks_equals_one_batched_pass(make_model):
    model = make_model().eval()
    colorizer = Colorizer(model, batch_size=5)
    assert colorizer.forward_batch == min(5, CPU_FORWARD_BATCH)
    passes = []
    model.register_forward_hook(lambda module, inputs, output: passes.append(len(inputs[0])))
    torch.manual_seed(1)
    working = torch.rand(5, 3, WORKING_SIZE, WORKING_SIZE)
    chunked = colorizer.predict(working)
    assert sum(passes) == 5 and max(passes) == min(5, CPU_FORWARD_BATCH)
    with torch.no_grad():
        whole = colorizer.adapter.predict(model, working)
    assert chunked.keys() == whole.keys()
    for key in whole:
        torch.testing.assert_close(chunked[key], whole[key], rtol=1e-4, atol=1e-4)


def test_fit_ab_to_gamut_keeps_lightness_and_hue():
    torch.manual_seed(0)
    lightness = torch.rand(1, 1, 16, 16) * 100
    ab = (torch.rand(1, 2, 16, 16) - 0.5) * 300  # mostly far out of gamut
    fitted = fit_ab_to_gamut(lightness, ab)
    rgb = lab_to_rgb(torch.cat((lightness, fitted), dim=1))
    back = rgb_to_lab(rgb)
    assert (back[:, :1] - lightness).abs().max() < 0.05
    ratio = fitted / ab  # the same factor for a and b: hue angle kept
    assert torch.allclose(ratio[:, 0], ratio[:, 1], atol=1e-5)
    assert ((ratio >= 0) & (ratio <= 1)).all()
    in_gamut = torch.zeros(1, 2, 4, 4)
    assert torch.equal(fit_ab_to_gamut(torch.full((1, 1, 4, 4), 50.0), in_gamut), in_gamut)


def test_fit_ab_to_gamut_batched_equals_per_image():
    torch.manual_seed(1)
    lightness = torch.rand(2, 3, 1, 8, 8) * 100
    ab = (torch.rand(2, 3, 2, 8, 8) - 0.5) * 300
    batched = fit_ab_to_gamut(lightness, ab)
    for i in range(2):
        for j in range(3):
            assert torch.equal(batched[i, j], fit_ab_to_gamut(lightness[i, j][None], ab[i, j][None])[0])
