"""Default sweeps come from the family adapter: T grid for the annealed mean, fading on/off where it matters."""

from __future__ import annotations

import pytest

from colorization.color.constants import ANNEALED_MEAN_TEMPERATURE
from colorization.evaluation.sweep import DEFAULT_TEMPERATURES, custom_sweep, default_sweep
from colorization.families import adapter_for
from tests.evaluation.conftest import tiny_larsson, tiny_zhang


def test_zhang_default_sweep_has_the_temperature_grid_mean_and_mode():
    model = tiny_zhang()
    entries = default_sweep(adapter_for(model), model)
    assert entries[0].options.decoder == "annealed_mean" and entries[0].temperature == ANNEALED_MEAN_TEMPERATURE
    temperatures = sorted(e.temperature for e in entries if e.temperature is not None)
    assert temperatures == sorted(DEFAULT_TEMPERATURES)
    assert {e.options.decoder for e in entries} == {"annealed_mean", "mean", "mode"}
    assert len({e.label for e in entries}) == len(entries) == len(DEFAULT_TEMPERATURES) + 2


def test_larsson_default_sweep_has_fading_on_and_off_and_no_sampling():
    model = tiny_larsson()
    labels = [e.label for e in default_sweep(adapter_for(model), model)]
    assert labels[0] == "median, fading"
    assert {"median, no fading", "expectation, fading", "expectation, no fading", "mode"} <= set(labels)
    assert not any("sample" in label for label in labels)
    assert all(e.temperature is None for e in default_sweep(adapter_for(model), model))


def test_custom_sweep_skips_foreign_decoders_and_refuses_when_none_fit():
    model = tiny_zhang()
    entries = custom_sweep(adapter_for(model), model, ("annealed_mean", "median"), (0.5,))
    assert [e.label for e in entries] == ["annealed_mean T=0.5"]
    with pytest.raises(ValueError, match="none of the decoders"):
        custom_sweep(adapter_for(model), model, ("median",), None)
