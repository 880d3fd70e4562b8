"""Larsson et al. (ECCV 2016) behind the family interface: grey in, per-pixel histograms out (hypercolumns),
KL losses summed over heads, expectation / median / mode / sample decoding with circular hue and chromatic
fading (Sec. 3.2-3.4)."""

from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from colorization.color import larsson_decode
from colorization.color.hue_chroma import hcl_to_rgb, larsson_grey, match_grey
from colorization.color.lab import lab_to_rgb, rgb_to_lab, split_lab
from colorization.color.larsson_bins import gaussian_quantile_centres, uniform_centres
from colorization.families.base import DecodeOptions, FamilyAdapter, LossInputs, LossTerms, Outputs, register_adapter
from colorization.models.larsson_hypercolumn import AUTO_DECODER, DECODERS, LarssonHypercolumn
from colorization.training.larsson_step import larsson_loss_terms

LARSSON_DECODERS = DECODERS
_HEAD_PREFERENCE = ("hue_chroma", "lab_marginal", "lab_joint", "l2")
_GREY = "grey"  # the network's input, kept with the outputs: the hue/chroma decoder needs it


class LarssonAdapter(FamilyAdapter):
    family = LarssonHypercolumn.family
    model_class = LarssonHypercolumn
    decoders = LARSSON_DECODERS

    def calibrate(self, model: nn.Module, lab: torch.Tensor) -> dict[str, float]:
        """Sets the per-layer hypercolumn balancing (unit second moment, Sec. 3.4) from training images."""
        grey = larsson_grey(lab_to_rgb(lab).clamp(0.0, 1.0))
        scales = self.core(model).estimate_hypercolumn_scales(grey)
        return {"hypercolumn_scale_min": float(scales.min()), "hypercolumn_scale_max": float(scales.max())}

    def loss_terms(self, model: nn.Module, lab: torch.Tensor, inputs: LossInputs) -> LossTerms:
        terms = larsson_loss_terms(model, lab, generator=inputs.generator, hue_weight=inputs.hue_weight)
        return LossTerms(
            loss=terms.loss,
            logged={f"loss_{head}": value.detach() for head, value in terms.head_losses.items()},
            colourful_images=terms.colourful_images,
        )

    def resolve_options(self, model: nn.Module, options: DecodeOptions) -> DecodeOptions:
        heads = self.core(model).config.heads
        head = options.head or next(name for name in _HEAD_PREFERENCE if name in heads)
        if head not in heads:
            raise ValueError(f"head {head!r} is not in this model's heads {heads}")
        stored = self.core(model).config.default_decoder
        paper = "median" if head == "hue_chroma" else "expectation"
        decoder = options.decoder or (paper if stored == AUTO_DECODER else stored)
        if decoder not in LARSSON_DECODERS:
            raise ValueError(f"decoder {decoder!r} is not a Larsson decoder; choose from {LARSSON_DECODERS}")
        if head == "lab_joint" and decoder not in ("expectation", "mode"):
            raise ValueError("the joint ab head decodes by expectation or mode only (a 2-D median is undefined)")
        if not 0 < options.fading_eta < float("inf"):
            raise ValueError(f"fading_eta must be a positive finite number; got {options.fading_eta}")
        return replace(options, decoder=decoder, head=head)

    def predict(self, model: nn.Module, rgb: torch.Tensor) -> Outputs:
        grey = larsson_grey(rgb)  # (N, 1, S, S), what the network sees
        outputs = dict(model(grey))  # {head: (N, K, S/stride, S/stride)}
        outputs[_GREY] = grey
        return outputs

    def decode(self, model: nn.Module, outputs: Outputs, options: DecodeOptions) -> torch.Tensor:
        core = self.core(model)
        config = core.config
        head = options.head
        output = outputs[head].float()
        parts = core.split_head(head, output)
        if head == "l2":
            return parts["ab"]
        probs = {name: torch.softmax(logits, dim=1) for name, logits in parts.items()}
        if head == "lab_joint":
            centres = gaussian_quantile_centres(config.joint_bins, config.lab_sigma, dtype=output.dtype)
            decode = (
                larsson_decode.decode_joint_mode if options.decoder == "mode" else larsson_decode.decode_joint_expectation
            )
            return decode(probs["ab"], centres.to(output.device))
        if head == "lab_marginal":
            centres = gaussian_quantile_centres(config.marginal_bins, config.lab_sigma, dtype=output.dtype)
            centres = centres.to(output.device)
            return torch.stack([_decode_histogram(probs[axis], centres, options) for axis in ("a", "b")], dim=1)
        return _hue_chroma_to_ab(probs["hue"], probs["chroma"], outputs[_GREY].float(), options)


def _generator(options: DecodeOptions, device: torch.device) -> torch.Generator:
    return torch.Generator(device=device).manual_seed(options.seed)


def _decode_histogram(probs: torch.Tensor, centres: torch.Tensor, options: DecodeOptions) -> torch.Tensor:
    """(N, K, h, w) histograms -> (N, h, w) values by the chosen 1-D decoder."""
    if options.decoder == "median":
        return larsson_decode.decode_median(probs, centres)
    if options.decoder == "mode":
        return larsson_decode.decode_mode(probs, centres)
    if options.decoder == "sample":
        return larsson_decode.decode_sample(probs, centres, _generator(options, probs.device))
    return larsson_decode.decode_expectation(probs, centres)


def _hue_chroma_to_ab(
    hue_probs: torch.Tensor, chroma_probs: torch.Tensor, grey: torch.Tensor, options: DecodeOptions
) -> torch.Tensor:
    """Hue/chroma histograms (N, K, h, w) + the input grey -> ab (N, 2, h, w), as the released decoder does."""
    centres = uniform_centres(chroma_probs.shape[1], dtype=chroma_probs.dtype, device=chroma_probs.device)
    chroma = _decode_histogram(chroma_probs, centres, options)
    if options.decoder in ("mode", "sample"):
        hue_centres = uniform_centres(hue_probs.shape[1], dtype=hue_probs.dtype, device=hue_probs.device)
        hue = _decode_histogram(hue_probs, hue_centres, options)
    else:
        hue, magnitude = larsson_decode.decode_hue_circular(hue_probs)
        if options.chromatic_fading:
            chroma = larsson_decode.chromatic_fading(chroma, magnitude, options.fading_eta)
    grey_small = grey if grey.shape[-2:] == chroma.shape[-2:] else F.interpolate(grey, size=chroma.shape[-2:], mode="area")
    rgb = hcl_to_rgb(torch.cat((hue.unsqueeze(1), chroma.unsqueeze(1), grey_small), dim=1))
    _, ab = split_lab(rgb_to_lab(match_grey(rgb, grey_small)))
    return ab


LARSSON_ADAPTER = register_adapter(LarssonAdapter())
