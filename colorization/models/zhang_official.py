"""Officially released Zhang et al. ECCV16 weights -> a :class:`ZhangECCV16` (pure: no file I/O).

The authors' PyTorch port (richzhang/colorization, ``colorizers/eccv16.py``; file
``colorization_release_v2-9b330a0b.pth``) stores the state dict of ``ECCVGenerator``: the blocks ``model1`` ..
``model8``, whose keys and shapes our network reproduces at width 1, plus ``model_out.weight`` (2, Q, 1, 1), a
bias-free 1x1 convolution holding the bin centres divided by 110. Here the centres come from the bins file
instead (they are the config's ``ab_bins``), and ``model_out`` only serves to check that the file's bin order is
the order of the logits: ``model_out.weight * ab_scale`` must equal ``bins.T``.

Accepted variations: a ``module.`` prefix on every key (a state dict saved from ``DataParallel``), and missing
``num_batches_tracked`` counters (whether the release carries them is unknown; shared/reference).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from colorization.color.ab_bins import validate_ab_bins
from colorization.color.constants import ANNEALED_MEAN_TEMPERATURE
from colorization.models.zhang_eccv16 import ZhangConfig, ZhangECCV16

__all__ = ["BIN_CENTRES_KEY", "OfficialWeightsError", "zhang_from_official_state_dict"]

BIN_CENTRES_KEY = "model_out.weight"  # (2, Q, 1, 1): bin centres / ab_scale, the release's decoding conv
_LOGITS_BIAS_KEY = "model8.6.bias"  # (Q,): its length tells how many bins the weights predict
_DATA_PARALLEL_PREFIX = "module."
_OPTIONAL_SUFFIX = ".num_batches_tracked"  # BatchNorm counters: unused in eval, absent from older saves
_BIN_TOLERANCE = 1e-3  # relative to the largest |bin coordinate|: float32 rounding of x / 110 is ~1e-7
_MAX_LISTED = 8  # keys named per problem kind in an error message


class OfficialWeightsError(ValueError):
    """The given weights or bins are not the official release's layout; the message says what differs."""


def _strip_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    keys = list(state_dict)
    if keys and all(key.startswith(_DATA_PARALLEL_PREFIX) for key in keys):
        return {key[len(_DATA_PARALLEL_PREFIX) :]: value for key, value in state_dict.items()}
    return dict(state_dict)


def _listing(title: str, items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
    return f"{title}: {shown}{more}"


def _check_layout(given: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size]) -> None:
    """Raises one :class:`OfficialWeightsError` naming every missing, unexpected and mis-shaped key."""
    non_tensors = sorted(key for key, value in given.items() if not isinstance(value, torch.Tensor))
    missing = sorted(key for key in expected if key not in given and not key.endswith(_OPTIONAL_SUFFIX))
    unexpected = sorted(key for key in given if key not in expected)
    mismatched = sorted(
        f"{key} {list(given[key].shape)} (expected {list(shape)})"
        for key, shape in expected.items()
        if isinstance(given.get(key), torch.Tensor) and given[key].shape != shape
    )
    problems = []
    if non_tensors:
        problems.append(_listing("not tensors", non_tensors))
    if missing:
        problems.append(_listing("missing keys", missing))
    if unexpected:
        problems.append(_listing("unexpected keys", unexpected))
    if mismatched:
        problems.append(_listing("wrong shapes", mismatched))
    if problems:
        raise OfficialWeightsError(
            "not the layout of the official Zhang et al. ECCV16 release: " + "; ".join(problems)
        )
    non_finite = sorted(
        key for key, value in given.items() if value.is_floating_point() and not torch.isfinite(value).all()
    )
    if non_finite:
        raise OfficialWeightsError(_listing("weights contain NaN or infinity", non_finite))


def _check_bin_order(bin_centres_weight: torch.Tensor, bins: torch.Tensor, ab_scale: float) -> None:
    """``model_out.weight`` (2, Q, 1, 1) times ``ab_scale`` must be ``bins.T`` (2, Q), in the same order."""
    released = bin_centres_weight.detach().to(torch.float64).reshape(2, -1) * ab_scale  # (2, Q) raw ab
    expected = bins.to(torch.float64).T  # (2, Q)
    error = (released - expected).abs()  # (2, Q)
    worst = float(error.max())
    if worst > _BIN_TOLERANCE * float(expected.abs().max()):
        bin_index = int(error.amax(dim=0).argmax())
        raise OfficialWeightsError(
            f"the bins file does not match the weights' bin order: {BIN_CENTRES_KEY} * {ab_scale:g} differs "
            f"from bins.T by up to {worst:.3g} ab units (first at bin {bin_index}: weights say "
            f"{[round(v, 2) for v in released[:, bin_index].tolist()]}, bins file says "
            f"{[round(v, 2) for v in expected[:, bin_index].tolist()]}); use the pts_in_hull.npy released with "
            "these weights, in its original order"
        )


def zhang_from_official_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    bins: torch.Tensor,
    *,
    temperature: float = ANNEALED_MEAN_TEMPERATURE,
) -> ZhangECCV16:
    """Builds a full-width :class:`ZhangECCV16` holding the official weights.

    Args:
        state_dict: the release's tensors (``ECCVGenerator.state_dict()``), optionally ``module.``-prefixed,
            with or without ``num_batches_tracked``.
        bins: (Q, 2) raw ab bin centres in the order of the release's logits (``pts_in_hull.npy``).
        temperature: the config's default annealed-mean T. The Caffe deploy net scaled logits by 1/0.38 before
            its softmax; whether the port folded that into these weights is unknown (paper-facts.md), so the
            caller chooses.

    Returns:
        The network in eval mode, ``config.ab_bins`` = ``bins`` in the given order; ``model_out`` is dropped
        (decode with ``colorization.color.zhang_decode``).

    Raises:
        OfficialWeightsError: keys or shapes differ from the release, or ``model_out`` disagrees with ``bins``.
    """
    bins = validate_ab_bins(bins)
    config = ZhangConfig(
        ab_bins=tuple((float(a), float(b)) for a, b in bins.tolist()),
        width_multiplier=1.0,
        temperature=temperature,
    )
    with torch.device("meta"):  # shapes only, for now: no memory, no wasted initialization
        model = ZhangECCV16(config)
    expected = {key: value.shape for key, value in model.state_dict().items()}
    expected[BIN_CENTRES_KEY] = torch.Size([2, config.num_bins, 1, 1])

    given = _strip_prefix(state_dict)
    logits_bias = given.get(_LOGITS_BIAS_KEY)
    if isinstance(logits_bias, torch.Tensor) and logits_bias.ndim == 1 and len(logits_bias) != config.num_bins:
        raise OfficialWeightsError(
            f"the weights predict {len(logits_bias)} bins ({_LOGITS_BIAS_KEY}) but the bins file holds "
            f"{config.num_bins}; use the pts_in_hull.npy released with these weights"
        )
    _check_layout(given, expected)
    _check_bin_order(given[BIN_CENTRES_KEY], bins, config.ab_scale)

    weights = {key: value for key, value in given.items() if key != BIN_CENTRES_KEY}
    for key in expected:
        if key not in weights and key != BIN_CENTRES_KEY:  # only optional counters can be absent here
            weights[key] = torch.zeros((), dtype=torch.long)
    # Every tensor is overwritten by the strict load below, so uninitialized storage is enough.
    model = model.to_empty(device="cpu")
    model.load_state_dict(weights, strict=True)
    return model.eval()
