"""What an evaluation scores per model: a list of named decode options, all decoded from ONE network pass.

The default sweep is derived from the family adapter, never from the model's class:

* every deterministic decoder of the family (``sample`` is left out: its scores would depend on the seed);
* the family's default decoder, when its resolved options carry a temperature (Zhang's annealed mean), at each
  of :data:`DEFAULT_TEMPERATURES` plus the model's own default T;
* chromatic fading on and off for the decoders it changes (Larsson's hue/chroma head decoded by median or
  expectation, where the hue comes from the circular mean).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from colorization.color.constants import ANNEALED_MEAN_TEMPERATURE
from colorization.families import DecodeOptions

# Zhang et al. Fig. 3 / issue 8: T from near-mode to the plain mean, with the paper's 0.38 among them.
DEFAULT_TEMPERATURES = (0.1, 0.2, ANNEALED_MEAN_TEMPERATURE, 0.6, 1.0)
STOCHASTIC_DECODERS = ("sample",)  # scores would depend on the seed; sweep them only when asked for
# Decoders whose result changes with chromatic fading: the hue is the circular mean (families/larsson.py).
_FADING_DECODERS = ("median", "expectation")
_FADING_HEAD = "hue_chroma"


@dataclass(frozen=True)
class SweepEntry:
    """One scored row of a model: a label for tables and the resolved decode options.

    Attributes:
        label: e.g. ``annealed_mean T=0.38``, ``median, no fading``.
        options: resolved :class:`DecodeOptions` (defaults filled in by the adapter).
    """

    label: str
    options: DecodeOptions

    @property
    def temperature(self) -> float | None:
        """The annealed-mean T of this row, or None when the decoder has no temperature."""
        return self.options.temperature if self.options.decoder == "annealed_mean" else None


def label_of(options: DecodeOptions) -> str:
    """A short, unique label of resolved options (decoder, T, head, fading as they matter)."""
    parts = [options.decoder or "default"]
    if options.decoder == "annealed_mean" and options.temperature is not None:
        parts[0] += f" T={options.temperature:g}"
    if options.head not in (None, _FADING_HEAD):
        parts.append(f"head={options.head}")
    if _fading_matters(options):
        parts.append("fading" if options.chromatic_fading else "no fading")
    if options.decoder in STOCHASTIC_DECODERS:
        parts.append(f"seed={options.seed}")
    return ", ".join(parts)


def _fading_matters(options: DecodeOptions) -> bool:
    return options.head == _FADING_HEAD and options.decoder in _FADING_DECODERS


def default_sweep(adapter, model, temperatures: tuple[float, ...] = DEFAULT_TEMPERATURES) -> list[SweepEntry]:
    """The default rows for ``model`` (see the module docstring), in a stable order.

    Args:
        adapter: the model's family adapter (``adapter_for(model)``).
        model: the network (its config gives the default T and the heads).
        temperatures: annealed-mean temperatures to sweep; the model's own default T is always added.

    Returns:
        Distinct entries; the first one is the model's default decoding.
    """
    default = adapter.resolve_options(model, DecodeOptions())
    candidates: list[DecodeOptions] = [default]
    if default.temperature is not None and default.decoder == "annealed_mean":
        candidates += [replace(default, temperature=float(t)) for t in sorted({*temperatures, default.temperature})]
    for decoder in adapter.decoders:
        if decoder in STOCHASTIC_DECODERS:
            continue
        try:
            candidates.append(adapter.resolve_options(model, replace(default, decoder=decoder)))
        except ValueError:  # e.g. a decoder the model's head cannot use
            continue
    candidates += [replace(options, chromatic_fading=False) for options in candidates if _fading_matters(options)]
    return dedupe(candidates)


def dedupe(candidates: list[DecodeOptions]) -> list[SweepEntry]:
    """Entries for distinct labels, first occurrence kept (equal labels decode identically)."""
    entries: dict[str, SweepEntry] = {}
    for options in candidates:
        entries.setdefault(label_of(options), SweepEntry(label_of(options), options))
    return list(entries.values())


def custom_sweep(
    adapter,
    model,
    decoders: tuple[str, ...] | None,
    temperatures: tuple[float, ...] | None,
    fading: tuple[bool, ...] = (True,),
) -> list[SweepEntry]:
    """Rows chosen by the user; decoders the family does not have are skipped (ValueError when none is left).

    Args:
        adapter: the model's family adapter.
        model: the network.
        decoders: decoder names; None takes the default sweep's decoders.
        temperatures: annealed-mean temperatures; None keeps the default list.
        fading: chromatic fading values to score where fading matters (with ``decoders`` or ``temperatures``).

    Returns:
        Distinct entries.
    """
    if decoders is None and temperatures is None:
        return default_sweep(adapter, model)
    temperatures = DEFAULT_TEMPERATURES if temperatures is None else temperatures
    default = adapter.resolve_options(model, DecodeOptions())
    wanted = decoders or tuple(d for d in adapter.decoders if d not in STOCHASTIC_DECODERS)
    candidates: list[DecodeOptions] = []
    for decoder in wanted:
        if decoder not in adapter.decoders:
            continue
        base = adapter.resolve_options(model, replace(default, decoder=decoder))
        variants = [replace(base, temperature=float(t)) for t in temperatures] if decoder == "annealed_mean" else [base]
        for options in variants:
            if _fading_matters(options):
                candidates += [replace(options, chromatic_fading=value) for value in fading]
            else:
                candidates.append(options)
    if not candidates:
        raise ValueError(f"none of the decoders {list(wanted)} belongs to this model; it has {list(adapter.decoders)}")
    return dedupe(candidates)
