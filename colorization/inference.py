"""One inference object for both papers: ``Colorizer`` (wrapped later by Ray Data batch inference and Ray Serve).

Every image, whatever its size and mode, goes the same way (the authors' recipe, paper-facts.md):

1. its RGB is resized to the model's square working resolution (bicubic, antialiased);
2. the network predicts a colour distribution there and a decoder turns it into ab;
3. ab is upsampled bilinearly to the original size and joined with the ORIGINAL lightness L;
4. out-of-gamut ab is pulled towards grey just enough to fit (``fit_ab_to_gamut``), so the output keeps L.

Speed: images of one size are resized, joined and gamut-fitted as one batch (evaluation crops, serving), and the
network runs in chunks of ``batch_size``. Memory: only steps 3-4 touch the full resolution, and images above
:data:`TILE_PIXELS` pixels go through them in bands of rows (the bilinear upsampling of each band is computed
exactly as the whole image's would be), so a 12000 x 9000 photo needs its 8-bit input and output plus one band
(docs/evaluation.md gives the measured ceiling). Aspect ratio: the network always sees the whole image squashed
to its square working size (Zhang et al.'s release does the same: ``resize_img`` to 256 x 256); Larsson et al.'s
release kept the aspect ratio (shorter side to the working size). Squashing keeps every pixel in view at a fixed
cost; the upsampled ab undoes the squash.

Decoders: Zhang et al. (Sec. 2.3) ``annealed_mean`` (temperature T), ``mean``, ``mode``; Larsson et al.
(Sec. 3.3) ``expectation``, ``median``, ``mode``, ``sample`` applied to the head's histograms (for the hue/chroma
head: chroma by the decoder, hue by the circular expectation with optional chromatic fading, or by mode/sample
when those are chosen).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from colorization.color.gamut import fit_ab_to_gamut
from colorization.color.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab
from colorization.families import DecodeOptions, Outputs, adapter_for
from colorization.families.larsson import LARSSON_DECODERS
from colorization.families.zhang import ZHANG_DECODERS
from colorization.io.images import image_to_tensor, tensor_to_image
from colorization.models.checkpoint import load_checkpoint

__all__ = ["Colorizer", "DecodeOptions", "LARSSON_DECODERS", "ZHANG_DECODERS", "TILE_PIXELS", "load_model"]

# Full-resolution work (upsample, Lab join, gamut fit) runs on at most this many pixels at once: about 1 Mpx of
# float32 temporaries (~150 MB). Larger images go in bands of rows; images of one size batch up to this total.
TILE_PIXELS = 1 << 20
# On a CPU the network runs this many images per forward pass, whatever the batch: per image, batches are slower
# there, most likely because one image's activations fit in cache and a batch's do not (Zhang ECCV16 at 256 on 2
# cores, ms per image at batch 1 / 16, four rounds: 444-658 / 510-715 at full width, 39-40 / 47-52 at 1/4 width).
# The rest (resize, decode, Lab join) stays batched.
CPU_FORWARD_BATCH = 1
MODEL_URI_PREFIX = "models:/"


def load_model(
    source: str | Path, *, device: str | torch.device = "cpu", tracking_uri: str | None = None
) -> torch.nn.Module:
    """A network from a checkpoint file or a ``models:/NAME@ALIAS`` URI (``colorization.model_source``).

    Args:
        source: checkpoint path or registry URI.
        device: where to put the network.
        tracking_uri: MLflow store of registry URIs (None: ``colorization.tracking``'s default).

    Raises:
        UserError: one line when the file is missing, fails validation, or the registry URI names nothing.
    """
    from colorization.model_source import load_model as load_from_source  # registry support imports MLflow lazily

    model, _ = load_from_source(str(source), device=device, tracking_uri=tracking_uri)
    return model


def file_digest(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file (the checkpoint digest recorded in outputs and reports)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _resize(image: torch.Tensor, size: tuple[int, int], *, mode: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size); antialiased when shrinking (the antialiased kernels are slower upsampling)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if mode == "area":
        return F.interpolate(image, size=size, mode=mode)
    shrinking = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode=mode, align_corners=False, antialias=shrinking)


def _source_coordinates(out_size: int, in_size: int, start: int, stop: int, device) -> tuple:
    """Bilinear (align_corners=False) source indices and weights of outputs start..stop-1, as F.interpolate."""
    scale = in_size / out_size
    position = ((torch.arange(start, stop, device=device, dtype=torch.float64) + 0.5) * scale - 0.5).clamp_(min=0.0)
    low = position.floor().long().clamp_(max=in_size - 1)
    high = (low + 1).clamp_(max=in_size - 1)
    return low, high, (position - low).float()


def upsample_rows(ab: torch.Tensor, size: tuple[int, int], start: int, stop: int) -> torch.Tensor:
    """Rows ``start:stop`` of the bilinear upsampling of ab (C, h, w) to ``size`` -> (C, stop - start, W).

    Equal (to float rounding) to ``F.interpolate(ab[None], size, mode="bilinear")[0, :, start:stop]`` for
    upsampling, without ever holding the whole result.
    """
    height, width = size
    row_low, row_high, row_weight = _source_coordinates(height, ab.shape[-2], start, stop, ab.device)
    col_low, col_high, col_weight = _source_coordinates(width, ab.shape[-1], 0, width, ab.device)
    rows = torch.lerp(ab[:, row_low], ab[:, row_high], row_weight[:, None])  # (C, bands, w)
    return torch.lerp(rows[:, :, col_low], rows[:, :, col_high], col_weight)


def _join(rgb: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) RGB + full-size ab (N, 2, H, W) -> RGB with the image's L and the gamut-fitted ab."""
    lightness, _ = split_lab(rgb_to_lab(rgb))
    return lab_to_rgb(join_lab(lightness, fit_ab_to_gamut(lightness, ab)))


def _check_rgb(image: torch.Tensor) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"images must be (3, H, W) RGB tensors; got {tuple(image.shape)}")


def _as_float(image: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 or float (…, 3, H, W) -> float32 in [0, 1] on ``device``."""
    image = image.to(device)
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image.float()


class Colorizer:
    """Colorizes images with any registered network and a decoder of its family.

    The work splits in two so that callers can reuse the network's output: :meth:`predict` runs the network
    once on images at the working size, :meth:`render` decodes its outputs with any options and joins them
    with each image's own lightness (evaluation sweeps decoders and temperatures this way; serving re-renders
    at a new temperature without running the network again).

    Args:
        model: a registered network (put in eval mode here).
        options: default decoder choice; validated against the model's family.
        device: where the network runs; None keeps the model's device.
        batch_size: images per forward pass (on a CPU at most ``CPU_FORWARD_BATCH``) and per post-processing batch.
        tile_pixels: full-resolution work runs on at most this many pixels at once (bands of larger images).
    """

    def __init__(
        self,
        model: torch.nn.Module,
        options: DecodeOptions = DecodeOptions(),
        *,
        device: str | torch.device | None = None,
        batch_size: int = 8,
        tile_pixels: int = TILE_PIXELS,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        if tile_pixels < 1:
            raise ValueError(f"tile_pixels must be >= 1; got {tile_pixels}")
        self.tile_pixels = tile_pixels
        try:
            self.adapter = adapter_for(model)
        except KeyError as error:
            raise TypeError(f"Colorizer needs a registered colorization network; {error.args[0]}") from None
        self.model = model.eval() if device is None else model.to(device).eval()
        self.device = next(model.parameters()).device
        self.batch_size = batch_size
        self.forward_batch = batch_size if self.device.type != "cpu" else min(batch_size, CPU_FORWARD_BATCH)
        self.options = self.resolve(options)
        self.working_size = model.config.input_size

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, options: DecodeOptions = DecodeOptions(), *, device: str = "cpu", batch_size: int = 8
    ) -> Colorizer:
        """Loads a checkpoint written by ``save_checkpoint`` (safetensors, no pickle)."""
        model, _ = load_checkpoint(path, device=device)
        return cls(model, options, batch_size=batch_size)

    @property
    def decoders(self) -> tuple[str, ...]:
        """The decoders of this model's family."""
        return self.adapter.decoders

    def resolve(self, options: DecodeOptions) -> DecodeOptions:
        """Fills the family's defaults into ``options``; ValueError when they do not fit the model."""
        return self.adapter.resolve_options(self.model, options)

    # --- prediction at the working resolution -------------------------------------------------------------

    def working_batch(self, images: list[torch.Tensor]) -> torch.Tensor:
        """RGB (3, H, W) images (float in [0, 1] or uint8) of any sizes -> (N, 3, S, S) float at the working size.

        Images of one size are resized together (one call instead of N).
        """
        size = (self.working_size, self.working_size)
        resized: list[torch.Tensor | None] = [None] * len(images)
        for shape, indices in _groups_by_shape(images).items():
            for chunk in _chunks(indices, max(1, self.tile_pixels // (shape[1] * shape[2]))):
                batch = _as_float(torch.stack([images[index] for index in chunk]), self.device)
                for index, result in zip(chunk, _resize(batch, size, mode="bicubic")):
                    resized[index] = result
        return torch.stack(resized).clamp_(0.0, 1.0)

    @torch.no_grad()
    def predict(self, working: torch.Tensor) -> Outputs:
        """(N, 3, S, S) RGB in [0, 1] at the working size -> the network's outputs, in chunks of ``forward_batch``."""
        chunks = [
            self.adapter.predict(self.model, working[start : start + self.forward_batch].to(self.device))
            for start in range(0, working.shape[0], self.forward_batch)
        ]
        return {key: torch.cat([chunk[key] for chunk in chunks]) for key in chunks[0]}

    @torch.no_grad()
    def decode_ab(self, outputs: Outputs, options: DecodeOptions | None = None) -> torch.Tensor:
        """Outputs of :meth:`predict` -> raw ab (N, 2, h, w) on the network's grid."""
        resolved = self.options if options is None else self.resolve(options)
        return self.adapter.decode(self.model, outputs, resolved)

    @torch.no_grad()
    def predict_ab(self, rgb: torch.Tensor, options: DecodeOptions | None = None) -> torch.Tensor:
        """(N, 3, S, S) RGB in [0, 1] at the working size -> decoded raw ab (N, 2, h, w) on the network's grid."""
        return self.decode_ab(self.predict(rgb.to(self.device)), options)

    # --- whole images ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def render(
        self, images: list[torch.Tensor], outputs: Outputs, options: DecodeOptions | None = None
    ) -> list[torch.Tensor]:
        """Decodes ``outputs`` (of :meth:`predict` on ``images``) and joins ab with each image's own L.

        Images of one size are joined as one batch (up to ``tile_pixels`` pixels); larger images in bands.

        Returns:
            Colorized RGB tensors (3, H, W) float32 in [0, 1], the sizes of ``images``, on the CPU.
        """
        predicted_ab = self.decode_ab(outputs, options)  # (n, 2, h, w)
        results: list[torch.Tensor | None] = [None] * len(images)
        for shape, indices in _groups_by_shape(images).items():
            pixels = shape[1] * shape[2]
            if pixels > self.tile_pixels:
                for index in indices:
                    results[index] = self._render_banded(images[index], predicted_ab[index])
                continue
            for chunk in _chunks(indices, max(1, self.tile_pixels // pixels)):
                rgb = _as_float(torch.stack([images[index] for index in chunk]), self.device)
                lightness, _ = split_lab(rgb_to_lab(rgb))
                for index, result in zip(chunk, self.join_ab(lightness, predicted_ab[chunk]).cpu()):
                    results[index] = result
        return results

    @torch.no_grad()
    def join_ab(self, lightness: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
        """Raw L (N, 1, H, W) of the images + decoded ab (N, 2, h, w) -> RGB (N, 3, H, W) in [0, 1].

        Upsamples ab bilinearly to (H, W), pulls out-of-gamut ab towards grey and converts to RGB; this is
        :meth:`render` for callers that already have the lightness (an evaluation sweep computes it once per
        image, not once per decoder).
        """
        lightness = lightness.to(ab.device)
        ab = _resize(ab, tuple(lightness.shape[-2:]), mode="bilinear")
        return lab_to_rgb(join_lab(lightness, fit_ab_to_gamut(lightness, ab)))

    def _bands(self, height: int, width: int) -> list[tuple[int, int]]:
        rows = max(1, self.tile_pixels // width)
        return [(start, min(start + rows, height)) for start in range(0, height, rows)]

    def _render_banded(self, image: torch.Tensor, ab: torch.Tensor, out: np.ndarray | None = None) -> torch.Tensor:
        """One large image (3, H, W) + its ab (2, h, w) -> colorized RGB, band by band of rows.

        With ``out`` (an (H, W, 3) uint8 array) each band is written there in 8 bits and nothing else is kept.
        """
        height, width = image.shape[-2:]
        if height < ab.shape[-2] or width < ab.shape[-1]:  # shrinking: antialiasing needs whole rows and columns
            joined = _join(_as_float(image[None], self.device), _resize(ab[None], (height, width), mode="bilinear"))
            bands, result = [(0, height)], joined[0]
        else:
            bands, result = self._bands(height, width), None
        full = None if out is not None else torch.empty((3, height, width), dtype=torch.float32)
        for start, stop in bands:
            if result is None:
                rgb = _as_float(image[None, :, start:stop], self.device)
                band = _join(rgb, upsample_rows(ab, (height, width), start, stop)[None])[0]
            else:
                band = result
            if out is not None:
                out[start:stop] = band.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).permute(1, 2, 0).cpu().numpy()
            else:
                full[:, start:stop] = band.cpu()
        return full

    @torch.no_grad()
    def colorize_tensors(self, images: list[torch.Tensor], options: DecodeOptions | None = None) -> list[torch.Tensor]:
        """RGB tensors (3, H, W) in [0, 1] (or uint8) of any sizes -> colorized float RGB tensors of the same sizes.

        The output's L equals the input's L (up to float rounding): only ab comes from the network.
        """
        for image in images:
            _check_rgb(image)
        results: list[torch.Tensor] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            results += self.render(chunk, self.predict(self.working_batch(chunk)), options)
        return results

    @torch.no_grad()
    def colorize_images(self, images: list[Image.Image], options: DecodeOptions | None = None) -> list[Image.Image]:
        """8-bit RGB PIL images of any size (decode other modes with ``io.images``) -> colorized RGB PIL images.

        Images above ``tile_pixels`` never exist as float tensors: PIL shrinks them to the working size, and
        their 8-bit pixels are colorized band by band into an 8-bit output.
        """
        results: list[Image.Image | None] = [None] * len(images)
        small = [index for index, image in enumerate(images) if image.width * image.height <= self.tile_pixels]
        for chunk in _chunks(small, self.batch_size):
            tensors = [image_to_tensor(images[index]) for index in chunk]
            for index, rgb in zip(chunk, self.colorize_tensors(tensors, options)):
                results[index] = tensor_to_image(rgb)
        for index, image in enumerate(images):
            if results[index] is None:
                results[index] = self._colorize_large(image if image.mode == "RGB" else image.convert("RGB"), options)
        return results

    def _colorize_large(self, image: Image.Image, options: DecodeOptions | None) -> Image.Image:
        size = (self.working_size, self.working_size)
        working = image_to_tensor(image.resize(size, Image.Resampling.BICUBIC, reducing_gap=3.0))[None]
        ab = self.decode_ab(self.predict(working.to(self.device)), options)[0]
        pixels = torch.from_numpy(np.array(image)).permute(2, 0, 1)  # (3, H, W) uint8, never a float copy
        out = np.empty((image.height, image.width, 3), dtype=np.uint8)
        self._render_banded(pixels, ab, out=out)
        return Image.fromarray(out, mode="RGB")


def _groups_by_shape(images: list[torch.Tensor]) -> dict[tuple[int, ...], list[int]]:
    """Indices of the images grouped by (C, H, W), in first-seen order."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, image in enumerate(images):
        _check_rgb(image)
        groups.setdefault(tuple(image.shape), []).append(index)
    return groups


def _chunks(items: list[int], size: int) -> list[list[int]]:
    return [items[start : start + size] for start in range(0, len(items), size)]
