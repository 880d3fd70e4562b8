"""The embedded default input of the main job: colour photographs that the project's dependencies ship.

No download (the main job runs offline): scikit-image's colour sample photos (``skimage.data``), matplotlib's
Grace Hopper portrait and scikit-learn's two sample photos (MLflow brings both packages). Together 14 natural
and scientific colour images; every network trains on random crops of
them, so the set is small but not tiny in crops. No installed package ships a larger set of colour photos.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["SKIMAGE_PHOTOS", "write_sample_images"]

# scikit-image's colour photographs (the stereo pair gives two images; the RGBA logo keeps its alpha).
SKIMAGE_PHOTOS = (
    "astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "retina", "colorwheel",
    "logo", "stereo_motorcycle",
)
_MATPLOTLIB_PHOTOS = ("grace_hopper.jpg",)


def _skimage_images():
    from skimage import data

    for name in SKIMAGE_PHOTOS:
        images = getattr(data, name)()
        images = images if isinstance(images, tuple) else (images,)
        for index, array in enumerate(image for image in images if getattr(image, "ndim", 0) == 3):
            yield f"{name}_{index}" if index else name, array


def _matplotlib_images():
    try:
        from matplotlib import cbook
    except ImportError:
        return
    for name in _MATPLOTLIB_PHOTOS:
        with cbook.get_sample_data(name) as file:
            yield Path(name).stem, file.read()


def _sklearn_images():
    try:
        from sklearn.datasets import load_sample_images
    except ImportError:
        return
    bunch = load_sample_images()
    for filename, array in zip(bunch.filenames, bunch.images):
        yield Path(filename).stem, array


def write_sample_images(directory: str | Path) -> Path:
    """Writes the embedded photos into ``directory`` (PNG from arrays, the original bytes for JPEG files).

    Args:
        directory: created if needed; existing files with the same names are left as they are (reruns).

    Returns:
        The directory.
    """
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for source in (_skimage_images(), _matplotlib_images(), _sklearn_images()):
        for name, content in source:
            target = directory / (f"{name}.jpg" if isinstance(content, bytes) else f"{name}.png")
            if target.exists():
                continue
            partial = target.with_name(f".{target.name}.partial")
            if isinstance(content, bytes):
                partial.write_bytes(content)
            else:
                Image.fromarray(content).save(partial, format="PNG")
            partial.replace(target)
    return directory
