"""One interface for both model families: what training, the Colorizer, evaluation and serving call.

Each family (``models/registry.py`` names it) registers one :class:`FamilyAdapter` that knows its network's
input, loss and decoders. Callers never ask which family a model is (no ``isinstance``): they ask
:func:`adapter_for` and call the same methods. Outputs of :meth:`FamilyAdapter.predict` are dicts of tensors
with the batch first, so callers can slice them per image, cache them (serving re-decodes at a new
temperature without running the network) and decode them many times (evaluation sweeps).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar

import torch
from torch import nn

from colorization.color.constants import (
    LARSSON_CHROMATIC_FADING_ETA,
    LARSSON_HUE_WEIGHT,
    SOFT_ENCODE_NEIGHBOURS,
    SOFT_ENCODE_SIGMA,
)
from colorization.models.registry import family_of
from colorization.training.unwrap import unwrap_model

Outputs = dict[str, torch.Tensor]  # network outputs on its own grid, each (N, ...) with the batch first


@dataclass(frozen=True)
class DecodeOptions:
    """How predicted distributions become colours.

    Attributes:
        decoder: a decoder of the model's family (``adapter.decoders``); None picks the paper's default
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


@dataclass(frozen=True)
class LossInputs:
    """Everything a family's loss may need besides the batch; each family reads its own fields.

    Attributes:
        class_weights: (Q,) rebalancing weight per ab bin (Zhang), or None for the unweighted loss.
        generator: draws Larsson's sampled pixels; None uses the global generator.
        soft_encode_neighbours: Zhang's soft-encoding k.
        soft_encode_sigma: Zhang's soft-encoding kernel, ab units.
        hue_weight: Larsson's lambda_H.
    """

    class_weights: torch.Tensor | None = None
    generator: torch.Generator | None = None
    soft_encode_neighbours: int = SOFT_ENCODE_NEIGHBOURS
    soft_encode_sigma: float = SOFT_ENCODE_SIGMA
    hue_weight: float = LARSSON_HUE_WEIGHT


@dataclass(frozen=True)
class LossTerms:
    """The losses of one batch.

    Attributes:
        loss: scalar to backpropagate.
        logged: detached scalars worth logging besides ``loss`` (e.g. ``loss_unweighted``, per-head losses).
        colourful_images: images of the batch that entered the loss (colourless ones are left out).
    """

    loss: torch.Tensor
    logged: dict[str, torch.Tensor] = field(default_factory=dict)
    colourful_images: int = 0


class FamilyAdapter(ABC):
    """The family-specific part of training and inference, behind one interface."""

    family: ClassVar[str]
    model_class: ClassVar[type[nn.Module]]
    decoders: ClassVar[tuple[str, ...]]

    def core(self, model: nn.Module) -> nn.Module:
        """The network inside wrappers (DDP, MixedPrecision)."""
        return unwrap_model(model, self.model_class)

    def prior_bins(self, model: nn.Module) -> torch.Tensor | None:
        """(Q, 2) ab bins a rebalancing prior must be computed on, or None when the loss uses no prior."""
        return None

    def calibrate(self, model: nn.Module, lab: torch.Tensor) -> dict[str, float]:
        """Data-dependent set-up before training starts (e.g. Larsson's hypercolumn balancing); default none.

        Args:
            model: the network (possibly wrapped); changed in place.
            lab: (N, 3, H, W) raw Lab of training images.

        Returns:
            Facts worth logging (empty when nothing was done).
        """
        return {}

    @abstractmethod
    def loss_terms(self, model: nn.Module, lab: torch.Tensor, inputs: LossInputs) -> LossTerms:
        """Forward pass and loss of one batch of raw Lab (N, 3, H, W), H and W multiples of 8."""

    @abstractmethod
    def resolve_options(self, model: nn.Module, options: DecodeOptions) -> DecodeOptions:
        """Fills the family's defaults into ``options``; ValueError when they do not fit this model."""

    @abstractmethod
    def predict(self, model: nn.Module, rgb: torch.Tensor) -> Outputs:
        """(N, 3, S, S) RGB in [0, 1] at the working size -> the network's outputs (no decoding)."""

    @abstractmethod
    def decode(self, model: nn.Module, outputs: Outputs, options: DecodeOptions) -> torch.Tensor:
        """Outputs of :meth:`predict` -> raw ab (N, 2, h, w) on the network's grid; ``options`` resolved."""


_ADAPTERS: dict[str, FamilyAdapter] = {}


def register_adapter(adapter: FamilyAdapter) -> FamilyAdapter:
    """Declares the adapter of ``adapter.family`` (one per family)."""
    if adapter.family in _ADAPTERS:
        raise ValueError(f"an adapter for family {adapter.family!r} is already registered")
    _ADAPTERS[adapter.family] = adapter
    return adapter


def adapter_for(model_or_family: nn.Module | str) -> FamilyAdapter:
    """The adapter of a family name or of a model (wrappers such as DDP or MixedPrecision are looked through)."""
    if isinstance(model_or_family, str):
        family = model_or_family
    else:
        core = model_or_family
        while isinstance(getattr(core, "module", None), nn.Module):
            core = core.module
        family = family_of(core)
    if family not in _ADAPTERS:
        raise KeyError(f"no adapter registered for model family {family!r}; known: {sorted(_ADAPTERS)}")
    return _ADAPTERS[family]


def registered_families() -> list[str]:
    """Families that have an adapter, sorted."""
    return sorted(_ADAPTERS)
