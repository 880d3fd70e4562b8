"""Any size and aspect ratio: bands of rows equal the whole-image path; a 1 x 4000 strip; a 12000 x 9000 photo
under a stated memory ceiling (only the ab upsampling and Lab join touch the full resolution)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from PIL import Image

from colorization.inference import Colorizer
from colorization.models.registry import create_model

# Peak RSS growth allowed while colorizing 12000 x 9000 (324 MB of 8-bit pixels): the 8-bit copy of the input,
# the 8-bit output and one band of float work (TILE_PIXELS). Measured: about 1.2 GiB.
LARGE_IMAGE_MEMORY_CEILING_MIB = 1536


def tiny_colorizer(**kwargs) -> Colorizer:
    torch.manual_seed(0)
    return Colorizer(create_model("zhang_eccv16", width_multiplier=0.125, input_size=32), **kwargs)


def test_bands_equal_the_whole_image(dev_image_paths):
    photo = Image.open(dev_image_paths[3]).convert("RGB").resize((301, 217))
    pixels = torch.from_numpy(np.asarray(photo)).permute(2, 0, 1).float() / 255
    whole = tiny_colorizer().colorize_tensors([pixels])[0]
    banded = tiny_colorizer(tile_pixels=15000).colorize_tensors([pixels])[0]  # 49-row bands, never the whole image
    assert banded.shape == (3, 217, 301)
    assert (whole - banded).abs().max() < 2e-3  # float rounding of the upsampling weights only
    # PIL inputs above tile_pixels never become float tensors: PIL shrinks them, bands go to an 8-bit output
    large = tiny_colorizer(tile_pixels=15000).colorize_images([photo])[0]
    small_path = tiny_colorizer().colorize_images([photo])[0]
    difference = np.abs(np.asarray(large, dtype=int) - np.asarray(small_path, dtype=int))
    assert large.size == photo.size and difference.mean() < 1.0  # PIL's and torch's bicubic working resize differ


def test_a_one_pixel_strip(dev_image_paths):
    strip = Image.open(dev_image_paths[0]).convert("RGB").resize((4000, 1))
    for colorizer in (tiny_colorizer(), tiny_colorizer(tile_pixels=1000)):
        output = colorizer.colorize_images([strip, strip.transpose(Image.Transpose.ROTATE_90)])
        assert [image.size for image in output] == [(4000, 1), (1, 4000)]


@pytest.mark.slow
def test_12000_by_9000_under_the_memory_ceiling(dev_image_paths):
    script = textwrap.dedent(f"""
        import resource, torch
        from PIL import Image
        from colorization.inference import Colorizer
        from colorization.models.registry import create_model
        torch.manual_seed(0)
        colorizer = Colorizer(create_model("zhang_eccv16", width_multiplier=0.125, input_size=64))
        photo = Image.open({str(dev_image_paths[0])!r}).convert("RGB").resize((12000, 9000), Image.Resampling.NEAREST)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        output = colorizer.colorize_images([photo])[0]
        growth = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(output.size[0], output.size[1], growth // 1024)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=3000)
    assert result.returncode == 0, result.stderr[-2000:]
    width, height, growth_mib = map(int, result.stdout.split())
    assert (width, height) == (12000, 9000)
    assert growth_mib < LARGE_IMAGE_MEMORY_CEILING_MIB, f"peak RSS grew by {growth_mib} MiB"
