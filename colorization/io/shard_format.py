"""The version and layout of the L / ab columns of Lab shards, and reading them back (pyarrow + numpy only).

The readers' half of the shard format (``colorization/io/shards.py`` documents the whole row schema and writes
shards): what Ray Data tasks, the prior and the evaluation need to check a shard and turn its quantized image
columns into numpy, without importing torch in every worker process.

* Schema version 2 (written since December 2026): ``L`` is ``fixed_size_binary(S * S)`` and ``ab`` is
  ``fixed_size_binary(2 * S * S)``, each value the C-order bytes of one image's uint8 (1, S, S) / int8 (2, S, S)
  array. :func:`lab_column_to_numpy` views them in place (``np.frombuffer`` on the Arrow data buffer).
* Schema version 1: ``arrow.fixed_shape_tensor`` columns of the same dtypes and shapes (Parquet LIST<INT32>).
  Every reader still accepts them, so existing shard sets keep working.
* Anything else (an unknown ``schema_version`` in the schema metadata, L / ab of another type or size) is refused
  with one line naming the reason (:func:`shard_schema_problem`, :func:`shard_file_problem`); readers given a
  file name raise ``UserError("<file>: <reason>")`` (:func:`check_shard_files`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colorization.errors import UserError

__all__ = [
    "SCHEMA_VERSION",
    "READABLE_SCHEMA_VERSIONS",
    "LAB_COLUMNS",
    "tensor_column_to_numpy",
    "lab_column_to_numpy",
    "shard_schema_problem",
    "shard_file_problem",
    "check_shard_files",
]

SCHEMA_VERSION = 2
# Versions every reader accepts. 1: L / ab as arrow.fixed_shape_tensor (users' existing shard sets); 2: as bytes.
READABLE_SCHEMA_VERSIONS = (1, 2)
# The quantized image columns: channels and numpy dtype of each (channel-first, C order).
LAB_COLUMNS = {"L": (1, np.dtype(np.uint8)), "ab": (2, np.dtype(np.int8))}
_METADATA_KEY = b"colorization"  # schema metadata key of the shard's JSON description (version, size, ...)


def tensor_column_to_numpy(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """An ``arrow.fixed_shape_tensor`` column (schema version 1) -> one numpy array (rows, *shape)."""
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    value_type = column.type
    if not isinstance(value_type, pa.FixedShapeTensorType):
        raise TypeError(f"expected an arrow.fixed_shape_tensor column; got {value_type}")
    arrays = [chunk.to_numpy_ndarray() for chunk in chunks if len(chunk)]
    if not arrays:
        return np.zeros((0, *value_type.shape), dtype=value_type.value_type.to_pandas_dtype())
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays)


def _side_of(width: int, channels: int) -> int | None:
    """S such that ``width == channels * S * S``, or None."""
    side = int(round((width / channels) ** 0.5))
    return side if channels * side * side == width and side > 0 else None


def _lab_type_problem(name: str, value_type: pa.DataType, size: int | None) -> str | None:
    """Why ``value_type`` cannot hold column ``name`` (of S = ``size`` when known), or None when it can."""
    channels, dtype = LAB_COLUMNS[name]
    if pa.types.is_fixed_size_binary(value_type):  # version 2
        side = _side_of(value_type.byte_width, channels)
        if side is not None and size in (None, side):
            return None
        expected = f"{channels} x S x S bytes" if size is None else f"{channels * size * size} bytes"
        return f"column {name} holds {value_type.byte_width} bytes per image, not {expected}"
    if isinstance(value_type, pa.FixedShapeTensorType):  # version 1
        shape = list(value_type.shape)
        shape_ok = len(shape) == 3 and shape[0] == channels and shape[1] == shape[2] and size in (None, shape[1])
        if value_type.value_type.to_pandas_dtype() == dtype and shape_ok:
            return None
        found = f"a {value_type.value_type} tensor of shape {shape}"
        return f"column {name} is {found}, not {dtype.name} [{channels}, S, S]"
    return f"column {name} has type {value_type}, not fixed_size_binary (version 2) or fixed_shape_tensor (version 1)"


def shard_schema_problem(schema: pa.Schema, columns: Sequence[str] = ("L", "ab")) -> str | None:
    """Why a shard with this Arrow schema cannot be read, or None: an unknown schema version, L / ab columns of
    another type or size than the version's. A schema without our metadata (a table built by hand) is judged by
    its column types alone.

    Args:
        schema: the file's Arrow schema (``pq.read_schema``) or a table's.
        columns: the columns the reader needs.

    Returns:
        One line naming the reason, or None.
    """
    size = None
    raw = (schema.metadata or {}).get(_METADATA_KEY)
    if raw is not None:
        try:
            metadata = json.loads(raw)
        except ValueError:
            return "not a colorization shard (its schema metadata is not JSON)"
        version = metadata.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            readable = ", ".join(map(str, READABLE_SCHEMA_VERSIONS))
            return (
                f"shard schema version {version!r} is not one this colorization reads ({readable}); "
                "upgrade colorization or preprocess the images again"
            )
        size = metadata.get("size")
    for name in columns:
        if name in LAB_COLUMNS and name in schema.names:
            problem = _lab_type_problem(name, schema.field(name).type, size)
            if problem:
                return problem
    return None


def lab_column_to_numpy(column: pa.ChunkedArray | pa.Array, name: str) -> np.ndarray:
    """A shard's L or ab column, of either schema version -> numpy (N, 1, S, S) uint8 / (N, 2, S, S) int8.

    Version 2 (fixed-size binary) is a zero-copy view of the Arrow data buffer (honouring the array's offset), so it
    is read-only and lives as long as the column: copy it (or crop into a new array) before writing to it or
    handing it to ``torch.from_numpy``. A column in several chunks is joined first (one copy). Version 1
    (``arrow.fixed_shape_tensor``) goes through :func:`tensor_column_to_numpy`.

    Args:
        column: the ``L`` or ``ab`` column of a table read from a shard (pyarrow, or a Ray Data pyarrow batch).
        name: "L" or "ab" (gives the channels and dtype).

    Raises:
        ValueError: the column's type cannot hold ``name`` (see :func:`shard_schema_problem`), or it has nulls.
    """
    channels, dtype = LAB_COLUMNS[name]
    problem = _lab_type_problem(name, column.type, None)
    if problem:
        raise ValueError(problem)
    if isinstance(column.type, pa.FixedShapeTensorType):
        return tensor_column_to_numpy(column)
    if isinstance(column, pa.ChunkedArray):
        column = column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()
    if column.null_count:
        raise ValueError(f"column {name} has {column.null_count} null value(s)")
    width = column.type.byte_width
    side = _side_of(width, channels)
    if len(column) == 0:
        return np.zeros((0, channels, side, side), dtype=dtype)
    data = column.buffers()[1]
    values = np.frombuffer(data, dtype=dtype, count=len(column) * width, offset=column.offset * width)
    return values.reshape(len(column), channels, side, side)


def shard_file_problem(path: str | Path, columns: Sequence[str] = ("ab", "colourless")) -> str | None:
    """Why a shard file cannot be read, from its Parquet footer alone (cheap), or None when it looks sound.

    Catches what a user's disk does to shards: a zero-byte or truncated file, a foreign or corrupted file, a
    Parquet file without the columns we need, a shard of a schema version this code does not know or with L / ab
    columns of another type. Damage inside the data pages is only found when reading.

    Args:
        path: a ``.parquet`` shard.
        columns: the columns the reader will need.

    Returns:
        One line naming the reason, or None.
    """
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as error:
        reason = " ".join(str(error).split())[:200]
        return f"not a readable Parquet file ({type(error).__name__}: {reason})"
    missing = [name for name in columns if name not in schema.names]
    if missing:
        return f"not a colorization shard (no column {', '.join(missing)})"
    return shard_schema_problem(schema, columns)


def check_shard_files(paths: Iterable[str | Path], columns: Sequence[str] = ("L", "ab", "colourless")) -> None:
    """Refuses the first shard file that cannot be read (footers only: well under a millisecond a file).

    Raises:
        UserError: "<file>: <reason>" (see :func:`shard_file_problem`).
    """
    for path in paths:
        problem = shard_file_problem(path, columns)
        if problem:
            raise UserError(f"{path}: {problem}")
