"""Checkpoints are untrusted input: everything in the file is checked before a byte of the network is allocated.

A checkpoint names its family and config, and ``load_checkpoint`` builds the network from them; a tampered
``width_multiplier`` would otherwise allocate many GB, a wrong field type would surface as a traceback deep in a
constructor, and NaN weights would silently give black images. :func:`inspect_checkpoint` therefore reads only
the safetensors header (parsed here, not mmapped), then checks in order:

1. the file: exists, is a file, has a well-formed header whose tensor byte ranges fit the file (truncation);
2. the metadata: valid JSON, ``format_version`` supported, family registered, config a dict of known fields of
   the declared types within sane bounds (:data:`SANE_BOUNDS`), accepted by the config class itself;
3. the tensors: names, shapes and dtypes equal those of the config's network, which is built on the ``meta``
   device (no memory), and its parameter count is at most :data:`MAX_PARAMETERS`.

:func:`check_finite` then runs on the loaded tensors. Every failure is one :class:`CheckpointError` line naming
the file and the reason; it is a UserError (exit 2 in the CLI) and a ValueError (for library callers).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from colorization.errors import UserError
from colorization.models.registry import family_classes, list_families

SUPPORTED_FORMAT_VERSIONS = (1,)
METADATA_KEY = "colorization"
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit on the JSON header
MAX_PARAMETERS = 2**31  # 8 GiB of float32; the paper networks have 32 M (Zhang) and 147 M (Larsson) values
# Sane bounds of config fields, by name, for any family: (low, high, low_inclusive). Values outside them are
# never needed by either paper and are how a tampered config asks for unbounded memory or time.
SANE_BOUNDS: dict[str, tuple[float, float, bool]] = {
    "width_multiplier": (0.0, 4.0, False),
    "input_size": (8, 4096, True),
    "hypercolumn_units": (1, 16384, True),
    "sampled_pixels": (1, 1_000_000, True),
    "dense_stride": (1, 32, True),
    "marginal_bins": (1, 1024, True),
    "joint_bins": (1, 256, True),
    "hue_chroma_bins": (1, 1024, True),
    "temperature": (0.0, 1000.0, False),
}
MAX_SEQUENCE_ITEMS = 4096  # e.g. ab_bins (313 or 322 in practice)

# safetensors dtype name -> bytes per element
_DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "F8_E4M3": 1, "F8_E5M2": 1,
    "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U64": 8, "U32": 4, "U16": 2, "U8": 1, "BOOL": 1,
}  # fmt: skip
_FLOAT_DTYPES = {"F64", "F32", "F16", "BF16"}
_TORCH_TO_SAFETENSORS = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}  # fmt: skip


class CheckpointError(UserError, ValueError):
    """A checkpoint file that cannot be trusted or read: one line naming the file and the reason."""


@dataclass(frozen=True)
class CheckedCheckpoint:
    """What :func:`inspect_checkpoint` vouches for: the metadata and the validated config of a checkpoint."""

    path: Path
    metadata: dict[str, Any]  # format_version, family, config (as stored), extra
    config: Any  # the family's config dataclass, built from metadata["config"]
    model_class: type[nn.Module]
    parameters: int  # values in the file's tensors


def _fail(path: Path, reason: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {path}: {reason}")


def read_header(path: str | Path) -> tuple[dict[str, dict], dict[str, str]]:
    """The tensor table and the string metadata of a safetensors file, checked against the file's size.

    Args:
        path: the file.

    Returns:
        (tensor name -> {"dtype", "shape", "data_offsets"}, the ``__metadata__`` dict of strings).

    Raises:
        CheckpointError: missing, a folder, unreadable, not safetensors, or truncated.
    """
    path = Path(path)
    if not path.exists():
        raise _fail(path, "not found")
    if path.is_dir():
        raise _fail(path, "is a folder, not a .safetensors file")
    unreadable = "not a readable safetensors checkpoint"
    try:
        with path.open("rb") as stream:
            size = path.stat().st_size
            prefix = stream.read(8)
            if len(prefix) < 8:
                raise _fail(path, f"{unreadable} (empty or truncated: {size} bytes)")
            (header_bytes,) = struct.unpack("<Q", prefix)
            if header_bytes > min(MAX_HEADER_BYTES, size - 8):
                raise _fail(path, f"{unreadable} (its header length {header_bytes} does not fit the file)")
            raw = stream.read(header_bytes)
    except OSError as error:
        raise _fail(path, f"cannot read ({error.strerror or error})") from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise _fail(path, f"{unreadable} (its header is not JSON)") from None
    if not isinstance(header, dict):
        raise _fail(path, f"{unreadable} (its header is not a JSON object)")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _fail(path, f"{unreadable} (__metadata__ is not an object)")
    data_bytes = size - 8 - header_bytes
    for name, entry in header.items():
        _check_entry(path, name, entry, data_bytes)
    return header, metadata


def _check_entry(path: Path, name: str, entry: Any, data_bytes: int) -> None:
    """One tensor's table entry: known dtype, non-negative shape, byte range inside the file and of its size."""
    if not (isinstance(entry, dict) and entry.get("dtype") in _DTYPE_BYTES and isinstance(entry.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in entry["shape"])
            and isinstance(entry.get("data_offsets"), list) and len(entry["data_offsets"]) == 2
            and all(isinstance(n, int) and n >= 0 for n in entry["data_offsets"])):
        raise _fail(path, f"tensor {name!r} has a malformed entry in the header")
    begin, end = entry["data_offsets"]
    if end > data_bytes:
        raise _fail(path, f"truncated: tensor {name!r} ends at byte {end} of {data_bytes} data bytes")
    if end - begin != math.prod(entry["shape"]) * _DTYPE_BYTES[entry["dtype"]]:
        raise _fail(path, f"tensor {name!r}: its byte range does not match its shape and dtype")


def _matches(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a config field's type (tuples arrive as lists; ints are accepted as floats)."""
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple and isinstance(value, (list, tuple)):
        if len(value) > MAX_SEQUENCE_ITEMS:
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_matches(item, args[0]) for item in value)
        return len(value) == len(args) and all(_matches(item, arg) for item, arg in zip(value, args, strict=True))
    return False


def _as_tuples(value: Any) -> Any:
    """JSON lists back to the tuples the frozen configs hold (equality must not depend on the round trip)."""
    return tuple(_as_tuples(item) for item in value) if isinstance(value, list) else value


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) if typing.get_origin(hint) is None else str(hint).replace("typing.", "")


def _check_config(path: Path, family: str, config_class: type, config: Any) -> Any:
    """The family's config object built from ``config`` after checking fields, types and bounds."""
    if not isinstance(config, dict):
        raise _fail(path, f"config is a {type(config).__name__}, not an object")
    hints = typing.get_type_hints(config_class)
    known = {field.name for field in dataclasses.fields(config_class)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise _fail(path, f"config of family {family!r} has unknown fields {unknown}")
    for name, value in config.items():
        if not _matches(value, hints[name]):
            shown = repr(value) if len(repr(value)) < 60 else f"a {type(value).__name__}"
            raise _fail(path, f"config field {name} must be {_type_name(hints[name])}; got {shown}")
        if name in SANE_BOUNDS:
            low, high, low_inclusive = SANE_BOUNDS[name]
            above_low = value >= low if low_inclusive else value > low
            if not (above_low and value <= high and math.isfinite(value)):
                interval = f"{'[' if low_inclusive else '('}{low}, {high}]"
                raise _fail(path, f"config field {name} = {value} is outside the sane range {interval}")
    try:
        return config_class(**{name: _as_tuples(value) for name, value in config.items()})
    except (TypeError, ValueError) as error:
        raise _fail(path, f"invalid config: {error}") from None


def _check_tensors(path: Path, header: dict[str, dict], model_class: type[nn.Module], config: Any) -> int:
    """Checks the file's tensors against the config's network (built on the meta device); returns their count."""
    with torch.device("meta"):
        expected = model_class(config).state_dict()
    parameters = sum(tensor.numel() for tensor in expected.values())
    if parameters > MAX_PARAMETERS:
        raise _fail(path, f"its config asks for {parameters:,} values (at most {MAX_PARAMETERS:,} are accepted)")
    missing, unexpected = sorted(expected.keys() - header.keys()), sorted(header.keys() - expected.keys())
    if missing or unexpected:
        detail = "; ".join(
            f"{label} {names[:3]}{' ...' if len(names) > 3 else ''}"
            for label, names in (("missing tensors", missing), ("unexpected tensors", unexpected))
            if names
        )
        raise _fail(path, f"its tensors do not match its config: {detail}")
    for name, tensor in expected.items():
        entry = header[name]
        if list(entry["shape"]) != list(tensor.shape):
            raise _fail(path, f"tensor {name!r} has shape {entry['shape']}, its config needs {list(tensor.shape)}")
        wanted = _TORCH_TO_SAFETENSORS.get(tensor.dtype)
        fits = entry["dtype"] in _FLOAT_DTYPES if tensor.is_floating_point() else entry["dtype"] == wanted
        if not fits:
            raise _fail(path, f"tensor {name!r} has dtype {entry['dtype']}, its config needs {wanted}")
    return parameters


def inspect_checkpoint(path: str | Path) -> CheckedCheckpoint:
    """Validates a checkpoint without loading its tensors or allocating its network (see the module doc).

    Args:
        path: a ``.safetensors`` checkpoint written by ``save_checkpoint``.

    Returns:
        The checked metadata, config and model class.

    Raises:
        CheckpointError: the first problem found, as one line naming the file.
    """
    path = Path(path)
    header, strings = read_header(path)
    raw = strings.get(METADATA_KEY)
    if raw is None:
        raise _fail(path, "a safetensors file but not a colorization checkpoint (no metadata)")
    try:
        metadata = json.loads(raw)
    except (TypeError, json.JSONDecodeError):
        raise _fail(path, "its metadata is not valid JSON") from None
    if not isinstance(metadata, dict):
        raise _fail(path, "its metadata is not a JSON object")
    version = metadata.get("format_version")
    if version not in SUPPORTED_FORMAT_VERSIONS or isinstance(version, bool):
        supported = ", ".join(map(str, SUPPORTED_FORMAT_VERSIONS))
        raise _fail(path, f"format_version {version!r} is not supported (this version reads {supported})")
    family = metadata.get("family")
    classes = family_classes(family) if isinstance(family, str) else None
    if classes is None:
        raise _fail(path, f"unknown model family {family!r} (known: {', '.join(list_families())})")
    if not isinstance(metadata.get("extra", {}), dict):
        raise _fail(path, "its metadata field extra is not an object")
    config_class, model_class = classes
    config = _check_config(path, family, config_class, metadata.get("config"))
    parameters = _check_tensors(path, header, model_class, config)
    return CheckedCheckpoint(path, metadata, config, model_class, parameters)


def check_finite(path: str | Path, tensors: dict[str, torch.Tensor]) -> None:
    """CheckpointError naming the first tensor holding NaN or infinite values (they decode to black images).

    Args:
        path: the file, for the message.
        tensors: the loaded tensors.
    """
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise _fail(Path(path), f"tensor {name!r} holds NaN or infinite values")
