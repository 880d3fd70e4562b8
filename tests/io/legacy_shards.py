"""Schema version 1 shards, written the way colorization wrote them before version 2 (for compatibility tests).

Version 1 stored L and ab as Arrow's ``arrow.fixed_shape_tensor`` extension type, which Parquet keeps as
LIST<INT32>, delta-encoded. This helper reproduces that layout independently of the library's writer, so the
tests can check that every reader still returns the same integers from an old shard set.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from colorization.io.shards import QUANTIZATION, shard_schema

V1_ENCODING = {
    "use_dictionary": ["path", "split", "synset", "source_mode"],
    "column_encoding": {"L.list.element": "DELTA_BINARY_PACKED", "ab.list.element": "DELTA_BINARY_PACKED"},
    "write_statistics": False,
}


def v1_schema(size: int) -> pa.Schema:
    """The version 1 schema: today's scalar columns, L / ab as fixed-shape tensors, version 1 metadata."""
    metadata = {"schema_version": 1, "size": size, "quantization": QUANTIZATION}
    fields = [field for field in shard_schema(size) if field.name not in ("L", "ab")]
    fields += [
        pa.field("L", pa.fixed_shape_tensor(pa.uint8(), [1, size, size]), nullable=False),
        pa.field("ab", pa.fixed_shape_tensor(pa.int8(), [2, size, size]), nullable=False),
    ]
    return pa.schema(fields, metadata={b"colorization": json.dumps(metadata).encode()})


def write_v1_shard(path: Path, rows: list[dict], lightness: np.ndarray, ab: np.ndarray, *,
                   row_group_size: int = 4) -> None:
    """Writes ``rows`` (scalar columns) with their L_q (N, 1, S, S) uint8 and ab_q (N, 2, S, S) int8 as version 1."""
    schema = v1_schema(lightness.shape[-1])
    columns = {
        "L": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(lightness)),
        "ab": pa.FixedShapeTensorArray.from_numpy_ndarray(np.ascontiguousarray(ab)),
    }
    for field in schema:
        if field.name not in columns:
            columns[field.name] = pa.array([row[field.name] for row in rows], type=field.type)
    table = pa.Table.from_pydict({name: columns[name] for name in schema.names}, schema=schema)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size, compression="zstd", **V1_ENCODING)
