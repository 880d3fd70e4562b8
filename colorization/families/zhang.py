"""Zhang et al. (ECCV 2016) behind the family interface: L in, bin logits out, rebalanced cross-entropy,
annealed-mean / mean / mode decoding (Sec. 2.1-2.3)."""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn

from colorization.color import zhang_decode
from colorization.color.lab import rgb_to_lab, split_lab
from colorization.families.base import DecodeOptions, FamilyAdapter, LossInputs, LossTerms, Outputs, register_adapter
from colorization.models.zhang_eccv16 import ZhangECCV16
from colorization.training.zhang_step import zhang_loss_terms

ZHANG_DECODERS = ("annealed_mean", "mean", "mode")


class ZhangAdapter(FamilyAdapter):
    family = ZhangECCV16.family
    model_class = ZhangECCV16
    decoders = ZHANG_DECODERS

    def prior_bins(self, model: nn.Module) -> torch.Tensor:
        return self.core(model).ab_bins_tensor(dtype=torch.float64)

    def loss_terms(self, model: nn.Module, lab: torch.Tensor, inputs: LossInputs) -> LossTerms:
        terms = zhang_loss_terms(
            model,
            lab,
            class_weights=inputs.class_weights,
            neighbours=inputs.soft_encode_neighbours,
            sigma=inputs.soft_encode_sigma,
        )
        return LossTerms(
            loss=terms.loss,
            logged={"loss_unweighted": terms.loss_unweighted},
            colourful_images=terms.colourful_images,
        )

    def resolve_options(self, model: nn.Module, options: DecodeOptions) -> DecodeOptions:
        decoder = options.decoder or "annealed_mean"
        if decoder not in ZHANG_DECODERS:
            raise ValueError(f"decoder {decoder!r} is not a Zhang decoder; choose from {ZHANG_DECODERS}")
        temperature = self.core(model).config.temperature if options.temperature is None else options.temperature
        if not (isinstance(temperature, (int, float)) and 0 <= temperature < float("inf")):
            raise ValueError(f"temperature must be a finite number >= 0 (0 is the mode); got {temperature}")
        return replace(options, decoder=decoder, temperature=float(temperature))

    def predict(self, model: nn.Module, rgb: torch.Tensor) -> Outputs:
        core = self.core(model)
        lightness, _ = split_lab(rgb_to_lab(rgb))  # (N, 1, S, S) raw L
        return {"logits": model(core.normalize_lightness(lightness))}  # (N, Q, S/4, S/4)

    def decode(self, model: nn.Module, outputs: Outputs, options: DecodeOptions) -> torch.Tensor:
        logits = outputs["logits"].float()
        bins = self.core(model).ab_bins_tensor(dtype=logits.dtype, device=logits.device)
        if options.decoder == "mode":
            return zhang_decode.mode_ab(logits, bins)
        if options.decoder == "mean":
            return zhang_decode.mean_ab(logits, bins)
        return zhang_decode.annealed_mean_ab(logits, bins, temperature=options.temperature)


ZHANG_ADAPTER = register_adapter(ZhangAdapter())
