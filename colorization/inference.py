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

from dataclasses import dataclass, replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from colorization.color import larsson_decode, zhang_decode
from colorization.color.constants import LARSSON_CHROMATIC_FADING_ETA
from colorization.color.gamut import fit_ab_to_gamut
from colorization.color.hue_chroma import hcl_to_rgb, larsson_grey, match_grey
from colorization.color.lab import join_lab, lab_to_rgb, rgb_to_lab, split_lab
from colorization.color.larsson_bins import gaussian_quantile_centres, uniform_centres
from colorization.io.images import image_to_tensor, tensor_to_image
from colorization.models.checkpoint import load_checkpoint
from colorization.models.larsson_hypercolumn import LarssonHypercolumn
from colorization.models.zhang_eccv16 import ZhangECCV16

ZHANG_DECODERS = ("annealed_mean", "mean", "mode")
LARSSON_DECODERS = ("expectation", "median", "mode", "sample")
_LARSSON_HEAD_PREFERENCE = ("hue_chroma", "lab_marginal", "lab_joint", "l2")


@dataclass(frozen=True)
class DecodeOptions:
    """How predicted distributions become colours.

    Attributes:
        decoder: one of ZHANG_DECODERS or LARSSON_DECODERS; None picks the paper's default
            (Zhang: annealed_mean; Larsson: median chroma for hue/chroma, expectation for Lab heads).
        temperature: Zhang's annealed-mean T; None uses the model config's (0.38 by default).
        chromatic_fading: Larsson hue/chroma head: fade chroma where the hue is uncertain.
        fading_eta: its threshold eta.
        head: Larsson head to decode; None takes the first of hue_chroma, lab_marginal, lab_joint, l2 present.
        seed: seeds the generator of the ``sample`` decoder, so sampling is reproducible.
    """

    decoder: str | None = None
    temperature: float | None = None
    chromatic_fading: bool = True
    fading_eta: float = LARSSON_CHROMATIC_FADING_ETA
    head: str | None = None
    seed: int = 0


def _resize(image: torch.Tensor, size: tuple[int, int], *, mode: str) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, *size); antialiased when shrinking (the antialiased kernels are slower upsampling)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    if mode == "area":
        return F.interpolate(image, size=size, mode=mode)
    shrinking = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    return F.interpolate(image, size=size, mode=mode, align_corners=False, antialias=shrinking)


class Colorizer:
    """Colorizes images with a Zhang or Larsson network and a chosen decoder.

    Args:
        model: a ZhangECCV16 or LarssonHypercolumn (put in eval mode here).
        options: decoder choice; validated against the model's family.
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
        if not isinstance(model, (ZhangECCV16, LarssonHypercolumn)):
            raise TypeError(f"Colorizer needs a ZhangECCV16 or LarssonHypercolumn; got {type(model).__name__}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}")
        self.model = model.eval() if device is None else model.to(device).eval()
        self.device = next(model.parameters()).device
        self.batch_size = batch_size
        self.options = self._resolve(options)
        self.working_size = model.config.input_size

    @classmethod
    def from_checkpoint(
        cls, path: str | Path, options: DecodeOptions = DecodeOptions(), *, device: str = "cpu", batch_size: int = 8
    ) -> Colorizer:
        """Loads a checkpoint written by ``save_checkpoint`` (safetensors, no pickle)."""
        model, _ = load_checkpoint(path, device=device)
        return cls(model, options, batch_size=batch_size)

    def _resolve(self, options: DecodeOptions) -> DecodeOptions:
        """Fills defaults from the model and checks the decoder belongs to its family."""
        if isinstance(self.model, ZhangECCV16):
            decoder = options.decoder or "annealed_mean"
            if decoder not in ZHANG_DECODERS:
                raise ValueError(f"decoder {decoder!r} is not a Zhang decoder; choose from {ZHANG_DECODERS}")
            temperature = self.model.config.temperature if options.temperature is None else options.temperature
            if not temperature >= 0:
                raise ValueError(f"temperature must be >= 0; got {temperature}")
            return replace(options, decoder=decoder, temperature=float(temperature))
        heads = self.model.config.heads
        head = options.head or next(name for name in _LARSSON_HEAD_PREFERENCE if name in heads)
        if head not in heads:
            raise ValueError(f"head {head!r} is not in this model's heads {heads}")
        decoder = options.decoder or ("median" if head == "hue_chroma" else "expectation")
        if decoder not in LARSSON_DECODERS:
            raise ValueError(f"decoder {decoder!r} is not a Larsson decoder; choose from {LARSSON_DECODERS}")
        if head == "lab_joint" and decoder not in ("expectation", "mode"):
            raise ValueError("the joint ab head decodes by expectation or mode only (a 2-D median is undefined)")
        return replace(options, decoder=decoder, head=head)

    # --- prediction at the working resolution -------------------------------------------------------------

    @torch.no_grad()
    def predict_ab(self, rgb: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) RGB in [0, 1] at the working size -> decoded raw ab (N, 2, h, w) on the network's grid."""
        rgb = rgb.to(self.device)
        if isinstance(self.model, ZhangECCV16):
            return self._predict_ab_zhang(rgb)
        return self._predict_ab_larsson(rgb)

    def _predict_ab_zhang(self, rgb: torch.Tensor) -> torch.Tensor:
        lightness, _ = split_lab(rgb_to_lab(rgb))
        logits = self.model(self.model.normalize_lightness(lightness))  # (N, Q, S/4, S/4)
        bins = self.model.ab_bins_tensor(dtype=logits.dtype, device=logits.device)
        if self.options.decoder == "mode":
            return zhang_decode.mode_ab(logits, bins)
        if self.options.decoder == "mean":
            return zhang_decode.mean_ab(logits, bins)
        return zhang_decode.annealed_mean_ab(logits, bins, temperature=self.options.temperature)

    def _generator(self) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.options.seed)

    def _decode_histogram(self, probs: torch.Tensor, centres: torch.Tensor) -> torch.Tensor:
        """(N, K, h, w) histograms -> (N, h, w) values by the chosen 1-D decoder."""
        decoder = self.options.decoder
        if decoder == "median":
            return larsson_decode.decode_median(probs, centres)
        if decoder == "mode":
            return larsson_decode.decode_mode(probs, centres)
        if decoder == "sample":
            return larsson_decode.decode_sample(probs, centres, self._generator())
        return larsson_decode.decode_expectation(probs, centres)

    def _predict_ab_larsson(self, rgb: torch.Tensor) -> torch.Tensor:
        config = self.model.config
        head = self.options.head
        grey = larsson_grey(rgb)  # (N, 1, S, S), what the network sees
        output = self.model(grey)[head]  # (N, K, S/stride, S/stride)
        parts = self.model.split_head(head, output)
        if head == "l2":
            return parts["ab"]
        probs = {name: torch.softmax(logits, dim=1) for name, logits in parts.items()}
        if head == "lab_joint":
            centres = gaussian_quantile_centres(config.joint_bins, config.lab_sigma, dtype=output.dtype)
            decode = larsson_decode.decode_joint_mode if self.options.decoder == "mode" else (
                larsson_decode.decode_joint_expectation)
            return decode(probs["ab"], centres.to(output.device))
        if head == "lab_marginal":
            centres = gaussian_quantile_centres(config.marginal_bins, config.lab_sigma, dtype=output.dtype)
            centres = centres.to(output.device)
            return torch.stack([self._decode_histogram(probs[axis], centres) for axis in ("a", "b")], dim=1)
        return self._hue_chroma_to_ab(probs["hue"], probs["chroma"], grey)

    def _hue_chroma_to_ab(self, hue_probs: torch.Tensor, chroma_probs: torch.Tensor, grey: torch.Tensor) -> torch.Tensor:
        """Hue/chroma histograms (N, K, h, w) + the input grey -> ab (N, 2, h, w), as the released decoder does."""
        centres = uniform_centres(chroma_probs.shape[1], dtype=chroma_probs.dtype, device=chroma_probs.device)
        chroma = self._decode_histogram(chroma_probs, centres)
        if self.options.decoder in ("mode", "sample"):
            hue_centres = uniform_centres(hue_probs.shape[1], dtype=hue_probs.dtype, device=hue_probs.device)
            hue = self._decode_histogram(hue_probs, hue_centres)
        else:
            hue, magnitude = larsson_decode.decode_hue_circular(hue_probs)
            if self.options.chromatic_fading:
                chroma = larsson_decode.chromatic_fading(chroma, magnitude, self.options.fading_eta)
        grey_small = _resize(grey, tuple(chroma.shape[-2:]), mode="area")  # (N, 1, h, w)
        rgb = hcl_to_rgb(torch.cat((hue.unsqueeze(1), chroma.unsqueeze(1), grey_small), dim=1))
        _, ab = split_lab(rgb_to_lab(match_grey(rgb, grey_small)))
        return ab

    # --- whole images ---------------------------------------------------------------------------------------

    @torch.no_grad()
    def colorize_tensors(self, images: list[torch.Tensor]) -> list[torch.Tensor]:
        """RGB tensors (3, H, W) in [0, 1] of any sizes -> colorized RGB tensors of the same sizes (on the CPU).

        The output's L equals the input's L (up to float rounding): only ab comes from the network.
        """
        results: list[torch.Tensor] = []
        size = (self.working_size, self.working_size)
        for start in range(0, len(images), self.batch_size):
            chunk = [image.to(self.device, torch.float32) for image in images[start : start + self.batch_size]]
            for image in chunk:
                if image.ndim != 3 or image.shape[0] != 3:
                    raise ValueError(f"images must be (3, H, W) RGB tensors; got {tuple(image.shape)}")
            working = torch.cat([_resize(image[None], size, mode="bicubic") for image in chunk]).clamp(0.0, 1.0)
            predicted_ab = self.predict_ab(working)  # (n, 2, h, w)
            for image, ab in zip(chunk, predicted_ab):
                lightness, _ = split_lab(rgb_to_lab(image[None]))  # (1, 1, H, W), the original L
                ab_full = _resize(ab[None], tuple(image.shape[-2:]), mode="bilinear")
                ab_full = fit_ab_to_gamut(lightness, ab_full)
                results.append(lab_to_rgb(join_lab(lightness, ab_full))[0].cpu())
        return results

    def colorize_images(self, images: list[Image.Image]) -> list[Image.Image]:
        """8-bit RGB PIL images of any size (decode other modes with ``io.images``) -> colorized RGB PIL images."""
        tensors = [image_to_tensor(image) for image in images]
        return [tensor_to_image(rgb) for rgb in self.colorize_tensors(tensors)]
