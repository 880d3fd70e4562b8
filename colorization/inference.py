"""One inference object for both papers: ``Colorizer`` (wrapped later by Ray Data batch inference and Ray Serve).

Every image, whatever its size and mode, goes the same way (the authors' recipe, paper-facts.md):

1. its RGB is resized to the model's square working resolution (bicubic, antialiased);
2. the network predicts a colour distribution there and a decoder turns it into ab;
3. ab is upsampled bilinearly to the original size and joined with the ORIGINAL lightness L;
4. out-of-gamut ab is pulled towards grey just enough to fit (``fit_ab_to_gamut``), so the output keeps L.

Decoders: Zhang et al. (Sec. 2.3) ``annealed_mean`` (temperature T), ``mean``, ``mode``; Larsson et al.
(Sec. 3.3) ``expectation``, ``median``, ``mode``, ``sample`` applied to the head's histograms (for the hue/chroma
head: chroma by the decoder, hue by the circular expectation with optional chromatic fading, or by mode/sample
when those are chosen).
"""

from __future__ import annotations

from pathlib import Path

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

__all__ = ["Colorizer", "DecodeOptions", "LARSSON_DECODERS", "ZHANG_DECODERS"]


def _resize(image: torch.Tensor, size: tuple[int, int], *, mode: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size); antialiased when shrinking (the antialiased kernels are slower upsampling)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if mode == "area":
        return F.interpolate(image, size=size, mode=mode)
    shrinking = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode=mode, align_corners=False, antialias=shrinking)


def _check_rgb(image: torch.Tensor) -> None:
    if image.ndim != 3 or image.shape[0] != 3:
        raise ValueError(f"images must be (3, H, W) RGB tensors; got {tuple(image.shape)}")


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
        batch_size: images per forward pass.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        options: DecodeOptions = DecodeOptions(),
        *,
        device: str | torch.device | None = None,
        batch_size: int = 8,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        try:
            self.adapter = adapter_for(model)
        except KeyError as error:
            raise TypeError(f"Colorizer needs a registered colorization network; {error.args[0]}") from None
        self.model = model.eval() if device is None else model.to(device).eval()
        self.device = next(model.parameters()).device
        self.batch_size = batch_size
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
        """RGB (3, H, W) images of any sizes -> (N, 3, S, S) at the working size on the network's device."""
        size = (self.working_size, self.working_size)
        resized = []
        for image in images:
            _check_rgb(image)
            resized.append(_resize(image[None].to(self.device, torch.float32), size, mode="bicubic"))
        return torch.cat(resized).clamp(0.0, 1.0)

    @torch.no_grad()
    def predict(self, working: torch.Tensor) -> Outputs:
        """(N, 3, S, S) RGB in [0, 1] at the working size -> the network's outputs, in chunks of ``batch_size``."""
        chunks = [
            self.adapter.predict(self.model, working[start : start + self.batch_size].to(self.device))
            for start in range(0, working.shape[0], self.batch_size)
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

        Returns:
            Colorized RGB tensors (3, H, W) in [0, 1], the sizes of ``images``, on the CPU.
        """
        predicted_ab = self.decode_ab(outputs, options)  # (n, 2, h, w)
        results: list[torch.Tensor] = []
        for image, ab in zip(images, predicted_ab):
            image = image.to(self.device, torch.float32)
            lightness, _ = split_lab(rgb_to_lab(image[None]))  # (1, 1, H, W), the original L
            ab_full = _resize(ab[None], tuple(image.shape[-2:]), mode="bilinear")
            ab_full = fit_ab_to_gamut(lightness, ab_full)
            results.append(lab_to_rgb(join_lab(lightness, ab_full))[0].cpu())
        return results

    @torch.no_grad()
    def colorize_tensors(self, images: list[torch.Tensor], options: DecodeOptions | None = None) -> list[torch.Tensor]:
        """RGB tensors (3, H, W) in [0, 1] of any sizes -> colorized RGB tensors of the same sizes (on the CPU).

        The output's L equals the input's L (up to float rounding): only ab comes from the network.
        """
        results: list[torch.Tensor] = []
        for start in range(0, len(images), self.batch_size):
            chunk = images[start : start + self.batch_size]
            results += self.render(chunk, self.predict(self.working_batch(chunk)), options)
        return results

    def colorize_images(self, images: list[Image.Image], options: DecodeOptions | None = None) -> list[Image.Image]:
        """8-bit RGB PIL images of any size (decode other modes with ``io.images``) -> colorized RGB PIL images."""
        tensors = [image_to_tensor(image) for image in images]
        return [tensor_to_image(rgb) for rgb in self.colorize_tensors(tensors, options)]
